"""``qbench models``: the coverage registry, and ``--check``: its matrix, model x method."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import click

from qbench.atomic import atomic_write_text
from qbench.errors import QbenchError
from qbench.plugin.catalog import get_catalog

STAGE_LETTERS = {"forward": "F", "backward": "B", "eval": "E", "audit": "A"}


def _cell(result: dict[str, str], xfail: str | None) -> tuple[str, str]:
    """(table cell, failure note or '')."""
    failed = [s for s in STAGE_LETTERS if result.get(s) != "ok"]
    if not failed:
        return ("XPASS" if xfail else "ok"), ""
    first = failed[0]
    note = result.get(first, "")
    if xfail:
        return "xfail", f"xfail ({xfail}): {note}"
    return f"FAIL {STAGE_LETTERS[first]}", note


@dataclass
class ModelCheck:
    """One model's row of the matrix: its cells, failure notes, unexpected results, tracebacks."""

    cells: list[str]
    notes: list[str]
    bad: int
    tracebacks: str


def check_model(name: str, methods: list[str], attention: str, verbose: bool = False) -> ModelCheck:
    """One registry model through the identity check and every method. A module-level function
    so worker processes can run it."""
    import torch

    from qbench.models.coverage import REGISTRY, xfail_reason
    from qbench.train.coverage import identity_check, method_check

    torch.set_num_threads(1)  # as the suites: results and timings do not depend on the core count
    catalog = get_catalog()
    entry = next(m for m in REGISTRY if m.name == name)
    notes: list[str] = []
    tracebacks: list[str] = []
    bad = 0
    try:
        diff = identity_check(entry, attention)
        ok = diff == 0.0 if attention == "fp" else diff < 1e-4
        ident = "exact" if diff == 0.0 else (f"{diff:.1e}" if ok else f"FAIL {diff:.2g}")
    except Exception as exc:
        ok, ident = False, "FAIL"
        notes.append(f"- `{entry.name}` identity: {type(exc).__name__}: {exc}".splitlines()[0])
    bad += not ok
    cells = [ident]
    for method in methods:
        res = method_check(entry, method, catalog, attention=attention)
        cell, note = _cell(res, xfail_reason(entry.name, method))
        bad += cell.startswith("FAIL") or cell == "XPASS"
        cells.append(cell)
        if note:
            notes.append(f"- `{entry.name}` x `{method}`: {note}")
        if verbose and "traceback" in res:
            tracebacks.append(res["traceback"])
    return ModelCheck(cells, notes, bad, "\n".join(tracebacks))


def check_matrix(models: list[str], methods: list[str], attention: str, verbose: bool = False,
                 jobs: int = 1) -> tuple[list[str], int]:
    """The matrix as Markdown lines (registry order), and the number of unexpected failures.

    ``jobs`` > 1 checks that many models at once in worker processes (one torch thread each):
    the full matrix is hundreds of model x method checks, an hour in one process.
    """
    from qbench.models.coverage import REGISTRY

    header = ["model", f"identity ({attention})", *methods]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    order = [m.name for m in REGISTRY if m.name in models]
    results: dict[str, ModelCheck] = {}
    t0 = time.perf_counter()

    def report(name: str, res: ModelCheck) -> None:
        results[name] = res
        if res.tracebacks:
            click.echo(res.tracebacks, err=True)
        click.echo(f"{name}: {', '.join(res.cells)} [{len(results)}/{len(order)}, "
                   f"{time.perf_counter() - t0:.0f} s elapsed]", err=True)

    if jobs <= 1:
        for name in order:
            report(name, check_model(name, methods, attention, verbose))
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool:
            futures = {pool.submit(check_model, n, methods, attention, verbose): n for n in order}
            for fut in as_completed(futures):
                report(futures[fut], fut.result())
    lines += [f"| `{name}` | " + " | ".join(results[name].cells) + " |" for name in order]
    notes = [n for name in order for n in results[name].notes]
    if notes:
        lines += ["", *notes]
    return lines, sum(results[name].bad for name in order)


@click.command("models")
@click.option("--check", is_flag=True, help="Run every registry model through each method: forward, backward, "
              "eval, the identity property and the audit; print the matrix.")
@click.option("--method", "method_opt", default=None, help="Comma-separated methods (default: every installed one).")
@click.option("--model", "model_opt", default=None, help="Comma-separated registry models (default: all).")
@click.option("--attention", type=click.Choice(["fp", "quantized"]), default="fp", show_default=True,
              help="The suite attention setting to check with.")
@click.option("--doc", type=click.Path(path_type=Path), default=None,
              help="Write the registry and the measured matrix to this Markdown file (docs/models.md).")
@click.option("--verbose", is_flag=True, help="Print the traceback of each failure.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=1, show_default=True,
              help="Models checked at once, each in its own process (one torch thread each).")
def models(check: bool, method_opt: str | None, model_opt: str | None, attention: str, doc: Path | None,
           verbose: bool, jobs: int) -> None:
    """The timm architectures qbench is verified on (qbench/models/coverage.py)."""
    from qbench.models.coverage import MATRIX_HEADING, REGISTRY, registry_markdown  # timm: not for --help

    names = [m.name for m in REGISTRY]
    chosen = names if not model_opt else [s.strip() for s in model_opt.split(",")]
    unknown = [n for n in chosen if n not in names]
    if unknown:
        raise QbenchError(f"Not in the coverage registry: {', '.join(unknown)}. `qbench models` lists it.")
    if not check:
        click.echo(registry_markdown(), nl=False)
        return
    catalog = get_catalog()
    installed = [e.name for e in catalog.methods.entries() if not e.obj.reference]
    methods = installed if not method_opt else [s.strip() for s in method_opt.split(",")]
    for name in methods:
        catalog.methods.get(name)  # unknown names: "Did you mean"
    lines, bad = check_matrix(chosen, methods, attention, verbose, jobs)
    table = "\n".join(lines) + "\n"
    click.echo(table, nl=False)
    if doc is not None:
        cmd = "qbench models --check" + (f" --method {method_opt}" if method_opt else "") + \
            (f" --attention {attention}" if attention != "fp" else "")
        legend = ("Cells: `ok` = forward, backward (one SGD step), eval and the audit (at most 2^b levels, "
                  "export parity) pass at W4A4 through the host's `prepare`; `FAIL X` names the first failing stage "
                  "(F, B, E, A); `xfail` is a registry entry. Identity: every Conv2d / Linear quantized with "
                  "identity quantizers gives the FP output (`exact` = bit for bit).")
        atomic_write_text(doc, registry_markdown() + f"\n{MATRIX_HEADING}\n\n`{cmd}` ({time.strftime('%Y-%m-%d')}, "
                       f"torch threads 1):\n\n{legend}\n\n" + table)
        click.echo(f"Wrote {doc}", err=True)
    if bad:
        raise QbenchError(f"{bad} unexpected result(s) in the matrix (failures, or xfails that pass).")
