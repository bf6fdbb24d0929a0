"""Executors run a list of jobs through a harness and yield each job's row as it is written.

* ``local``: one after another in this process. Fast to start; a job that kills the process
  (a segfault in a plugin's extension, the OOM killer) or hangs inside an op stops the run.
* ``pool``: ``workers`` processes (default: cores // the recipe's threads, or one per GPU), each
  running one job at a time; a dead or hung worker's job becomes a row and a fresh worker
  replaces it (:mod:`qbench.run.pool`).
* ``subprocess``: the pool with one worker and a fresh process per job, so each row's
  ``peak_rss_mb`` is that job's own.

Every executor takes a job's lock before running it, so two ``qbench run`` on one workspace
never train the same job twice: a job another run holds is left to it, and its row read back.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

from qbench.run.jobs import Job
from qbench.run.pool import WorkerPool

if TYPE_CHECKING:
    from qbench.run.harness import Harness


class Executor(Protocol):
    def run(self, jobs: list[Job], harness: "Harness") -> Iterator[dict[str, Any]]:
        """Run every job (``harness.run_job(job)`` or its equivalent elsewhere) and yield its
        row as soon as it is written."""
        ...


class LocalExecutor:
    """Sequential, in-process: jobs sharing an FP checkpoint run back to back."""

    def run(self, jobs: list[Job], harness: "Harness") -> Iterator[dict[str, Any]]:
        yield from locked(jobs, harness, lambda batch: (harness.run_job(j) for j in batch))


class PoolExecutor:
    """The worker pool: see :class:`~qbench.run.pool.WorkerPool` for the parameters."""

    def __init__(self, workers: int = 2, grace_s: float = 60.0, factor: float = 1.5) -> None:
        self.pool = WorkerPool(workers, fresh_process=False, grace_s=grace_s, factor=factor)

    def run(self, jobs: list[Job], harness: "Harness") -> Iterator[dict[str, Any]]:
        yield from locked(jobs, harness, lambda batch: self.pool.run(batch, harness))


class SubprocessExecutor:
    """One fresh process per job, one job at a time, with a hard time limit."""

    def __init__(self, grace_s: float = 60.0, factor: float = 1.5) -> None:
        self.pool = WorkerPool(1, fresh_process=True, grace_s=grace_s, factor=factor)

    def hard_limit(self, job: Job, harness: "Harness") -> float | None:
        return self.pool.hard_limit(job, harness)

    def run(self, jobs: list[Job], harness: "Harness") -> Iterator[dict[str, Any]]:
        yield from locked(jobs, harness, lambda batch: self.pool.run(batch, harness))


def locked(jobs: list[Job], harness: "Harness", execute: Any) -> Iterator[dict[str, Any]]:
    """Run ``jobs`` through ``execute`` holding each job's workspace lock.

    Jobs another process holds are skipped at first; once the rest are done, each is waited for:
    its row is read back if the other run finished it, and run here otherwise (the other run died
    or failed it).
    """
    suite = jobs[0].suite.name if jobs else ""
    mine, theirs, locks = [], [], []
    for job in jobs:
        lock = harness.ws.lock(f"job-{job.key}")
        if lock.try_acquire():
            locks.append(lock)
            if harness.ws.is_finished(suite, job.key):  # another run finished it since we planned
                lock.release()
                yield harness.ws.read_row(suite, job.key)  # type: ignore[misc]
            else:
                mine.append(job)
        else:
            theirs.append(job)
    try:
        yield from execute(mine)
    finally:
        for lock in locks:
            lock.release()
    for job in theirs:
        with harness.ws.lock(f"job-{job.key}"):
            row = harness.ws.read_row(suite, job.key)
            if row is not None and row.get("status") == "ok":
                yield row
                continue
            yield from execute([job])
