"""Where a method the leaderboard lacks would stand among the published ones, and whether the
differences are real.

The gate (:mod:`qbench.report.compare`) judges reruns of the method versions the leaderboard
holds. A method it lacks, or another version of one it holds, cannot regress: there is nothing of
it to fall below. What its author wants to know instead is answered here, never as a failure:

* **paired gaps**: in each table (dataset, model, bit target; weight-only targets apart), per seed,
  its gap to its FP checkpoint minus each published entry's gap to the checkpoint of the same seed,
  with the mean and a 95 % interval from the paired test behind the leaderboard's ranks
  (:func:`qbench.report.ranks.pair_tests`: seed variance moderated across the table) and the
  verdict of that test, Holm-corrected over the table's pairs at :data:`~qbench.report.ranks.ALPHA`.
  The test runs on the leaderboard as it stands, a new version against its own published one too.
* **the would-be rank**: its rows added to the published rows (a new version replacing the
  published one's, as publishing would) and ranked by :func:`qbench.report.stats.aggregate`, the
  code the leaderboard ranks with (:data:`~qbench.report.ranks.RANK_RULE`).
* **the gate's tolerance** once published: what a rerun with the same seeds and spread would be
  held to (:func:`qbench.report.compare.entry_tolerance` on the would-be leaderboard).
* **what publishing needs**: the datasets, models, bit targets and seeds of the suite's recipe that
  have no finished row of it (a weight-only method runs each target at A32, as the planner does).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from scipy import stats as st

from qbench.report.compare import DEFAULT_FLOOR, Comparison, entry_spread, entry_tolerance, pooled_spread
from qbench.report.ranks import ALPHA, Seeds, holm, pair_tests
from qbench.report.stats import CONFIDENCE, GROUP, aggregate, is_ranked

TABLE = ["dataset", "model", "bits"]
#: The key of the placed entry among the published ones in a table's paired tests.
THIS = ("this run", -1)


@dataclass(frozen=True)
class Grid:
    """What a published entry needs, read from a suite recipe (:class:`qbench.run.suite.Suite`)."""

    suite: str
    version: int
    datasets: tuple[str, ...]
    models: tuple[str, ...]
    bits: tuple[str, ...]
    seeds: tuple[int, ...]

    @classmethod
    def of(cls, suite: Any) -> "Grid":
        return cls(suite.name, suite.version, tuple(d.name for d in suite.datasets),
                   tuple(m.label for m in suite.models), tuple(str(b) for b in suite.bits), tuple(suite.seeds))


@dataclass
class TablePlace:
    """One table of the would-be leaderboard, seen from the placed entry."""

    dataset: str
    model: str
    bits: str
    rank: object  # an int, or UNRANKED with the reason in ``flag``
    ranked: int  # entries the table would rank, this one included
    top1: float
    top1_std: float
    gap: float
    n: int
    flag: str
    tolerance: float
    tol_sd: float
    tol_df: float
    seeds: list[int]
    #: one row per published entry: method, method_version, rank, top1, "seed <s>" gaps, n, mean, lo, hi, p, verdict
    pairs: pd.DataFrame


@dataclass
class Placement:
    method: str
    version: int
    published_version: int | None  # the version the leaderboard holds; None for a method it lacks
    tables: list[TablePlace] = field(default_factory=list)
    grid: Grid | None = None
    missing: pd.DataFrame = field(default_factory=pd.DataFrame)  # dataset, model, bits, seeds, why
    notes: list[str] = field(default_factory=list)

    @property
    def summary_missing(self) -> str:
        """The models, bit targets and datasets of the recipe with no finished row of this method,
        then the seeds missing from the cells it ran: what publishing still needs, in one line."""
        if self.missing.empty or self.grid is None:
            return ""
        g, parts, whole_rows = self.grid, [], set()
        sizes = {"dataset": len(g.datasets), "model": len(g.models), "bits": len(g.bits)}
        for col, name in (("model", "model"), ("bits", "bit target"), ("dataset", "dataset")):
            cells = math.prod(v for k, v in sizes.items() if k != col)
            whole = [v for v, rows in self.missing.groupby(col, sort=False)
                     if sum(len(s) for s in rows["seeds"]) == len(g.seeds) * cells]
            if whole:
                parts.append(f"{name}{'s' if len(whole) > 1 else ''} {', '.join(map(str, whole))} (not run at all)")
                whole_rows |= set(self.missing.index[self.missing[col].isin(whole)])
        rest = self.missing.drop(index=list(whole_rows))
        same = {tuple(x) for x in rest["seeds"]}
        if len(rest) == math.prod(sizes.values()) and len(same) == 1:  # the same seeds lacking everywhere
            return "; ".join(parts + [f"seed{'s' if len(rest['seeds'].iloc[0]) > 1 else ''} "
                                      f"{', '.join(map(str, rest['seeds'].iloc[0]))} of every table"])
        for _, r in rest.iterrows():
                parts.append(f"seed{'s' if len(r['seeds']) > 1 else ''} {', '.join(map(str, r['seeds']))} "
                             f"of {r['dataset']}/{r['model']}/{r['bits']}")
        return "; ".join(parts)


def placed_versions(cmp: Comparison, run: pd.DataFrame) -> list[tuple[str, int]]:
    """(method, version) of the run's quantized rows the gate does not judge: methods the
    leaderboard lacks and versions other than the one it holds."""
    ref = cmp.published if cmp.published is not None else run.iloc[:0]
    held = {str(m): int(g.max()) for m, g in ref.groupby("method")["method_version"]}
    rows = run[(run["bits"].astype(str) != "fp32") & run["method_version"].notna()]
    keys = {(str(m), int(v)) for m, v in zip(rows["method"], rows["method_version"])}
    return sorted(k for k in keys if held.get(k[0]) != k[1])


def place(cmp: Comparison, run: pd.DataFrame, floor: float = DEFAULT_FLOOR,
          grid: Grid | None = None) -> list[Placement]:
    """One :class:`Placement` per method version of ``run`` the gate does not judge."""
    ref = cmp.published if cmp.published is not None else run.iloc[:0]
    held = {str(m): int(g.max()) for m, g in ref.groupby("method")["method_version"]}
    published = aggregate(ref)
    out = []
    for method, version in placed_versions(cmp, run):
        rows = run[(run["method"].astype(str) == method) & (run["method_version"] == version)]
        ok = rows[rows["status"] == "ok"]
        p = Placement(method, version, held.get(method), grid=grid)
        if grid is not None:
            p.missing, extra = _missing(rows, grid)
            if extra:
                p.notes.append(f"Rows at {', '.join(extra)} are outside suite {grid.suite} v{grid.version}'s "
                               "recipe: placed, but never published with it.")
        if not ok.empty:
            would = pd.concat([ref[ref["method"].astype(str) != method], ok], ignore_index=True)
            agg, pools, spread = aggregate(would), pooled_spread(would), entry_spread(ok).set_index(GROUP)
            for key, g in ok.groupby(TABLE, sort=True):
                p.tables.append(_table(key, method, g, agg, pools, spread, ref, published, floor, p.notes))
        out.append(p)
    return out


def _seeds(rows: pd.DataFrame) -> Seeds:
    return {int(s): (float(t), float(f)) for s, t, f in zip(rows["seed"], rows["top1"], rows["fp_top1"])}


def _table(key: tuple, method: str, rows: pd.DataFrame, agg: pd.DataFrame, pools: dict, spread: pd.DataFrame,
           ref: pd.DataFrame, published: pd.DataFrame, floor: float, notes: list[str]) -> TablePlace:
    dataset, model, bits = key
    gkey = (dataset, model, method, bits)
    table = agg[(agg["dataset"] == dataset) & (agg["model"] == model) & (agg["bits"] == bits)]
    me = table[table["method"].astype(str) == method].iloc[0]
    tol, sd, dof = entry_tolerance(pools.get(gkey, (math.nan, 0)), spread.loc[gkey], spread.loc[gkey], floor)
    mine = _seeds(rows)
    same = published[(published["dataset"] == dataset) & (published["model"] == model) & (published["bits"] == bits)]
    same = same[same["rank"].map(is_ranked)]
    pub_rows = ref[(ref["status"] == "ok") & (ref["dataset"] == dataset) & (ref["model"] == model)
                   & (ref["bits"] == bits)]
    entries: dict[Any, Seeds] = {THIS: mine}
    for r in same.itertuples():
        g = pub_rows[(pub_rows["method"] == r.method) & (pub_rows["method_version"] == r.method_version)]
        entries[(str(r.method), int(r.method_version))] = _seeds(g)
    _checkpoint_notes(mine, pub_rows, f"{dataset}/{model}/{bits}", notes)
    tests = pair_tests(entries)
    significant = holm({k: t[4] for k, t in tests.items()}, ALPHA)
    records = []
    for r in same.itertuples():
        other = (str(r.method), int(r.method_version))
        mean, var, dd, n, pv = tests[THIS, other]
        half = float(st.t.ppf(0.5 + CONFIDENCE / 2, dd)) * math.sqrt(var / n) if dd > 0 and not math.isnan(var) \
            else math.nan
        theirs = entries[other]
        rec: dict[str, Any] = {"method": other[0], "method_version": other[1], "rank": r.rank, "top1": r.top1}
        for s in sorted(mine):
            rec[f"seed {s}"] = (mine[s][0] - mine[s][1]) - (theirs[s][0] - theirs[s][1]) if s in theirs else math.nan
        verdict = ("better" if mean > 0 else "worse") if (THIS, other) in significant else \
            "untestable" if math.isnan(pv) else "not distinguishable"
        records.append({**rec, "n": n, "mean": mean, "lo": mean - half, "hi": mean + half, "p": pv,
                        "verdict": verdict})
    ranked = int(table[table["bits"] != "fp32"]["rank"].map(is_ranked).sum())
    return TablePlace(dataset, model, bits, me["rank"], ranked, float(me["top1"]), float(me["top1_std"]),
                      float(me["gap"]), int(me["n"]), str(me["flag"]), tol, sd, float(dof) if dof else math.nan,
                      sorted(mine), pd.DataFrame(records))


def _checkpoint_notes(mine: Seeds, pub_rows: pd.DataFrame, where: str, notes: list[str]) -> None:
    """Name the seeds whose FP checkpoint is not the published one (another machine or torch build),
    and seeds the published rows lack: the pairing then removes less of the checkpoint's spread."""
    fp = {int(s): float(f) for s, f in zip(pub_rows["seed"], pub_rows["fp_top1"])}
    other = [s for s in sorted(mine) if s in fp and abs(mine[s][1] - fp[s]) > 1e-9]
    if other:
        notes.append(f"{where}: on seed{'s' if len(other) > 1 else ''} {', '.join(map(str, other))} this run's FP "
                     "checkpoint scores differently from the published one (another machine or torch build); each "
                     "gap is to its own checkpoint, so the pairing cancels less of the checkpoint's seed spread.")
    alone = [s for s in sorted(mine) if s not in fp]
    if alone and fp:
        notes.append(f"{where}: seed{'s' if len(alone) > 1 else ''} {', '.join(map(str, alone))} of this run "
                     "the published rows lack: left out of the paired gaps.")


def _target(bits: str, weight_only: bool) -> str:
    m = re.fullmatch(r"W(\d+)A(\d+)", bits)
    return f"W{m.group(1)}A32" if weight_only and m else bits


def _missing(rows: pd.DataFrame, grid: Grid) -> tuple[pd.DataFrame, list[str]]:
    """The recipe's (dataset, model, bits) cells lacking finished seeds of these rows, and the run's
    cells outside the recipe. A method whose quantized rows all keep A32 is weight-only."""
    quant = rows[rows["bits"].astype(str) != "fp32"]
    weight_only = not quant.empty and quant["bits"].astype(str).str.endswith("A32").all()
    ok = rows[rows["status"] == "ok"]
    have = {(str(d), str(m), str(b), int(s)) for d, m, b, s in zip(ok["dataset"], ok["model"], ok["bits"], ok["seed"])}
    failed = {(str(d), str(m), str(b), int(s)): str(st_) for d, m, b, s, st_ in
              zip(rows["dataset"], rows["model"], rows["bits"], rows["seed"], rows["status"]) if st_ != "ok"}
    want = [(d, m, _target(b, weight_only)) for d in grid.datasets for m in grid.models for b in grid.bits]
    records = []
    for d, m, b in want:
        lack = [s for s in grid.seeds if (d, m, b, s) not in have]
        if lack:
            why = sorted({failed[(d, m, b, s)] for s in lack if (d, m, b, s) in failed})
            records.append({"dataset": d, "model": m, "bits": b, "seeds": lack,
                            "why": f"did not finish ({', '.join(why)})" if why else "not run"})
    cells = set(want)
    extra = sorted({f"{d}/{m}/{b}" for d, m, b, _ in have if (d, m, b) not in cells})
    return pd.DataFrame(records, columns=["dataset", "model", "bits", "seeds", "why"]), extra
