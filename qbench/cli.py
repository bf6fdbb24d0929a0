"""The ``qbench`` command line.

Every user error (unknown name, bad value, missing file) exits with status 2 and one message
saying what is wrong and how to fix it: never a traceback.
"""
from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import click
import pandas as pd
from rich.console import Console
from rich.table import Table

from . import __version__
from .bits import BitTarget
from .catalog import Catalog, get_catalog
from .errors import QbenchError, UnknownNameError
from .jobs import Job, expand, select_methods, suite_methods
from .suite import DatasetEntry, ModelEntry, Suite, load_suite
from .workspace import Workspace

console = Console()
err_console = Console(stderr=True, soft_wrap=True)  # never break a path or name across lines

LIST_KINDS = ("methods", "quantizers", "allocators", "wrappers", "datasets", "models", "suites", "executors")


def _csv(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _suites(cat: Catalog) -> dict[str, Path]:
    return {n: cat.suites.get(n) for n in cat.suites}


def narrow_suite(suite: Suite, cat: Catalog, models: list[str] | None, datasets: list[str] | None,
                 bits: list[str] | None, seeds: int | None) -> Suite:
    """Apply the command line's filters to a suite (unknown names are errors)."""
    import timm

    from .models import cifar_resnet  # noqa: F401  (so timm knows qbench's models)

    model_entries = None
    if models:
        by_name = {**{m.name: m for m in suite.models}, **{m.label: m for m in suite.models}}
        model_entries = []
        for m in models:
            if m in by_name:
                model_entries.append(by_name[m])
            elif timm.is_model(m):
                model_entries.append(ModelEntry(m))
            else:
                raise UnknownNameError("model", m, list(by_name) + timm.list_models(),
                                       "Any timm model name works (timm.list_models()).")
        model_entries = tuple(model_entries)
    data_entries = None
    if datasets:
        by_name = {d.name: d for d in suite.datasets}
        data_entries = []
        for d in datasets:
            cat.datasets.get(d)
            data_entries.append(by_name.get(d, DatasetEntry(d)))
        data_entries = tuple(data_entries)
    if seeds is not None and seeds < 1:
        raise QbenchError(f"--seeds must be a positive count of seeds, got {seeds}.")
    return suite.narrowed(models=model_entries, datasets=data_entries,
                          bits=tuple(BitTarget.parse(b) for b in bits) if bits else None,
                          seeds=tuple(range(seeds)) if seeds else None)


def plan_jobs(cat: Catalog, suite_name: str, methods: list[str] | None, models: list[str] | None,
              datasets: list[str] | None, bits: list[str] | None, seeds: int | None) -> tuple[Suite, list[Job]]:
    suite = load_suite(suite_name, _suites(cat))
    suite = narrow_suite(suite, cat, models, datasets, bits, seeds)
    available = suite_methods(suite, cat)
    chosen = select_methods(methods or suite.methods, available)
    if not any(m.reference for m in chosen) and "fp32" in available:
        chosen.insert(0, available["fp32"])  # every table needs its FP32 row
    return suite, expand(suite, cat, chosen)


def print_summary(rows: list[dict[str, Any]], title: str) -> None:
    from .stats import aggregate

    df = pd.DataFrame(rows)
    if df.empty or "status" not in df:
        console.print("No results.")
        return
    agg = aggregate(df)
    table = Table(title=title, show_lines=False)
    for col in ("dataset", "model", "method", "bits", "rank", "top-1", "Δ FP", "seeds", "W bits", "A bits", "GBitOPs"):
        table.add_column(col, justify="right" if col not in ("dataset", "model", "method") else "left")
    for r in agg.itertuples():
        std = "n/a" if pd.isna(r.top1_std) else f"{r.top1_std:.2f}"
        table.add_row(r.dataset, r.model, r.method, r.bits, "ref" if r.bits == "fp32" else str(r.rank),
                      f"{r.top1:.2f} ± {std}", f"{r.gap:+.2f}",
                      str(r.n), f"{r.w_bits:.2f}", f"{r.a_bits:.2f}", f"{r.gbitops:.4f}")
    console.print(table)
    bad = df[df["status"] != "ok"]
    for r in bad.itertuples():
        err_console.print(f"[red]{r.status}[/red] {r.dataset}/{r.model}/{r.method}/{r.bits}/seed{r.seed}: {r.reason}")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="qbench")
def cli() -> None:
    """qbench: compare quantization-aware-training methods on one frozen recipe."""


@cli.command()
@click.option("--all", "run_all", is_flag=True, help="Every installed method (on --suite, default quick).")
@click.option("--suite", "suite_name", default="quick", show_default=True, help="Suite name or TOML path.")
@click.option("--method", "methods", help="Comma-separated method names or globs (default: the suite's).")
@click.option("--model", "models", help="Comma-separated model names (suite entries or any timm model).")
@click.option("--dataset", "datasets", help="Comma-separated dataset names.")
@click.option("--bits", help="Comma-separated bit targets: 4,2 or W4A4,W2A8.")
@click.option("--seeds", type=int, help="Number of seeds (0..N-1) instead of the suite's.")
@click.option("--dry-run", is_flag=True, help="Validate and print the plan; train nothing.")
@click.option("--workspace", type=click.Path(path_type=Path), help="Results directory (default ./qbench-runs).")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Where datasets that need files live.")
@click.option("--executor", default="local", show_default=True)
@click.option("--progress/--no-progress", default=True, help="Show progress bars.")
@click.option("--compare-against", type=click.Path(path_type=Path),
              help="After the run, compare with this committed leaderboard (exit 1 on a regression).")
@click.option("--threads", type=int, envvar="QBENCH_THREADS", help="torch threads (default: torch's; env QBENCH_THREADS).")
def run(run_all: bool, suite_name: str, methods: str | None, models: str | None, datasets: str | None,
        bits: str | None, seeds: int | None, dry_run: bool, workspace: Path | None, data_dir: Path | None,
        executor: str, progress: bool, compare_against: Path | None, threads: int | None) -> None:
    """Run a suite: FP checkpoints, QAT per method, audit, one row per job (resumable)."""
    if threads is not None:
        if threads < 1:
            raise QbenchError(f"--threads must be >= 1, got {threads}.")
        import torch
        torch.set_num_threads(threads)
    from .harness import Harness
    from .progress import RunProgress

    cat = get_catalog()
    if run_all and methods:
        raise QbenchError("Give either --all or --method, not both.")
    suite, jobs = plan_jobs(cat, suite_name, ["*"] if run_all else _csv(methods), _csv(models), _csv(datasets),
                            _csv(bits), seeds)
    cat.executors.get(executor)
    ws = Workspace(workspace)
    done = sum(ws.is_finished(suite.name, j.key) for j in jobs)
    fp = len({j.fp_key for j in jobs})
    console.print(f"Suite [bold]{suite.name}[/bold] v{suite.version}: {len(jobs)} jobs ({done} finished), "
                  f"{fp} FP checkpoints, methods: {', '.join(dict.fromkeys(j.method.name for j in jobs))}; "
                  f"workspace {ws.root}")
    if dry_run:
        table = Table(title="plan (dry run)")
        for col in ("job", "key", "status"):
            table.add_column(col)
        for j in jobs:
            table.add_row(j.label, j.key, "done" if ws.is_finished(suite.name, j.key) else "todo")
        console.print(table)
        if suite.gpu_recommended:
            console.print("[yellow]This suite is paper-scale: run it on a GPU machine with --data-dir.[/yellow]")
        return
    command = "qbench " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    with RunProgress(enabled=progress) as prog:
        harness = Harness(cat, ws, data_dir=data_dir, progress=prog, command=command)
        rows = harness.run(suite, jobs, executor=executor)
    print_summary([r for r in rows if r.get("suite_version") == suite.version], f"{suite.name} v{suite.version}")
    console.print(f"Rows: {ws.root / suite.name / 'rows'}; table: {ws.root / suite.name / 'results.csv'}")
    if compare_against is not None:
        run_rows = pd.DataFrame([r for r in rows if r.get("suite_version") == suite.version])
        if not report_comparison(run_rows, compare_against, 1.0):
            sys.exit(1)


@cli.command("list")
@click.argument("kind", type=click.Choice(LIST_KINDS))
def list_(kind: str) -> None:
    """List what the installed plugins provide."""
    cat = get_catalog()
    table = Table(title=kind)
    table.add_column("name")
    table.add_column("plugin")
    table.add_column("details")
    reg = {"methods": cat.methods, "quantizers": cat.quantizers, "allocators": cat.allocators,
           "wrappers": cat.wrappers, "datasets": cat.datasets, "models": cat.models, "suites": cat.suites,
           "executors": cat.executors}[kind]
    for e in reg.entries():
        obj = e.obj
        if kind == "methods":
            detail = (f"v{obj.version}; W: {obj.weight_quantizer or '-'}, A: {obj.activation_quantizer or '-'}, "
                      f"allocator: {obj.allocator}, wrapper: {obj.wrapper}" if not obj.reference else obj.description)
        elif kind == "quantizers":
            detail = f"{obj.kind}: {obj.description}"
        elif kind == "suites":
            detail = str(obj)
        else:
            detail = obj.description
        table.add_row(e.name, e.plugin, detail)
    console.print(table)
    if kind == "models":
        console.print("Plus any timm model name (timm.list_models()).")


@cli.command()
def plugins() -> None:
    """Installed plugins: name, distribution and version, hooks implemented."""
    cat = get_catalog()
    report = getattr(cat.pm, "qbench_load_report")
    table = Table(title="qbench plugins")
    for col in ("name", "distribution", "hooks"):
        table.add_column(col)
    for name, plugin in sorted(cat.pm.list_name_plugin(), key=lambda t: t[0]):
        hooks = sorted(h.name for h in cat.pm.get_hookcallers(plugin) or [])
        table.add_row(name, report.dists.get(name, ""), ", ".join(hooks))
    console.print(table)
    for name, msg in {**report.errors, **cat.errors}.items():
        err_console.print(f"[red]failed[/red] {name}: {msg}")


@cli.command()
@click.argument("suite")
@click.option("--root", type=click.Path(path_type=Path), default=Path("leaderboards"), show_default=True,
              help="Leaderboards directory.")
@click.option("--version", "version", type=int, help="Suite version (default: the latest published).")
@click.option("--plot", is_flag=True, help="Also write pareto.png (accuracy vs GBitOPs and vs bits).")
def leaderboard(suite: str, root: Path, version: int | None, plot: bool) -> None:
    """Regenerate a published leaderboard's table (and plot) from its CSV, and print it."""
    from .leaderboard import latest_version_dir, render, version_dir

    d = version_dir(root, suite, version) if version else latest_version_dir(root, suite)
    md = render(d, suite, plot=plot)
    console.print(md, markup=False, highlight=False)
    console.print(f"Wrote {d / 'leaderboard.md'}" + (f" and {d / 'pareto.png'}" if plot else ""))


@cli.command()
@click.argument("suite")
@click.option("--workspace", type=click.Path(path_type=Path), help="Results directory of the run.")
@click.option("--root", type=click.Path(path_type=Path), default=Path("leaderboards"), show_default=True)
def publish(suite: str, workspace: Path | None, root: Path) -> None:
    """Publish a run's rows for SUITE as leaderboards/SUITE/v<version>/ (CSV, table, meta, diff, plot).

    Only rows of jobs the suite plans now are published: a workspace also keeps rows from older
    method versions or parameters (their job keys differ), and a leaderboard must not mix them.
    """
    from .leaderboard import publish as do_publish

    suite_obj, jobs = plan_jobs(get_catalog(), suite, None, None, None, None, None)
    planned = {j.key for j in jobs}
    stored = Workspace(workspace).rows(suite_obj.name)
    rows = [r for r in stored if r.get("job_key") in planned]
    if len(rows) < len(stored):
        superseded = sorted({f"{r.get('method')} v{r.get('method_version')}" for r in stored
                             if r.get("job_key") not in planned})
        console.print(f"[yellow]Left out {len(stored) - len(rows)} rows the suite no longer plans[/yellow] "
                      f"(an older method version or parameters, or a method not installed: "
                      f"{', '.join(superseded)}).")
    missing = len(planned - {r.get("job_key") for r in rows})
    if missing:
        console.print(f"[yellow]{missing} of {len(planned)} planned jobs have no row yet[/yellow]; the table "
                      f"shows what finished. Finish them with `qbench run --suite {suite} --all --workspace "
                      f"{Workspace(workspace).root}` and publish again.")
    d = do_publish(rows, root, suite_obj.name)
    console.print(f"Published {len(rows)} rows to {d}")


def report_comparison(results: pd.DataFrame, against: Path, floor: float) -> bool:
    """Print what moved; True when nothing regressed."""
    from .compare import compare as do_compare

    cmp = do_compare(results, against, floor)
    table = Table(title=f"compare against {against} (suite v{cmp.suite_version})")
    for col in ("dataset", "model", "method", "bits", "committed", "run", "Δ", "tolerance", "status"):
        table.add_column(col)
    style = {"regression": "bold red", "improved": "green", "within": "", "new": "cyan", "not run": "dim"}
    for r in cmp.table.to_dict("records"):
        def f(v: Any) -> str:
            return "" if pd.isna(v) else f"{v:.2f}"
        table.add_row(r["dataset"], r["model"], r["method"], r["bits"], f(r["top1_ref"]), f(r["top1_run"]),
                      f(r["delta"]), f(r["tolerance"]), f"[{style[r['status']]}]{r['status']}[/]" if style[r['status']]
                      else r["status"])
    console.print(table)
    for note in cmp.notes:
        console.print(f"[yellow]Note:[/yellow] {note}")
    if cmp.ok:
        console.print("[green]No significant regression.[/green]")
    else:
        names = ", ".join(f"{r['method']} {r['bits']} on {r['dataset']}/{r['model']}"
                          for r in cmp.regressions.to_dict("records"))
        err_console.print(f"[bold red]Regression:[/bold red] {names} fell below the committed top-1 by more than "
                          "the tolerance.")
    return cmp.ok


@cli.command()
@click.argument("results", type=click.Path(path_type=Path))
@click.option("--against", type=click.Path(path_type=Path), required=True,
              help="Committed leaderboard directory, e.g. leaderboards/quick.")
@click.option("--floor", type=float, default=1.0, show_default=True, help="Minimum tolerance in top-1 points.")
def compare(results: Path, against: Path, floor: float) -> None:
    """Compare a run's results.csv (or its directory) against a committed leaderboard.

    Exits 1 when a method is significantly worse than its committed entry."""
    from .compare import read_results

    if not report_comparison(read_results(results), against, floor):
        sys.exit(1)


from .scaffold import new_plugin  # noqa: E402
cli.add_command(new_plugin)


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="qbench", standalone_mode=False)
    except QbenchError as exc:
        err_console.print(f"[bold red]Error:[/bold red] {exc}", highlight=False)
        sys.exit(2)
    except click.exceptions.Abort:
        err_console.print("Aborted: finished jobs are kept; rerun the same command to resume.")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("Interrupted: finished jobs are kept; rerun the same command to resume.")
        sys.exit(130)


if __name__ == "__main__":
    main()
