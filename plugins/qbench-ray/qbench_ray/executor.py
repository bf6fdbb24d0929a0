"""The ``ray`` executor: one Ray task per job; FP checkpoints are task dependencies.

Driver (the ``qbench run`` process):

* joins the cluster at ``address`` (``--ray-address``), or starts a local one with ``ray.init()``
  (and stops it when the run ends);
* submits one FP task per FP key and one task per job, whose argument is the FP task's object
  ref: Ray starts a job only once its FP checkpoint exists, and the checkpoint (safetensors bytes
  and meta) reaches the job's worker through Ray's object store, so each is trained once and no
  filesystem is shared;
* writes every row (``harness.write_row``) as its task ends, and keeps each FP checkpoint in its
  own workspace too, so rerunning the command resumes without training it again (a checkpoint
  already there is sent to the workers instead of trained);
* turns a task Ray lost (its worker died: a segfault, ``os._exit``, the OOM killer; its node
  died) into a ``crashed`` row with the reason (``harness.record_lost``).

Worker (a Ray worker process): rebuilds the driver's harness from its
:class:`~qbench.run.worker.WorkerSpec` once per process (plugins, loaded data) and runs each task
in a private temporary workspace, deleted when the task ends: nothing a worker writes is needed
by the driver. A job that raises becomes a ``failed`` row inside the worker, as it does locally
(``harness.compute_row``).

Resources (:mod:`qbench_ray.resources`): each task asks for ``num_cpus`` = the recipe's threads
plus ``loader_cpus``, and on a CUDA run one GPU in a fresh worker process (``max_calls=1``): Ray
then shows the task only its own GPU, which the worker uses as ``cuda:0``. A run that names its
GPUs (``--device cuda:1``) gives each task those as its ``CUDA_VISIBLE_DEVICES``, so Ray's pick is
one of them. A file dataset's
DataLoader in a task starts ``loader_cpus`` loader workers (default: the recipe's threads;
``QBENCH_LOADER_WORKERS`` in the workers' environment overrides it).
"""
from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from qbench.api import FpCheckpoint, Job, QbenchError, WorkerSpec, Workspace, load_state, locked, save_state

from .resources import remote, run_gpus, task_options

if TYPE_CHECKING:
    from qbench.api import Harness

#: Ray's ``max_retries`` for a task whose worker or node died. 0: a crash in qbench is most often
#: deterministic (a segfaulting extension, a model that does not fit in memory), so a retry would
#: only double its cost before the same ``crashed`` row; rerunning the command retries crashed
#: jobs anyway. On preemptible nodes use ``-X retries=2``.
DEFAULT_RETRIES = 0


@dataclass(frozen=True)
class FpFailed:
    """An FP task's result when training raised. Its jobs then run as under the local executor:
    each tries the FP training itself and, when it fails again, gets a ``failed`` row."""

    reason: str


class _State:
    """Stands in for a model where the workspace reads or writes an FP checkpoint's tensors."""

    def __init__(self, state: dict[str, Any] | None = None) -> None:
        self.state = dict(state or {})

    def state_dict(self) -> dict[str, Any]:
        return self.state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.state = dict(state)


# -- worker side ---------------------------------------------------------------------------------
_harnesses: dict[WorkerSpec, "Harness"] = {}


def task_device(device: str) -> str:
    """Where a task computes: ``cuda:0`` on a CUDA run, whichever GPU the driver named, since Ray's
    ``CUDA_VISIBLE_DEVICES`` shows the task its own GPU only (one of the named ones)."""
    return "cuda:0" if device.startswith("cuda") else device


def worker_harness(spec: WorkerSpec, workspace: str) -> "Harness":
    """The driver's harness in this Ray worker, built once per process, on ``workspace``."""
    if task_device(spec.device) != spec.device:
        spec = spec.on_device(task_device(spec.device))
    harness = _harnesses.get(spec)
    if harness is None:
        harness = _harnesses[spec] = replace(spec, workspace=workspace).harness()
    harness.ws = Workspace(workspace)
    return harness


def _in_private_workspace(spec: WorkerSpec, task: Any) -> Any:
    tmp = tempfile.mkdtemp(prefix="qbench-ray-")
    try:
        return task(worker_harness(spec, tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def train_fp_task(spec: WorkerSpec, job: Job) -> FpCheckpoint | FpFailed:
    """Ray task: the FP checkpoint of ``job``'s (dataset, model, seed), as bytes and meta."""
    def task(harness: "Harness") -> FpCheckpoint | FpFailed:
        try:
            return harness.train_fp(job)
        except Exception as exc:
            return FpFailed(f"{type(exc).__name__}: {exc}")
    return _in_private_workspace(spec, task)


def job_task(spec: WorkerSpec, job: Job, fp: FpCheckpoint | FpFailed) -> dict[str, Any]:
    """Ray task: the row of ``job``, computed from the FP checkpoint Ray resolved from its ref."""
    return _in_private_workspace(
        spec, lambda harness: harness.compute_row(job, fp=None if isinstance(fp, FpFailed) else fp))


# -- driver side ---------------------------------------------------------------------------------
def fp_task_name(job: Job) -> str:
    return f"FP {job.dataset.name}/{job.model.label}/seed{job.seed}"


def describe_loss(exc: BaseException, retries: int) -> tuple[str, str]:
    """The row status and reason of a task Ray could not finish."""
    import ray.exceptions as rx

    if isinstance(exc, rx.RayTaskError):
        cause = getattr(exc, "cause", None)
        if isinstance(cause, rx.RayError):  # a dependency lost by Ray, wrapped
            return describe_loss(cause, retries)
        if cause is not None:  # raised outside compute_row: e.g. a plugin missing on the worker's node
            return "failed", f"the Ray task raised {type(cause).__name__}: {cause}"
        return "failed", f"the Ray task raised: {_first_line(exc)}"
    attempts = f" ({retries + 1} attempt{'s' if retries else ''}; -X retries=N to retry more)"
    if isinstance(exc, rx.OutOfMemoryError):
        return "crashed", f"Ray's memory monitor killed the task: the node ran out of memory{attempts}"
    if isinstance(exc, rx.WorkerCrashedError):
        return "crashed", ("the Ray worker process died while running the task (a segfault, os._exit, or "
                           f"SIGKILL: the kernel's OOM killer sends it when memory runs out){attempts}")
    if isinstance(exc, rx.TaskCancelledError):
        return "crashed", "the Ray task was cancelled"
    return "crashed", f"Ray lost the task ({type(exc).__name__}: {_first_line(exc)}){attempts}"


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__


class RayExecutor:
    """Run jobs as Ray tasks.

    :param address: the cluster to join (``--ray-address``; ``auto`` finds one started with
        ``ray start`` on this node). Without it a local cluster is started for the run.
    :param retries: Ray's ``max_retries`` for a task whose worker or node died (default
        :data:`DEFAULT_RETRIES`). A job that raises is never retried: that is its row.
    :param num_cpus: CPUs of the local cluster started without ``address`` (default: all).
    :param loader_cpus: CPUs each task asks for beyond the recipe's threads, for the DataLoader
        workers of file datasets (default 0: in-memory data has none).
    """

    def __init__(self, address: str | None = None, retries: int = DEFAULT_RETRIES, num_cpus: int | None = None,
                 loader_cpus: int = 0, **unknown: Any) -> None:
        if unknown:
            raise QbenchError(f"The ray executor has no option {', '.join(sorted(unknown))}; it takes "
                              "--ray-address ADDR, -X retries=N, -X loader_cpus=N and -X num_cpus=N (local cluster "
                              "only).")
        for option, value in (("retries", retries), ("loader_cpus", loader_cpus)):
            if not isinstance(value, int) or value < 0:
                raise QbenchError(f"-X {option}={value!r}: give a whole number >= 0.")
        self.loader_cpus = loader_cpus
        self.address = address or None
        self.retries = retries
        self.num_cpus = num_cpus
        self._started = False

    # -- the cluster -----------------------------------------------------------------------------
    def _connect(self, gpus: str | None = None) -> None:
        """Join the cluster, or start a local one; with named ``gpus``, a local cluster declares
        only that many, so Ray runs no more GPU tasks at once than there are named GPUs."""
        import ray

        if ray.is_initialized():  # joined already (by an earlier batch, or by the caller)
            return
        try:
            if self.address:
                ray.init(address=self.address)
            else:
                ray.init(num_cpus=self.num_cpus, **({"num_gpus": len(gpus.split(","))} if gpus else {}))
                self._started = True
        except ConnectionError as exc:
            raise QbenchError(f"Could not join the Ray cluster at {self.address!r}: {exc}. Start it with "
                              "`ray start --head`, or leave out --ray-address to start a local one.") from exc

    def run(self, jobs: list[Job], harness: "Harness") -> Iterator[dict[str, Any]]:
        try:
            yield from locked(jobs, harness, lambda batch: self._run(batch, harness))
        finally:
            if self._started:
                import ray

                ray.shutdown()
                self._started = False

    # -- FP checkpoints in the driver's workspace --------------------------------------------------
    @staticmethod
    def _stored_fp(job: Job, harness: "Harness") -> FpCheckpoint | None:
        if not harness.ws.fp_path(job.fp_key).exists():
            return None
        holder = _State()
        with harness.ws.lock(f"fp-{job.fp_key}"):
            meta = harness.ws.load_fp(job.fp_key, holder)  # type: ignore[arg-type]
        return None if meta is None else (save_state(holder), meta)  # type: ignore[arg-type]

    @staticmethod
    def _keep_fp(fp_key: str, ref: Any, harness: "Harness") -> None:
        import ray

        try:
            fp = ray.get(ref)
        except ray.exceptions.RayError:
            return  # its jobs' rows say why
        if isinstance(fp, FpFailed):
            return
        with harness.ws.lock(f"fp-{fp_key}"):
            if not harness.ws.fp_path(fp_key).exists():
                harness.ws.save_fp(fp_key, _State(load_state(fp[0])), fp[1])  # type: ignore[arg-type]

    # -- a batch of jobs -------------------------------------------------------------------------
    def _run(self, jobs: list[Job], harness: "Harness") -> Iterator[dict[str, Any]]:
        if not jobs:
            return
        import ray

        gpu = harness.device.type == "cuda"
        gpus = run_gpus(harness.devices) if gpu else None
        self._connect(gpus)
        base = WorkerSpec.of(harness)
        if base.loader_workers is None:  # a task's file-dataset loader workers: the CPUs it asks Ray for them
            base = replace(base, loader_workers=self.loader_cpus or max(1, jobs[0].suite.threads))
        spec = ray.put(base)
        train_fp, run_job = remote(train_fp_task, gpu), remote(job_task, gpu)

        def options(job: Job, name: str) -> dict[str, Any]:
            return task_options(job.suite.threads, self.loader_cpus, self.retries, name, gpus)

        fps: dict[str, Any] = {}  # fp_key -> object ref of (bytes, meta)
        unsaved: dict[str, Any] = {}  # FP checkpoints to keep in the driver's workspace when ready
        ready_at: dict[str, float] = {}  # when the driver saw each FP checkpoint ready
        pending: dict[Any, tuple[Job, float]] = {}  # job ref -> (job, submitted at)
        for job in jobs:
            if job.fp_key not in fps:
                stored = self._stored_fp(job, harness)
                if stored is not None:
                    fps[job.fp_key] = ray.put(stored)
                    ready_at[job.fp_key] = time.perf_counter()
                else:
                    fps[job.fp_key] = unsaved[job.fp_key] = \
                        train_fp.options(**options(job, fp_task_name(job))).remote(spec, job)
            ref = run_job.options(**options(job, job.label)).remote(spec, job, fps[job.fp_key])
            pending[ref] = (job, time.perf_counter())
        try:
            while pending:
                waiting = list(pending) + list(unsaved.values())
                ray.wait(waiting, num_returns=1)
                done = set(ray.wait(waiting, num_returns=len(waiting), timeout=0)[0])
                for key, ref in list(unsaved.items()):
                    if ref in done:
                        del unsaved[key]
                        ready_at[key] = time.perf_counter()
                        self._keep_fp(key, ref, harness)
                for ref in [r for r in pending if r in done]:
                    job, submitted = pending.pop(ref)
                    try:
                        row = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        started = max(submitted, ready_at.get(job.fp_key, submitted))
                        status, reason = self._lost(job, exc, fps[job.fp_key])
                        yield harness.record_lost(job, status, reason, time.perf_counter() - started)
                        continue
                    yield harness.write_row(job, row)
        except BaseException:  # an interrupted run (Ctrl-C, a failing write) leaves nothing running
            for ref in [*pending, *unsaved.values()]:
                ray.cancel(ref, force=True)
            raise

    def _lost(self, job: Job, exc: BaseException, fp_ref: Any) -> tuple[str, str]:
        import ray

        try:
            ray.get(fp_ref, timeout=0)
        except ray.exceptions.GetTimeoutError:
            pass
        except ray.exceptions.RayError as fp_exc:  # the job never ran: its FP checkpoint's task was lost
            status, reason = describe_loss(fp_exc, self.retries)
            return status, f"its FP checkpoint's task ({fp_task_name(job)}) did not finish: {reason}"
        return describe_loss(exc, self.retries)
