"""The deployed cost in the leaderboard: latency, speedup over FP32, memory and file size per entry.

Rows measured since the deploy step timed the exported model (:mod:`qbench.deploy.latency`) carry
the ``deploy_*latency*`` fields; older rows do not, and a table of only such rows shows no cost
columns at all (it renders as it always did). A quantized entry's values are the means over its
seeds of its own fields; the fp32 reference shows the FP32 models its (dataset, model)'s quantized
rows were timed against (``deploy_fp32_*``), with no speedup: it is the baseline.
"""
from __future__ import annotations

import math
from typing import Any

import pandas as pd

#: entry column -> (the quantized row's field, the FP32 field shown on the reference entry)
COLUMNS: dict[str, tuple[str, str | None]] = {
    "latency_ms": ("deploy_latency_ms", "deploy_fp32_latency_ms"),
    "latency_iqr_ms": ("deploy_latency_iqr_ms", "deploy_fp32_latency_iqr_ms"),
    "batch_latency_ms": ("deploy_batch_latency_ms", "deploy_fp32_batch_latency_ms"),
    "speedup": ("deploy_speedup", None),
    "batch_speedup": ("deploy_batch_speedup", None),
    "latency_batch": ("deploy_latency_batch", "deploy_latency_batch"),
    "latency_threads": ("deploy_latency_threads", "deploy_latency_threads"),
    "peak_mb": ("deploy_peak_mb", "deploy_fp32_peak_mb"),
    "onnx_kb": ("deploy_onnx_kb", "deploy_fp32_onnx_kb"),
}

MD_HEADER = " ORT ms (b1) | speedup (b1 / batch) | ORT MB | ONNX KB |"

MD_LEGEND = ("*ORT ms* is the median latency of model.onnx at batch 1 in onnxruntime on the CPU, on the machine "
             "named below (milliseconds are never compared across machines); *speedup* is the FP32 model's median "
             "latency over the quantized model's, both timed interleaved in one process at batch 1 and at the eval "
             "batch (256, or the whole test split when smaller), at the recipe's threads: above 1 the deployed model "
             "is faster; *ORT MB* is the peak resident memory of its session loading and running the eval batch; "
             "*ONNX KB* is model.onnx's size; means over seeds. The fp32 line shows the FP32 models those rows were "
             "timed against.")


def _num(df: pd.DataFrame, col: str) -> pd.Series:
    return pd.to_numeric(df[col], errors="coerce") if col in df else pd.Series(math.nan, index=df.index)


def attach(agg: pd.DataFrame, ok: pd.DataFrame, group: list[str]) -> pd.DataFrame:
    """``agg`` (one row per ``group`` entry of the ``ok`` rows) with the :data:`COLUMNS`."""
    q = ok.assign(**{c: _num(ok, field) for c, (field, _) in COLUMNS.items()})
    means = q.groupby(group, sort=False)[list(COLUMNS)].mean()
    quantized = q[q["bits"].astype(str) != "fp32"]
    fp = quantized.assign(**{c: _num(quantized, field) if field else math.nan for c, (_, field) in COLUMNS.items()})
    fp_means = fp.groupby(["dataset", "model"], sort=False)[list(COLUMNS)].mean()
    out = agg.copy()
    for c in COLUMNS:
        vals = []
        for r in agg[group].to_dict("records"):
            if r["bits"] == "fp32":
                key = (r["dataset"], r["model"])
                vals.append(fp_means.at[key, c] if key in fp_means.index else math.nan)
            else:
                vals.append(means.at[tuple(r[k] for k in group), c])
        out[c] = pd.Series(vals, index=agg.index, dtype=float)
    return out


def present(agg: pd.DataFrame) -> bool:
    """Whether any entry carries a measured latency (else the tables show no cost columns)."""
    return "latency_ms" in agg and bool(agg["latency_ms"].notna().any())


def _g(v: Any, digits: int = 3) -> str:
    return "n/a" if _missing(v) else f"{v:.{digits}g}"


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def speedup_cell(one: Any, batch: Any) -> str:
    """``1.31× / 2.05×`` (batch 1 / the eval batch), ``n/a`` where not measured."""
    if _missing(one) and _missing(batch):
        return "n/a"
    return " / ".join("n/a" if _missing(v) else f"{v:.2f}×" for v in (one, batch))


def md_cells(r: Any) -> str:
    """The cost cells of one entry (a row of :func:`attach`'s frame, as from itertuples)."""
    speed = "—" if r.bits == "fp32" else speedup_cell(r.speedup, r.batch_speedup)  # the reference: the baseline
    kb = "n/a" if _missing(r.onnx_kb) else f"{r.onnx_kb:.0f}"
    return f" {_g(r.latency_ms)} | {speed} | {_g(r.peak_mb)} | {kb} |"
