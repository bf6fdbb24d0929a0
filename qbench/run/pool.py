"""A pool of worker processes: crash isolation, hard time limits, one writer for every row.

Each worker is a spawned process that rebuilds the harness (:class:`~qbench.run.worker.WorkerSpec`)
and runs the jobs the parent sends it, one at a time, sending back each row and what it is doing.
The parent alone writes rows. A worker that dies or outlives a job's hard limit is killed, its
job becomes a ``crashed`` / ``timeout`` row, and a fresh worker takes its place.

Scheduling keeps each FP checkpoint trained once: of the jobs sharing one, only the first is
sent until the checkpoint exists; the others wait while workers take other groups' jobs (the
workspace lock would make a second trainer wait anyway, idle). ``subprocess`` is this pool with
one worker and a fresh process per job.
"""
from __future__ import annotations

import atexit
import multiprocessing as mp
import os
import signal
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any

from qbench.run.jobs import Job
from qbench.run.runtime import usable_cores
from qbench.run.worker import WorkerSpec, worker_main

if TYPE_CHECKING:
    from qbench.run.harness import Harness


def exit_reason(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (the kernel's OOM killer sends SIGKILL when memory runs out)" if name == "SIGKILL" else ""
        return f"the worker process was killed by {name}{hint} before sending its row"
    return f"the worker process exited with code {exitcode} before sending its row"


#: every worker process started and not yet joined, for :func:`_kill_live`
_LIVE: "weakref.WeakSet[Any]" = weakref.WeakSet()


@atexit.register
def _kill_live() -> None:
    """At interpreter exit, kill workers a pool did not stop (its generator was never closed, e.g.
    held by a traceback). Registered after multiprocessing's own exit hook, so it runs first:
    that hook joins non-daemonic children, and would wait forever on a worker blocked in recv."""
    for proc in list(_LIVE):
        if proc.is_alive():
            proc.kill()
            proc.join(5)


@dataclass
class _Worker:
    index: int
    proc: Any
    conn: Connection
    device: str = "cpu"
    job: Job | None = None
    started: float = 0.0
    limit: float | None = None
    done: int = 0
    status: str = "idle"
    task: Any = field(default=None)


class WorkerPool:
    """``workers`` long-lived processes (or a fresh one per job with ``fresh_process``).

    :param workers: how many jobs run at once.
    :param fresh_process: start a new process for every job (the ``subprocess`` executor: a
        per-job peak memory, nothing shared between jobs) at the cost of a process start each.
    :param grace_s: seconds added to the hard limit (process start, data loading, audit).
    :param factor: multiple of the suite's ``job_timeout_s`` a job may run before it is killed.
    """

    def __init__(self, workers: int = 2, fresh_process: bool = False, grace_s: float = 60.0,
                 factor: float = 1.5) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = int(workers)
        self.fresh_process = fresh_process
        self.grace_s = float(grace_s)
        self.factor = float(factor)

    def hard_limit(self, job: Job, harness: "Harness") -> float | None:
        """``job_timeout_s * factor + grace_s`` once the FP checkpoint exists (the suite's timeout
        covers QAT only, so the job that trains the checkpoint gets no hard limit)."""
        timeout = job.suite.job_timeout_s
        if not timeout or not harness.ws.fp_path(job.fp_key).exists():
            return None
        return timeout * self.factor + self.grace_s

    # -- processes -----------------------------------------------------------------------------
    def _spawn(self, index: int, spec: WorkerSpec) -> _Worker:
        """A worker process. Not daemonic: a daemonic process may not start children, and a file
        dataset's DataLoader starts its own workers. The worker ends with this process instead
        through :mod:`qbench.run.lifeline` (also when this one is killed), and :func:`_kill_live`
        ends it at exit, where multiprocessing would otherwise wait for it."""
        ctx = mp.get_context("spawn")  # fork after torch has started threads can deadlock
        parent, child = ctx.Pipe()
        lifeline = (os.getpid(), threading.current_thread() is threading.main_thread())
        proc = ctx.Process(target=worker_main, args=(spec, index, child, lifeline), name=f"qbench-worker-{index}",
                           daemon=False)
        proc.start()
        _LIVE.add(proc)
        child.close()
        return _Worker(index, proc, parent, spec.worker_device(index))

    @staticmethod
    def _stop(w: _Worker, wait_s: float = 10.0) -> None:
        """Ask the worker to stop, then SIGTERM, then SIGKILL."""
        try:
            w.conn.send(None)
        except (OSError, ValueError):
            pass
        w.proc.join(wait_s if w.job is None else 0)
        if w.proc.is_alive():
            w.proc.terminate()
            w.proc.join(wait_s)
        if w.proc.is_alive():
            w.proc.kill()
            w.proc.join()
        w.conn.close()

    # -- scheduling ----------------------------------------------------------------------------
    @staticmethod
    def _next(queue: deque[Job], training: set[str], harness: "Harness") -> Job | None:
        """The first job whose FP checkpoint exists, or the first of a group nobody trains yet."""
        for job in queue:
            if harness.ws.fp_path(job.fp_key).exists() or job.fp_key not in training:
                queue.remove(job)
                return job
        return None

    def loader_share(self) -> int:
        """Each worker's DataLoader workers: the cores split between the pool's workers (at most 8
        each), not min(8, cores) in every one of them."""
        return min(8, usable_cores() // self.workers)

    def run(self, jobs: list[Job], harness: "Harness") -> Iterator[dict[str, Any]]:
        spec = WorkerSpec.of(harness)
        if spec.loader_workers is None:
            spec = replace(spec, loader_workers=self.loader_share())
        queue = deque(jobs)
        training: set[str] = set()  # FP keys a worker is training (no checkpoint on disk yet)
        pool: list[_Worker] = []
        try:
            pool = [self._spawn(i, spec) for i in range(min(self.workers, len(jobs)))]
            while queue or any(w.job is not None for w in pool):
                for w in pool:
                    if w.job is None and queue:
                        job = self._next(queue, training, harness)
                        if job is not None:
                            self._assign(w, job, harness, training)
                yield from self._collect(pool, spec, harness, training, more=bool(queue))
        finally:
            for w in pool:
                self._stop(w)
            for w in pool:
                harness.progress.worker_done(w.task)

    def _assign(self, w: _Worker, job: Job, harness: "Harness", training: set[str]) -> None:
        if not harness.ws.fp_path(job.fp_key).exists():
            training.add(job.fp_key)
        w.job, w.started, w.limit = job, time.perf_counter(), self.hard_limit(job, harness)
        w.conn.send(job)
        w.task = harness.progress.worker_status(w.task, w.index, f"{job.label}: starting")

    def _collect(self, pool: list[_Worker], spec: WorkerSpec, harness: "Harness", training: set[str],
                 more: bool) -> Iterator[dict[str, Any]]:
        """Wait up to a second for messages; yield the rows that arrived; replace lost workers."""
        busy = {w.conn: w for w in pool if w.job is not None}
        for conn in wait(list(busy), timeout=1.0) if busy else []:
            w = busy[conn]
            try:
                kind, payload = conn.recv()
            except (EOFError, OSError):
                yield self._lost(w, pool, spec, harness, training, exit_reason(self._reap(w)), "crashed")
                continue
            if kind == "status":
                w.task = harness.progress.worker_status(w.task, w.index, f"{w.job.label}: {payload}")
                continue
            job, w.job = w.job, None
            training.discard(job.fp_key)
            w.done += 1
            yield harness.write_row(job, payload)
            if self.fresh_process and more:
                self._replace(w, pool, spec)
        now = time.perf_counter()
        for w in list(pool):
            if w.job is not None and w.limit is not None and now - w.started > w.limit:
                reason = (f"killed after the hard limit of {w.limit:.0f} s (job_timeout_s {w.job.suite.job_timeout_s} "
                          f"x {self.factor} + {self.grace_s:.0f} s)")
                yield self._lost(w, pool, spec, harness, training, reason, "timeout")

    @staticmethod
    def _reap(w: _Worker) -> int | None:
        w.proc.join(5)
        return w.proc.exitcode

    def _lost(self, w: _Worker, pool: list[_Worker], spec: WorkerSpec, harness: "Harness", training: set[str],
              reason: str, status: str) -> dict[str, Any]:
        job, w.job = w.job, None
        assert job is not None
        training.discard(job.fp_key)
        if w.proc.is_alive():
            w.proc.kill()
        self._replace(w, pool, spec)
        return harness.record_lost(job, status, reason, time.perf_counter() - w.started, device=w.device)

    def _replace(self, w: _Worker, pool: list[_Worker], spec: WorkerSpec) -> None:
        self._stop(w, wait_s=5.0)
        fresh = self._spawn(w.index, spec)
        fresh.task = w.task
        pool[pool.index(w)] = fresh
