"""Expand suite x methods into jobs, each keyed by a hash of everything that defines it.

The key is content-addressed (Brevitas' benchmark runner does the same): change a method's
version, a hyperparameter or the recipe and the job is new; change nothing and a rerun finds the
finished row and skips it.
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from qbench.contract.bits import BitTarget
from qbench.contract.method import Method
from qbench.errors import QbenchError, UnknownNameError
from qbench.models import check_model_name
from qbench.plugin.catalog import Catalog
from qbench.run.fpstart import resolve_fp_files
from qbench.run.suite import DatasetEntry, ModelEntry, Suite, TrainRecipe

FP_BITS = BitTarget(32, 32)


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Job:
    """One (dataset, model, method, bits, seed) of a suite."""

    suite: Suite
    dataset: DatasetEntry
    model: ModelEntry
    method: Method
    bits: BitTarget
    seed: int
    #: every part's parameters bound against its factory (defaults included), as JSON: set by
    #: :func:`expand`, hashed into the key so a changed default is a new job
    params_json: str = "{}"
    #: "cpu" or "cuda": results differ across device types, so rows never mix them under one key
    device_type: str = "cpu"

    def fp_config(self) -> dict[str, Any]:
        """What defines the FP checkpoint this job starts from (shared by every method)."""
        if self.model.fp_sha256:  # a file start (run/fpstart.py): the file's content, no recipe or seed
            return {"dataset": self.dataset.identity(), "model": self.model.identity(), "runtime": self.runtime(),
                    "fp_checkpoint": {"sha256": self.model.fp_sha256, "format": self.model.fp_checkpoint_format}}
        return {"dataset": self.dataset.identity(), "model": self.model.identity(), "seed": self.seed,
                "fp": self.fp_recipe.hashed(), "runtime": self.runtime()}

    @property
    def fp_recipe(self) -> TrainRecipe:
        """The suite's FP recipe with this model's overrides (``[[models]] fp = {...}``)."""
        return self.suite.fp_for(self.model)

    @property
    def recipe(self) -> TrainRecipe:
        """The recipe of this job's own training: QAT's, or the FP recipe for the FP reference."""
        return self.fp_recipe if self.method.reference else self.suite.qat

    def runtime(self) -> dict[str, Any]:
        """What the recipe fixes about how a job computes: torch's intra-op threads (the order of
        reductions), deterministic algorithms, and the device type."""
        return {"threads": self.suite.threads, "deterministic": self.suite.deterministic,
                "device_type": self.device_type}

    @property
    def fp_key(self) -> str:
        return _hash(self.fp_config())

    def config(self) -> dict[str, Any]:
        return {"fp": self.fp_config(), "method": self.method.config(), "params": json.loads(self.params_json),
                "bits": self.bits.label,
                "qat": self.suite.qat.hashed(), "first_last": self.suite.first_last,
                "suite": [self.suite.name, self.suite.version],
                **({"seed": self.seed} if self.model.fp_sha256 else {})}  # QAT's seed, when fp_config has none

    @property
    def key(self) -> str:
        return _hash(self.config())

    @property
    def label(self) -> str:
        bits = "fp32" if self.method.reference else self.bits.label
        return f"{self.dataset.name}/{self.model.label}/{self.method.name}/{bits}/seed{self.seed}"


def suite_methods(suite: Suite, catalog: Catalog) -> dict[str, Method]:
    """Registered methods plus the suite's compositions (e.g. BWRF around ASQ's quantizers)."""
    methods = {m: catalog.methods.get(m) for m in catalog.methods}
    for name, spec in suite.compose.items():
        spec = dict(spec)
        if spec["base"] not in catalog.methods:
            # a composition of a method that is not installed is not offered either (cifar10 tunes
            # dgms; without the dgms plugin it plans the rest); naming it still fails, as unknown
            continue
        base = catalog.methods.get(spec.pop("base"))
        spec.setdefault("version", base.version)
        methods[name] = base.compose(name, **spec)
    return methods


def select_methods(patterns: tuple[str, ...] | list[str], available: dict[str, Method]) -> list[Method]:
    """Methods matching names or glob patterns, in the order given; unknown names are errors."""
    chosen: list[Method] = []
    for pat in patterns:
        hits = sorted(fnmatch.filter(available, pat)) if any(c in pat for c in "*?[") else \
            ([pat] if pat in available else [])
        if not hits and not any(c in pat for c in "*?["):
            raise UnknownNameError("method", pat, available,
                                   "Install a plugin that provides it (pip install plugins/qbench-<name>).")
        for h in hits:
            if available[h] not in chosen:
                chosen.append(available[h])
    # The FP32 reference first: every table needs it on top.
    chosen.sort(key=lambda m: not m.reference)
    return chosen


def expand(suite: Suite, catalog: Catalog, methods: list[Method], device_type: str = "cpu") -> list[Job]:
    """All jobs of a suite, grouped so jobs sharing an FP checkpoint run back to back.

    Every method's parts and parameters are checked here, before anything trains.
    """
    suite = resolve_fp_files(suite)  # file starts found and hashed (once per file; plan_jobs did it already)
    suite.check_device(device_type)
    bound = {}
    for m in methods:
        catalog.check_method(m)
        bound[m.name] = json.dumps(catalog.bind_params(m), sort_keys=True)
    for d in suite.datasets:
        catalog.datasets.get(d.name)
    for mdl in suite.models:
        check_model_name(mdl.name)
    jobs: list[Job] = []
    for d in suite.datasets:
        for mdl in suite.models:
            for seed in suite.seeds:
                for m in methods:
                    targets = [FP_BITS] if m.reference else list(suite.bits)
                    for bits in targets:
                        if m.weight_only and not m.reference:
                            bits = BitTarget(bits.w, 32)
                        job = Job(suite, d, mdl, m, bits, seed, bound[m.name], device_type)
                        if job not in jobs:
                            jobs.append(job)
    if not jobs:
        raise QbenchError(f"Suite {suite.name!r} expands to no jobs: check its datasets, models, bits and seeds.")
    return jobs
