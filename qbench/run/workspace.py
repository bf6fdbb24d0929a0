"""Where a run keeps its rows, checkpoints and locks, written atomically and read defensively.

Layout (default root ``./qbench-runs``, or ``--workspace`` / ``$QBENCH_WORKSPACE``)::

    <root>/<suite>/rows/<job key>.json       one result row per job (os.replace: all or nothing)
    <root>/<suite>/results.csv               every row, rebuilt after each job
    <root>/fp/<fp key>.safetensors (+ .json) FP checkpoints shared by every method
    <root>/epochs/<key>.<phase>.pt           the last epoch of a job in flight (resume after a kill)
    <root>/locks/<name>.lock                 per-job and per-checkpoint locks (flock)
    <root>/cache/                            fingerprints of large dataset trees (rebuilt when missing)
    <root>/quarantine/                       corrupt or foreign files, moved aside with a warning

A row file exists only once its job has finished, so an interrupted run loses at most the epoch
in flight, and a rerun (which skips keys with an ``ok`` row) never duplicates a row.
"""
from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path
from typing import Any

from torch import nn

from qbench.atomic import atomic_write_bytes, atomic_write_text
from qbench.report.rows_csv import rows_to_csv
from qbench.run.epochs import EpochCheckpoint
from qbench.run.locks import FileLock

DEFAULT_ROOT = "qbench-runs"


def default_root() -> Path:
    return Path(os.environ.get("QBENCH_WORKSPACE", DEFAULT_ROOT))


class Workspace:
    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root else default_root()

    # -- damaged files -----------------------------------------------------------------------
    def quarantine(self, path: Path, why: str) -> None:
        """Move a file that cannot be read out of the way, saying so in one line; the job that
        needs it then runs again."""
        dest = self.root / "quarantine" / f"{path.name}.{time.strftime('%Y%m%dT%H%M%S')}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(path, dest)
        except FileNotFoundError:  # another process moved it first
            return
        warnings.warn(f"qbench: {path} {why}; moved it to {dest}. The job that needs it runs again.", stacklevel=3)

    # -- rows --------------------------------------------------------------------------------
    def rows_dir(self, suite: str) -> Path:
        return self.root / suite / "rows"

    def row_path(self, suite: str, key: str) -> Path:
        return self.rows_dir(suite) / f"{key}.json"

    def _load_row(self, path: Path) -> dict[str, Any] | None:
        try:
            row = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (ValueError, UnicodeDecodeError) as exc:
            self.quarantine(path, f"is not a readable result row ({type(exc).__name__}: {exc})")
            return None
        if not isinstance(row, dict) or row.get("job_key") != path.stem:
            self.quarantine(path, "is not a qbench result row (no job_key matching its name)")
            return None
        return row

    def read_row(self, suite: str, key: str) -> dict[str, Any] | None:
        return self._load_row(self.row_path(suite, key))

    def write_row(self, suite: str, row: dict[str, Any]) -> None:
        atomic_write_text(self.row_path(suite, row["job_key"]), json.dumps(row, indent=1, sort_keys=True, default=str))

    def is_finished(self, suite: str, key: str) -> bool:
        row = self.read_row(suite, key)
        return row is not None and row.get("status") == "ok"

    def rows(self, suite: str) -> list[dict[str, Any]]:
        d = self.rows_dir(suite)
        found = (self._load_row(p) for p in sorted(d.glob("*.json"))) if d.exists() else iter(())
        return [r for r in found if r is not None]

    def write_csv(self, suite: str) -> Path:
        path = self.root / suite / "results.csv"
        atomic_write_text(path, rows_to_csv(self.rows(suite)))
        return path

    # -- locks and epoch checkpoints -----------------------------------------------------------
    def lock(self, name: str) -> FileLock:
        """An exclusive lock between processes (``with ws.lock(key):``), released when its holder
        exits or dies, so a killed run leaves nothing to clean up."""
        return FileLock(self.root / "locks" / f"{name}.lock")

    def epoch_checkpoint(self, key: str, phase: str) -> EpochCheckpoint:
        return EpochCheckpoint(self.root / "epochs" / f"{key}.{phase}.pt", self.quarantine)

    # -- FP checkpoints ----------------------------------------------------------------------
    def fp_path(self, fp_key: str) -> Path:
        return self.root / "fp" / f"{fp_key}.safetensors"

    def save_fp(self, fp_key: str, model: nn.Module, meta: dict[str, Any]) -> None:
        from safetensors.torch import save

        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        atomic_write_text(self.fp_path(fp_key).with_suffix(".json"), json.dumps(meta, indent=1, default=str))
        atomic_write_bytes(self.fp_path(fp_key), save(state))

    def load_fp(self, fp_key: str, model: nn.Module) -> dict[str, Any] | None:
        """Load a finished FP checkpoint into ``model``; ``None`` when there is none yet, or when
        it cannot be read (then it is quarantined and trained again)."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = self.fp_path(fp_key)
        meta_path = path.with_suffix(".json")
        if not (path.exists() and meta_path.exists()):
            return None
        try:
            meta = json.loads(meta_path.read_text())
            model.load_state_dict(load_file(str(path)))
        except (SafetensorError, ValueError, RuntimeError, OSError) as exc:
            why = f"is not a readable FP checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0]})"
            self.quarantine(path, why)
            self.quarantine(meta_path, "belongs to the FP checkpoint moved aside")
            return None
        return meta
