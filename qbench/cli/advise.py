"""``qbench advise``: which QAT method for your model, data and budget (successive halving)."""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click
from rich.markup import escape

from qbench.cli.render import console
from qbench.errors import QbenchError


@click.command()
@click.option("--model", required=True, help="Your model: pkg.module:factory returning an nn.Module, or a timm name.")
@click.option("--data", help="Your data: a folder with train/ and val/ (or test/), or pkg.module:fn returning "
                             "(train, val, test). Default: the suite's dataset.")
@click.option("--bits", help="Bit target(s), e.g. W4A4 (default: the suite's).")
@click.option("--method", "methods", help="Comma-separated methods or globs to screen (default: every installed one).")
@click.option("--budget", type=float, default=0.5, show_default=True,
              help="The most advise may spend, as a share of the full sweep's QAT steps (every method, the full "
                   "recipe, every seed).")
@click.option("--suite", "suite_name", default="quick", show_default=True, help="The recipe: a suite name or TOML.")
@click.option("--seeds", type=int, help="Seeds of the finalists' runs (default: the suite's).")
@click.option("--finalists", type=click.IntRange(min=1), default=2, show_default=True,
              help="Methods trained with the full recipe over every seed.")
@click.option("--eta", type=click.IntRange(min=2), default=2, show_default=True,
              help="Each rung keeps 1/eta of its methods and trains them eta times longer.")
@click.option("--min-epochs", type=click.IntRange(min=1), default=1, show_default=True,
              help="QAT epochs of the first rung.")
@click.option("--holdout", type=float, default=0.2, show_default=True,
              help="Share of each training class carved off as the validation split the screening ranks on.")
@click.option("--holdout-seed", type=int, default=0, show_default=True, help="Seed of that carve.")
@click.option("--fp-checkpoint", "fp_checkpoint", metavar="FILE",
              help="Start from this file of FP weights (.safetensors state_dict) instead of FP training.")
@click.option("--workspace", type=click.Path(path_type=Path), help="Results directory (default ./qbench-runs).")
@click.option("--out", type=click.Path(path_type=Path),
              help="Where advice.md and advice.html go (default: <workspace>/<suite>-custom/advice).")
@click.option("--workers", type=int, help="Worker processes (default: cores // the recipe's threads).")
@click.option("--executor", help="local | pool | subprocess | an executor from a plugin.")
@click.option("--progress/--no-progress", default=True, help="Show progress bars.")
def advise(model: str, data: str | None, bits: str | None, methods: str | None, budget: float, suite_name: str,
           seeds: int | None, finalists: int, eta: int, min_epochs: int, holdout: float, holdout_seed: int,
           fp_checkpoint: str | None, workspace: Path | None, out: Path | None, workers: int | None,
           executor: str | None, progress: bool) -> None:
    """Screen QAT methods on your model and data by successive halving; train the finalists fully."""
    from qbench.plugin.catalog import get_catalog
    from qbench.report.advice import write_report
    from qbench.run.advise import Schedule, candidates, run_advice, summary
    from qbench.run.harness import Harness
    from qbench.run.plan import plan_jobs
    from qbench.run.progress import RunProgress
    from qbench.run.runtime import default_workers, resolve_devices
    from qbench.run.user import check_custom
    from qbench.run.workspace import Workspace

    if not 0 < budget <= 1:
        raise QbenchError(f"--budget is a share of the full sweep, between 0 and 1; got {budget}.")
    cat = get_catalog()
    split = [v.strip() for v in methods.split(",") if v.strip()] if methods else None
    # plan the one-off suite (your model and data on the suite's recipe) with fp32 only: the methods
    # are screened below, rung by rung
    suite, _ = plan_jobs(cat, suite_name, ["fp32"], [model], bits=[bits] if bits else None, seeds=seeds,
                         fp_checkpoints=[fp_checkpoint] if fp_checkpoint else None, data=data)
    if not suite.name.endswith("-custom"):
        suite = suite.narrowed(name=f"{suite.name}-custom")
    names = candidates(cat, suite, split)
    ws = Workspace(workspace)
    check_custom(cat, suite, ws.root / "cache")
    devices = resolve_devices("cpu")
    n_workers = workers or default_workers(suite.threads, devices)
    executor = executor or ("pool" if n_workers > 1 else "local")
    options = {"workers": n_workers} if executor == "pool" else {}
    command = "qbench " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["advise"] else \
        _command(model, data, bits, methods, budget, suite_name, seeds, finalists, eta, min_epochs, holdout,
                 holdout_seed, fp_checkpoint)
    schedule = Schedule(min_epochs, eta, finalists, holdout, holdout_seed)
    job_log = None if sys.stdout.isatty() else sys.stdout
    with RunProgress(enabled=progress, job_log=job_log) as prog:
        harness = Harness(cat, ws, progress=prog, command=command)
        advice = run_advice(cat, harness, suite, names, schedule, budget, command, executor, options,
                            say=lambda line: console.print(line, markup=False, highlight=False))
    s = summary(advice)
    md, page = write_report(s, out or ws.root / suite.name / "advice")
    best = next((f for f in s["finals"] if f["method"] != "fp32"), None)
    if best:
        console.print(f"[bold]Use {escape(best['method'])}[/bold]: test top-1 {best['top1']:.2f} "
                      f"(± {best['ci95']:.2f}, {best['seeds']} seed(s)); {s['steps']['total']} QAT steps, "
                      f"{s['steps']['share']:.0%} of the full sweep.", highlight=False)
    console.print(f"Report: {md} and {page}", markup=False, highlight=False)


def _command(model: str, data: str | None, bits: str | None, methods: str | None, budget: float, suite: str,
             seeds: int | None, finalists: int, eta: int, min_epochs: int, holdout: float, holdout_seed: int,
             fp_checkpoint: str | None) -> str:
    """The command line, for a call that did not come from one (a test, a library caller)."""
    parts = ["qbench", "advise", "--model", model] + (["--data", data] if data else []) + \
        (["--bits", bits] if bits else []) + (["--method", methods] if methods else []) + \
        ["--budget", f"{budget:g}", "--suite", suite] + (["--seeds", str(seeds)] if seeds else []) + \
        ["--finalists", str(finalists), "--eta", str(eta), "--min-epochs", str(min_epochs), "--holdout",
         f"{holdout:g}", "--holdout-seed", str(holdout_seed)] + (["--fp-checkpoint", fp_checkpoint]
                                                                  if fp_checkpoint else [])
    return " ".join(shlex.quote(p) for p in parts)
