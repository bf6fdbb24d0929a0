"""Compare a run against a committed leaderboard and decide whether anything really regressed.

For each (dataset, model, method, bits) present in both, the tolerance comes from the recorded
seed variance: tol = max(floor, t_{0.975, df} * sqrt(s_ref^2 / n_ref + s_run^2 / n_run))
(a Welch-style interval on the difference of means). When one side has a single seed its
variance is taken from the other side; when both do, only the floor remains. A method is a
regression when run - committed < -tol; improvements beyond tol are reported, never failed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from qbench.errors import QbenchError
from qbench.report.leaderboard import check_single_version, load_rows_csv
from qbench.report.stats import GROUP, aggregate, t_quantile, torch_threads

DEFAULT_FLOOR = 1.0  # top-1 points


@dataclass
class Comparison:
    table: pd.DataFrame  # one row per entry, with status regression / improved / within / new / not run
    suite_version: int
    notes: list[str] = field(default_factory=list)  # conditions that differ between the two sides

    @property
    def regressions(self) -> pd.DataFrame:
        return self.table[self.table["status"] == "regression"]

    @property
    def ok(self) -> bool:
        return self.regressions.empty


def tolerance(std_ref: float, n_ref: int, std_run: float, n_run: int, floor: float) -> float:
    s_ref = std_ref if n_ref >= 2 and not math.isnan(std_ref) else math.nan
    s_run = std_run if n_run >= 2 and not math.isnan(std_run) else math.nan
    if math.isnan(s_ref) and math.isnan(s_run):
        return floor
    s_ref = s_run if math.isnan(s_ref) else s_ref
    s_run = s_ref if math.isnan(s_run) else s_run
    df = max(n_ref + n_run - 2, 1)
    half = t_quantile(df + 1) * math.sqrt(s_ref**2 / n_ref + s_run**2 / n_run)
    return max(floor, half)


def read_results(path: Path) -> pd.DataFrame:
    """A results.csv, or a workspace/suite directory holding one."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.csv"
    return load_rows_csv(path)


def compare(run: pd.DataFrame, against: Path, floor: float = DEFAULT_FLOOR) -> Comparison:
    """Compare ``run`` rows with the committed leaderboard directory of the same suite version."""
    suite = sorted(set(run["suite"]))
    if len(suite) != 1:
        raise QbenchError(f"The results hold several suites {suite}; compare one suite at a time.")
    version = check_single_version(run)
    against = Path(against)
    ref_dir = against if (against / "results.csv").exists() else against / f"v{version}"
    if not (ref_dir / "results.csv").exists():
        raise QbenchError(f"No committed leaderboard for suite {suite[0]!r} v{version} under {str(against)!r} "
                          f"(expected {str(Path(against) / f'v{version}' / 'results.csv')!r}). Results from different "
                          "suite versions are never compared; publish this version first.")
    ref = load_rows_csv(ref_dir / "results.csv")
    if check_single_version(ref) != version:
        raise QbenchError(f"{str(ref_dir)!r} holds suite v{check_single_version(ref)}, the run is v{version}.")
    a, b = aggregate(ref), aggregate(run)
    cols = GROUP + ["n", "top1", "top1_std", "method_version"]
    m = a[cols].merge(b[cols], on=GROUP, how="outer", suffixes=("_ref", "_run"), indicator=True)
    statuses, tols = [], []
    for r in m.to_dict("records"):
        if r["_merge"] == "left_only":
            statuses.append("not run")
            tols.append(math.nan)
            continue
        if r["_merge"] == "right_only":
            statuses.append("new")
            tols.append(math.nan)
            continue
        tol = tolerance(r["top1_std_ref"], int(r["n_ref"]), r["top1_std_run"], int(r["n_run"]), floor)
        delta = r["top1_run"] - r["top1_ref"]
        statuses.append("regression" if delta < -tol else "improved" if delta > tol else "within")
        tols.append(tol)
    m["delta"] = m["top1_run"] - m["top1_ref"]
    m["tolerance"] = tols
    m["status"] = statuses
    notes = []
    t_ref, t_run = torch_threads(ref), torch_threads(run)
    if t_ref and t_run and t_ref != t_run:
        notes.append(f"The committed rows were trained with {sorted(t_ref)} torch threads, this run with "
                     f"{sorted(t_run)}. The thread count changes the order of floating-point reductions, so "
                     "results differ by about a seed's spread even with identical code; rerun with "
                     f"--threads {min(t_ref)} for a like-for-like comparison.")
    return Comparison(m.drop(columns="_merge"), version, notes)
