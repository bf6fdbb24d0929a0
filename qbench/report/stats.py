"""Statistics over seeds: mean, std, a 95 % Student-t confidence interval, and ranks from paired
tests (:mod:`qbench.report.ranks`).

With n = 1 the std and the interval are unknown (NaN): a single seed says nothing about its own
spread, so no rank is earned over another entry; the CI gate pools the spread across methods
(see :mod:`qbench.report.compare`).

Only entries that kept the budget are ranked (:mod:`qbench.report.budget`): an entry with an
over-budget or collapsed seed gets rank ``—`` (:data:`UNRANKED`) and its reason in ``flag``. The
Pareto columns mark the entries no other entry of the same (dataset, model) dominates on top-1
against measured GBitOPs (``pareto_bitops``) and against packed size (``pareto_size``), flagged
entries included (they are placed by what they measured), collapsed ones excepted.
"""
from __future__ import annotations

import math
import re
from typing import Any

import pandas as pd
from scipy import stats as st

from qbench.report.ranks import paired_ranks

GROUP = ["dataset", "model", "method", "bits"]
CONFIDENCE = 0.95
#: The rank of an entry that is not ranked (over budget or collapsed).
UNRANKED = "—"


def t_quantile(n: int, confidence: float = CONFIDENCE) -> float:
    """Two-sided Student-t critical value for n samples (n - 1 degrees of freedom)."""
    return float(st.t.ppf(0.5 + confidence / 2, n - 1)) if n >= 2 else math.nan


def ci_halfwidth(std: float, n: int, confidence: float = CONFIDENCE) -> float:
    if n < 2 or math.isnan(std):
        return math.nan
    return t_quantile(n, confidence) * std / math.sqrt(n)


def _join(values: pd.Series) -> str:
    return "; ".join(dict.fromkeys(v for v in values if isinstance(v, str) and v))


def aggregate(df: pd.DataFrame, num_classes: int | dict[str, int] | None = None) -> pd.DataFrame:
    """One row per (dataset, model, method, bits) of ``ok`` rows: n, mean, std, 95 % CI, FP gap,
    measured bits, weight sparsity, BitOPs (and the target's, when known), size, the budget flags
    (``over_budget``, ``collapsed``, their reasons, ``flag``: any seed flagged flags the entry),
    ``rank`` within (dataset, model, bits) among the entries that kept the budget (:data:`UNRANKED`
    for the others), the Pareto marks ``pareto_bitops`` / ``pareto_size``, and the deployed cost
    (:data:`qbench.report.deploy_cost.COLUMNS`: NaN for rows that predate it).

    The flags are recomputed from the columns (:func:`qbench.report.budget.flag_frame`, with
    ``num_classes`` for the chance level), so CSVs written before they existed are judged alike."""
    from qbench.report.budget import flag_frame
    from qbench.report.deploy_cost import attach as attach_cost
    from qbench.report.plot import pareto_front

    ok = df[df["status"] == "ok"].copy()
    if ok.empty:
        return pd.DataFrame()
    for col in ("w_sparsity", "target_gbitops"):  # rows written before the audit measured them
        if col not in ok:
            ok[col] = float("nan")
        ok[col] = pd.to_numeric(ok[col], errors="coerce")
    ok = flag_frame(ok, num_classes)
    ok = _deploy_columns(ok)
    for col in ("budget_reason", "collapse_reason"):  # name the seed when entries hold several
        ok[col] = [f"seed {seed}: {why}" if why else "" for seed, why in zip(ok["seed"], ok[col])]
    agg = ok.groupby(GROUP, sort=False).agg(
        n=("seed", "nunique"), top1=("top1", "mean"), top1_std=("top1", "std"),
        fp_top1=("fp_top1", "mean"), w_bits=("w_bits_measured", "mean"), a_bits=("a_bits_measured", "mean"),
        gbitops=("gbitops", "mean"), target_gbitops=("target_gbitops", "mean"), size_kb=("size_kb", "mean"),
        method_version=("method_version", "max"), w_sparsity=("w_sparsity", "mean"),
        over_budget=("over_budget", "any"), budget_reason=("budget_reason", _join),
        collapsed=("collapsed", "any"), collapse_reason=("collapse_reason", _join),
        deploy_top1=("deploy_top1", "mean"), deploy_flagged=("_deploy_flagged", "sum"),
        deploy_integer=("_deploy_integer", "all"), deploy_reason=("_deploy_reason", _join),
        deploy_diverged=("_deploy_diverged", "any"),
    ).reset_index()
    agg["ci95"] = [ci_halfwidth(s, n) for s, n in zip(agg["top1_std"], agg["n"])]
    agg["gap"] = agg["top1"] - agg["fp_top1"]
    agg["flag"] = ["; ".join(part for part in (("over budget: " + b) if o else "", ("collapsed: " + cr) if c else "",
                                               ("not what deploys: " + dr) if dv else "") if part)
                   for o, b, c, cr, dv, dr in zip(agg["over_budget"], agg["budget_reason"], agg["collapsed"],
                                                  agg["collapse_reason"], agg["deploy_diverged"], agg["deploy_reason"])]
    ranked = ~(agg["over_budget"] | agg["collapsed"] | agg["deploy_diverged"])
    agg["rank"] = pd.Series([UNRANKED] * len(agg), dtype=object)
    seeds = {key: dict(zip(g["seed"], zip(g["top1"], g["fp_top1"]))) for key, g in ok.groupby(GROUP, sort=False)}
    for _, idx in agg[ranked].groupby(["dataset", "model", "bits"], sort=False).groups.items():
        keys = {i: tuple(agg.loc[i, GROUP]) for i in idx}
        ranks = paired_ranks({keys[i]: seeds[keys[i]] for i in idx})
        for i in idx:
            agg.at[i, "rank"] = ranks[keys[i]]
    agg["pareto_bitops"] = False
    agg["pareto_size"] = False
    for _, g in agg[~agg["collapsed"]].groupby(["dataset", "model"], sort=False):
        for col, cost in (("pareto_bitops", "gbitops"), ("pareto_size", "size_kb")):
            agg.loc[g.index, col] = pareto_front(g[cost].tolist(), g["top1"].tolist())
    agg["pareto_bitops"] = agg["pareto_bitops"].astype(bool)
    agg["pareto_size"] = agg["pareto_size"].astype(bool)
    agg = attach_cost(agg, ok, GROUP)
    agg["_ref"] = agg["bits"] != "fp32"
    agg["_rank"] = pd.to_numeric(agg["rank"], errors="coerce").fillna(math.inf)
    agg = agg.sort_values(["dataset", "model", "_ref", "bits", "_rank", "top1"],
                          ascending=[True, True, True, False, True, False])
    return agg.drop(columns=["_ref", "_rank"]).reset_index(drop=True)


def _deploy_columns(ok: pd.DataFrame) -> pd.DataFrame:
    """Per-seed deploy parity, normalised: rows written before export existed have NaN / False.

    A seed is flagged when its export ran and diverged (``deploy_ok`` False); its reason is kept
    with the seed named, as for the budget flags."""
    top1 = pd.to_numeric(ok["deploy_top1"], errors="coerce") if "deploy_top1" in ok else math.nan
    ok = ok.assign(deploy_top1=top1)
    ran = ok["deploy_top1"].notna()
    flag = ok["deploy_ok"].astype(str).str.lower().isin(["false", "0"]) if "deploy_ok" in ok else False
    ok["_deploy_flagged"] = ran & flag
    integer = ok["deploy_integer_kernels"].astype(str).str.lower().isin(["true", "1"]) \
        if "deploy_integer_kernels" in ok else False
    ok["_deploy_integer"] = ran & integer
    reasons = ok["deploy_reason"] if "deploy_reason" in ok else pd.Series([""] * len(ok), index=ok.index)
    ok["_deploy_diverged"] = [_diverged(r, t, d, why) for r, t, d, why in zip(
        ok["deploy_diverged"] if "deploy_diverged" in ok else [None] * len(ok), ok["top1"], ok["deploy_top1"], reasons)]
    ok["_deploy_reason"] = [f"seed {seed}: {why}" if f and isinstance(why, str) and why else ""
                            for seed, why, f in zip(ok["seed"], reasons, ok["_deploy_flagged"])]
    return ok


def _diverged(recorded: object, top1: float, deploy_top1: float, reason: object) -> bool:
    """A seed whose deployed model is not what was evaluated: the row's ``deploy_diverged``, or for
    rows written before it existed, the same rule read from the recorded gap and reason."""
    if isinstance(recorded, bool) or str(recorded).lower() in ("true", "false"):
        return str(recorded).lower() == "true"
    if not isinstance(deploy_top1, float) or math.isnan(deploy_top1):
        return False
    from qbench.report.budget import DEPLOY_TOP1_TOL

    many = re.search(r"\d+ of \d+ samples beyond the logit tolerance", str(reason)) is not None  # > 1 %
    unexplained = "comparable to the model's own rounding sensitivity" not in str(reason)
    return abs(deploy_top1 - top1) > DEPLOY_TOP1_TOL and many and unexplained


def deploy_cell(top1: float, flagged: int, n: int, integer: bool) -> str:
    """The leaderboard's deploy column: onnxruntime top-1, ``⚠ k/n`` when k seeds diverged beyond
    the parity rule, ``int`` when onnxruntime ran integer kernels for every seed."""
    if isinstance(top1, float) and math.isnan(top1):
        return "n/a"
    return f"{top1:.2f}" + (f" ⚠ {int(flagged)}/{n}" if flagged else "") + (" int" if integer else "")


def pareto_cell(r: Any) -> str:
    """★ marks on the Pareto front: B = top-1 vs measured GBitOPs, S = top-1 vs packed size."""
    marks = [m for m, on in (("B", r.pareto_bitops), ("S", r.pareto_size)) if on]
    return "★ " + "".join(marks) if marks else ""


def is_ranked(rank: object) -> bool:
    """True for a numeric rank, False for :data:`UNRANKED`."""
    return rank != UNRANKED and not (isinstance(rank, float) and math.isnan(rank))


def torch_threads(df: pd.DataFrame) -> set[int]:
    """The torch thread counts behind some rows (the ``torch_threads`` column, or older rows'
    ``machine`` text, "... N threads ...")."""
    if "torch_threads" in df and df["torch_threads"].notna().any():
        return {int(t) for t in df["torch_threads"].dropna()}
    found = (re.search(r"(\d+) threads", str(m)) for m in df.get("machine", pd.Series(dtype=str)).dropna())
    return {int(m.group(1)) for m in found if m}
