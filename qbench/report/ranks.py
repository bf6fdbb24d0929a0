"""Ranks that follow the evidence: ordered by mean top-1, tied where a paired test cannot tell entries apart.

Why paired: every entry of one table (a dataset, a model and a bit target) starts each seed from
the same FP checkpoint, and the checkpoint's seed-to-seed spread is most of the spread of every
method's top-1 on small data. Two entries are therefore compared on their per-seed differences of
the gap to that checkpoint (``top1 - fp_top1``), in which the checkpoint cancels. Comparing
unpaired intervals instead rewarded variance: a wide interval could not be beaten, so the noisiest
method ranked first.

The rule (:func:`paired_ranks`):

* For each pair of entries, the differences over the seeds both ran. Their variance is moderated
  as the CI gate moderates its tolerance (Smyth's empirical Bayes): the pair's own variance on
  n - 1 degrees of freedom is combined with a prior, the median of the table's pair variances
  (robust to one wild method), on (k - 1)(n_c - 1) degrees of freedom (k entries, n_c the seeds
  all of them ran: the residual degrees of freedom of the table's seeds-by-entries layout).
* A two-sided paired t-test per pair; Holm's correction over all pairs of the table at
  :data:`ALPHA`.
* rank = 1 + the number of entries significantly better; then, in order of mean top-1, no entry
  gets a better rank than one above it, so rank order is mean order.
* With one seed there is no spread to test against: nothing is significant and every entry of
  the table shares rank 1. The leaderboard says so rather than ordering by a single draw.
"""
from __future__ import annotations

import math
from itertools import combinations
from statistics import median

from scipy import stats as st

#: Family-wise error rate of one table's comparisons (Holm).
ALPHA = 0.05

#: One entry's per-seed values: seed -> (top-1, FP top-1 of that seed's checkpoint).
Seeds = dict[int, tuple[float, float]]


def _pair(a: Seeds, b: Seeds) -> tuple[float, float, int]:
    """(mean, variance, degrees of freedom) of a's gap minus b's over the seeds both ran."""
    common = sorted(set(a) & set(b))
    diffs = [(a[s][0] - a[s][1]) - (b[s][0] - b[s][1]) for s in common]
    n = len(diffs)
    if n == 0:
        return math.nan, math.nan, 0
    mean = sum(diffs) / n
    var = sum((d - mean) ** 2 for d in diffs) / (n - 1) if n > 1 else math.nan
    return mean, var, n - 1


def pair_tests(entries: dict[str, Seeds]) -> dict[tuple[str, str], tuple[float, float, float, int, float]]:
    """For each pair (a, b) of ``entries``: (mean of a's gap minus b's, moderated variance of one
    seed's difference, degrees of freedom of the test, seeds both ran, two-sided p-value), with the
    variance moderated as the module docstring says; NaN where untestable. :func:`pair_pvalues`
    and the placement of a new method (:mod:`qbench.report.placement`, which needs the variance
    for an interval) read the same numbers."""
    names = list(entries)
    pairs = {(a, b): _pair(entries[a], entries[b]) for a, b in combinations(names, 2)}
    variances = [v for _, v, d in pairs.values() if d > 0 and not math.isnan(v)]
    common = set.intersection(*(set(s) for s in entries.values())) if entries else set()
    d0 = (len(names) - 1) * max(len(common) - 1, 0) if variances else 0
    s0 = median(variances) if variances else math.nan
    out = {}
    for key, (mean, var, d) in pairs.items():
        dd = d0 + (d if not math.isnan(var) else 0)
        n = d + 1
        if dd == 0 or math.isnan(mean):
            out[key] = (mean, math.nan, dd, n if not math.isnan(mean) else 0, math.nan)
            continue
        moderated = (d0 * s0 + (d * var if not math.isnan(var) else 0.0)) / dd
        if moderated <= 0:  # identical differences on every seed: a sure difference, unless none
            out[key] = (mean, 0.0, dd, n, 0.0 if mean != 0 else 1.0)
            continue
        t = mean / math.sqrt(moderated / n)
        out[key] = (mean, moderated, dd, n, float(2 * st.t.sf(abs(t), dd)))
    return out


def pair_pvalues(entries: dict[str, Seeds]) -> dict[tuple[str, str], tuple[float, float]]:
    """For each pair (a, b) of ``entries``: (mean of a's gap minus b's, two-sided p-value, NaN when
    untestable), with the moderated variance described in the module docstring."""
    return {key: (t[0], t[4]) for key, t in pair_tests(entries).items()}


def holm(pvalues: dict[tuple[str, str], float], alpha: float = ALPHA) -> set[tuple[str, str]]:
    """The pairs Holm's step-down procedure rejects (NaN p-values are never rejected)."""
    tested = sorted((p, k) for k, p in pvalues.items() if not math.isnan(p))
    rejected = set()
    for i, (p, key) in enumerate(tested):
        if p > alpha / (len(tested) - i):
            break
        rejected.add(key)
    return rejected


def paired_ranks(entries: dict[str, Seeds], alpha: float = ALPHA) -> dict[str, int]:
    """Each entry's rank within one table (see the module docstring)."""
    tests = pair_pvalues(entries)
    significant = holm({k: p for k, (_, p) in tests.items()}, alpha)
    better = {name: 0 for name in entries}
    for a, b in significant:
        mean = tests[a, b][0]
        better[b if mean > 0 else a] += 1
    top1 = {name: sum(v[0] for v in s.values()) / len(s) for name, s in entries.items()}
    ranks, floor = {}, 1
    for name in sorted(entries, key=lambda e: -top1[e]):
        floor = max(floor, 1 + better[name])
        ranks[name] = floor
    return ranks


#: The rule in one sentence, for the leaderboard and its page.
RANK_RULE = ("entries are ordered by mean top-1; rank = 1 + the number of entries a paired test shows "
             "better (per-seed differences of the gap to the shared FP checkpoint, two-sided t-test with the "
             "seed variance moderated across the table as the CI gate does, Holm-corrected at 5 % over the "
             "table's pairs), never better than an entry with a higher mean; with one seed nothing is "
             "testable and every entry shares rank 1.")
