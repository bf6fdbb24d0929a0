"""AdaQAT's learned bit-widths (Gernigon et al., IEEE AICAS 2024, arXiv 2404.16876).

Real-valued bit-widths N_w, N_a are learned during QAT; every quantization op uses ceil(N)
(ceil, not round: 3.0 -> 3 bits, 3.01 -> 4). Their gradient is a finite difference of the task
loss on the current minibatch, plus the derivative of a BitOPs-like cost N_w * N_a:

    g_w = [L(ceil N_w, ceil N_a) - L(ceil N_w - 1, ceil N_a)] + lambda * ceil N_a
    g_a = [L(ceil N_w, ceil N_a) - L(ceil N_w, ceil N_a - 1)] + lambda * ceil N_w
    N  <- max(N - eta * g, min_bits)

The losses are evaluated by ``StepContext.loss_fn()`` (no grad) after the optimiser step, with the
quantizers' bits lowered by one temporarily. A bit-width whose integer value has gone back up more
than ``freeze_after`` times is frozen (it stops oscillating and costs no more forwards).

Budget (qbench's, not the paper's): ``budget="hold"`` (the method's default) projects every step
back onto the job's budget (bits per weight, activation bits, BitOPs: :mod:`qbench_adaqat.budget`);
``budget="free"`` is the paper's rule alone, lambda the only price on bits.

Choices where the paper is silent (the README gives the reasons): granularity "network" (one
(N_w, N_a) pair for all body layers, the paper's CNN setting) or "layer" (one pair per body layer,
each lowered alone; its cost term uses its own partner bits); first/last layers keep the suite's
rule; ``base_loss="recompute"`` recomputes L(ceil N_w, ceil N_a) after the step, so both sides of
the difference see the same weights ("step" reuses the step's loss, taken before the step); an
unquantized side counts 32 bits in the cost term; the initial bits are the target's (``init_w``,
``init_a``); lambda = 0.02, eta = 0.1, min_bits = 1.5 and freeze_after = 10 follow the authors'
later public code (a BERT extension), not the CNN paper.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from qbench.api import (
    AllocationContext,
    BitAllocator,
    BitTarget,
    Budget,
    LayerBits,
    LayerInfo,
    Quantizer,
    StepContext,
    quant_layers,
)

from .budget import hold, hold_uniform

GRANULARITIES = ("network", "layer")
BASE_LOSSES = ("recompute", "step")
#: "hold": every step is projected back onto the job's budget (qbench_adaqat.budget); "free": the
#: paper's rule alone, lambda the only price on bits
BUDGET_MODES = ("hold", "free")
#: bits counted for an unquantized side in the cost term (qbench's BitOPs convention)
FP_BITS = 32
#: at most this many integer bit changes are kept in the report's trace
TRACE_LIMIT = 500


def ceil_bits(n: float) -> int:
    """The integer bit-width every quantization op uses for a real-valued N: ceil(N)."""
    return int(math.ceil(n))


@dataclass
class BitWidth:
    """One real-valued bit-width N and the quantizers that run at ceil(N)."""

    value: float
    quantizers: list[Quantizer]
    ups: int = 0
    frozen: bool = False

    @property
    def bits(self) -> int:
        return ceil_bits(self.value)

    def apply(self) -> None:
        for q in self.quantizers:
            q.bits = self.bits


@dataclass
class BitPair:
    """The (N_w, N_a) pair of a group of layers (the whole body, or one layer)."""

    name: str
    w: BitWidth | None
    a: BitWidth | None
    trace: list[tuple[int, str, int]] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)  # the body layers that run at this pair's bits

    @staticmethod
    def partner_bits(bw: BitWidth | None) -> int:
        return bw.bits if bw is not None else FP_BITS


def _loss_at(quantizers: list[Quantizer], bits: int, loss_fn: Callable[[], float]) -> float:
    """loss_fn() with ``quantizers`` temporarily at ``bits`` (restored even on error)."""
    saved = [q.bits for q in quantizers]
    try:
        for q in quantizers:
            q.bits = bits
        return float(loss_fn())
    finally:
        for q, b in zip(quantizers, saved):
            q.bits = b


class AdaQATAllocator(BitAllocator):
    """Learns N_w, N_a by finite differences during QAT; quantizers use ceil(N).

    :param lam: lambda, weight of the cost term (derivative of N_w * N_a).
    :param eta: learning rate of the bit-widths.
    :param granularity: "network" (one pair, the paper's) or "layer" (one pair per body layer).
    :param update_every: update the bit-widths every this many optimiser steps (1 = the paper).
    :param init_w: initial N_w (default: the suite's target weight bits).
    :param init_a: initial N_a (default: the target activation bits).
    :param freeze_after: freeze a bit-width once its integer value went up more than this often.
    :param min_bits: floor on N (1.5: at least 2 bits); must be > 1 so ceil(N) - 1 >= 1.
    :param base_loss: "recompute" (L at current bits via loss_fn, after the step) or "step".
    :param budget: "hold" (each step projected back onto the job's budget: ``ctx.budget``, or the
        target's) or "free" (the paper's rule alone: bits end where loss and lambda balance).
    """

    def __init__(self, lam: float = 0.02, eta: float = 0.1, granularity: str = "network",
                 update_every: int = 1, init_w: float | None = None, init_a: float | None = None,
                 freeze_after: int = 10, min_bits: float = 1.5, base_loss: str = "recompute",
                 budget: str = "hold") -> None:
        if granularity not in GRANULARITIES:
            raise ValueError(f"adaqat: granularity must be one of {GRANULARITIES}, got {granularity!r}")
        if base_loss not in BASE_LOSSES:
            raise ValueError(f"adaqat: base_loss must be one of {BASE_LOSSES}, got {base_loss!r}")
        if int(update_every) < 1:
            raise ValueError(f"adaqat: update_every must be >= 1, got {update_every!r}")
        if budget not in BUDGET_MODES:
            raise ValueError(f"adaqat: budget must be one of {BUDGET_MODES}, got {budget!r}")
        if min_bits <= 1:
            raise ValueError(f"adaqat: min_bits must be > 1 (ceil(N) - 1 must stay >= 1), got {min_bits!r}")
        self.lam, self.eta = float(lam), float(eta)
        self.granularity, self.base_loss = granularity, base_loss
        self.update_every, self.freeze_after = int(update_every), int(freeze_after)
        self.min_bits = float(min_bits)
        self.init_w, self.init_a = init_w, init_a
        self.budget = budget
        self._caps: Budget | None = None
        self._infos: dict[str, LayerInfo] = {}
        self.projections = 0  # updates whose step the projection changed
        self.pairs: list[BitPair] = []
        self._body: set[str] | None = None
        self._start: tuple[float | None, float | None] = (None, None)
        self._calls = 0
        self.updates = 0
        self.extra_forwards = 0

    # -- before training ---------------------------------------------------------------------
    def allocate(self, layers: list[LayerInfo], target: BitTarget, ctx: AllocationContext) -> dict[str, LayerBits]:
        """The initial bits: ceil(init_w), ceil(init_a), or the target when not given; under
        ``budget="hold"`` projected onto the budget (an init above the target comes down to it)."""
        n_w = float(self.init_w) if self.init_w is not None else float(target.w)
        n_a = float(self.init_a) if (self.init_a is not None and target.a < FP_BITS) else float(target.a)
        self._body = {layer.name for layer in layers}
        self._infos = {layer.name: layer for layer in layers}
        if self.budget == "hold" and layers:
            self._caps = ctx.budget if ctx.budget is not None else Budget.from_target(layers, target)
            n_w, n_a = hold_uniform(n_w, n_a, layers, self._caps, target, self.min_bits)
        self._start = (n_w, n_a)
        return {layer.name: LayerBits(ceil_bits(n_w), ceil_bits(n_a)) for layer in layers}

    def attach(self, model: nn.Module) -> None:
        """Group the body layers' quantizers into learned pairs and set them to ceil(N)."""
        layers = [(n, l) for n, l in quant_layers(model) if self._body is None or n in self._body]
        groups = [("network", layers)] if self.granularity == "network" else [(n, [(n, l)]) for n, l in layers]
        self.pairs = []
        for name, members in groups:
            wqs = [l.wq for _, l in members if l.wq is not None]
            aqs = [l.aq for _, l in members if l.aq is not None]
            self.pairs.append(BitPair(name, self._width(wqs, self._start[0]), self._width(aqs, self._start[1]),
                                      layers=[n for n, _ in members]))
        self._hold(self._sides())
        for pair in self.pairs:
            for bw in (pair.w, pair.a):
                if bw is not None:
                    bw.apply()

    @staticmethod
    def _width(quantizers: list[Quantizer], start: float | None) -> BitWidth | None:
        if not quantizers:
            return None
        return BitWidth(float(start) if start is not None else float(quantizers[0].bits), quantizers)

    def parameters(self) -> Iterable[nn.Parameter]:
        return ()  # N is learned by finite differences, not by the optimiser

    # -- during training ---------------------------------------------------------------------
    def after_step(self, ctx: StepContext) -> None:
        """One finite-difference update of every unfrozen bit-width on this minibatch."""
        self._calls += 1
        if self._calls % self.update_every:
            return
        active = [(pair, side, bw) for pair, side, bw in self._sides() if not bw.frozen]
        if not active:
            return
        with torch.no_grad():
            if self.base_loss == "recompute":
                base = float(ctx.loss_fn())
                self.extra_forwards += 1
            else:
                base = float(ctx.loss)
            lowered = [_loss_at(bw.quantizers, bw.bits - 1, ctx.loss_fn) for _, _, bw in active]
            self.extra_forwards += len(active)
        old = [bw.bits for _, _, bw in active]
        grads = [(base - low) + self.lam * BitPair.partner_bits(pair.a if side == "w" else pair.w)
                 for (pair, side, _), low in zip(active, lowered)]
        for (_, _, bw), g in zip(active, grads):  # simultaneous update: all g use the old bits
            bw.value = max(bw.value - self.eta * g, self.min_bits)
        stepped = [bw.value for _, _, bw in active]
        self._hold(active)
        self.projections += any(bw.value != v for (_, _, bw), v in zip(active, stepped))
        for (pair, side, bw), was in zip(active, old):
            self._commit(pair, side, bw, was, ctx.step)
        self.updates += 1

    def _sides(self) -> list[tuple[BitPair, str, BitWidth]]:
        return [(p, s, bw) for p in self.pairs for s, bw in (("w", p.w), ("a", p.a)) if bw is not None]

    def _hold(self, movable: list[tuple[BitPair, str, BitWidth]]) -> None:
        """Under ``budget="hold"``: project the bit-widths onto the budget, lowering only ``movable``."""
        if self._caps is not None:
            hold(self._sides(), self.pairs, self._infos, self._caps, [bw for _, _, bw in movable], self.min_bits)

    def _commit(self, pair: BitPair, side: str, bw: BitWidth, old: int, step: int) -> None:
        if bw.bits != old:
            if bw.bits > old:
                bw.ups += 1
                if bw.ups > self.freeze_after:
                    bw.frozen = True
            if len(pair.trace) < TRACE_LIMIT:
                pair.trace.append((int(step), side, bw.bits))
        bw.apply()

    # -- resume ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """What training changed outside the model: every pair's real-valued N, its ``ups`` count,
        frozen flag and trace, and the step / update / forward counters. Plain data only (the host
        saves it with each epoch checkpoint and loads it with ``weights_only=True``)."""
        def width(bw: BitWidth | None) -> dict[str, Any] | None:
            return None if bw is None else {"value": float(bw.value), "ups": int(bw.ups), "frozen": bool(bw.frozen)}

        return {
            "calls": self._calls, "updates": self.updates, "extra_forwards": self.extra_forwards,
            "projections": self.projections,
            "pairs": [{"name": p.name, "w": width(p.w), "a": width(p.a), "trace": [list(t) for t in p.trace]}
                      for p in self.pairs],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` after :meth:`attach` (the same model layout), and set every
        quantizer back to ceil(N), so a job killed mid-QAT resumes exactly where it stopped."""
        saved = {p["name"]: p for p in state.get("pairs", [])}
        mine = {p.name for p in self.pairs}
        if set(saved) != mine:
            raise ValueError(f"adaqat: saved bit-width pairs {sorted(saved)} do not match this model's {sorted(mine)}")
        for pair in self.pairs:
            entry = saved[pair.name]
            for side in ("w", "a"):
                bw, s = getattr(pair, side), entry[side]
                if (bw is None) != (s is None):
                    raise ValueError(f"adaqat: pair {pair.name!r} side {side!r} does not match the saved state")
                if bw is not None:
                    bw.value, bw.ups, bw.frozen = float(s["value"]), int(s["ups"]), bool(s["frozen"])
                    bw.apply()
            pair.trace = [(int(step), str(side), int(bits)) for step, side, bits in entry["trace"]]
        self._calls = int(state["calls"])
        self.updates = int(state["updates"])
        self.extra_forwards = int(state["extra_forwards"])
        self.projections = int(state.get("projections", 0))

    # -- after training ----------------------------------------------------------------------
    def report(self) -> dict[str, Any]:
        """Learned real N and integer bits (one value per side, or per layer for "layer")."""
        def side(attr: str, fn: Callable[[BitWidth], Any]) -> Any:
            vals = {p.name: fn(getattr(p, attr)) for p in self.pairs if getattr(p, attr) is not None}
            return vals.get("network") if self.granularity == "network" else vals

        facts: dict[str, Any] = {
            "granularity": self.granularity, "lam": self.lam, "eta": self.eta,
            "update_every": self.update_every, "updates": self.updates, "extra_forwards": self.extra_forwards,
            "budget": self.budget, "projections": self.projections,
        }
        for s in ("w", "a"):
            facts[f"N_{s}"] = side(s, lambda bw: round(bw.value, 4))
            facts[f"bits_{s}"] = side(s, lambda bw: bw.bits)
            facts[f"frozen_{s}"] = side(s, lambda bw: bw.frozen)
            facts[f"ups_{s}"] = side(s, lambda bw: bw.ups)
        facts["trace"] = {p.name: p.trace for p in self.pairs if p.trace}
        return {"adaqat": facts}
