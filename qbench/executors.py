"""Executors run a list of jobs through a harness and yield each job's row as it is written.

* ``local``: one after another in this process. Fast to start; a job that kills the process
  (a segfault in a plugin's extension, the OOM killer) or hangs inside an op stops the run.
* ``subprocess``: one fresh process per job. A job that dies or hangs past a hard limit becomes a
  ``crashed`` / ``timeout`` row and the run goes on; each row's ``peak_rss_mb`` is that job's
  own peak. Costs one process start (importing torch and the plugins) per job.

An executor never lets one job's failure stop the others: ``harness.run_job`` turns any exception
into a ``failed`` row; what an exception cannot report, the subprocess executor records with
``harness.record_lost``.
"""
from __future__ import annotations

import multiprocessing as mp
import signal
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

from .jobs import Job
from .worker import WorkerSpec, run_one

if TYPE_CHECKING:
    from .harness import Harness


class Executor(Protocol):
    def run(self, jobs: list[Job], harness: "Harness") -> Iterator[dict[str, Any]]:
        """Run every job (``harness.run_job(job)`` or its equivalent elsewhere) and yield its
        row as soon as it is written."""
        ...


class LocalExecutor:
    """Sequential, in-process: jobs sharing an FP checkpoint run back to back."""

    def run(self, jobs: list[Job], harness: "Harness") -> Iterator[dict[str, Any]]:
        for job in jobs:
            yield harness.run_job(job)


def _stop(proc: Any, wait_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if the worker is still there after ``wait_s``."""
    proc.terminate()
    proc.join(wait_s)
    if proc.is_alive():
        proc.kill()
        proc.join()


def _exit_reason(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (the kernel's OOM killer sends SIGKILL when memory runs out)" if name == "SIGKILL" else ""
        return f"the worker process was killed by {name}{hint} before writing its row"
    return f"the worker process exited with code {exitcode} before writing its row"


class SubprocessExecutor:
    """One spawned process per job, with a hard time limit.

    The hard limit backs up the suite's ``job_timeout_s`` (which the training loop checks between
    steps and reports as a ``timeout`` row): it catches a job stuck inside one op. It is
    ``job_timeout_s * factor + grace_s`` and applies only when the job's FP checkpoint already
    exists, since the job that trains it takes an FP training longer (the suite's timeout covers
    QAT only).

    :param grace_s: seconds added to the limit (process start, data loading, evaluation, audit).
    :param factor: multiple of ``job_timeout_s`` a job may run before it is killed.
    """

    def __init__(self, grace_s: float = 60.0, factor: float = 1.5) -> None:
        self.grace_s = float(grace_s)
        self.factor = float(factor)

    def hard_limit(self, job: Job, harness: "Harness") -> float | None:
        timeout = job.suite.job_timeout_s
        if not timeout or not harness.ws.fp_path(job.fp_key).exists():
            return None
        return timeout * self.factor + self.grace_s

    def run(self, jobs: list[Job], harness: "Harness") -> Iterator[dict[str, Any]]:
        spec = WorkerSpec.of(harness)
        ctx = mp.get_context("spawn")  # fork after torch has started threads can deadlock
        for job in jobs:
            path = harness.ws.row_path(job.suite.name, job.key)
            before = path.stat().st_mtime_ns if path.exists() else None
            limit = self.hard_limit(job, harness)
            proc = ctx.Process(target=run_one, args=(spec, job), name=f"qbench-{job.key}", daemon=True)
            t0 = time.perf_counter()
            proc.start()
            try:
                proc.join(limit)
            except KeyboardInterrupt:
                _stop(proc)
                raise
            timed_out = proc.is_alive()
            if timed_out:
                _stop(proc)
            fresh = path.exists() and path.stat().st_mtime_ns != before
            if fresh:
                row = harness.ws.read_row(job.suite.name, job.key)
                assert row is not None
                yield row
            elif timed_out:
                yield harness.record_lost(job, "timeout", f"killed after the hard limit of {limit:.0f} s "
                                          f"(job_timeout_s {job.suite.job_timeout_s} x {self.factor} + "
                                          f"{self.grace_s:.0f} s)", time.perf_counter() - t0)
            else:
                yield harness.record_lost(job, "crashed", _exit_reason(proc.exitcode), time.perf_counter() - t0)
