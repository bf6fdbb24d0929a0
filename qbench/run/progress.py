"""rich progress bars for a run: one bar for jobs, one for the epochs of the job in flight."""
from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class RunProgress:
    def __init__(self, enabled: bool = True, console: Console | None = None) -> None:
        self.enabled = enabled
        self.console = console or Console(stderr=True)
        self._progress: Progress | None = None
        self._jobs: Any = None

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
