"""Suites: frozen, versioned recipe files (TOML, parsed with tomllib: nothing is ever evaluated).

A suite fixes datasets, models, bit targets, the FP and QAT training recipes, seeds and the
first/last-layer rule, for every method alike. Its integer ``version`` is bumped on any change;
results from different versions are never mixed.
"""
from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from qbench.contract.bits import FIRST_LAST_RULES, BitTarget
from qbench.errors import QbenchError
from qbench.train.recipe import (  # re-exported: suites are made of recipes
    AMP, OPTIMIZERS, SCHEDULES, TrainRecipe, check_amp)
from qbench.report.papers import check_ref, load_papers

ATTENTION = ("fp", "quantized")
#: how an FP checkpoint file is read (qbench.models.pretrained): the model's own state_dict in
#: safetensors, or timm's pretrained file through timm's loader
FP_FORMATS = ("safetensors", "timm")


def fp_format(path: str, given: str = "") -> str:
    """The format a file is read in: as given, else by its suffix (a torch ``.pth``/``.bin`` is
    timm's: only timm's reader unwraps such checkpoints)."""
    return given or ("safetensors" if path.endswith(".safetensors") else "timm")


@dataclass(frozen=True)
class DatasetEntry:
    """A registered dataset with options. The user's own data (:mod:`qbench.run.user`) also has a
    ``location`` (the folder it was found in: this machine's fact, not in keys) and a ``source``
    (the folder's fingerprint, or the factory's source hash: in keys, so other data is other jobs)."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    location: str = ""
    source: str = ""

    def identity(self) -> dict[str, Any]:
        """What names the data in keys (registered datasets: name and options, as always)."""
        return {"name": self.name, "options": self.options, **({"source": self.source} if self.source else {})}


@dataclass(frozen=True)
class ModelEntry:
    """A timm model name with constructor kwargs; ``label`` is what tables show.

    ``fp`` overrides fields of the suite's FP recipe for this model only: an architecture's
    reference is trained the way that architecture is trained (a ViT with AdamW, a ResNet with
    SGD), so that no method starts from a checkpoint the suite handicapped. QAT stays one recipe.

    ``fp_checkpoint`` names a file of FP weights the model starts from instead (no FP epochs; see
    :mod:`qbench.run.fpstart`), read as ``fp_checkpoint_format``. ``fp_file`` and ``fp_sha256`` are
    filled in when the run is planned (where the file was found, its content hash): they are
    this machine's facts, not recipe, and only the hash enters the keys.
    """

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    alias: str = ""
    fp: dict[str, Any] = field(default_factory=dict)
    fp_checkpoint: str = ""
    fp_checkpoint_format: str = ""
    fp_file: str = ""
    fp_sha256: str = ""
    #: a user's model (``pkg.module:factory``): its source hash (qbench.models.user.source_sha)
    source: str = ""

    def identity(self) -> dict[str, Any]:
        """What names the model in keys (its recipe override is hashed as the recipe it makes)."""
        return {"name": self.name, "kwargs": self.kwargs, "alias": self.alias,
                **({"source": self.source} if self.source else {})}

    @property
    def label(self) -> str:
        return self.alias or self.name


@dataclass(frozen=True)
class Suite:
    name: str
    version: int
    description: str
    datasets: tuple[DatasetEntry, ...]
    models: tuple[ModelEntry, ...]
    bits: tuple[BitTarget, ...]
    seeds: tuple[int, ...]
    fp: TrainRecipe
    qat: TrainRecipe
    first_last: str = "fp"
    methods: tuple[str, ...] = ("*",)
    compose: dict[str, dict[str, Any]] = field(default_factory=dict)
    job_timeout_s: float = 0.0
    gpu_recommended: bool = False
    #: torch intra-op threads of every job: the order of float reductions depends on it, so it is
    #: fixed by the recipe (1 in the CPU suites) and is part of every job key
    threads: int = 1
    #: torch.use_deterministic_algorithms (and cuDNN's deterministic flags) for every job
    deterministic: bool = True
    #: "fp": attention matmuls (QK^T, AV, SDPA) run FP, counted at 32 bits; "quantized": their
    #: inputs are quantized at the job's activation bits by the method's activation quantizer
    attention: str = "fp"
    #: the papers file (relative to the suite file): published numbers the leaderboard shows beside
    #: ours (qbench.report.papers); reference data, not recipe, so it is left out of the job keys
    papers: str = ""
    path: str = ""

    def fp_for(self, model: ModelEntry) -> TrainRecipe:
        """The FP recipe of ``model``: the suite's, with the model's own overrides."""
        return replace(self.fp, **model.fp) if model.fp else self.fp

    def recipe(self) -> dict[str, Any]:
        """The frozen recipe as plain data (what job hashes are made of)."""
        d = asdict(self)
        d.pop("path")
        d.pop("description")
        d.pop("papers")
        d["fp"], d["qat"] = self.fp.hashed(), self.qat.hashed()  # new recipe fields at their defaults: as before
        if d["attention"] == "fp":
            d.pop("attention")  # the default: suites written before the option keep their keys
        for ds in d["datasets"]:
            del ds["location"]  # where this machine found the user's data: not recipe
            if not ds["source"]:
                del ds["source"]
        for m in d["models"]:
            if not m["source"]:
                del m["source"]
            if not m["fp"]:
                m.pop("fp")  # likewise for models without their own FP recipe
            del m["fp_file"], m["fp_sha256"]  # where this machine found the file: not recipe
            if not m["fp_checkpoint"]:  # likewise for models trained from scratch
                del m["fp_checkpoint"], m["fp_checkpoint_format"]
        return json.loads(json.dumps(d, default=str, sort_keys=True))

    @property
    def sha(self) -> str:
        return hashlib.sha256(json.dumps(self.recipe(), sort_keys=True).encode()).hexdigest()[:12]

    def check_device(self, device_type: str) -> None:
        """Refuse, before anything trains, a recipe this device type cannot run (fp16 autocast on a CPU)."""
        check_amp(self.qat.amp, device_type, f"suite {self.name} [qat]")
        for m in self.models:
            check_amp(self.fp_for(m).amp, device_type, f"suite {self.name} [fp] (model {m.label})")

    def narrowed(self, **changes: Any) -> "Suite":
        """The same suite restricted from the command line (a subset of its jobs)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


_TOP_KEYS = {"name", "version", "description", "datasets", "models", "bits", "seeds", "fp", "qat",
             "first_last", "methods", "compose", "job_timeout_s", "gpu_recommended", "threads",
             "deterministic", "attention", "papers"}
_COMPOSE_KEYS = {"base", "weight_quantizer", "activation_quantizer", "allocator", "wrapper", "params", "version"}


def _check_keys(where: str, got: dict[str, Any], allowed: set[str]) -> None:
    for key in got:
        if key not in allowed:
            close = difflib.get_close_matches(key, sorted(allowed), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise QbenchError(f"Unknown key {key!r} in {where}.{hint} Allowed: {', '.join(sorted(allowed))}.")


def _recipe(where: str, raw: dict[str, Any]) -> TrainRecipe:
    allowed = set(TrainRecipe.__dataclass_fields__)
    _check_keys(where, raw, allowed)
    if "epochs" not in raw:
        raise QbenchError(f"{where} needs 'epochs'.")
    r = TrainRecipe(**raw)
    for flag in ("tf32", "channels_last"):
        if not isinstance(getattr(r, flag), bool):
            raise QbenchError(f"{where}.{flag} {getattr(r, flag)!r} is not a switch; write {flag} = true or "
                              f"{flag} = false (no quotes).")
    if r.amp not in AMP:
        raise QbenchError(f"{where}.amp {r.amp!r} is not an autocast setting; use one of "
                          f"{', '.join(repr(a) for a in AMP)} ('fp16' on a GPU only).")
    if r.optimizer not in OPTIMIZERS:
        raise QbenchError(f"{where}.optimizer {r.optimizer!r} is not supported; use one of {', '.join(OPTIMIZERS)}.")
    if r.schedule not in SCHEDULES:
        raise QbenchError(f"{where}.schedule {r.schedule!r} is not supported; use one of {', '.join(SCHEDULES)}.")
    if r.epochs < 0 or r.batch_size < 1 or r.lr <= 0:
        raise QbenchError(f"{where}: epochs must be >= 0, batch_size >= 1 and lr > 0.")
    return r


def parse_suite(raw: dict[str, Any], path: str = "<memory>") -> Suite:
    """Validate a suite's data; every error names the key and the fix."""
    where = f"suite {path}"
    _check_keys(where, raw, _TOP_KEYS)
    for key in ("name", "version", "datasets", "models", "bits", "seeds", "fp", "qat"):
        if key not in raw:
            raise QbenchError(f"{where} is missing {key!r}.")
    if not isinstance(raw["version"], int) or raw["version"] < 1:
        raise QbenchError(f"{where}: version must be a positive integer.")
    datasets = []
    for d in raw["datasets"]:
        d = {"name": d} if isinstance(d, str) else d
        _check_keys(f"{where} datasets", d, {"name", "options"})
        datasets.append(DatasetEntry(d["name"], dict(d.get("options", {}))))
    models = []
    for m in raw["models"]:
        m = {"name": m} if isinstance(m, str) else m
        _check_keys(f"{where} models", m, {"name", "kwargs", "alias", "fp", "fp_checkpoint", "fp_checkpoint_format"})
        fp_over = dict(m.get("fp", {}))
        start = _fp_start(f"{where} models.{m.get('alias') or m['name']}", m)
        if fp_over:  # validated as the recipe it makes
            _recipe(f"{where} models.{m.get('alias') or m['name']}.fp", {**asdict(_recipe(f"{where} [fp]", raw["fp"])),
                                                                          **fp_over})
        models.append(ModelEntry(m["name"], dict(m.get("kwargs", {})), m.get("alias", ""), fp_over, *start))
    compose = {}
    for cname, spec in raw.get("compose", {}).items():
        _check_keys(f"{where} compose.{cname}", spec, _COMPOSE_KEYS)
        if "base" not in spec:
            raise QbenchError(f"{where} compose.{cname} needs 'base', the method it starts from.")
        compose[cname] = dict(spec)
    first_last = raw.get("first_last", "fp")
    if first_last not in FIRST_LAST_RULES:
        raise QbenchError(f"{where}: first_last {first_last!r} is not a rule; use one of {', '.join(FIRST_LAST_RULES)}.")
    methods = raw.get("methods", ["*"])
    attention = raw.get("attention", "fp")
    if attention not in ATTENTION:
        raise QbenchError(f"{where}: attention {attention!r} is not a setting; use one of {', '.join(ATTENTION)}.")
    return Suite(
        name=raw["name"], version=raw["version"], description=raw.get("description", ""),
        datasets=tuple(datasets), models=tuple(models),
        bits=tuple(BitTarget.parse(b) for b in raw["bits"]), seeds=tuple(int(s) for s in raw["seeds"]),
        fp=_recipe(f"{where} [fp]", raw["fp"]), qat=_recipe(f"{where} [qat]", raw["qat"]),
        first_last=first_last, methods=tuple([methods] if isinstance(methods, str) else methods),
        compose=compose, job_timeout_s=float(raw.get("job_timeout_s", 0)),
        gpu_recommended=bool(raw.get("gpu_recommended", False)), threads=_threads(where, raw.get("threads", 1)),
        deterministic=bool(raw.get("deterministic", True)), attention=attention,
        papers=check_ref(where, raw["papers"]) if "papers" in raw else "", path=path)


def _fp_start(where: str, m: dict[str, Any]) -> tuple[str, str]:
    """A model's ``fp_checkpoint`` and its format, checked (the file itself is found at plan time)."""
    path, fmt = m.get("fp_checkpoint", ""), m.get("fp_checkpoint_format", "")
    if not path:
        if fmt:
            raise QbenchError(f"{where}: fp_checkpoint_format is set without fp_checkpoint; name the file or drop it.")
        return "", ""
    if not isinstance(path, str):
        raise QbenchError(f"{where}: fp_checkpoint must be a file path (a string), got {path!r}.")
    if m.get("fp"):
        raise QbenchError(f"{where} has both fp (a recipe to train the FP model) and fp_checkpoint (a file it "
                          "starts from, with no FP training); keep one.")
    if fmt and fmt not in FP_FORMATS:
        raise QbenchError(f"{where}: fp_checkpoint_format {fmt!r} is not a format; use one of {', '.join(FP_FORMATS)}.")
    return path, fp_format(path, fmt)


def _threads(where: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise QbenchError(f"{where}: threads must be a positive integer (torch intra-op threads per job), "
                          f"got {value!r}.")
    return value


def load_suite(name_or_path: str, suites: dict[str, Path]) -> Suite:
    """A registered suite by name, or a TOML file by path."""
    path = Path(name_or_path)
    if name_or_path not in suites and path.suffix == ".toml":
        if not path.exists():
            raise QbenchError(f"Suite file {name_or_path!r} does not exist.")
    elif name_or_path in suites:
        path = suites[name_or_path]
    else:
        from qbench.errors import UnknownNameError
        raise UnknownNameError("suite", name_or_path, suites, "Or pass the path of a suite TOML file.")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise QbenchError(f"Suite file {str(path)!r} is not valid TOML: {exc}.") from None
    suite = parse_suite(raw, str(path))
    if suite.papers:  # a broken papers file is named when the suite loads, not when it is published
        load_papers(path.parent / suite.papers)
    return suite
