"""What the subprocess executor sends to a fresh process, and what that process runs.

A worker rebuilds the parent's harness from plain data: the workspace, the data directory, the
command line, torch's thread count and the plugin set. Plugins registered by hand in the parent
(not through the entry-point group) are re-imported by module name, so a worker sees exactly the
methods its parent planned with.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from .harness import Harness
    from .jobs import Job


@dataclass(frozen=True)
class WorkerSpec:
    """Picklable description of a harness (no plugin manager, progress display or cache)."""

    workspace: str
    data_dir: str | None
    command: str
    threads: int
    load_entrypoints: bool
    extra_plugins: tuple[tuple[str, str], ...]  # (plugin name, module name)

    @classmethod
    def of(cls, harness: "Harness") -> "WorkerSpec":
        pm = harness.catalog.pm
        report = getattr(pm, "qbench_load_report", None)
        known = set(report.dists) if report is not None else set()
        extra = tuple((name, plugin.__name__) for name, plugin in pm.list_name_plugin()
                      if isinstance(plugin, ModuleType) and name not in known)
        return cls(workspace=str(harness.ws.root), data_dir=str(harness.data_dir) if harness.data_dir else None,
                   command=harness.command, threads=torch.get_num_threads(),
                   load_entrypoints=bool(getattr(pm, "qbench_load_entrypoints", True)), extra_plugins=extra)

    def harness(self) -> "Harness":
        """The harness, rebuilt in this (worker) process."""
        from .catalog import Catalog
        from .harness import Harness
        from .plugins import get_plugin_manager
        from .workspace import Workspace

        torch.set_num_threads(self.threads)
        pm = get_plugin_manager(self.load_entrypoints)
        for name, module in self.extra_plugins:
            if pm.get_plugin(name) is None and not pm.is_blocked(name):
                pm.register(importlib.import_module(module), name=name)
        return Harness(Catalog(pm), Workspace(self.workspace), Path(self.data_dir) if self.data_dir else None,
                       command=self.command)


def run_one(spec: WorkerSpec, job: "Job") -> None:
    """Entry point of a worker process: run the job; its row is the result."""
    spec.harness().run_job(job)
