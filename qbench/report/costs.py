"""What a method's QAT costs to train, beside what its model costs to run: forward passes per
optimizer step (measured during QAT: :mod:`qbench.train.passes`) and QAT wall time relative to
``lsq`` on the same job.

The relative time is computed here, at report time, from the rows' ``qat_s``: per seed, a row's
QAT time over that of the ``lsq`` row of the same dataset, model, bits and seed (none: n/a), then
the mean over seeds. Wall times come from whatever machine ran the rows (a shared one is noisy);
the passes are exact. Tables of rows written before passes were measured show no cost section,
so published leaderboards render as they did.
"""
from __future__ import annotations

import io
import math
from typing import Any

import pandas as pd

from qbench.report.stats import GROUP

#: The method every QAT time is divided by: one pass a step, the plainest learned-step QAT.
BASELINE = "lsq"
PASSES = "qat_passes_per_step"
TEACHER = "qat_teacher_passes_per_step"
COLUMNS = ("passes_per_step", "teacher_passes_per_step", "qat_s", "qat_vs_lsq")


def has_costs(df: pd.DataFrame) -> bool:
    """Whether rows carry measured passes (rows written before they were measured do not)."""
    return PASSES in df and pd.to_numeric(df[PASSES], errors="coerce").notna().any()


def training_cost(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, model, method, bits) of finished QAT rows: ``method_version``, ``n``
    (seeds), ``passes_per_step`` / ``teacher_passes_per_step`` (means over seeds), ``qat_s`` (mean)
    and ``qat_vs_lsq`` (mean over seeds of qat_s / the same seed's lsq qat_s; NaN without one)."""
    ok = df[(df["status"] == "ok") & (df["bits"].astype(str) != "fp32")].copy()
    if ok.empty:
        return pd.DataFrame(columns=[*GROUP, "method_version", "n", *COLUMNS])
    for col in (PASSES, TEACHER, "qat_s"):
        ok[col] = pd.to_numeric(ok[col], errors="coerce") if col in ok else math.nan
    keys = ["dataset", "model", "bits", "seed"]
    base = ok[ok["method"] == BASELINE].groupby(keys)["qat_s"].mean()
    ok["_vs"] = [q / base[k] if k in base.index and base[k] > 0 else math.nan
                 for q, k in zip(ok["qat_s"], map(tuple, ok[keys].itertuples(index=False, name=None)))]
    out = ok.groupby(GROUP, sort=False).agg(
        method_version=("method_version", "max"), n=("seed", "nunique"), passes_per_step=(PASSES, "mean"),
        teacher_passes_per_step=(TEACHER, "mean"), qat_s=("qat_s", "mean"), qat_vs_lsq=("_vs", "mean"),
    ).reset_index()
    return out.sort_values(["dataset", "model", "bits", "passes_per_step", "method"]).reset_index(drop=True)


def _num(v: Any, digits: int, suffix: str = "") -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "n/a"
    return "n/a" if math.isnan(f) else f"{f:.{digits}f}{suffix}"


def cost_markdown(df: pd.DataFrame) -> str:
    """The leaderboard's "Training cost" section ('' for rows without measured passes)."""
    if not has_costs(df):
        return ""
    out = io.StringIO()
    out.write("## Training cost\n\n")
    out.write("What each method's QAT costs on the suite's recipe, beside what its model costs to run (GBitOPs "
              "above). *passes/step*: forward calls per optimizer step of the quantized model and of any teacher "
              "(the frozen FP model a KD or BWRF wrapper runs; *teacher* is their share), counted by hooks during "
              "QAT, an allocator's probe passes included, mean over seeds; a call counts once however much of "
              "the model it recomputes. *QAT time vs lsq*: QAT wall time over that of the `lsq` row of the same "
              "dataset, model, bits and seed, mean over seeds (n/a without one); wall times are those of the "
              "machine that ran the rows.\n\n")
    out.write("| dataset / model | bits | method | passes/step | teacher | QAT s | QAT time vs lsq |\n")
    out.write("|---|---|---|---|---|---|---|\n")
    for r in training_cost(df).itertuples():
        out.write(f"| {r.dataset} / {r.model} | {r.bits} | {r.method} v{r.method_version} | "
                  f"{_num(r.passes_per_step, 2)} | {_num(r.teacher_passes_per_step, 2)} | {_num(r.qat_s, 1)} | "
                  f"{_num(r.qat_vs_lsq, 2, 'x')} |\n")
    out.write("\n")
    return out.getvalue()


def cost_entries(df: pd.DataFrame) -> list[dict[str, Any]] | None:
    """The same table for the leaderboard page (None for rows without measured passes)."""
    if not has_costs(df):
        return None
    rows = training_cost(df).to_dict("records")
    return [{k: r[k] for k in (*GROUP, "method_version", "n", *COLUMNS)} for r in rows]
