"""The ``slurm`` executor: one Slurm job per qbench job, submitted and collected through submitit.

Driver (the ``qbench run`` process, on a login node):

* submits one Slurm job per FP checkpoint the workspace lacks, and the qbench jobs that start from
  it once it has ended. The driver holds this dependency itself rather than ``sbatch
  --dependency``, so that submitit's local executor runs the very same code path (a test runs it
  with real subprocesses); the cost is that a job enters the queue only after its checkpoint;
* keeps at most ``max_running`` Slurm jobs submitted at once (the scheduler's queue limits, or on
  ``cluster=local`` the cores);
* writes every row as its Slurm job ends: the job returns the row through submitit's folder, and
  the driver alone writes rows, as under every other executor;
* turns a Slurm job that ended without a row (killed, out of memory, out of time past its
  requeues, a node failure) into a ``crashed`` / ``timeout`` row with Slurm's state, and a job
  whose FP checkpoint's job failed into a ``failed`` row that says so.

Job (a Slurm task): rebuilds the driver's harness from its :class:`~qbench.api.WorkerSpec` on the
driver's workspace, which must therefore be on a filesystem the nodes share (as submitit's own
folder must be). A job keeps its epoch checkpoints there, so a preempted or timed-out job, which
submitit checkpoints (``Checkpointable``) and requeues on the USR2 signal Slurm sends before the
end, resumes from its last finished epoch and ends with the row an uninterrupted job would have.
"""
from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import submitit
from submitit.helpers import Checkpointable

from qbench.api import Job, QbenchError, WorkerSpec, locked

if TYPE_CHECKING:
    from qbench.api import Harness

#: Slurm's time limit of one job when ``-X time_min`` is not given: the papers' CIFAR-10 and
#: ImageNet fine-tunes fit in half a day on one GPU; a preempted or timed-out job requeues anyway.
DEFAULT_TIME_MIN = 12 * 60
#: Submitted Slurm jobs at once on a real cluster: below the usual per-user submit limits.
DEFAULT_MAX_RUNNING_SLURM = 256
OPTIONS = {"cluster", "partition", "account", "qos", "constraint", "time_min", "cpus_per_task", "mem_gb",
           "max_running", "folder", "poll_s", "setup"}


# -- job side (a Slurm task) ---------------------------------------------------------------------
def job_harness(spec: WorkerSpec) -> "Harness":
    """The driver's harness in this Slurm job. A GPU job sees only the GPU Slurm gave it (its
    ``CUDA_VISIBLE_DEVICES``), as ``cuda:0``."""
    if spec.device.startswith("cuda"):
        spec = spec.on_device("cuda:0")
    return spec.harness()


class RowTask(Checkpointable):
    """A Slurm job computing one qbench job's row. Preempted or timed out, submitit requeues it
    with the same arguments (``Checkpointable.checkpoint``), and the harness resumes the job from
    its epoch checkpoint in the shared workspace."""

    def __call__(self, spec: WorkerSpec, job: Job) -> dict[str, Any]:
        return job_harness(spec).compute_row(job)


class FpTask(Checkpointable):
    """A Slurm job training the FP checkpoint of a (dataset, model, seed) into the shared workspace
    (resumable like :class:`RowTask`); returns its top-1 for the driver's log."""

    def __call__(self, spec: WorkerSpec, job: Job) -> float:
        return float(job_harness(spec).train_fp(job)[1]["top1"])


# -- driver side ---------------------------------------------------------------------------------
def lost_status(state: str) -> str:
    """The row status of a Slurm job that ended without a row, from its Slurm state."""
    return "timeout" if state.upper().startswith("TIMEOUT") else "crashed"


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__


class SlurmExecutor:
    """Run jobs as Slurm jobs through submitit.

    :param cluster: ``slurm`` (default; needs ``sbatch``), or ``local``: the same jobs as local
        subprocesses through submitit's local executor (for a machine without Slurm, and the tests).
    :param partition, account, qos, constraint: passed to sbatch as they are.
    :param time_min: each job's time limit in minutes (default :data:`DEFAULT_TIME_MIN`).
    :param cpus_per_task: default the recipe's threads; raise it for file datasets, whose loader
        workers share the job's CPUs.
    :param mem_gb: memory per job (default: the partition's).
    :param max_running: Slurm jobs submitted at once (default 256 on Slurm, cores // threads on local).
    :param folder: submitit's folder for pickles and logs (default ``<workspace>/submitit``; must be
        on the shared filesystem).
    :param setup: shell lines each Slurm job runs first (e.g. ``["module load cuda"]``).
    """

    def __init__(self, cluster: str = "slurm", partition: str | None = None, account: str | None = None,
                 qos: str | None = None, constraint: str | None = None, time_min: int = DEFAULT_TIME_MIN,
                 cpus_per_task: int | None = None, mem_gb: float | None = None, max_running: int | None = None,
                 folder: str | None = None, poll_s: float | None = None, setup: list[str] | None = None,
                 **unknown: Any) -> None:
        if unknown:
            raise QbenchError(f"The slurm executor has no option {', '.join(sorted(unknown))}; it takes "
                              f"{', '.join(f'-X {o}=...' for o in sorted(OPTIONS))}.")
        if cluster not in ("slurm", "local"):
            raise QbenchError(f"-X cluster={cluster!r}: use slurm (sbatch) or local (subprocesses on this machine).")
        for name, value in (("time_min", time_min), ("cpus_per_task", cpus_per_task), ("max_running", max_running)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise QbenchError(f"-X {name}={value!r}: give a whole number >= 1.")
        self.cluster, self.time_min, self.cpus_per_task, self.mem_gb = cluster, time_min, cpus_per_task, mem_gb
        self.slurm = {k: v for k, v in (("partition", partition), ("account", account), ("qos", qos),
                                        ("constraint", constraint), ("setup", setup)) if v is not None}
        self.max_running, self.folder = max_running, folder
        self.poll_s = poll_s if poll_s is not None else (0.2 if cluster == "local" else 15.0)

    def submitit_executor(self, harness: "Harness", threads: int) -> submitit.AutoExecutor:
        """submitit's executor for this run, with each job's resources."""
        if self.cluster == "slurm" and submitit.AutoExecutor.which() != "slurm":
            raise QbenchError("The slurm executor found no Slurm here (no sbatch on PATH). Fix: run qbench from a "
                              "Slurm login node, or add -X cluster=local to run the same jobs as local subprocesses.")
        folder = Path(self.folder) if self.folder else harness.ws.root / "submitit"
        exe = submitit.AutoExecutor(folder=folder / "%j", cluster=self.cluster)
        params: dict[str, Any] = {"name": "qbench", "timeout_min": self.time_min,
                                  "cpus_per_task": self.cpus_per_task or threads}
        if harness.device.type == "cuda":
            params["gpus_per_node"] = 1
        if self.mem_gb is not None:
            params["mem_gb"] = self.mem_gb
        params.update({f"slurm_{k}": v for k, v in self.slurm.items()})
        exe.update_parameters(**params)
        return exe

    def run(self, jobs: list[Job], harness: "Harness") -> Iterator[dict[str, Any]]:
        yield from locked(jobs, harness, lambda batch: self._run(batch, harness))

    def _limit(self, threads: int) -> int:
        if self.max_running is not None:
            return self.max_running
        if self.cluster == "local":
            return max(1, len(os.sched_getaffinity(0)) // max(1, threads))
        return DEFAULT_MAX_RUNNING_SLURM

    def _run(self, jobs: list[Job], harness: "Harness") -> Iterator[dict[str, Any]]:
        if not jobs:
            return
        threads = jobs[0].suite.threads
        exe = self.submitit_executor(harness, threads)
        limit = self._limit(threads)
        spec = WorkerSpec.of(harness)
        # a Slurm job may start in another directory: every path it reads as the driver's, absolute
        spec = replace(spec, workspace=str(Path(spec.workspace).resolve()),
                       data_dir=str(Path(spec.data_dir).resolve()) if spec.data_dir else None)
        waiting: dict[str, list[Job]] = {}  # fp_key -> jobs waiting for their FP checkpoint's job
        ready: deque[Job] = deque()
        for job in jobs:
            if harness.ws.fp_path(job.fp_key).exists():
                ready.append(job)
            else:
                waiting.setdefault(job.fp_key, []).append(job)
        fp_todo = deque(group[0] for group in waiting.values())
        running: dict[Any, tuple[str, Job, float]] = {}  # submitit job -> (kind, qbench job, submitted at)
        try:
            while fp_todo or ready or running:
                while len(running) < limit and (fp_todo or ready):
                    kind, job = ("fp", fp_todo.popleft()) if fp_todo else ("row", ready.popleft())
                    sub = exe.submit(FpTask() if kind == "fp" else RowTask(), spec, job)
                    running[sub] = (kind, job, time.perf_counter())
                done = [sub for sub in running if sub.done()]
                if not done:
                    time.sleep(self.poll_s)
                    continue
                for sub in done:
                    kind, job, submitted = running.pop(sub)
                    if kind == "fp":
                        yield from self._fp_ended(sub, job, waiting.pop(job.fp_key), ready, harness)
                    else:
                        yield self._row_ended(sub, job, submitted, harness)
        except BaseException:  # an interrupted run (Ctrl-C, a failing write) leaves nothing queued
            for sub in running:
                sub.cancel(check=False)
            raise

    @staticmethod
    def _fp_ended(sub: Any, job: Job, group: list[Job], ready: deque[Job],
                  harness: "Harness") -> Iterator[dict[str, Any]]:
        try:
            sub.result()
        except Exception as exc:
            reason = (f"its FP checkpoint's Slurm job {sub.job_id} ({job.dataset.name}/{job.model.label}/"
                      f"seed{job.seed}) ended in state {sub.state}: {_first_line(exc)}")
            for j in group:
                yield harness.record_lost(j, "failed", reason, 0.0)
            return
        ready.extend(group)

    @staticmethod
    def _row_ended(sub: Any, job: Job, submitted: float, harness: "Harness") -> dict[str, Any]:
        try:
            row = sub.result()
        except Exception as exc:  # the job died, or raised outside the harness (a plugin missing on the node)
            state = sub.state
            reason = (f"the Slurm job {sub.job_id} ended without a row (state {state}): {_first_line(exc)}; "
                      f"its log: {sub.paths.stderr}")
            return harness.record_lost(job, lost_status(state), reason, time.perf_counter() - submitted)
        return harness.write_row(job, row)
