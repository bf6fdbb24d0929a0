"""AdaQAT's budget-holding mode: the paper's bit-width step, then a projection onto the budget.

The paper's update N <- N - eta g prices BitOPs through lambda but caps nothing, so its bits end
wherever the loss and lambda balance: above a W2A2 target on every quick row (the first step takes
W2 to W3: lowering a 2-bit network to 1 bit costs far more loss than lambda x 2 saves). In a suite
the leaderboard judges the bits per weight, activation bits and BitOPs against the target
(:class:`qbench.api.Budget`), so ``budget="hold"`` makes the update a projected gradient step:

    N' = max(N - eta g, min_bits)          (the paper's rule, unchanged)
    N  = P(N')                              (back onto {N : ceil(N) meets the budget})

P lowers bit-widths one integer at a time, each to the top of the next integer below
(N -> ceil(N) - 1, the nearest point with one bit fewer), always the one whose move is shortest per
unit of budget excess it removes, until the allocation at ceil(N) meets every cap. For one pair
per network under the suite's budget (the caps are then N_w <= W, N_a <= A) this is exactly the
Euclidean projection, a clamp; for one pair per layer it is a greedy approximation of it. A
bit-width that the step just pushed over an integer boundary is the nearest to move back, so what
the step raised is undone first.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from qbench.api import BitTarget, Budget, LayerBits, LayerInfo, QbenchError

#: bits counted for a side that is not quantized (qbench's BitOPs convention)
FP_BITS = 32


def _ceil(v: float) -> int:
    return int(math.ceil(v))


def project(values: Sequence[float], movable: Sequence[int], min_bits: float,
            excess: Callable[[list[int]], dict[str, float]]) -> list[float]:
    """``values`` moved onto the budget: the returned values' ceilings meet every cap.

    :param values: the real-valued bit-widths N after the paper's step.
    :param movable: indices that may be lowered, in the order ties are broken.
    :param min_bits: no bit-width goes below this (it keeps ceil(N) - 1 >= 1 for the probes).
    :param excess: integer bits -> relative excess of each cap (0 when met).
    :raises ValueError: when lowering every movable bit-width to its floor still exceeds the budget.
    """
    out = [float(v) for v in values]
    while True:
        now = excess([_ceil(v) for v in out])
        total = sum(now.values())
        if total <= 0:
            return out
        best: tuple[float, int] | None = None
        for i in movable:
            lowered = float(_ceil(out[i]) - 1)
            if lowered < min_bits:
                continue
            trial = [_ceil(v) for v in out]
            trial[i] -= 1
            gain = total - sum(excess(trial).values())
            if gain <= 0:
                continue
            score = (out[i] - lowered) / gain
            if best is None or score < best[0]:
                best = (score, i)
        if best is None:
            over = ", ".join(f"{k} +{100 * v:.1f}%" for k, v in now.items() if v)
            raise ValueError(f"adaqat: the budget is exceeded ({over}) and no bit-width can be lowered "
                             f"further (floor min_bits={min_bits})")
        i = best[1]
        out[i] = float(_ceil(out[i]) - 1)


def hold_uniform(n_w: float, n_a: float, layers: Sequence[LayerInfo], caps: Budget, target: BitTarget,
                 min_bits: float) -> tuple[float, float]:
    """The starting (N_w, N_a), every body layer at their ceilings, projected onto ``caps``
    (the activation side stays FP for a weight-only target)."""
    fixed_a = target.a >= FP_BITS

    def excess(bits: list[int]) -> dict[str, float]:
        plan = {la.name: LayerBits(bits[0], FP_BITS if fixed_a else bits[1]) for la in layers}
        return caps.excess(layers, plan)
    try:
        n_w, n_a = project([n_w, n_a], [0] if fixed_a else [0, 1], min_bits, excess)
    except ValueError as exc:
        raise QbenchError(f"{exc}: the budget of target {target} is below AdaQAT's floor of "
                          f"{math.ceil(min_bits)} bits. Use budget='free', or a larger target.") from exc
    return n_w, n_a


def hold(sides: Sequence[tuple[Any, str, Any]], pairs: Sequence[Any], infos: dict[str, LayerInfo], caps: Budget,
         movable: Sequence[Any], min_bits: float) -> None:
    """Project the bit-widths of ``sides`` ((pair, "w" | "a", BitWidth) for every learned side)
    onto ``caps`` in place, lowering only the BitWidths in ``movable``; each pair's ``layers`` run
    at its ceilings (an unlearned side counts as FP)."""
    layers = [infos[n] for p in pairs for n in p.layers if n in infos]

    def excess(bits: list[int]) -> dict[str, float]:
        at = {(id(pair), side): b for (pair, side, _), b in zip(sides, bits)}
        plan = {n: LayerBits(at.get((id(p), "w"), FP_BITS), at.get((id(p), "a"), FP_BITS))
                for p in pairs for n in p.layers}
        return caps.excess(layers, plan)
    index = {id(bw): i for i, (_, _, bw) in enumerate(sides)}
    values = project([bw.value for _, _, bw in sides], [index[id(bw)] for bw in movable], min_bits, excess)
    for (_, _, bw), v in zip(sides, values):
        bw.value = v
