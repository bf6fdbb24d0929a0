"""Compare a run against a published leaderboard and decide whether anything really regressed.

**What is compared.** Each (dataset, model, method, bits) entry present on both sides, using only
the method versions the leaderboard holds: run rows of another version of a method are named (in
:attr:`Comparison.left_out` and a note) and left out, never averaged with it; they and methods the
leaderboard lacks are placed among the published ones instead (:mod:`qbench.report.placement`). A quantized entry is
compared on its mean *gap to its own FP checkpoint* (top-1 − the job's ``fp_top1``, paired by seed):
every method of a seed starts from the same FP checkpoint, so the checkpoint's seed-to-seed
spread (3.7 points on the quick suite's ViT) cancels, on either machine. The reference (fp32) is
compared on top-1. ``delta`` = run − committed of that statistic; ``delta_top1`` is the plain
top-1 difference.

**The tolerance, per entry** (column ``tolerance``, with ``tol_sd`` and ``tol_df``)::

    tol = max(floor, t(0.975, df) * s * sqrt(1 / n_ref + 1 / n_run))

* ``s`` is a *moderated* seed standard deviation (Smyth's empirical Bayes, as in limma): the seed
  variance pooled across the methods of the same (dataset, model, bits) in the leaderboard, s0² on
  d0 degrees of freedom, combined with the entry's own seed variance on both sides (d_e degrees of
  freedom): s² = (d0 s0² + d_e s_e²) / (d0 + d_e), df = d0 + d_e. s0² is the median of the
  entries' variances (unbiased for the chi² median), so one wild method does not widen everyone's
  tolerance, while a method that is itself noisy keeps its own wider one. Over-budget and collapsed
  entries stay out of the pool. When the group pools fewer than :data:`MIN_POOL_DF` degrees of
  freedom the pool widens to (dataset, model), then the dataset, then the whole leaderboard.
* Never Student-t at 1 degree of freedom (t = 12.7): df is at least :data:`MIN_DF`; with no seed
  spread at all (single-seed leaderboards), only the floor remains.
* **Another machine or torch build** (CPU wheels against the committed CUDA build: a rerun there
  matched 16 of 108 quick rows exactly, mean |Δ| 2.7 points) changes the order of floating-point
  reductions, which sends training down another trajectory: statistically a new draw of the
  seed noise. The rule above treats every run row as exactly that (an independent draw with the
  recorded seed variance), and the FP checkpoint, retrained on the new machine, cancels in the gap.
  So no same-machine assumption is made; the floor (default :data:`DEFAULT_FLOOR` points, 3–4
  digits test images) covers the rows whose seeds agree to the image.

A regression is ``delta < -tol``; improvements beyond ``tol`` are reported, never failed. A run
entry that is over budget (:mod:`qbench.report.budget`: measured bits or BitOPs above the target,
which does not depend on the seed) where the committed one was not is a regression too; any
flagged run entry, over budget or collapsed, is named in the notes (a collapse shows in top-1,
which the tolerance judges: a seed near the chance threshold must not fail the gate on its own).

``against`` is a leaderboard directory (``leaderboards/quick``, or one version's directory), or a
published suite by name, ``quick`` or ``quick@v1``: looked up in the leaderboards shipped inside
the package (``qbench/leaderboards``, see :func:`leaderboard_roots`; ``$QBENCH_LEADERBOARDS`` adds
roots searched first), so the gate works from a plugin's own repository without a qbench checkout.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from scipy import stats as st

from qbench.errors import QbenchError
from qbench.report.budget import flag_frame
from qbench.report.leaderboard import check_single_version, load_rows_csv
from qbench.report.shipped import ROOTS_ENV, leaderboard_roots, resolve_against  # noqa: F401  (re-exported)
from qbench.report.stats import CONFIDENCE, GROUP, aggregate, torch_threads

DEFAULT_FLOOR = 1.0  # top-1 points
#: The pool of seed variance widens until it holds at least this many degrees of freedom.
MIN_POOL_DF = 4
#: The t quantile never uses fewer degrees of freedom than this.
MIN_DF = 2

@dataclass
class Comparison:
    table: pd.DataFrame  # one row per entry, with status regression / improved / within / new / not run
    suite_version: int
    notes: list[str] = field(default_factory=list)  # conditions that differ between the two sides
    left_out: list[str] = field(default_factory=list)  # run rows of method versions the leaderboard does not hold
    flagged: list[str] = field(default_factory=list)  # run entries over budget, collapsed or diverging on deploy
    reference: Path | None = None  # the leaderboard version directory compared against
    published: pd.DataFrame | None = None  # its rows, of the method versions compared against

    @property
    def regressions(self) -> pd.DataFrame:
        return self.table[self.table["status"] == "regression"]

    @property
    def ok(self) -> bool:
        return self.regressions.empty


# -- the tolerance ---------------------------------------------------------------------------
def t_crit(df: float, confidence: float = CONFIDENCE) -> float:
    """Two-sided Student-t critical value at ``df`` degrees of freedom, never below :data:`MIN_DF`."""
    return float(st.t.ppf(0.5 + confidence / 2, max(df, MIN_DF)))


def tolerance(sd: float, df: float, n_ref: int, n_run: int, floor: float = DEFAULT_FLOOR) -> float:
    """max(floor, t(0.975, df) x sd x sqrt(1/n_ref + 1/n_run)); the floor alone when sd or df is unknown."""
    if sd is None or math.isnan(sd) or not df or n_ref < 1 or n_run < 1:
        return floor
    return max(floor, t_crit(df) * sd * math.sqrt(1 / n_ref + 1 / n_run))


def _stat(df: pd.DataFrame) -> pd.Series:
    """Per row: top-1 minus the job's FP top-1 (quantized rows), top-1 (the reference)."""
    top1 = pd.to_numeric(df["top1"], errors="coerce")
    fp = pd.to_numeric(df["fp_top1"], errors="coerce")
    use_gap = (df["bits"].astype(str) != "fp32") & fp.notna()
    return (top1 - fp).where(use_gap, top1)


def entry_spread(df: pd.DataFrame) -> pd.DataFrame:
    """Per entry: n, sum of squared deviations of the statistic around its mean, and degrees of freedom."""
    d = df.assign(_x=_stat(df))
    g = d.groupby(GROUP, sort=False)["_x"]
    out = pd.DataFrame({"n": g.count(), "mean": g.mean(), "var": g.var(ddof=1)}).reset_index()
    out["dof"] = (out["n"] - 1).clip(lower=0)
    out["ss"] = (out["var"].fillna(0.0) * out["dof"])
    return out


def _robust_pool(entries: pd.DataFrame) -> tuple[float, int]:
    """(s0², d0): the median entry variance, unbiased for the chi² median, and the pooled dof."""
    e = entries[(entries["dof"] >= 1) & entries["var"].notna()]
    if e.empty:
        return math.nan, 0
    k = max(1, int(round(float(e["dof"].median()))))
    s0 = float(e["var"].median()) / (float(st.chi2.median(k)) / k)
    return s0, int(e["dof"].sum())


def pooled_spread(ref: pd.DataFrame) -> dict[tuple, tuple[float, int]]:
    """For each entry of ``ref``: (s0², d0) of the seed variance pooled as the module says."""
    flagged = flag_frame(ref[ref["status"] == "ok"])
    bad = flagged[flagged["over_budget"] | flagged["collapsed"]]
    bad_keys = {tuple(r) for r in bad[GROUP].itertuples(index=False)}
    spread = entry_spread(flagged)
    spread["_ref"] = spread["bits"].astype(str) == "fp32"
    pool = spread[[tuple(r) not in bad_keys for r in spread[GROUP].itertuples(index=False)]]
    levels = (["dataset", "model", "bits"], ["dataset", "model"], ["dataset"], [])
    out: dict[tuple, tuple[float, int]] = {}
    for r in spread.to_dict("records"):
        # the reference is compared on top-1, quantized entries on their gap: never pooled together
        same_kind = pool[pool["_ref"] == r["_ref"]]
        best = (math.nan, 0)
        for keys in levels:
            sub = same_kind
            for k in keys:
                sub = sub[sub[k] == r[k]]
            s0, d0 = _robust_pool(sub)
            if d0 > best[1]:
                best = (s0, d0)
            if d0 >= MIN_POOL_DF:
                break
        out[tuple(r[k] for k in GROUP)] = best
    return out


def entry_tolerance(pool: tuple[float, int], e_ref: pd.Series, e_run: pd.Series,
                    floor: float = DEFAULT_FLOOR) -> tuple[float, float, int]:
    """(tolerance, moderated sd, degrees of freedom) of one entry: the pool (s0², d0) combined with
    the entry's own seed spread on both sides (:func:`entry_spread` rows), as the module says."""
    s0, d0 = pool
    d_e = int(e_ref["dof"] + e_run["dof"])
    ss = float(e_ref["ss"] + e_run["ss"])
    if d0 > 0 and not math.isnan(s0):
        var, dof = (d0 * s0 + ss) / (d0 + d_e), d0 + d_e
    elif d_e > 0:
        var, dof = ss / d_e, d_e
    else:
        var, dof = math.nan, 0
    sd = math.sqrt(var) if not math.isnan(var) else math.nan
    return tolerance(sd, dof, int(e_ref["n"]), int(e_run["n"]), floor), sd, dof


def tolerance_rule(floor: float = DEFAULT_FLOOR) -> str:
    """One line saying what Δ and the tolerance are, for the command to print."""
    return (f"Δ is the change of top-1 minus the job's own FP top-1 (paired by seed; top-1 for fp32); tolerance per "
            f"row = max({floor:g}, t95(df) x moderated seed sd x sqrt(1/n_ref + 1/n_run)), the seed variance pooled "
            "across the methods of the same dataset, model and bits (see qbench.report.compare).")


def read_results(path: Path) -> pd.DataFrame:
    """A results.csv, or a workspace/suite directory holding one."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.csv"
    return load_rows_csv(path)


def _true(v: object) -> bool:
    """A flag cell: True only for a true boolean (NaN, from an entry missing on one side, is False)."""
    if hasattr(v, "item"):
        v = v.item()  # numpy scalars
    return isinstance(v, (bool, int)) and bool(v)


def _versions(df: pd.DataFrame) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    for m, v in zip(df["method"], df["method_version"]):
        if not pd.isna(v):
            out.setdefault(str(m), set()).add(int(v))
    return out


def compare(run: pd.DataFrame, against: str | Path, floor: float = DEFAULT_FLOOR) -> Comparison:
    """Compare ``run`` rows with the published leaderboard of the same suite version."""
    suite = sorted(set(run["suite"]))
    if len(suite) != 1:
        raise QbenchError(f"The results hold several suites {suite}; compare one suite at a time.")
    version = check_single_version(run)
    ref_dir = resolve_against(against, version)
    if not (ref_dir / "results.csv").exists():
        raise QbenchError(f"No committed leaderboard for suite {suite[0]!r} v{version} under {str(against)!r} "
                          f"(expected {str(ref_dir / 'results.csv')!r}). Results from different "
                          "suite versions are never compared; publish this version first.")
    ref = load_rows_csv(ref_dir / "results.csv")
    if check_single_version(ref) != version:
        raise QbenchError(f"{str(ref_dir)!r} holds suite v{check_single_version(ref)}, the run is v{version}.")
    notes: list[str] = []

    # only the method versions the leaderboard holds (its newest, should it hold several)
    held = {m: max(v) for m, v in _versions(ref).items()}
    for m, vs in _versions(ref).items():
        if len(vs) > 1:
            notes.append(f"The leaderboard holds {m} versions {sorted(vs)}; compared with v{held[m]} only.")
            ref = ref[(ref["method"] != m) | (ref["method_version"] == held[m])]
    keep = [str(m) not in held or (not pd.isna(v) and int(v) == held[str(m)])
            for m, v in zip(run["method"], run["method_version"])]
    out_rows = run[[not k for k in keep]]
    left_out = []
    if not out_rows.empty:
        for (m, v), g in out_rows.groupby(["method", "method_version"], sort=True):
            left_out.append(f"{m} v{int(v)} ({len(g)} rows)")
            notes.append(f"Left out {len(g)} rows of {m} v{int(v)}: the leaderboard holds {m} v{held[str(m)]}, and "
                         "rows of different method versions are never compared or averaged. They are placed "
                         "among the published methods instead (qbench.report.placement), never gated.")
    run = run[keep]

    a, b = aggregate(ref), aggregate(run)
    if b.empty and not left_out:
        raise QbenchError("The run holds no finished row of a method version the leaderboard holds.")
    b = b if not b.empty else a.iloc[:0]  # only other versions: nothing to gate, all of it to place
    pools = pooled_spread(ref)
    sp_ref = entry_spread(ref[ref["status"] == "ok"]).set_index(GROUP)
    sp_run = entry_spread(run[run["status"] == "ok"]).set_index(GROUP)
    cols = GROUP + ["n", "top1", "top1_std", "method_version", "over_budget", "collapsed", "deploy_diverged", "flag"]
    m = a[cols].merge(b[cols], on=GROUP, how="outer", suffixes=("_ref", "_run"), indicator=True)
    statuses, tols, sds, dofs, deltas = [], [], [], [], []
    flagged = []
    for r in m.to_dict("records"):
        key = tuple(r[k] for k in GROUP)
        label = f"{r['method']} {r['bits']} on {r['dataset']}/{r['model']}"
        flag_run = _true(r["over_budget_run"]) or _true(r["collapsed_run"]) or _true(r["deploy_diverged_run"])
        if r["_merge"] != "left_only" and flag_run:
            flagged.append(f"{label}: {r['flag_run']}")
        if r["_merge"] == "left_only":
            statuses.append("not run")
            tols.append(math.nan), sds.append(math.nan), dofs.append(math.nan), deltas.append(math.nan)
            continue
        if r["_merge"] == "right_only":
            statuses.append("new")
            tols.append(math.nan), sds.append(math.nan), dofs.append(math.nan), deltas.append(math.nan)
            continue
        e_ref, e_run = sp_ref.loc[key], sp_run.loc[key]
        tol, sd, dof = entry_tolerance(pools.get(key, (math.nan, 0)), e_ref, e_run, floor)
        delta = float(e_run["mean"] - e_ref["mean"])
        newly_flagged = _true(r["over_budget_run"]) and not _true(r["over_budget_ref"])
        if newly_flagged:
            notes.append(f"{label} is {r['flag_run']}, where the leaderboard's entry kept the budget: a regression.")
        statuses.append("regression" if (delta < -tol or newly_flagged) else "improved" if delta > tol else "within")
        tols.append(tol), sds.append(sd), dofs.append(dof if dof else math.nan), deltas.append(delta)
    m["delta"] = deltas
    m["delta_top1"] = m["top1_run"] - m["top1_ref"]
    m["tolerance"] = tols
    m["tol_sd"] = sds
    m["tol_df"] = dofs
    m["status"] = statuses
    if flagged:
        notes.append("Over budget, collapsed or not what deploys in this run (never ranked with the other entries): "
                     + "; ".join(flagged) + ".")
    t_ref, t_run = torch_threads(ref), torch_threads(run)
    if t_ref and t_run and t_ref != t_run:
        notes.append(f"The committed rows were trained with {sorted(t_ref)} torch threads, this run with "
                     f"{sorted(t_run)}. The thread count changes the order of floating-point reductions, so "
                     "results differ by about a seed's spread even with identical code; rerun with "
                     f"--threads {min(t_ref)} for a like-for-like comparison.")
    return Comparison(m.drop(columns="_merge"), version, notes, left_out, flagged, ref_dir, ref)
