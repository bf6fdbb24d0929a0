"""What ``qbench compare`` shows, built once and rendered two ways: rich for a terminal (a pipe gets
whole tables, see :mod:`qbench.cli.render`) and Markdown for a pull-request comment.

The view is the gate's table, its notes and verdict, then a placement per method version the gate
does not judge (:mod:`qbench.report.placement`) and the rules behind the numbers. Names and reasons
come from plugins and result files: lines escape them (:func:`rich.markup.escape`), table cells are
literal :class:`rich.text.Text`, and Markdown escapes the characters that would break a table or
render as HTML.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from qbench.report.compare import Comparison, compare, tolerance_rule
from qbench.report.placement import Grid, Placement, TablePlace, place
from qbench.report.ranks import ALPHA, RANK_RULE

#: rich styles of the gate's statuses.
STATUS_STYLE = {"regression": "bold red", "improved": "green", "within": "", "new": "cyan", "not run": "dim",
                "better": "green", "worse": "red"}


@dataclass
class Heading:
    text: str  # plain


@dataclass
class Line:
    markup: str  # rich markup, every plugin-supplied part escaped
    err: bool = False  # the terminal prints it on stderr (the gate's failure)


@dataclass
class Rows:
    """A table of plain cells; ``style_col`` names the column whose value picks its style."""

    title: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    style_col: int | None = None


Block = Heading | Line | Rows


@dataclass
class View:
    ok: bool  # nothing regressed: the command's exit status
    blocks: list[Block]
    comparison: Comparison
    placements: list[Placement]

    def rich(self) -> list[tuple[Any, bool]]:
        """(renderable, to stderr) in order, for a rich console."""
        out: list[tuple[Any, bool]] = []
        for b in self.blocks:
            if isinstance(b, Heading):
                out.append((Text("\n" + b.text, style="bold"), False))
            elif isinstance(b, Line):
                out.append((b.markup, b.err))
            else:
                t = Table(title=Text(b.title))  # literal: a title names a plugin's method
                for h in b.headers:
                    t.add_column(h)
                for row in b.rows:
                    style = STATUS_STYLE.get(row[b.style_col], "") if b.style_col is not None else ""
                    t.add_row(*(Text(c, style=style if i == b.style_col else "") for i, c in enumerate(row)))
                out.append((t, False))
        return out

    def markdown(self) -> str:
        parts = []
        for b in self.blocks:
            if isinstance(b, Heading):
                parts.append(f"### {_md(b.text)}\n")
            elif isinstance(b, Line):
                parts.append(_md_line(b.markup) + "\n")
            else:
                lines = [f"#### {_md(b.title)}", "", "| " + " | ".join(map(_md, b.headers)) + " |",
                         "|" + "---|" * len(b.headers)]
                lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in b.rows]
                parts.append("\n".join(lines) + "\n")
        return "\n".join(parts)


def _md(text: str) -> str:
    """One Markdown-safe line: no table-breaking pipe or newline, no HTML."""
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")
            .replace("\n", " "))


def _md_line(markup: str) -> str:
    """A markup line as Markdown: its bold spans bold, the rest literal."""
    text = Text.from_markup(markup)
    out, at = [], 0
    for span in sorted((s for s in text.spans if "bold" in str(s.style)), key=lambda s: s.start):
        if span.start < at:
            continue  # nested in a bold span already written
        out += [_md(text.plain[at:span.start]), "**" + _md(text.plain[span.start:span.end]) + "**"]
        at = span.end
    return "".join(out + [_md(text.plain[at:])])


def _f(v: Any, fmt: str = ".2f") -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def build(run: pd.DataFrame, against: str | Path, floor: float,
          recipe: Callable[[Path, str, int], Grid | None] | None = None) -> View:
    """The gate's verdict on ``run`` and the placement of what it does not judge. ``recipe``: the
    suite's grid from the leaderboard's directory, the suite's name and version (the suite files
    live above this layer, so the caller reads them); without it, what publishing needs is unknown."""
    cmp = compare(run, against, floor)
    grid = recipe(cmp.reference, str(run["suite"].iloc[0]), cmp.suite_version) if recipe and cmp.reference else None
    placements = place(cmp, run, floor, grid)
    blocks: list[Block] = [_gate_table(cmp, against)]
    blocks += _not_run(cmp)
    blocks += [Line(f"[yellow]Note:[/yellow] {escape(n)}") for n in cmp.notes]
    if cmp.ok:
        blocks.append(Line("[green]No significant regression.[/green]"))
    else:
        names = ", ".join(f"{r['method']} {r['bits']} on {r['dataset']}/{r['model']}"
                          for r in cmp.regressions.to_dict("records"))
        blocks.append(Line(f"[bold red]Regression:[/bold red] {escape(names)} fell below the committed top-1 by more "
                           "than the tolerance.", err=True))
    for p in placements:
        blocks += _placement(p, cmp.suite_version)
    if placements:
        blocks.append(Line(f"Paired gap: per seed, the placed method's top-1 minus its FP top-1, minus the published "
                           "entry's on the FP checkpoint of the same seed; mean and 95 % interval from the paired "
                           "t-test the ranks use (seed variance moderated across the table), for that pair alone; "
                           f"better / worse: significant after Holm's correction at {ALPHA:g} over all the table's "
                           "pairs, as the rank needs, so an interval just clear of 0 can still be not "
                           "distinguishable. Rank: "
                           f"{RANK_RULE} A method the leaderboard lacks, or another version of one it holds, is "
                           "placed, never gated."))
    blocks.append(Line(escape(tolerance_rule(floor))))
    return View(cmp.ok, blocks, cmp, placements)


def _gate_table(cmp: Comparison, against: str | Path) -> Rows:
    g = Rows(f"compare against {against} (suite v{cmp.suite_version})",
              ["dataset", "model", "method", "bits", "committed", "run", "Δ", "tolerance", "status"], style_col=8)
    for r in cmp.table.to_dict("records"):
        if r["status"] == "not run":
            continue  # one line below: a one-method run would otherwise list the whole leaderboard
        g.rows.append([str(r["dataset"]), str(r["model"]), str(r["method"]), str(r["bits"]), _f(r["top1_ref"]),
                       _f(r["top1_run"]), _f(r["delta"]), _f(r["tolerance"]), str(r["status"])])
    return g


def _not_run(cmp: Comparison) -> list[Block]:
    """The published entries the run did not cover, as one line: they are not compared, and a
    pull-request comment for one new method should not repeat the whole leaderboard."""
    missing = cmp.table[cmp.table["status"] == "not run"]
    if missing.empty:
        return []
    methods = ", ".join(sorted(map(str, missing["method"].unique())))
    return [Line(f"[dim]Not in this run, so not compared: {len(missing)} published "
                 f"entr{'y' if len(missing) == 1 else 'ies'} ({escape(methods)}).[/dim]")]


def _placement(p: Placement, version: int) -> list[Block]:
    what = ("not on the leaderboard" if p.published_version is None else
            f"the leaderboard holds v{p.published_version}")
    out: list[Block] = [Heading(f"Placement: {p.method} v{p.version} ({what}; placed, never gated)")]
    if not p.tables:
        out.append(Line("No finished row to place."))
    for t in p.tables:
        out.append(Line(_where(t, p)))
        if not t.pairs.empty:
            out.append(_pairs(t, p))
    out += [Line(f"[yellow]Note:[/yellow] {escape(n)}") for n in p.notes]
    out += _publishing(p, version)
    return out


def _where(t: TablePlace, p: Placement) -> str:
    kind = " (weight-only)" if t.bits.endswith("A32") else ""
    head = f"[bold]{escape(f'{t.dataset} / {t.model} / {t.bits}')}{kind}[/bold]: "
    std = _f(t.top1_std) or "n/a"
    stats = (f"top-1 {t.top1:.2f} ± {std}, Δ FP {t.gap:+.2f}, {t.n} seed{'s' if t.n != 1 else ''}; the gate's "
             f"tolerance once published: {t.tolerance:.2f} points"
             + (f" (moderated sd {t.tol_sd:.2f} on {t.tol_df:g} df)" if not math.isnan(t.tol_df) else " (the floor)"))
    if t.flag:
        return head + f"[yellow]would not be ranked[/yellow]: {escape(t.flag)}. {stats}."
    return head + f"would rank [bold]{t.rank}[/bold] of {t.ranked}. {stats}."


def _pairs(t: TablePlace, p: Placement) -> Rows:
    seeds = [f"seed {s}" for s in t.seeds]
    headers = ["published", "rank now", "top-1", *seeds, "mean", "95% interval", "p", "verdict"]
    g = Rows(f"{t.dataset} / {t.model} / {t.bits}: paired gap of {p.method} v{p.version} minus each published entry",
             headers, style_col=len(headers) - 1)
    for r in t.pairs.to_dict("records"):
        interval = f"[{r['lo']:+.2f}, {r['hi']:+.2f}]" if not math.isnan(r["lo"]) else "n/a"
        g.rows.append([f"{r['method']} v{r['method_version']}", str(r["rank"]), _f(r["top1"]),
                       *(_f(r[s], "+.2f") or "—" for s in seeds), _f(r["mean"], "+.2f"), interval,
                       _f(r["p"], ".3g") or "n/a", str(r["verdict"])])
    return g


def _publishing(p: Placement, version: int) -> list[Block]:
    if p.grid is None:
        return [Line(f"What publishing needs is unknown: the recipe of this suite v{version} is not at hand (no "
                     "suite.toml beside the leaderboard, and the installed suite is another version).")]
    spec = f"{p.grid.suite}@v{p.grid.version}"
    if p.missing.empty:
        return [Line(f"Complete for {escape(spec)}: every dataset, model, bit target and seed of the recipe has a "
                     "finished row of it.")]
    g = Rows(f"To publish {p.method} v{p.version}: what {spec} plans that this run lacks",
              ["dataset", "model", "bits", "seeds", "why"])
    for r in p.missing.to_dict("records"):
        g.rows.append([str(r["dataset"]), str(r["model"]), str(r["bits"]), ", ".join(map(str, r["seeds"])), r["why"]])
    return [Line(f"To publish, {escape(spec)} also needs: {escape(p.summary_missing)}."), g,
            Line(f"Run them with `qbench run --suite {escape(spec)} --method {escape(p.method)}` in the same "
                 "workspace (finished jobs are kept), then compare again.")]
