"""FP starting points: a model starts from a file of FP weights instead of FP training.

A suite names the file in the model's entry (``[[models]] fp_checkpoint = "..."``), or the command
line does (``qbench run --fp-checkpoint [MODEL=]FILE``). When the run is planned the path is
resolved (``$VAR`` / ``${VAR}`` from the environment, ``~``, then relative to the suite file; a
command-line path relative to the working directory) and the file is hashed: its sha256 enters the
FP key (:meth:`qbench.run.jobs.Job.fp_config`), so another file is another FP checkpoint and other
QAT jobs. A file is hashed once per process, not once per job (cached by path, size and mtime).

The FP phase of such a model runs no epochs: the file is loaded (strictly:
:mod:`qbench.models.pretrained`), checked against the hash it was planned with, evaluated, and
kept in the workspace as the FP checkpoint every method starts from, as a trained one would be.
Its FP32 row records the file and its hash (row fields ``fp_checkpoint``, ``fp_checkpoint_sha256``).
"""
from __future__ import annotations

import hashlib
import os
import re
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qbench.errors import QbenchError
from qbench.run.suite import ModelEntry, Suite, fp_format

if TYPE_CHECKING:
    import torch
    from torch import nn

    from qbench.data.bundle import DataBundle
    from qbench.run.jobs import Job
    from qbench.run.workspace import Workspace

_SHA: dict[tuple[str, int, int], str] = {}
_VAR = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def file_sha256(path: Path) -> str:
    """The file's sha256 (hex), computed once per (path, size, mtime) in this process."""
    st = path.stat()
    memo = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if memo not in _SHA:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        _SHA[memo] = h.hexdigest()
    return _SHA[memo]


def _expand(spec: str, where: str, label: str, get: str) -> str:
    def var(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in os.environ:
            raise QbenchError(f"{where}: fp_checkpoint {spec!r} uses ${name}, which is not set. Fix: export "
                              f"{name}=DIR (the directory holding the file{get}), or pass --fp-checkpoint "
                              f"{label}=FILE.")
        return os.environ[name]
    return os.path.expanduser(_VAR.sub(var, spec))


def resolve_fp_files(suite: Suite) -> Suite:
    """The suite with each file start found, readable and hashed (entries already resolved, and
    models trained from scratch, are left as they are)."""
    from qbench.models.pretrained import check_readable

    if not any(m.fp_checkpoint and not m.fp_sha256 for m in suite.models):
        return suite
    models = []
    for m in suite.models:
        if m.fp_checkpoint and not m.fp_sha256:
            where = f"Suite {suite.name}, model {m.label}"
            get = f"; the comments of {suite.path} say where to get it" if Path(suite.path).is_file() else ""
            path = Path(_expand(m.fp_checkpoint, where, m.label, get))
            if not path.is_absolute() and suite.path and Path(suite.path).is_file():
                path = Path(suite.path).parent / path  # like a suite's papers file: beside the suite
            if not path.is_file():
                raise QbenchError(f"{where}: FP checkpoint file {str(path)!r} (fp_checkpoint = {m.fp_checkpoint!r}) "
                                  f"does not exist. Fix: put the file there{get}, or pass --fp-checkpoint "
                                  f"{m.label}=FILE.")
            check_readable(path, m.fp_checkpoint_format)
            m = replace(m, fp_file=str(path.resolve()), fp_sha256=file_sha256(path))
        models.append(m)
    return replace(suite, models=tuple(models))


def with_fp_checkpoints(suite: Suite, values: list[str] | tuple[str, ...] | None) -> Suite:
    """Apply ``--fp-checkpoint`` values: ``MODEL=FILE`` (a model of the run, by label or timm
    name), or ``FILE`` alone when the run has one model. A file keeps the format its suite entry
    names, else its suffix decides. Paths are taken from the working directory."""
    if not values:
        return suite
    models = list(suite.models)
    labels = ", ".join(m.label for m in models)
    for value in values:
        name, sep, file = value.partition("=")
        hit = [i for i, m in enumerate(models) if sep and name in (m.label, m.name)]
        if not hit:
            if sep and not Path(value).exists():
                raise QbenchError(f"--fp-checkpoint {value!r}: {name!r} is not a model of this run ({labels}). "
                                  "Fix: write --fp-checkpoint MODEL=FILE with one of them.")
            if len(models) != 1:
                raise QbenchError(f"--fp-checkpoint {value!r} names no model, and this run has {len(models)} "
                                  f"({labels}). Fix: write --fp-checkpoint MODEL=FILE, once per model.")
            hit, file = [0], value
        for i in hit:
            m = models[i]
            path = str(Path(file).expanduser().resolve())
            fmt = m.fp_checkpoint_format if m.fp_checkpoint and path.endswith(".safetensors") else ""
            if m.fp:
                raise QbenchError(f"--fp-checkpoint {value!r}: model {m.label} has its own FP recipe in the suite "
                                  "(fp = {...}); a file start runs no FP training. Fix: drop one of them.")
            models[i] = replace(m, fp_checkpoint=path, fp_checkpoint_format=fp_format(path, fmt), fp_file="",
                                fp_sha256="")
    return replace(suite, models=tuple(models))


def fp_file_fields(model: ModelEntry) -> dict[str, str]:
    """The row fields of a file start (none for a model the suite trains)."""
    if not model.fp_sha256:
        return {}
    return {"fp_checkpoint": model.fp_file, "fp_checkpoint_sha256": model.fp_sha256}


def load_fp_file(model: "nn.Module", entry: ModelEntry, num_classes: int, in_chans: int) -> None:
    """Load a planned file start into ``model``, after checking the file still has the hash the
    run was planned with (keys promise that content)."""
    from qbench.models.pretrained import load_weights

    path = Path(entry.fp_file)
    if not path.is_file():
        raise QbenchError(f"FP checkpoint {str(path)!r} of model {entry.label} is gone since the run was planned. "
                          "Fix: put it back, or plan again with the file where it is now.")
    sha = file_sha256(path)
    if sha != entry.fp_sha256:
        raise QbenchError(f"FP checkpoint {str(path)!r} changed since the run was planned (sha256 {entry.fp_sha256} "
                          f"then, {sha} now). Fix: run the command again; it plans with the file as it is now.")
    load_weights(model, entry.name, entry.label, entry.kwargs, path, entry.fp_checkpoint_format, num_classes,
                 in_chans)


def fp_from_file(job: "Job", data: "DataBundle", model: "nn.Module", device: "torch.device",
                 ws: "Workspace") -> dict[str, Any]:
    """The FP phase of a file start: load, evaluate (the FP32 row's numbers), keep in the workspace
    under the job's FP key, with no FP epochs; the meta says so."""
    import torch

    from qbench.run.provenance import environment, now
    from qbench.train.loop import evaluate

    t0 = time.perf_counter()
    load_fp_file(model, job.model, data.num_classes, data.in_chans)
    model.to(device)
    metrics = evaluate(model, data, device=device)
    meta = {"fp_key": job.fp_key, "config": job.fp_config(), "top1": metrics["top1"], "top5": metrics["top5"],
            "fp_epochs": 0, "train_s": 0.0, "load_s": time.perf_counter() - t0,
            "fp_checkpoint_format": job.model.fp_checkpoint_format, **fp_file_fields(job.model),
            "torch_threads": torch.get_num_threads(), "date": now(), **environment()}
    ws.save_fp(job.fp_key, model, meta)
    return meta


def describe_fp(jobs: list["Job"]) -> list[tuple[str, str, str, str]]:
    """(FP key, dataset/model, seeds, start) of each FP checkpoint the jobs plan: what a dry run
    shows, so a file start is seen with its file, format, hash and zero FP epochs."""
    seen: dict[str, tuple[str, str, list[int], str]] = {}
    for j in jobs:
        if j.fp_key in seen:
            if j.seed not in seen[j.fp_key][2]:
                seen[j.fp_key][2].append(j.seed)
            continue
        m = j.model
        if m.fp_sha256:
            start = f"file {m.fp_file} ({m.fp_checkpoint_format}, sha256 {m.fp_sha256}): 0 FP epochs"
        else:
            r = j.fp_recipe
            start = f"trained: {r.epochs} FP epochs ({r.optimizer}, lr {r.lr:g})"
        seen[j.fp_key] = (j.fp_key, f"{j.dataset.name}/{m.label}", [j.seed], start)
    return [(k, what, ",".join(map(str, seeds)), start) for k, what, seeds, start in seen.values()]
