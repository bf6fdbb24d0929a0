"""Tables the commands print: the run summary and the gate's verdict.

Kept apart from the commands so the rendering (rich on a terminal, whole tables in a pipe) is
one module's business: every command prints through :data:`console`.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console, JustifyMethod
from rich.markup import escape
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    import pandas as pd

    from qbench.report.placement import Grid


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
    import pandas as pd

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
        table.add_row(escape(str(r.dataset)), escape(str(r.model)), escape(str(r.method)), r.bits,
                      "ref" if r.bits == "fp32" else str(r.rank),
                      f"{r.top1:.2f} ± {std}", f"{r.gap:+.2f}",
                      str(r.n), f"{r.w_bits:.2f}", f"{r.a_bits:.2f}", f"{r.gbitops:.4f}")
    console.print(table)
    bad = df[df["status"] != "ok"]
    for r in bad.itertuples():
        err_console.print(f"[red]{r.status}[/red] " + escape(f"{r.dataset}/{r.model}/{r.method}/{r.bits}/seed{r.seed}: "
                                                             f"{r.reason}"))


def report_comparison(results: pd.DataFrame, against: Path | str, floor: float, fmt: str = "terminal",
                      output: Path | None = None) -> bool:
    """Print the gate's verdict and place what it does not judge (qbench.report.compare_view), on
    the terminal or as Markdown (to stdout, or written atomically to ``output``); True when nothing
    regressed."""
    from qbench.report.compare_view import build

    view = build(results, against, floor, _recipe)
    if fmt == "md":
        from qbench.atomic import atomic_write_text

        md = view.markdown()
        if output is None:
            sys.stdout.write(md)
        else:
            atomic_write_text(output, md)
            err_console.print(f"Wrote {output}", markup=False, highlight=False)
        return view.ok
    for obj, to_err in view.rich():
        (err_console if to_err else console).print(obj, highlight=False)
    return view.ok


def _recipe(ref_dir: Path, suite: str, version: int) -> Grid | None:
    """The grid of suite ``suite`` v``version`` that publishing fills: the recipe kept beside its
    leaderboard, else the installed suite file when it is that version; None when neither is."""
    from qbench.default_plugins.suites import SUITES_DIR
    from qbench.errors import QbenchError
    from qbench.report.placement import Grid
    from qbench.run.suite import load_suite

    for f in (Path(ref_dir) / "suite.toml", SUITES_DIR / f"{suite}.toml"):
        try:
            found = load_suite(str(f), {}) if f.is_file() else None
        except QbenchError:
            found = None  # a recipe that no longer loads: try the next, or say what publishing needs is unknown
        if found is not None and (found.name, found.version) == (suite, version):
            return Grid.of(found)
    return None
