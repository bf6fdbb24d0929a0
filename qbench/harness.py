"""Run jobs: FP checkpoint once per (dataset, model, seed), QAT per method, audit, one row each.

Nothing here knows any method: it asks the catalog for parts by the names a method gives.
A failing job (a plugin bug, a NaN, a timeout) becomes a ``failed`` / ``timeout`` row and the
run goes on.
"""
from __future__ import annotations

import resource
import time
import traceback
import warnings
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .audit import audit_model, export_parity, summarize
from .catalog import Catalog
from .data.bundle import DataBundle, iterate_batches
from .errors import QbenchError
from .jobs import Job
from .models import create_model
from .progress import RunProgress
from .provenance import environment, now
from .qat import run_qat
from .suite import DatasetEntry, Suite
from .surgery import find_layers
from .train import EpochStats, evaluate, train
from .workspace import Workspace

AUDIT_BATCH = 256


class Harness:
    """Runs a suite's jobs into a workspace.

    :param data_dir: where datasets that need files look for them.
    :param command: the command line that started the run, recorded in each row.
    """

    def __init__(self, catalog: Catalog, workspace: Workspace, data_dir: Path | None = None,
                 progress: RunProgress | None = None, command: str = "") -> None:
        self.catalog = catalog
        self.ws = workspace
        self.data_dir = data_dir
        self.progress = progress or RunProgress(enabled=False)
        self.command = command
        self._data: dict[str, DataBundle] = {}

    # -- lifecycle hooks never break a run ---------------------------------------------------
    def _notify(self, hook: str, **kwargs: Any) -> None:
        try:
            getattr(self.catalog.pm.hook, hook)(**kwargs)
        except Exception as exc:  # a broken logger must not take the suite down
            warnings.warn(f"A plugin's {hook} hook failed: {type(exc).__name__}: {exc}", stacklevel=2)

    # -- data and FP checkpoints -------------------------------------------------------------
    def data(self, entry: DatasetEntry) -> DataBundle:
        key = f"{entry.name}:{sorted(entry.options.items())}"
        if key not in self._data:
            factory = self.catalog.datasets.get(entry.name).factory
            options = dict(entry.options)
            data_dir = options.pop("data_dir", None) or self.data_dir
            self._data[key] = factory(Path(data_dir) if data_dir else None, **options)
        return self._data[key]

    def new_model(self, job: Job, data: DataBundle) -> nn.Module:
        return create_model(job.model.name, data.num_classes, data.in_chans, **job.model.kwargs)

    def fp_model(self, job: Job, data: DataBundle) -> tuple[nn.Module, dict[str, Any]]:
        """The FP checkpoint for the job's (dataset, model, seed), trained on first use."""
        torch.manual_seed(job.seed)
        model = self.new_model(job, data)
        meta = self.ws.load_fp(job.fp_key, model)
        if meta is not None:
            return model.eval(), meta
        recipe = job.suite.fp
        task = self.progress.start_epochs(f"FP {job.dataset.name}/{job.model.label}/seed{job.seed}", recipe.epochs)
        t0 = time.perf_counter()
        train(model, lambda x, y: torch.nn.functional.cross_entropy(model(x), y), data, recipe, job.seed,
              on_epoch=self._epoch_cb(job, "fp", task))
        metrics = evaluate(model, data)
        meta = {"fp_key": job.fp_key, "config": job.fp_config(), "top1": metrics["top1"], "top5": metrics["top5"],
                "train_s": time.perf_counter() - t0, "torch_threads": torch.get_num_threads(), "date": now(),
                **environment()}
        self.ws.save_fp(job.fp_key, model, meta)
        self.progress.finish_epochs(task)
        return model.eval(), meta

    def _epoch_cb(self, job: Job, phase: str, task: Any) -> Callable[[EpochStats], None]:
        def cb(stats: EpochStats) -> None:
            self.progress.advance_epochs(task, stats.loss)
            self._notify("qbench_after_epoch_completed", job=job, phase=phase, epoch=stats.epoch,
                         metrics={"loss": stats.loss, "lr": stats.lr, "seconds": stats.seconds})
        return cb

    # -- one job -------------------------------------------------------------------------------
    def base_row(self, job: Job) -> dict[str, Any]:
        m = job.method
        entry_plugin = self.catalog.methods.entry(m.name).plugin if m.name in self.catalog.methods else \
            "suite composition"
        dists = getattr(self.catalog.pm, "qbench_load_report").dists if hasattr(self.catalog.pm, "qbench_load_report") else {}
        return {
            "job_key": job.key, "fp_key": job.fp_key, "suite": job.suite.name, "suite_version": job.suite.version,
            "suite_sha": job.suite.sha, "dataset": job.dataset.name, "model": job.model.label,
            "model_name": job.model.name, "method": m.name, "method_version": m.version,
            "plugin": dists.get(entry_plugin, entry_plugin),
            "weight_quantizer": m.weight_quantizer or "", "activation_quantizer": m.activation_quantizer or "",
            "allocator": "" if m.reference else m.allocator, "wrapper": "" if m.reference else m.wrapper,
            "bits": "fp32" if m.reference else job.bits.label,
            "w_bits_target": 32 if m.reference else job.bits.w,
            "a_bits_target": 32 if (m.reference or m.weight_only) else job.bits.a,
            "first_last": job.suite.first_last, "seed": job.seed, "command": self.command,
            # torch's intra-op thread count changes the order of reductions and so the result
            # (1 vs 2 threads: LSQ resnet20 W4A4 on digits 98.06 vs 98.89); compare checks it
            "torch_threads": torch.get_num_threads(),
            "date": now(), **environment(),
        }

    def run_job(self, job: Job) -> dict[str, Any]:
        """Run one job and write its row; never raises for a job's own failure."""
        row = self.base_row(job)
        t0 = time.perf_counter()
        self._notify("qbench_before_training_run", job=job)
        try:
            row.update(self._execute(job))
            row["status"], row["reason"] = "ok", ""
        except KeyboardInterrupt:
            raise
        except TimeoutError as exc:
            row["status"], row["reason"] = "timeout", str(exc)
            self._notify("qbench_on_training_error", job=job, error=exc)
        except Exception as exc:
            row["status"] = "failed"
            row["reason"] = f"{type(exc).__name__}: {exc}"
            row["traceback"] = traceback.format_exc(limit=8)
            self._notify("qbench_on_training_error", job=job, error=exc)
        row["wall_s"] = round(time.perf_counter() - t0, 3)
        # the process's peak so far: per job under the subprocess executor, a running max under local
        row["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        self.ws.write_row(job.suite.name, row)
        self.ws.write_csv(job.suite.name)
        self._notify("qbench_after_training_run", job=job, row=row)
        return row

    def record_lost(self, job: Job, status: str, reason: str, wall_s: float) -> dict[str, Any]:
        """Write the row of a job whose process died or was killed before it could write one."""
        row = self.base_row(job)
        row.update({"status": status, "reason": reason, "wall_s": round(wall_s, 3)})
        self.ws.write_row(job.suite.name, row)
        self.ws.write_csv(job.suite.name)
        self._notify("qbench_on_training_error", job=job, error=RuntimeError(reason))
        self._notify("qbench_after_training_run", job=job, row=row)
        return row

    def _execute(self, job: Job) -> dict[str, Any]:
        data = self.data(job.dataset)
        fp_model, fp_meta = self.fp_model(job, data)
        out: dict[str, Any] = {"dataset_hash": data.fingerprint, "dataset_source": data.source,
                               "fp_top1": fp_meta["top1"]}
        x_audit = next(iterate_batches(data.test, AUDIT_BATCH, shuffle=False))[0]
        if job.method.reference:
            layers = find_layers(fp_model, x_audit)
            metrics = evaluate(fp_model, data)
            out.update(metrics)
            out.update({k: v for k, v in summarize(fp_model, audit_model(fp_model, layers, x_audit)).items()})
            out.update({"export_max_abs_diff": 0.0, "extra": {}})
            return out
        suite = job.suite
        deadline = time.monotonic() + suite.job_timeout_s if suite.job_timeout_s else None
        task = self.progress.start_epochs(job.label, suite.qat.epochs)
        t0 = time.perf_counter()
        result = run_qat(job.method, self.catalog, fp_model, data, job.bits, suite.qat, suite.first_last, job.seed,
                         on_epoch=self._epoch_cb(job, "qat", task), deadline=deadline)
        out["qat_s"] = round(time.perf_counter() - t0, 3)
        self.progress.finish_epochs(task)
        model = result.model
        out.update(evaluate(model, data))
        out.update(summarize(model, audit_model(model, result.layers, x_audit)))
        out["export_max_abs_diff"] = export_parity(model, x_audit)
        out["extra"] = result.extra
        return out

    # -- a whole run -------------------------------------------------------------------------
    def run(self, suite: Suite, jobs: list[Job], executor: str = "local") -> list[dict[str, Any]]:
        todo = [j for j in jobs if not self.ws.is_finished(suite.name, j.key)]
        self._notify("qbench_before_suite_run", suite=suite, jobs=todo)
        exe = self.catalog.executors.get(executor).factory()
        self.progress.start_jobs(len(jobs), done=len(jobs) - len(todo))
        for row in exe.run(todo, self):
            self.progress.advance_jobs(row)
        rows = [r for r in (self.ws.read_row(suite.name, j.key) for j in jobs) if r is not None]
        self._notify("qbench_after_suite_run", suite=suite, rows=rows)
        return rows


def check_runnable(jobs: list[Job]) -> None:
    if not jobs:
        raise QbenchError("Nothing to run: the filters left no jobs.")
