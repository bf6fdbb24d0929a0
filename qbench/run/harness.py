"""Run jobs: FP checkpoint once per (dataset, model, seed), QAT per method, audit, one row each.

Nothing here knows any method: it asks the catalog for parts by the names a method gives.
A failing job (a plugin bug, a NaN, a timeout) becomes a ``failed`` / ``timeout`` row and the
run goes on.
"""
from __future__ import annotations

import time
import traceback
import warnings
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from qbench.data.bundle import DataBundle, first_batch
from qbench.data.loader import set_loader_workers
from qbench.deploy import keep_and_check
from qbench.deploy.memory import process_peak_kb
from qbench.models import create_model
from qbench.plugin.catalog import Catalog
from qbench.report.budget import flag_row
from qbench.report.row import SCHEMA_VERSION, Row, unknown_fields
from qbench.run.fpstart import fp_file_fields, fp_from_file
from qbench.run.jobs import Job
from qbench.run.progress import RunProgress
from qbench.run.provenance import environment, now
from qbench.run.runtime import apply_runtime, device_facts
from qbench.run.suite import DatasetEntry, Suite
from qbench.run.user import load_data
from qbench.run.workspace import Workspace
from qbench.train.audit import audit_model, export_parity, summarize
from qbench.train.loop import EpochStats, evaluate, train
from qbench.train.qat import run_qat
from qbench.train.matmul import ATTENTION
from qbench.train.surgery import find_layers

AUDIT_BATCH = 256


FpCheckpoint = tuple[bytes, dict[str, Any]]  # safetensors bytes + meta: how an FP checkpoint travels (Ray)


class Harness:
    """Runs a suite's jobs into a workspace.

    :param data_dir: where datasets that need files look for them.
    :param command: the command line that started the run, recorded in each row.
    :param device: where jobs compute ("cpu", "cuda:0"); a pool worker gets its own.
    :param devices: where pool workers compute, in turn (``--device cuda:0,2``); default: ``device``.
    :param loader_workers: DataLoader workers of file datasets in this process (None: the default,
        :func:`qbench.data.loader.loader_workers`); the pool gives each worker its share of the cores.
    """

    def __init__(self, catalog: Catalog, workspace: Workspace, data_dir: Path | None = None,
                 progress: RunProgress | None = None, command: str = "", device: str = "cpu",
                 executor: str = "local", loader_workers: int | None = None,
                 devices: tuple[str, ...] = ()) -> None:
        self.catalog = catalog
        self.ws = workspace
        self.data_dir = data_dir
        self.progress = progress or RunProgress(enabled=False)
        self.command = command
        self.device = torch.device(device)
        self.devices = tuple(devices) or (str(self.device),)
        self.executor = executor
        self.loader_workers = loader_workers
        self._data: dict[str, DataBundle] = {}

    # -- lifecycle hooks never break a run ---------------------------------------------------
    def _notify(self, hook: str, **kwargs: Any) -> None:
        try:
            getattr(self.catalog.pm.hook, hook)(**kwargs)
        except Exception as exc:  # a broken logger must not take the suite down
            warnings.warn(f"A plugin's {hook} hook failed: {type(exc).__name__}: {exc}", stacklevel=2)

    # -- data and FP checkpoints -------------------------------------------------------------
    def data(self, entry: DatasetEntry) -> DataBundle:
        key = f"{entry.name}:{entry.location}:{sorted(entry.options.items())}"
        if key not in self._data:  # the user's folder, a carved validation split: run/user.py
            self._data[key] = load_data(self.catalog, entry, self.data_dir, self.ws.root / "cache")
        return self._data[key]

    def new_model(self, job: Job, data: DataBundle) -> nn.Module:
        return create_model(job.model.name, data.num_classes, data.in_chans, **job.model.kwargs)

    def fp_model(self, job: Job, data: DataBundle, fp: FpCheckpoint | None = None) -> tuple[nn.Module, dict[str, Any]]:
        """The FP checkpoint for the job's (dataset, model, seed): given (Ray), stored, or trained
        here once. Training holds the checkpoint's lock, so a second process waits and loads it."""
        torch.manual_seed(job.seed)
        model = self.new_model(job, data)
        if fp is not None:
            model.load_state_dict(load_state(fp[0]))
            return model.to(self.device).eval(), fp[1]
        with self.ws.lock(f"fp-{job.fp_key}"):
            meta = self.ws.load_fp(job.fp_key, model)
            if meta is None and job.model.fp_file:  # a file start: loaded and evaluated, no FP epochs
                meta = fp_from_file(job, data, model, self.device, self.ws)
            elif meta is None:
                meta = self._train_fp(job, data, model)
        return model.to(self.device).eval(), meta

    def _train_fp(self, job: Job, data: DataBundle, model: nn.Module) -> dict[str, Any]:
        recipe = job.fp_recipe
        task = self.progress.start_epochs(f"FP {job.dataset.name}/{job.model.label}/seed{job.seed}", recipe.epochs)
        t0 = time.perf_counter()
        model.to(self.device)
        ckpt = self.ws.epoch_checkpoint(job.fp_key, "fp")
        train(model, lambda x, y: torch.nn.functional.cross_entropy(model(x), y), data, recipe, job.seed,
              on_epoch=self._epoch_cb(job, "fp", task), checkpoint=ckpt, device=self.device)
        metrics = evaluate(model, data, device=self.device, recipe=recipe)
        meta = {"fp_key": job.fp_key, "config": job.fp_config(), "top1": metrics["top1"], "top5": metrics["top5"],
                "train_s": time.perf_counter() - t0, "torch_threads": torch.get_num_threads(), "date": now(),
                **environment()}
        self.ws.save_fp(job.fp_key, model, meta)
        ckpt.clear()
        self.progress.finish_epochs(task)
        return meta

    def train_fp(self, job: Job) -> FpCheckpoint:
        """The job's FP checkpoint as bytes and meta, trained here if needed (a Ray task's result)."""
        self._apply_runtime(job)
        model, meta = self.fp_model(job, self.data(job.dataset))
        return save_state(model), meta

    def _epoch_cb(self, job: Job, phase: str, task: Any) -> Callable[[EpochStats], None]:
        def cb(stats: EpochStats) -> None:
            self.progress.advance_epochs(task, stats.loss)
            self._notify("qbench_after_epoch_completed", job=job, phase=phase, epoch=stats.epoch,
                         metrics={"loss": stats.loss, "lr": stats.lr, "seconds": stats.seconds})
        return cb

    def _apply_runtime(self, job: Job) -> None:
        apply_runtime(job.suite.threads, job.suite.deterministic, self.device, job.recipe.tf32)
        set_loader_workers(self.loader_workers)

    # -- one job -------------------------------------------------------------------------------
    def base_row(self, job: Job, device: str | None = None) -> dict[str, Any]:
        m = job.method
        entry_plugin = self.catalog.methods.entry(m.name).plugin if m.name in self.catalog.methods else \
            "suite composition"
        dists = self.catalog.pm.load_report.dists
        row: Row = {
            "schema_version": SCHEMA_VERSION,
            "job_key": job.key, "fp_key": job.fp_key, "suite": job.suite.name, "suite_version": job.suite.version,
            "suite_sha": job.suite.sha, "dataset": job.dataset.name, "model": job.model.label,
            "model_name": job.model.name, "method": m.name, "method_version": m.version,
            "plugin": dists.get(entry_plugin, entry_plugin),
            "weight_quantizer": m.weight_quantizer or "", "activation_quantizer": m.activation_quantizer or "",
            "allocator": "" if m.reference else m.allocator, "wrapper": "" if m.reference else m.wrapper,
            "params": job.params_json,
            "bits": "fp32" if m.reference else job.bits.label,
            "w_bits_target": 32 if m.reference else job.bits.w,
            "a_bits_target": 32 if (m.reference or m.weight_only) else job.bits.a,
            "first_last": job.suite.first_last, "attention": job.suite.attention, "seed": job.seed,
            **fp_file_fields(job.model),  # a file start: the file and its hash
            "command": self.command,
            "torch_threads": job.suite.threads, "deterministic": job.suite.deterministic, **job.recipe.precision(),
            "executor": self.executor, "date": now(), **environment(),
            **device_facts(torch.device(device) if device else self.device),
        }
        return dict(row)

    def compute_row(self, job: Job, fp: FpCheckpoint | None = None) -> dict[str, Any]:
        """Run one job and return its row (written by the caller); never raises for the job's
        own failure. ``fp`` hands over the FP checkpoint where there is no shared workspace."""
        self._apply_runtime(job)
        row = self.base_row(job)
        t0 = time.perf_counter()
        self._notify("qbench_before_training_run", job=job)
        try:
            row.update(self._execute(job, fp))
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
        flag_row(row, self._num_classes(job))
        row["wall_s"] = round(time.perf_counter() - t0, 3)
        # peak so far (per job under the subprocess executor, else a running max); deploy's HWM resets undone
        row["peak_rss_mb"] = round(process_peak_kb() / 1024, 1)
        return row

    def _num_classes(self, job: Job) -> int:
        try:
            return self.data(job.dataset).num_classes
        except Exception:  # the data itself failed to load: the row already says why
            return 0

    def write_row(self, job: Job, row: dict[str, Any]) -> dict[str, Any]:
        """Write a finished job's row (the one place rows are written) and drop its epoch checkpoints."""
        unknown = unknown_fields(row)
        if unknown:
            warnings.warn(f"Row of {job.label} has fields the row schema does not define: {unknown}", stacklevel=2)
        self.ws.write_row(job.suite.name, row)
        self.ws.write_csv(job.suite.name)
        self.ws.epoch_checkpoint(job.key, "qat").clear()
        self._notify("qbench_after_training_run", job=job, row=row)
        return row

    def run_job(self, job: Job) -> dict[str, Any]:
        """Run one job in this process and write its row."""
        return self.write_row(job, self.compute_row(job))

    def record_lost(self, job: Job, status: str, reason: str, wall_s: float, device: str | None = None
                    ) -> dict[str, Any]:
        """Write the row of a job whose process died or was killed before it could write one;
        ``device`` is where it ran (a pool worker's GPU), this harness's device by default."""
        row = self.base_row(job, device)
        row.update({"status": status, "reason": reason, "wall_s": round(wall_s, 3)})
        self._notify("qbench_on_training_error", job=job, error=RuntimeError(reason))
        return self.write_row(job, row)

    def _execute(self, job: Job, fp: FpCheckpoint | None) -> dict[str, Any]:
        data = self.data(job.dataset)
        fp_model, fp_meta = self.fp_model(job, data, fp)
        out: dict[str, Any] = {"dataset_hash": data.fingerprint, "dataset_source": data.source,
                               "fp_top1": fp_meta["top1"], "loader_workers": data.loader_workers()}
        x_audit = first_batch(data.test, AUDIT_BATCH, self.device)[0]
        if job.method.reference:
            layers = find_layers(fp_model, x_audit)
            out.update(evaluate(fp_model, data, device=self.device, recipe=job.recipe))
            out.update(summarize(fp_model, audit_model(fp_model, layers, x_audit)))
            out.update({"export_max_abs_diff": 0.0, "extra": {}})
            return out
        suite = job.suite
        deadline = time.monotonic() + suite.job_timeout_s if suite.job_timeout_s else None
        task = self.progress.start_epochs(job.label, suite.qat.epochs)
        t0 = time.perf_counter()
        ckpt = self.ws.epoch_checkpoint(job.key, "qat")
        token = ATTENTION.set((suite.attention, job.bits.a))  # read by the surgery (qbench.train.matmul)
        try:
            result = run_qat(job.method, self.catalog, fp_model, data, job.bits, suite.qat, suite.first_last,
                             job.seed, on_epoch=self._epoch_cb(job, "qat", task), deadline=deadline, checkpoint=ckpt,
                             device=self.device)
        finally:
            ATTENTION.reset(token)
        out["qat_s"] = round(time.perf_counter() - t0, 3)
        out["resumed_from_epoch"] = ckpt.resumed_from
        self.progress.finish_epochs(task)
        model = result.model
        out.update(evaluate(model, data, device=self.device, recipe=suite.qat))
        out.update(summarize(model, audit_model(model, result.layers, x_audit)))
        out["export_max_abs_diff"] = export_parity(model, x_audit)
        out["extra"] = result.extra
        out.update(result.costs)  # forward passes per optimizer step, measured during QAT
        if result.learned:  # only quantizers that report learned state add the fields
            out["learned"], out["learned_layers"] = result.learned, result.learned_layers
        out.update(keep_and_check(self.ws.root, job, model, data, out, fp_model=fp_model))  # kept; parity; cost
        return out

    # -- a whole run -------------------------------------------------------------------------
    def run(self, suite: Suite, jobs: list[Job], executor: str = "local",
            options: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run the unfinished jobs; every row is written as its job ends. An error outside a job
        (an interrupt, a broken executor) reaches ``qbench_on_suite_error`` and is re-raised."""
        todo = [j for j in jobs if not self.ws.is_finished(suite.name, j.key)]
        self.executor = executor
        self._notify("qbench_before_suite_run", suite=suite, jobs=todo)
        try:
            exe = self.catalog.executors.get(executor).factory(**(options or {}))
            self.progress.start_jobs(len(jobs), done=len(jobs) - len(todo))
            for row in exe.run(todo, self):
                self.progress.advance_jobs(row)
        except BaseException as exc:
            self._notify("qbench_on_suite_error", suite=suite, error=exc)
            raise
        finally:
            self.progress.stop_jobs()
        rows = [r for r in (self.ws.read_row(suite.name, j.key) for j in jobs) if r is not None]
        self._notify("qbench_after_suite_run", suite=suite, rows=rows)
        return rows


def save_state(model: nn.Module) -> bytes:
    """A model's state as safetensors bytes (CPU tensors): how checkpoints are stored and sent."""
    from safetensors.torch import save

    return save({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()})


def load_state(blob: bytes) -> dict[str, torch.Tensor]:
    """:func:`save_state`'s bytes as a state dict for ``model.load_state_dict`` (safetensors: runs no code)."""
    from safetensors.torch import load

    return load(blob)
