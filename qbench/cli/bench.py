"""``qbench bench``: each method's training-step cost as a ratio to the FP32 step, on this machine.

The ratios (not seconds) are what a committed baseline holds and what ``--against`` compares, so
the same baseline guards any machine; see :mod:`qbench.run.bench` for how they are measured.
"""
from __future__ import annotations

import json
import platform
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.markup import escape
from rich.table import Table

from qbench.cli.render import console, err_console
from qbench.errors import QbenchError
from qbench.plugin.catalog import get_catalog

if TYPE_CHECKING:
    from qbench.run.bench import BenchRow

#: The models ``--model`` accepts: the keys of :data:`qbench.run.bench.MODELS`, written out
#: because that module imports torch and timm, which ``qbench bench --help`` must not wait for
#: (a test holds the two equal).
BENCH_MODELS = ("resnet18", "vit-micro")


def _table(rows: list[BenchRow], title: str) -> Table:
    table = Table(title=title)
    for col in ("method", "model", "ratio", "passes", "ratio/pass", "QAT ms", "FP32 ms", "prepare s", "w-init s"):
        table.add_column(col)
    for r in rows:
        table.add_row(escape(r.method), r.model, f"{r.ratio:.2f}", f"{r.passes:g}", f"{r.per_pass:.2f}",
                      f"{r.qat_ms:.0f}", f"{r.fp_ms:.0f}", f"{r.prepare_s:.1f}", f"{r.init_s:.1f}")
    return table


@click.command()
@click.option("--method", "methods", multiple=True, help="Method to time (repeatable); default: every installed one.")
@click.option("--model", "models", multiple=True, type=click.Choice(BENCH_MODELS),
              help="Benchmark model (repeatable); default: all.")
@click.option("--rounds", default=10, show_default=True, help="Interleaved FP32/QAT rounds; the median ratio is kept.")
@click.option("--threads", default=2, show_default=True, help="torch threads (CPU).")
@click.option("--device", default="cpu", show_default=True, help="torch device, e.g. cpu or cuda.")
@click.option("--bits", default="W4A4", show_default=True, help="Bit target (every layer but stem and classifier).")
@click.option("--save", type=click.Path(dir_okay=False, path_type=Path), help="Write the ratios as a baseline JSON.")
@click.option("--against", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Baseline JSON: exit 1 when a ratio regressed by more than --max-regression.")
@click.option("--max-regression", default=0.2, show_default=True, help="Allowed relative ratio increase (0.2 = 20%).")
@click.option("--retries", default=1, show_default=True,
              help="With --against: re-measure a failing ratio this many times (twice the rounds) before failing.")
def bench(methods: tuple[str, ...], models: tuple[str, ...], rounds: int, threads: int, device: str, bits: str,
          save: Path | None, against: Path | None, max_regression: float, retries: int) -> None:
    """Time each method's QAT step against the FP32 step of the same model, side by side."""
    import torch

    from qbench.run.bench import MODELS, bench_methods, measure, regressions

    torch.set_num_threads(threads)
    cat = get_catalog()
    names = list(methods) or bench_methods(cat)
    unknown = sorted(set(names) - set(cat.methods.names()))
    if unknown:
        raise QbenchError(f"Unknown method(s) {', '.join(unknown)}; see `qbench list methods`.")
    baseline = json.loads(against.read_text()) if against else None
    if baseline is not None and not methods:
        names = sorted({r["method"] for r in baseline["rows"]} & set(names))
    rows = []
    for model in models or sorted(MODELS):
        for name in names:
            row = measure(name, model, cat, rounds=rounds, bits=bits, device=device)
            for _ in range(retries if baseline is not None else 0):
                if not regressions([row], baseline, max_regression):
                    break
                err_console.print(f"{escape(name)} on {model}: ratio {row.ratio:.2f} above the baseline; "
                                  "measuring again")
                row = measure(name, model, cat, rounds=2 * rounds, bits=bits, device=device)
            rows.append(row)
            err_console.print(f"{escape(name)} on {model}: {row.ratio:.2f}x ({row.passes:g} passes)")
            if save is not None:  # after every row: a long run stopped early keeps what it measured
                meta = {"bits": bits, "batch": 64, "threads": threads, "device": device, "rounds": rounds,
                        "torch": torch.__version__, "machine": platform.machine()}
                save.write_text(json.dumps({**meta, "rows": [r.as_dict() for r in rows]}, indent=1) + "\n")
    title = f"QAT step / FP32 step, {bits}, batch 64, {device}, {threads} threads, median of {rounds} rounds"
    console.print(_table(rows, title))
    if baseline is not None:
        bad = regressions(rows, baseline, max_regression)
        if bad:
            err_console.print("[bold red]Step-time regression:[/bold red]\n" + escape("\n".join(bad)))
            sys.exit(1)
        console.print(f"[green]No ratio regressed by more than {max_regression:.0%}.[/green]")
