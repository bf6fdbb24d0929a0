"""Tables the commands print: the run summary and the gate's verdict.

Kept apart from the commands so the rendering (rich on a terminal, whole tables in a pipe) is
one module's business: every command prints through :data:`console`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console, JustifyMethod
from rich.table import Table
from rich.text import Text


def _plain(cell: Any) -> str:
    """A table cell as plain text for Markdown: markup dropped, pipes escaped, one line."""
    if isinstance(cell, str):
        cell = Text.from_markup(cell)
    text = cell.plain if isinstance(cell, Text) else str(cell)
    return text.replace("|", "\\|").replace("\n", " ")


def table_markdown(table: Table) -> str:
    """A rich Table as a Markdown table (title first): no width limit, so no cell is cut."""
    align: dict[JustifyMethod, str] = {"right": "---:", "center": ":---:"}
    lines = [f"### {_plain(table.title)}", ""] if table.title else []
    lines.append("| " + " | ".join(_plain(c.header) for c in table.columns) + " |")
    lines.append("|" + "|".join(align.get(c.justify, "---") for c in table.columns) + "|")
    for row in zip(*(list(c.cells) for c in table.columns)):
        lines.append("| " + " | ".join(_plain(cell) for cell in row) + " |")
    return "\n".join(lines) + "\n"


class PipeAwareConsole(Console):
    """rich on a terminal; whole tables and unwrapped lines anywhere else.

    On a terminal rich fits a table to the window, which suits a person. In a pipe (a CI log,
    ``| cat``, ``| grep``) rich assumes 80 columns and cuts cells ("dig… vit… adq"), so the gate's
    verdict cannot be read. There a Table is printed as Markdown (greppable, renders on GitHub)
    and other text keeps its lines whole. Overriding ``print`` covers every command at once,
    including tables built outside this module (``qbench run --dry-run``)."""

    def print(self, *objects: Any, **kwargs: Any) -> None:  # type: ignore[override]
        if self.is_terminal:
            super().print(*objects, **kwargs)
            return
        kwargs.setdefault("soft_wrap", True)
        pending: list[Any] = []
        for obj in objects:
            if isinstance(obj, Table):
                if pending:
                    super().print(*pending, **kwargs)
                    pending = []
                super().print(table_markdown(obj), markup=False, highlight=False, soft_wrap=True)
            else:
                pending.append(obj)
        if pending or not objects:
            super().print(*pending, **kwargs)


console = PipeAwareConsole()
err_console = PipeAwareConsole(stderr=True, soft_wrap=True)  # never break a path or name across lines


def print_summary(rows: list[dict[str, Any]], title: str) -> None:
    from qbench.report.stats import aggregate

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


def report_comparison(results: pd.DataFrame, against: Path, floor: float) -> bool:
    """Print what moved; True when nothing regressed."""
    from qbench.report.compare import compare as do_compare

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
