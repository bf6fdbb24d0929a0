"""``qbench leaderboard``, ``publish`` and ``compare``: from rows to published tables and the gate."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from qbench.cli.render import console, report_comparison
from qbench.plugin.catalog import get_catalog


@click.command()
@click.argument("suite")
@click.option("--root", type=click.Path(path_type=Path), default=Path("leaderboards"), show_default=True,
              help="Leaderboards directory.")
@click.option("--version", "version", type=int, help="Suite version (default: the latest published).")
@click.option("--plot", is_flag=True, help="Also write pareto.png (accuracy vs GBitOPs and vs bits).")
@click.option("--html", is_flag=True, help="Also write the browsable page v<N>/index.html (sortable table, "
                                           "Pareto charts, provenance, diff) and ROOT/index.html.")
def leaderboard(suite: str, root: Path, version: int | None, plot: bool, html: bool) -> None:
    """Regenerate a published leaderboard's table (and plot, and page) from its CSV, and print it."""
    from qbench.report.leaderboard import latest_version_dir, render, version_dir

    d = version_dir(root, suite, version) if version else latest_version_dir(root, suite)
    md = render(d, suite, plot=plot)
    console.print(md, markup=False, highlight=False)
    written = [d / "leaderboard.md"] + ([d / "pareto.png"] if plot else [])
    if html:
        from qbench.report.html import write_pages

        written += write_pages(root, suite, [int(d.name[1:])])
    console.print("Wrote " + ", ".join(str(p) for p in written))


@click.command()
@click.argument("suite")
@click.option("--workspace", type=click.Path(path_type=Path), help="Results directory of the run.")
@click.option("--root", type=click.Path(path_type=Path), default=Path("leaderboards"), show_default=True)
def publish(suite: str, workspace: Path | None, root: Path) -> None:
    """Publish a run's rows for SUITE as leaderboards/SUITE/v<version>/ (CSV, table, meta, diff, plot).

    Only rows of jobs the suite plans now are published: a workspace also keeps rows from older
    method versions or parameters (their job keys differ), and a leaderboard must not mix them.
    """
    from qbench.report.leaderboard import publish as do_publish
    from qbench.run.plan import plan_jobs
    from qbench.run.workspace import Workspace

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
    d = do_publish(rows, root, suite_obj.name, recipe_file=Path(suite_obj.path) if suite_obj.path else None)
    console.print(f"Published {len(rows)} rows to {d}")
    from qbench.report.html import publish_pages

    console.print(publish_pages(root, suite_obj.name), highlight=False)  # the web pages; never fails publishing
    _print_unranked(rows)


def _print_unranked(rows: list[dict]) -> None:
    """Name the entries a leaderboard lists apart (over budget, collapsed, not what deploys), never ranked."""
    import pandas as pd

    from qbench.report.stats import aggregate, is_ranked

    agg = aggregate(pd.DataFrame(rows)) if rows else pd.DataFrame()
    if agg.empty:
        return
    apart = agg[(agg["bits"] != "fp32") & ~agg["rank"].map(is_ranked)]
    for r in apart.itertuples():
        console.print(f"[yellow]Not ranked[/yellow] {r.dataset}/{r.model}/{r.method} v{r.method_version}/{r.bits} "
                      f"(measured W{r.w_bits:.3g}A{r.a_bits:.3g}): {r.flag}", highlight=False)
    if not apart.empty:
        console.print(f"{len(apart)} entries listed apart in leaderboard.md "
                      "(\"Not ranked: over budget, collapsed or not what deploys\").")


@click.command()
@click.argument("results", type=click.Path(path_type=Path))
@click.option("--against", required=True,
              help="A published suite shipped with qbench, SUITE or SUITE@vN (e.g. quick, quick@v1), or a "
                   "leaderboard directory (e.g. leaderboards/quick).")
@click.option("--floor", type=float, default=1.0, show_default=True, help="Minimum tolerance in top-1 points.")
@click.option("--format", "fmt", type=click.Choice(["terminal", "md"]), default="terminal", show_default=True,
              help="md: the same view as Markdown, for a pull-request comment.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
              help="With --format md: write the Markdown to this file (atomically) instead of stdout.")
def compare(results: Path, against: str, floor: float, fmt: str, output: Path | None) -> None:
    """Compare a run's results.csv (or its directory) against a published leaderboard.

    Only the method versions the leaderboard holds are compared; each row's tolerance comes from
    the seed variance pooled across methods (qbench.report.compare). Over-budget or collapsed
    entries are reported. Exits 1 when a method is significantly worse than its committed entry,
    or newly over budget. A method the leaderboard lacks, or another version of one it holds, is
    placed instead, never failed: its paired gap to each published entry per seed, its would-be
    rank in each table, the gate's tolerance for it and what publishing it still needs
    (qbench.report.placement)."""
    from qbench.report.compare import read_results

    if output is not None and fmt != "md":
        raise click.UsageError("--output writes the Markdown view: add --format md.")
    if not report_comparison(read_results(results), against, floor, fmt, output):
        sys.exit(1)
