"""Executors run a list of jobs. ``local`` runs them one by one in this process.

An executor never lets one job's failure stop the others: ``run_job`` turns any exception into a
``failed`` row, and the executor just yields rows as jobs finish.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol

from .jobs import Job


class Executor(Protocol):
    def run(self, jobs: list[Job], run_job: Callable[[Job], dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """Run every job and yield its result row as soon as it is written."""
        ...


class LocalExecutor:
    """Sequential, in-process: jobs sharing an FP checkpoint run back to back."""

    def run(self, jobs: list[Job], run_job: Callable[[Job], dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for job in jobs:
            yield run_job(job)
