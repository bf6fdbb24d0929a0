"""``qbench run``: plan a suite's jobs and execute them into a workspace (resumable)."""
from __future__ import annotations

import json
import shlex
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from qbench.cli.render import console, err_console, print_summary, report_comparison
from qbench.errors import QbenchError
from qbench.plugin.catalog import get_catalog


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (``kill``, a batch scheduler's stop, ``docker stop``) unwinds like Ctrl-C.

    Why: Python's default SIGTERM ends the process at once, skipping the ``finally`` blocks that
    stop the pool's workers, so each would go on training its job for nobody. Raised as
    KeyboardInterrupt, it stops them; rows already written and epoch checkpoints stay, and the same
    command resumes."""
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _csv(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _executor_options(pairs: tuple[str, ...], ray_address: str | None) -> dict[str, Any]:
    """``-X key=value`` pairs for the executor's factory (values parsed as JSON when they can be)."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise QbenchError(f"--executor-option {pair!r} is not KEY=VALUE; e.g. -X retries=2.")
        try:
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value
    if ray_address:
        options["address"] = ray_address
    return options


@click.command()
@click.option("--all", "run_all", is_flag=True, help="Every installed method (on --suite, default quick).")
@click.option("--suite", "suite_name", default="quick", show_default=True, help="Suite name or TOML path.")
@click.option("--method", "methods", help="Comma-separated method names or globs (default: the suite's).")
@click.option("--model", "models", help="Comma-separated model names (suite entries, any timm model, or your "
                                        "own: pkg.module:factory returning an nn.Module).")
@click.option("--dataset", "datasets", help="Comma-separated dataset names.")
@click.option("--data", help="Your data: a folder with train/ and val/ (or test/) class folders, or pkg.module:fn "
                             "returning (train, val, test) datasets. Runs the suite's recipe as <suite>-custom.")
@click.option("--bits", help="Comma-separated bit targets: 4,2 or W4A4,W2A8.")
@click.option("--seeds", type=int, help="Number of seeds (0..N-1) instead of the suite's.")
@click.option("--dry-run", is_flag=True, help="Validate and print the plan; train nothing.")
@click.option("--workspace", type=click.Path(path_type=Path), help="Results directory (default ./qbench-runs).")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Where datasets that need files live.")
@click.option("--workers", type=int, help="Worker processes (default: cores // the recipe's threads, one per GPU "
                                          "on CUDA). 1 runs jobs in this process.")
@click.option("--executor", help="local | pool | subprocess | an executor from a plugin (ray). "
                                 "Default: pool when --workers > 1, else local.")
@click.option("--executor-option", "-X", "executor_options", multiple=True, metavar="KEY=VALUE",
              help="An option for the executor's factory, e.g. -X retries=2 (repeatable).")
@click.option("--ray-address", help="With --executor ray: the cluster to join (default: start a local one).")
@click.option("--device", default="cpu", show_default=True,
              help="auto | cpu | cuda (every GPU) | cuda:N (that GPU only) | cuda:N,M (auto: every GPU when "
                   "available).")
@click.option("--progress/--no-progress", default=True, help="Show progress bars.")
@click.option("--compare-against", type=click.Path(path_type=Path),
              help="After the run, compare with this committed leaderboard (exit 1 on a regression).")
@click.option("--threads", type=int, envvar="QBENCH_THREADS",
              help="Override the recipe's torch threads per job (a different job key; env QBENCH_THREADS).")
@click.option("--fp-checkpoint", "fp_checkpoints", multiple=True, metavar="[MODEL=]FILE",
              help="Start MODEL from this file of FP weights (.safetensors state_dict, or timm's pretrained "
                   "file) instead of FP training; FILE alone when the run has one model (repeatable). Its "
                   "sha256 enters the keys.")
def run(run_all: bool, suite_name: str, methods: str | None, models: str | None, datasets: str | None,
        data: str | None, bits: str | None, seeds: int | None, dry_run: bool, workspace: Path | None, data_dir: Path | None,
        workers: int | None, executor: str | None, executor_options: tuple[str, ...], ray_address: str | None,
        device: str, progress: bool, compare_against: Path | None, threads: int | None,
        fp_checkpoints: tuple[str, ...]) -> None:
    """Run a suite: FP checkpoints, QAT per method, audit, one row per job (resumable)."""
    import pandas as pd

    from qbench.report.budget import budget_warnings
    from qbench.run.fpstart import describe_fp
    from qbench.run.harness import Harness
    from qbench.run.plan import plan_jobs
    from qbench.run.progress import RunProgress
    from qbench.run.runtime import default_workers, resolve_devices
    from qbench.run.user import check_custom
    from qbench.run.workspace import Workspace

    cat = get_catalog()
    if run_all and methods:
        raise QbenchError("Give either --all or --method, not both.")
    devices = resolve_devices(device)  # --device cuda:1 keeps every worker on GPU 1
    dev = devices[0]
    suite, jobs = plan_jobs(cat, suite_name, ["*"] if run_all else _csv(methods), _csv(models), _csv(datasets),
                            _csv(bits), seeds, threads=threads, device_type=dev.type,
                            fp_checkpoints=list(fp_checkpoints), data=data)
    if workers is not None and workers < 1:
        raise QbenchError(f"--workers must be >= 1, got {workers}.")
    n_workers = workers or default_workers(suite.threads, devices)
    executor = executor or ("pool" if n_workers > 1 else "local")
    options = _executor_options(executor_options, ray_address)
    if executor == "pool":
        options.setdefault("workers", n_workers)
    cat.executors.get(executor)
    ws = Workspace(workspace)
    check_custom(cat, suite, ws.root / "cache", data_dir)  # your model and data: one forward, before training
    done = sum(ws.is_finished(suite.name, j.key) for j in jobs)
    fp = len({j.fp_key for j in jobs})
    names = escape(", ".join(dict.fromkeys(j.method.name for j in jobs)))  # plugin text: printed as it is
    console.print(f"Suite [bold]{escape(suite.name)}[/bold] v{suite.version}: {len(jobs)} jobs ({done} finished), "
                  f"{fp} FP checkpoints, methods: {names}; "
                  f"{suite.threads} thread(s) a job on {','.join(map(str, devices))}, executor {escape(executor)}"
                  + (f" x{options['workers']}" if "workers" in options else "") + escape(f"; workspace {ws.root}"))
    if dry_run:
        table = Table(title="plan (dry run)")
        for col in ("job", "key", "status"):
            table.add_column(col)
        for j in jobs:
            table.add_row(escape(j.label), j.key, "done" if ws.is_finished(suite.name, j.key) else "todo")
        console.print(table)
        starts = Table(title="FP checkpoints (dry run)")
        for col in ("fp key", "dataset/model", "seeds", "start"):
            starts.add_column(col)
        for cells in describe_fp(jobs):
            starts.add_row(*cells)
        console.print(starts)
        if suite.gpu_recommended:
            console.print("[yellow]This suite is paper-scale: run it on a GPU machine with --data-dir.[/yellow]")
        return
    command = "qbench " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    # a log (CI, nohup, a batch scheduler) gets a line per finished job; a terminal has the bars
    job_log = None if sys.stdout.isatty() else sys.stdout
    with RunProgress(enabled=progress, job_log=job_log) as prog, terminate_as_interrupt():
        harness = Harness(cat, ws, data_dir=data_dir, progress=prog, command=command, device=str(dev),
                          devices=tuple(str(d) for d in devices))
        rows = harness.run(suite, jobs, executor=executor, options=options)
    current = [r for r in rows if r.get("suite_version") == suite.version]
    print_summary(current, f"{suite.name} v{suite.version}")
    for line in budget_warnings(current):
        err_console.print(f"[yellow]Warning:[/yellow] {escape(line)}", highlight=False)
    console.print(escape(f"Rows: {ws.root / suite.name / 'rows'}; table: {ws.root / suite.name / 'results.csv'}"))
    if compare_against is not None:
        run_rows = pd.DataFrame([r for r in rows if r.get("suite_version") == suite.version])
        if not report_comparison(run_rows, compare_against, 1.0):
            sys.exit(1)
