"""``qbench deploy-bench``: the deployed models of a workspace's jobs timed on this CPU, each beside
its FP32 model (latency, speedup, memory, file size); see :mod:`qbench.deploy.latency`.

torch, onnx and onnxruntime are imported inside the command: ``qbench --help`` and every other
command start without them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from qbench.errors import QbenchError

COLUMNS = ("method", "model", "bits", "seed", "ORT ms b1", "FP32 ms b1", "speedup b1", "ORT ms batch",
           "FP32 ms batch", "speedup batch", "ORT MB (FP32)", "ONNX KB (FP32)", "integer kernels")


def _cells(row: dict[str, Any], f: dict[str, Any], integer: bool) -> list[str]:
    def ms(key: str) -> str:
        return f"{f[key]:.3g} ± {f[key.replace('_ms', '_iqr_ms')]:.2g}"

    def mb(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.1f}"
    return [row["method"], row["model"], row["bits"], str(row["seed"]), ms("deploy_latency_ms"),
            ms("deploy_fp32_latency_ms"), f"{f['deploy_speedup']:.2f}×", ms("deploy_batch_latency_ms"),
            ms("deploy_fp32_batch_latency_ms"), f"{f['deploy_batch_speedup']:.2f}×",
            f"{mb(f['deploy_peak_mb'])} ({mb(f['deploy_fp32_peak_mb'])})",
            f"{f['deploy_onnx_kb']:.0f} ({f['deploy_fp32_onnx_kb']:.0f})", "yes" if integer else "no"]


@click.command("deploy-bench")
@click.option("--suite", default="quick", show_default=True, help="Suite whose finished jobs to time.")
@click.option("--method", help="Only this method.")
@click.option("--model", help="Only this model label (e.g. resnet20, vit-micro).")
@click.option("--bits", help="Only this bit target, e.g. W2A2.")
@click.option("--seed", type=int, help="Only this seed.")
@click.option("--workspace", type=click.Path(path_type=Path), help="Results directory (default ./qbench-runs).")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Where datasets that need files live.")
@click.option("--threads", default=1, show_default=True, help="onnxruntime intra-op threads of both sessions.")
@click.option("--batch", default=256, show_default=True, help="The batch timed beside batch 1.")
@click.option("--warmup", default=3, show_default=True, help="Untimed runs of each model per batch size.")
@click.option("--runs", default=50, show_default=True, help="At most this many timed runs per model and batch size.")
@click.option("--min-runs", default=10, show_default=True, help="At least this many, whatever the time cap.")
@click.option("--time-cap", default=3.0, show_default=True, help="Seconds of timed runs per batch size (then stop).")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write every measured field (the row's deploy_* names) to this CSV.")
def deploy_bench(suite: str, method: str | None, model: str | None, bits: str | None, seed: int | None,
                 workspace: Path | None, data_dir: Path | None, threads: int, batch: int, warmup: int, runs: int,
                 min_runs: int, time_cap: float, csv_path: Path | None) -> None:
    """Time each finished quantized job's model.onnx beside its FP32 model in onnxruntime, on this CPU.

    FP32 and quantized runs alternate in one process, so the speedup (FP32 median / quantized median)
    is this machine's; the milliseconds are too, and are never compared with another machine's."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from qbench import deploy
    from qbench.cli.render import console, err_console
    from qbench.deploy.bench import bench_row
    from qbench.deploy.latency import Protocol
    from qbench.plugin.catalog import get_catalog
    from qbench.run.provenance import environment
    from qbench.run.workspace import Workspace

    if not deploy.available():
        raise QbenchError("qbench deploy-bench needs the deploy extra: pip install 'qbench-qat[deploy]' "
                          "(onnx, onnxruntime).")
    if min(threads, batch, runs, min_runs) < 1 or warmup < 0 or min_runs > runs:
        raise QbenchError(f"--threads, --batch, --runs and --min-runs must be at least 1 and --min-runs at most "
                          f"--runs (got {threads}, {batch}, {runs}, {min_runs}); --warmup at least 0 (got {warmup}).")
    ws = Workspace(workspace)
    want = {"method": method, "model": model, "seed": seed, "bits": bits.upper() if bits else None}
    rows = sorted((r for r in ws.rows(suite) if r.get("status") == "ok" and r.get("bits") != "fp32"
                   and all(v is None or r.get(k) == v for k, v in want.items())),
                  key=lambda r: (r["model"], r["method"], r["bits"], r["seed"]))
    if not rows:
        given = ", ".join(f"{k}={v}" for k, v in want.items() if v is not None) or "no filter"
        raise QbenchError(f"No finished quantized job of suite {suite!r} in {ws.root / suite} matches ({given}): "
                          "run the suite first (qbench run), or pass --workspace / --suite.")
    cat = get_catalog()
    protocol = Protocol(threads=threads, batches=(1, batch), warmup=warmup, min_runs=min_runs, max_runs=runs,
                        time_cap_s=time_cap)
    table = Table(title=f"Deployed model vs FP32 in onnxruntime, {environment()['machine']}, {threads} intra-op "
                        f"thread(s), batch 1 and {batch}: median ± IQR (ms) of up to {runs} interleaved runs")
    for col in COLUMNS:
        table.add_column(col, justify="left" if col in ("method", "model", "bits", "integer kernels") else "right")
    records, failed, fp_cache = [], [], {}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=True) as progress:
        task = progress.add_task("timing", total=len(rows))
        for r in rows:
            progress.update(task, description=f"{r['model']}/{r['method']}/{r['bits']}/seed{r['seed']}")
            try:
                res, exp = bench_row(ws, cat, r, protocol, data_dir, fp_cache)
            except Exception as exc:  # one job's failure is a line under the table
                failed.append(f"{r['model']}/{r['method']}/{r['bits']}/seed{r['seed']}: {type(exc).__name__}: {exc}")
            else:
                f = res.fields()
                table.add_row(*_cells(r, f, bool(exp.integer_ops)))
                records.append({k: r[k] for k in ("job_key", "method", "model", "bits", "seed")} | f)
            progress.advance(task)
    console.print(table)
    for line in failed:
        err_console.print(f"[yellow]not timed[/yellow] {line}", highlight=False)
    if csv_path is not None and records:
        import pandas as pd

        from qbench.atomic import atomic_write_text

        atomic_write_text(csv_path, pd.DataFrame(records).to_csv(index=False))
        console.print(f"Wrote {csv_path}")
