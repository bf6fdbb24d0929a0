"""Where a run keeps its rows and FP checkpoints, written atomically.

Layout (default root ``./qbench-runs``, or ``--workspace`` / ``$QBENCH_WORKSPACE``)::

    <root>/<suite>/rows/<job key>.json      one result row per job (os.replace: all or nothing)
    <root>/<suite>/results.csv              every row, rebuilt after each job
    <root>/fp/<fp key>.safetensors (+ .json) FP checkpoints shared by every method

A row file exists only once its job has finished, so an interrupted run loses at most the job in
flight, and a rerun (which skips keys with an ``ok`` row) never duplicates a row.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

DEFAULT_ROOT = "qbench-runs"


def _file_mode() -> int:
    """The mode ``open()`` would give a new file (0o666 minus the umask). mkstemp makes 0o600,
    which would hide result files from the other users of a shared results directory."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path``, fsync, then rename: readers (and a run killed
    midway) see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _file_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def default_root() -> Path:
    return Path(os.environ.get("QBENCH_WORKSPACE", DEFAULT_ROOT))


# Columns of the CSV, in order; per-layer details stay in the JSON rows.
CSV_EXCLUDE = ("layers",)


class Workspace:
    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root else default_root()

    # -- rows --------------------------------------------------------------------------------
    def rows_dir(self, suite: str) -> Path:
        return self.root / suite / "rows"

    def row_path(self, suite: str, key: str) -> Path:
        return self.rows_dir(suite) / f"{key}.json"

    def read_row(self, suite: str, key: str) -> dict[str, Any] | None:
        p = self.row_path(suite, key)
        return json.loads(p.read_text()) if p.exists() else None

    def write_row(self, suite: str, row: dict[str, Any]) -> None:
        atomic_write_text(self.row_path(suite, row["job_key"]), json.dumps(row, indent=1, sort_keys=True, default=str))

    def is_finished(self, suite: str, key: str) -> bool:
        row = self.read_row(suite, key)
        return row is not None and row.get("status") == "ok"

    def rows(self, suite: str) -> list[dict[str, Any]]:
        d = self.rows_dir(suite)
        return [json.loads(p.read_text()) for p in sorted(d.glob("*.json"))] if d.exists() else []

    def write_csv(self, suite: str) -> Path:
        path = self.root / suite / "results.csv"
        atomic_write_text(path, rows_to_csv(self.rows(suite)))
        return path

    # -- FP checkpoints ----------------------------------------------------------------------
    def fp_path(self, fp_key: str) -> Path:
        return self.root / "fp" / f"{fp_key}.safetensors"

    def save_fp(self, fp_key: str, model: nn.Module, meta: dict[str, Any]) -> None:
        from safetensors.torch import save

        state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        atomic_write_text(self.fp_path(fp_key).with_suffix(".json"), json.dumps(meta, indent=1, default=str))
        atomic_write_bytes(self.fp_path(fp_key), save(state))

    def load_fp(self, fp_key: str, model: nn.Module) -> dict[str, Any] | None:
        """Load a finished FP checkpoint into ``model``; ``None`` when there is none yet."""
        from safetensors.torch import load_file

        path = self.fp_path(fp_key)
        meta_path = path.with_suffix(".json")
        if not (path.exists() and meta_path.exists()):
            return None
        model.load_state_dict(load_file(str(path)))
        return json.loads(meta_path.read_text())


def rows_to_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    flat = [{k: v for k, v in r.items() if k not in CSV_EXCLUDE} for r in rows]
    df = pd.DataFrame(flat)
    if not df.empty and "extra" in df:
        df["extra"] = df["extra"].map(lambda e: json.dumps(e, sort_keys=True) if isinstance(e, dict) else e)
    return df


def rows_to_csv(rows: list[dict[str, Any]]) -> str:
    df = rows_to_frame(rows)
    if df.empty:
        return ""
    lead = [c for c in ("suite", "suite_version", "dataset", "model", "method", "method_version", "bits", "seed",
                        "status", "top1", "top5", "fp_top1") if c in df]
    df = df[lead + sorted(c for c in df.columns if c not in lead)]
    df = df.sort_values([c for c in ("dataset", "model", "method", "bits", "seed") if c in df], kind="stable")
    return df.to_csv(index=False)
