"""Statistics over seeds: mean, std, a 95 % Student-t confidence interval, and ranks that tie
where intervals overlap.

With n = 1 the std and the interval are unknown (NaN): a single seed says nothing about its own
spread. Ranking then uses the point value (an interval of width 0), and comparisons fall back on
the other side's spread or on the floor (see :mod:`qbench.report.compare`).
"""
from __future__ import annotations

import math
import re

import pandas as pd
from scipy import stats as st

GROUP = ["dataset", "model", "method", "bits"]
CONFIDENCE = 0.95


def t_quantile(n: int, confidence: float = CONFIDENCE) -> float:
    """Two-sided Student-t critical value for n samples (n - 1 degrees of freedom)."""
    return float(st.t.ppf(0.5 + confidence / 2, n - 1)) if n >= 2 else math.nan


def ci_halfwidth(std: float, n: int, confidence: float = CONFIDENCE) -> float:
    if n < 2 or math.isnan(std):
        return math.nan
    return t_quantile(n, confidence) * std / math.sqrt(n)


def aggregate(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, model, method, bits) of ``ok`` rows: n, mean, std, 95 % CI, FP gap,
    measured bits, weight sparsity, BitOPs, size, and ``rank`` within (dataset, model, bits)."""
    ok = df[df["status"] == "ok"].copy()
    if ok.empty:
        return pd.DataFrame()
    if "w_sparsity" not in ok:  # rows written before the audit measured sparsity
        ok["w_sparsity"] = float("nan")
    ok["w_sparsity"] = pd.to_numeric(ok["w_sparsity"], errors="coerce")
    agg = ok.groupby(GROUP, sort=False).agg(
        n=("seed", "nunique"), top1=("top1", "mean"), top1_std=("top1", "std"),
        fp_top1=("fp_top1", "mean"), w_bits=("w_bits_measured", "mean"), a_bits=("a_bits_measured", "mean"),
        gbitops=("gbitops", "mean"), size_kb=("size_kb", "mean"), method_version=("method_version", "max"),
        w_sparsity=("w_sparsity", "mean"),
    ).reset_index()
    agg["ci95"] = [ci_halfwidth(s, n) for s, n in zip(agg["top1_std"], agg["n"])]
    agg["gap"] = agg["top1"] - agg["fp_top1"]
    agg["rank"] = 0
    for _, idx in agg.groupby(["dataset", "model", "bits"], sort=False).groups.items():
        agg.loc[idx, "rank"] = overlap_ranks(agg.loc[idx, "top1"].tolist(), agg.loc[idx, "ci95"].tolist())
    agg["_ref"] = agg["bits"] != "fp32"
    agg = agg.sort_values(["dataset", "model", "_ref", "bits", "rank", "top1"],
                          ascending=[True, True, True, False, True, False])
    return agg.drop(columns="_ref").reset_index(drop=True)


def overlap_ranks(means: list[float], halfwidths: list[float]) -> list[int]:
    """Rank = 1 + the number of entries whose whole interval lies above this one's.

    Entries whose intervals overlap are not distinguishable, so they can share a rank; an unknown
    interval (n = 1) is taken as the point itself.
    """
    hw = [0.0 if (h is None or math.isnan(h)) else h for h in halfwidths]
    return [1 + sum(1 for j in range(len(means)) if j != i and means[j] - hw[j] > means[i] + hw[i])
            for i in range(len(means))]


def torch_threads(df: pd.DataFrame) -> set[int]:
    """The torch thread counts behind some rows (the ``torch_threads`` column, or older rows'
    ``machine`` text, "... N threads ...")."""
    if "torch_threads" in df and df["torch_threads"].notna().any():
        return {int(t) for t in df["torch_threads"].dropna()}
    found = (re.search(r"(\d+) threads", str(m)) for m in df.get("machine", pd.Series(dtype=str)).dropna())
    return {int(m.group(1)) for m in found if m}
