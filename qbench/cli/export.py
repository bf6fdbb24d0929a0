"""``qbench export``: a finished job's trained model as model.onnx, weights.safetensors and
manifest.json, checked in onnxruntime against qbench's own evaluation."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.markup import escape

from qbench.cli.render import console
from qbench.errors import QbenchError

if TYPE_CHECKING:
    from qbench.run.workspace import Workspace


def select_row(ws: Workspace, key: str | None, suite: str, method: str | None, model: str | None,
               bits: str | None, seed: int | None) -> dict[str, Any]:
    """The one ``ok`` row matching a job key (or its prefix), or the suite/method/model/bits/seed filters."""
    rows = [r for r in ws.rows(suite) if r.get("status") == "ok" and r.get("bits") != "fp32"]
    if key:
        hits = [r for r in rows if str(r["job_key"]).startswith(key)]
    else:
        want = {"method": method, "model": model, "seed": seed,
                "bits": bits.upper() if bits and bits.upper().startswith("W") else (f"W{bits}A{bits}" if bits else None)}
        hits = [r for r in rows if all(v is None or r.get(k) == v for k, v in want.items())]
    if len(hits) != 1:
        found = "; ".join(f"{r['job_key']} {r['model']}/{r['method']}/{r['bits']}/seed{r['seed']}" for r in hits[:8])
        raise QbenchError(f"{len(hits)} finished quantized jobs in {ws.root / suite} match; select exactly one "
                          f"(a job key, or --method/--model/--bits/--seed). {found}")
    return hits[0]


@click.command("export")
@click.argument("key", required=False)
@click.option("--suite", default="quick", show_default=True, help="Suite whose rows to select from.")
@click.option("--method", help="Method name.")
@click.option("--model", help="Model label (e.g. resnet20, vit-micro).")
@click.option("--bits", help="Bit target, e.g. W4A4 or 4.")
@click.option("--seed", type=int, help="Seed.")
@click.option("-o", "--out", "out_dir", type=click.Path(path_type=Path), required=True, help="Output directory.")
@click.option("--workspace", type=click.Path(path_type=Path), help="Results directory (default ./qbench-runs).")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Where datasets that need files live.")
@click.option("--check/--no-check", default=True, help="Run model.onnx in onnxruntime on the full test split.")
@click.option("--all", "every", is_flag=True, help="Every finished quantized job of the suite (matching the filters), "
                                                  "each into OUT/<job key>/, then the parity table.")
def export(key: str | None, suite: str, method: str | None, model: str | None, bits: str | None, seed: int | None,
           out_dir: Path, workspace: Path | None, data_dir: Path | None, check: bool, every: bool) -> None:
    """Export a finished job's trained model (by job KEY or by --method/--model/--bits/--seed)."""
    from qbench import deploy
    from qbench.plugin.catalog import get_catalog
    from qbench.run.workspace import Workspace

    if not deploy.available():
        raise QbenchError("qbench export needs the deploy extra: pip install 'qbench[deploy]' (onnx, onnxruntime).")
    ws = Workspace(workspace)
    cat = get_catalog()
    if not every:
        _export_one(ws, cat, select_row(ws, key, suite, method, model, bits, seed), out_dir, data_dir, check)
        return
    want = {"method": method, "model": model, "seed": seed}
    rows = [r for r in ws.rows(suite) if r.get("status") == "ok" and r.get("bits") != "fp32"
            and all(v is None or r.get(k) == v for k, v in want.items())]
    lines = ["| method | model | bits | qbench top-1 | deploy top-1 | max logit diff (tol) | outliers | integer "
             "kernels | scheme | ok |", "|---|---|---|---:|---:|---:|---:|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["method"], r["model"], r["bits"], r["seed"])):
        try:
            f = _export_one(ws, cat, r, out_dir / r["job_key"], data_dir, True)
        except Exception as exc:  # one job's failure is a line of the table
            f = {"deploy_ok": False, "deploy_reason": f"{type(exc).__name__}: {str(exc)[:200]}"}
        lines.append(f"| {r['method']} | {r['model']} | {r['bits']} | {r['top1']:.2f} | "
                     f"{f.get('deploy_top1', float('nan')):.2f} | {f.get('deploy_max_logit_diff', float('nan')):.3g} "
                     f"({f.get('deploy_logit_tol', float('nan')):.2g}) | {f.get('deploy_logit_outliers', '')} | "
                     f"{'yes' if f.get('deploy_integer_kernels') else 'no'} | {f.get('deploy_scheme', '')} | "
                     f"{'ok' if f['deploy_ok'] else 'FLAGGED: ' + _cell(f['deploy_reason'])} |")
    text = "\n".join(lines) + "\n"
    (out_dir / "parity.md").write_text(text)
    print(text, end="")


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _export_one(ws: Workspace, cat: Any, row: dict[str, Any], out_dir: Path, data_dir: Path | None,
                check: bool) -> dict[str, Any]:
    from qbench import deploy
    from qbench.data.bundle import first_batch
    from qbench.deploy.store import rebuild

    qmodel, meta = rebuild(ws.root, row["job_key"], cat)
    options = dict(meta.get("dataset_options", {}))
    where = options.pop("data_dir", None) or data_dir
    data = cat.datasets.get(meta["dataset"]).factory(Path(where) if where else None, **options)
    probe = first_batch(data.test, deploy.PROBE_BATCH)[0]
    info = {k: row.get(k) for k in ("job_key", "suite", "dataset", "model", "method", "method_version", "bits",
                                    "seed", "top1", "size_kb", "w_bits_measured", "a_bits_measured")}
    exp = deploy.export_model(qmodel, probe, info)
    fields: dict[str, Any] = {}
    if check:
        fields = deploy.parity_fields(exp, qmodel, data, row.get("top1"))
    out = deploy.write(exp, out_dir)
    # method names, paths and reasons are printed as they are (escaped: rich would read "[x]" as markup)
    console.print(escape(f"{row['model']}/{row['method']}/{row['bits']}/seed{row['seed']} ({row['job_key']}) -> "
                         f"{out}: model.onnx, weights.safetensors ({exp.packed_bytes / 1024:.1f} KB of tensors; "
                         f"audit size {row.get('size_kb', float('nan')):.1f} KB), manifest.json"))
    console.print(escape(f"  {deploy.scheme_summary(exp.plans)}; onnxruntime integer ops: {exp.integer_ops or 'none'}"))
    if check:
        state = "ok" if fields["deploy_ok"] else f"DIVERGES: {fields['deploy_reason']}"
        console.print(escape(f"  onnxruntime top-1 {fields['deploy_top1']:.2f} vs qbench "
                             f"{row.get('top1', float('nan')):.2f}; max logit diff "
                             f"{fields['deploy_max_logit_diff']:.3g} (tolerance {fields['deploy_logit_tol']:.3g}, "
                             f"{fields['deploy_logit_outliers']} samples beyond); {state}"), highlight=False)
    return fields if check else {}
