"""How a run reports itself: rich progress bars on a terminal (one bar for jobs, one for the
epochs of each job in flight), and one plain line per finished job for a log.

A run under CI, ``nohup`` or a batch scheduler writes to a file: bars do not render there, and
the summary table comes only at the end, hours later. The job lines (``job_log``) say as each job
ends which job it was, how it ended and how many are left, one line each, flushed at once.
"""
from __future__ import annotations

import time
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def job_line(row: dict[str, Any], done: int, total: int) -> str:
    """``job 3/12 ok <key> <label> top1=97.50 wall=12.3s left=9``: one finished job, for a log."""
    label = f"{row.get('dataset')}/{row.get('model')}/{row.get('method')}/{row.get('bits')}/seed{row.get('seed')}"
    status = row.get("status", "?")
    top1 = f"top1={row['top1']:.2f}" if status == "ok" and isinstance(row.get("top1"), (int, float)) else "top1=-"
    wall = f"wall={row['wall_s']:.1f}s" if isinstance(row.get("wall_s"), (int, float)) else "wall=-"
    reason = f" reason={str(row.get('reason', '')).splitlines()[0][:200]!r}" if status != "ok" and row.get("reason") else ""
    return (f"{time.strftime('%H:%M:%S')} job {done}/{total} {status} {row.get('job_key', '?')} {label} {top1} {wall} "
            f"left={max(total - done, 0)}{reason}")


class RunProgress:
    """:param job_log: where to write one line per finished job (:func:`job_line`), e.g. stdout
    when it is not a terminal; None writes none."""

    def __init__(self, enabled: bool = True, console: Console | None = None, job_log: TextIO | None = None) -> None:
        self.enabled = enabled
        self.console = console or Console(stderr=True)
        self.job_log = job_log
        self._progress: Progress | None = None
        self._jobs: Any = None
        self._done = self._total = 0

    def __enter__(self) -> "RunProgress":
        if self.enabled:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                console=self.console, transient=False)
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
            self._progress = None

    def start_jobs(self, total: int, done: int = 0) -> None:
        self._total, self._done = total, done
        if self._progress is not None:
            self._jobs = self._progress.add_task("jobs", total=total, completed=done, info=f"{done} already done")

    def worker_status(self, task: Any, index: int, text: str) -> Any:
        """One line per pool worker: what it is doing now."""
        if self._progress is None:
            return None
        if task is None:
            return self._progress.add_task(f"worker {index}", total=None, info=text)
        self._progress.update(task, info=text)
        return task

    def worker_done(self, task: Any) -> None:
        if self._progress is not None and task is not None and task in self._progress.task_ids:
            self._progress.remove_task(task)

    def stop_jobs(self) -> None:
        """Drop the epoch bars of jobs that will not finish (an interrupted run)."""
        if self._progress is not None:
            for task in list(self._progress.task_ids):
                if task != self._jobs:
                    self._progress.remove_task(task)

    def advance_jobs(self, row: dict[str, Any]) -> None:
        self._done += 1
        if self.job_log is not None:
            self.job_log.write(job_line(row, self._done, self._total) + "\n")
            self.job_log.flush()
        if self._progress is not None and self._jobs is not None:
            status = row.get("status")
            info = f"last: {row.get('method')} {row.get('bits')} " + (
                f"top1 {row.get('top1', 0):.1f}" if status == "ok" else f"[red]{status}[/red]")
            self._progress.update(self._jobs, advance=1, info=info)

    def start_epochs(self, label: str, total: int) -> Any:
        if self._progress is None:
            return None
        return self._progress.add_task(label, total=total, info="")

    def advance_epochs(self, task: Any, loss: float) -> None:
        if self._progress is not None and task is not None:
            self._progress.update(task, advance=1, info=f"loss {loss:.3f}")

    def finish_epochs(self, task: Any) -> None:
        if self._progress is not None and task is not None:
            self._progress.remove_task(task)
