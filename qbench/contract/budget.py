"""The bit budget a job is judged on, in the terms an allocator controls.

The leaderboard flags a row over budget (:mod:`qbench.report.budget`) when its measured weight
bits (parameter-weighted mean), activation bits (plain mean over layers) or BitOPs exceed what the
bit target allows on the same layers. First/last layers follow the suite's rule and matmuls outside
Conv2d/Linear layers run at declared bits, so they cost every method the same: what an allocator
decides is the body, and its budget is the body at the target. :meth:`Budget.from_target` derives
exactly that, the host hands it to every allocator as ``AllocationContext.budget``, and
:meth:`Budget.bound` says, from a final allocation, which of the two costs the leaderboard budgets
(bits per weight, BitOPs) left no room for another weight bit (the row's ``budget_bound``).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from qbench.contract.bits import BitTarget, LayerBits
from qbench.contract.layer_info import LayerInfo

#: bits counted for a side that is not quantized (qbench's BitOPs convention)
FP_BITS = 32
#: relative slack for float round-off when a cost is compared with its cap
_EPS = 1e-9
#: the values of ``Budget.bound`` (and of the row's ``budget_bound``)
BOUNDS = ("bits", "bitops", "both", "none")

Plan = Mapping[str, LayerBits]


def _side(b: int | None) -> int:
    return FP_BITS if b is None else int(b)


@dataclass(frozen=True)
class Usage:
    """What an allocation costs on the body layers."""

    w_bits: float  # parameter-weighted mean weight bits
    a_bits: float  # plain mean activation bits
    bitops: float  # sum of MACs x b_w x b_a per sample


@dataclass(frozen=True)
class Budget:
    """Caps on the body layers' costs; ``None`` leaves that cost free.

    :param w_bits: cap on the parameter-weighted mean weight bits (the leaderboard's bits per weight).
    :param a_bits: cap on the plain mean of the activation bits over the layers.
    :param bitops: cap on sum over layers of MACs x b_w x b_a, per sample (32 for an FP side).
    """

    w_bits: float | None
    a_bits: float | None
    bitops: float | None

    @classmethod
    def from_target(cls, layers: Sequence[LayerInfo], target: BitTarget) -> "Budget":
        """The budget the leaderboard judges a job at ``target`` by, on ``layers`` (the body):
        the target's bits, and the BitOPs the layers cost with every one at the target."""
        return cls(float(target.w), float(target.a), float(sum(la.macs for la in layers) * target.w * target.a))

    def scaled(self, w_bits: float) -> "Budget":
        """This budget at ``w_bits`` average weight bits (e.g. the paper's 2.81), BitOPs in proportion."""
        ops = None if self.bitops is None or not self.w_bits else self.bitops * w_bits / self.w_bits
        return Budget(float(w_bits), self.a_bits, ops)

    def only(self, *costs: str) -> "Budget":
        """This budget with the caps not named in ``costs`` ("w_bits", "a_bits", "bitops") removed."""
        return Budget(*(getattr(self, c) if c in costs else None for c in ("w_bits", "a_bits", "bitops")))

    @staticmethod
    def usage(layers: Sequence[LayerInfo], plan: Plan) -> Usage:
        """The costs of ``plan`` (layer name -> bits; every layer of ``layers`` must be in it)."""
        numel = sum(la.weight_numel for la in layers)
        w = sum(la.weight_numel * _side(plan[la.name].w) for la in layers)
        a = sum(_side(plan[la.name].a) for la in layers)
        ops = sum(la.macs * _side(plan[la.name].w) * _side(plan[la.name].a) for la in layers)
        return Usage(w / numel if numel else 0.0, a / len(layers) if layers else 0.0, float(ops))

    def excess(self, layers: Sequence[LayerInfo], plan: Plan) -> dict[str, float]:
        """For each capped cost, how far ``plan`` exceeds it, as a fraction of the cap (0 when met)."""
        use = self.usage(layers, plan)
        out = {}
        for cost in ("w_bits", "a_bits", "bitops"):
            cap = getattr(self, cost)
            if cap is not None:
                over = getattr(use, cost) - cap
                out[cost] = over / cap if cap > 0 and over > _EPS * max(cap, 1.0) else 0.0
        return out

    def fits(self, layers: Sequence[LayerInfo], plan: Plan) -> bool:
        """``plan`` meets every cap."""
        return not any(self.excess(layers, plan).values())

    def bound(self, layers: Sequence[LayerInfo], plan: Plan, bits_tol: float = 0.0, bitops_rtol: float = 0.0) -> str:
        """Which budgeted cost ``plan`` leaves no room on: "bits" (per weight), "bitops", "both"
        or "none". A cost binds when what is left of it is less than one more weight bit on any
        single layer (the cheapest layer's parameters for bits, its MACs x activation bits for
        BitOPs), or less than ``bits_tol`` bits per weight / ``bitops_rtol`` of the BitOPs cap (an
        allocator whose bit-widths move in steps of two, or one that stopped just short); an
        allocation over a cap binds too. Activation bits are capped as well but are not a choice
        of most allocators, so they are not part of this answer."""
        if not layers:
            return "none"
        use = self.usage(layers, plan)
        numel = sum(la.weight_numel for la in layers)
        step_w = min(la.weight_numel for la in layers) / numel
        step_ops = min(la.macs * _side(plan[la.name].a) for la in layers)
        bits = self.w_bits is not None and self.w_bits - use.w_bits < max(step_w * (1 - _EPS), bits_tol)
        ops = self.bitops is not None and (
            self.bitops - use.bitops < max(step_ops * (1 - _EPS), bitops_rtol * self.bitops))
        return "both" if bits and ops else "bits" if bits else "bitops" if ops else "none"
