"""What a worker process runs: the parent's harness rebuilt from plain data, and a job loop.

A worker rebuilds the parent's harness from a :class:`WorkerSpec`: the workspace, the data
directory, the command line, the device and the plugin set. Plugins registered by hand in the
parent (not through the entry-point group) are re-imported by module name, so a worker sees
exactly the methods its parent planned with. The worker computes rows and sends them to the
parent, which alone writes them.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qbench.run.harness import Harness


@dataclass(frozen=True)
class WorkerSpec:
    """Picklable description of a harness (no plugin manager, progress display or cache)."""

    workspace: str
    data_dir: str | None
    command: str
    device: str
    executor: str
    load_entrypoints: bool
    extra_plugins: tuple[tuple[str, str], ...]  # (plugin name, module name)
    #: DataLoader workers of file datasets in the worker (None: the worker's default); an executor
    #: running N workers on one machine gives each its share of the cores
    loader_workers: int | None = None
    #: the devices workers take in turn (the harness's ``devices``)
    devices: tuple[str, ...] = ()

    @classmethod
    def of(cls, harness: "Harness") -> "WorkerSpec":
        pm = harness.catalog.pm
        known = set(pm.load_report.dists)
        extra = tuple((name, plugin.__name__) for name, plugin in pm.list_name_plugin()
                      if isinstance(plugin, ModuleType) and name not in known)
        return cls(workspace=str(harness.ws.root), data_dir=str(harness.data_dir) if harness.data_dir else None,
                   command=harness.command, device=str(harness.device), executor=harness.executor,
                   load_entrypoints=pm.load_entrypoints, extra_plugins=extra, loader_workers=harness.loader_workers,
                   devices=harness.devices)

    def on_device(self, device: str) -> "WorkerSpec":
        return replace(self, device=device, devices=(device,))

    def worker_device(self, index: int) -> str:
        """The device of pool worker ``index``: the spec's devices in turn."""
        import torch

        from qbench.run.runtime import worker_device

        return str(worker_device([torch.device(d) for d in self.devices or (self.device,)], index))

    def harness(self) -> "Harness":
        """The harness, rebuilt in this (worker) process."""
        from qbench.plugin.catalog import Catalog
        from qbench.plugin.manager import get_plugin_manager
        from qbench.run.harness import Harness
        from qbench.run.workspace import Workspace

        pm = get_plugin_manager(self.load_entrypoints)
        for name, module in self.extra_plugins:
            if pm.get_plugin(name) is None and not pm.is_blocked(name):
                pm.register(importlib.import_module(module), name=name)
        return Harness(Catalog(pm), Workspace(self.workspace), Path(self.data_dir) if self.data_dir else None,
                       command=self.command, device=self.device, executor=self.executor,
                       loader_workers=self.loader_workers, devices=self.devices)


class PipeProgress:
    """The progress interface a harness reports to, sent to the parent as one status line."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def start_epochs(self, label: str, total: int) -> Any:
        phase = "FP training" if label.startswith("FP ") else "QAT"
        self.conn.send(("status", f"{phase} epoch 0/{total}"))
        return [phase, 0, total]

    def advance_epochs(self, task: Any, loss: float) -> None:
        task[1] += 1
        self.conn.send(("status", f"{task[0]} epoch {task[1]}/{task[2]}, loss {loss:.3f}"))

    def finish_epochs(self, task: Any) -> None:
        self.conn.send(("status", f"{task[0]} done; evaluating and auditing"))


def worker_main(spec: WorkerSpec, index: int, conn: Connection, lifeline: tuple[int, bool] | None = None) -> None:
    """Entry point of a pool worker: run each job the parent sends until it sends ``None``.

    :param lifeline: the parent's pid, and whether it started this process from its main thread
        (:func:`qbench.run.lifeline.die_with_parent`): the worker never outlives its parent.
    """
    if lifeline is not None:
        from qbench.run.lifeline import die_with_parent

        die_with_parent(*lifeline)
    harness = spec.on_device(spec.worker_device(index)).harness()
    harness.progress = PipeProgress(conn)  # type: ignore[assignment]
    while True:
        try:
            job = conn.recv()
        except EOFError:  # the parent closed its end (or is gone): nothing more will come
            return
        if job is None:
            return
        conn.send(("row", harness.compute_row(job)))
