"""``adq-sensitivity``: ADQ's sensitivity-informed mixed-precision allocation (usable with any
weight quantizer).

The paper allocates bits per layer from a sensitivity score under an average-bit budget; the
metric and the solver are not specified by the paper. qbench uses:

* Sensitivity of layer l at b bits: S_l(b) = F_l * ||Q_b(w_l) - w_l||^2, where
  F_l = (1/B) sum over the B calibration batches of mean_i (dL/dw_{l,i})^2 (empirical Fisher
  from mini-batch gradients of the cross-entropy, on a deep copy of the FP model in eval mode),
  and Q_b is the method's own weight quantizer (``ctx.make_weight_quantizer(b, module)``,
  initialised on w with ``.initialize(w)``; its hard weight). F_l * ||dw||^2 is the second-order
  loss increase under a diagonal Fisher approximated by its layer mean. Without a weight
  quantizer factory qbench falls back to uniform symmetric round-to-nearest on max|w|.
* Greedy solver: every layer starts at the smallest candidate; repeatedly take the single-layer
  upgrade to the next candidate with the largest sensitivity decrease per added weight-bit
  (S_l(b) - S_l(b')) / (numel_l (b' - b)) among the upgrades that keep the parameter-weighted
  average sum_l numel_l b_l / sum_l numel_l <= budget; stop when none fits. So the average is
  <= budget, and no further single upgrade fits (it is within one upgrade step of the budget).
* Budget: ``budget`` (default: the suite's target weight bits; the paper reports 2.81).
  Candidates: ``candidates`` (default 1, 2, 3, 4, 5, 6, 8 since adq v3): they must straddle the
  budget for the allocation to be mixed: with 2..8 a 2-bit budget equals the smallest candidate
  and every layer got 2 bits. Activation bits: the target's.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from qbench.api import AllocationContext, BitAllocator, BitTarget, LayerBits, LayerInfo, QbenchError


def empirical_fisher(fp_model: nn.Module, names: Sequence[str], batches: Sequence[tuple[Tensor, Tensor]],
                     max_batches: int | None = None) -> dict[str, float]:
    """F_l = mean over batches of mean_i (dL/dw_{l,i})^2, on a deep copy of ``fp_model``."""
    model = copy.deepcopy(fp_model).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    modules = dict(model.named_modules())
    weights = [modules[n].weight for n in names]
    for w in weights:
        w.requires_grad_(True)
    device = weights[0].device if weights else torch.device("cpu")
    acc = [0.0] * len(names)
    used = list(batches)[:max_batches] if max_batches else list(batches)
    for x, y in used:
        loss = F.cross_entropy(model(x.to(device)), y.to(device))
        grads = torch.autograd.grad(loss, weights, allow_unused=True)
        for i, g in enumerate(grads):
            acc[i] += 0.0 if g is None else float(g.detach().double().pow(2).mean())
    n = max(len(used), 1)
    return {name: acc[i] / n for i, name in enumerate(names)}


def _uniform_error(w: Tensor, bits: int) -> float:
    q_p = max(2 ** (bits - 1) - 1, 1)
    s = w.abs().max().clamp_min(1e-12) / q_p
    return float(((torch.clamp(torch.round(w / s), -q_p - 1, q_p) * s - w) ** 2).sum())


def quant_error(ctx: AllocationContext, module: nn.Module, bits: int) -> float:
    """||Q_b(w) - w||^2 with the method's weight quantizer at ``bits``."""
    w = module.weight.detach()
    if ctx.make_weight_quantizer is None:
        return _uniform_error(w, bits)
    q = ctx.make_weight_quantizer(bits, module)
    q.initialize(w)
    return float(((q.hard(w) - w).double() ** 2).sum())


def greedy_allocate(numel: dict[str, int], sens: dict[str, dict[int, float]], candidates: Sequence[int],
                    budget: float) -> dict[str, int]:
    """Greedy upgrades by sensitivity decrease per weight-bit under a parameter-weighted budget."""
    cands = sorted(set(int(c) for c in candidates))
    total = sum(numel.values())
    cap = budget * total * (1 + 1e-12)
    level = {n: 0 for n in numel}
    used = cands[0] * total
    if used > cap:
        raise QbenchError(f"adq-sensitivity: budget {budget} is below the smallest candidate bit-width "
                          f"{cands[0]}; lower the candidates or raise the budget.")
    while True:
        best: tuple[float, str] | None = None
        for name in numel:  # ties go to the earlier layer
            i = level[name]
            if i + 1 >= len(cands):
                continue
            cost = numel[name] * (cands[i + 1] - cands[i])
            if used + cost > cap:
                continue
            ratio = (sens[name][cands[i]] - sens[name][cands[i + 1]]) / cost
            if best is None or ratio > best[0]:
                best = (ratio, name)
        if best is None:
            break
        name = best[1]
        used += numel[name] * (cands[level[name] + 1] - cands[level[name]])
        level[name] += 1
    return {n: cands[i] for n, i in level.items()}


class ADQSensitivityAllocator(BitAllocator):
    """Fisher x quantisation-error sensitivity, greedy allocation under an average-bit budget.

    :param candidates: the bit-widths a layer may get.
    :param budget: parameter-weighted average weight bits (default: the target's weight bits).
    :param max_batches: use at most this many calibration batches for the Fisher (default all).
    """

    def __init__(self, candidates: Sequence[int] = (1, 2, 3, 4, 5, 6, 8), budget: float | None = None,
                 max_batches: int | None = None) -> None:
        if not candidates:
            raise QbenchError("adq-sensitivity: candidates must not be empty.")
        self.candidates = tuple(sorted(set(int(c) for c in candidates)))
        self.budget = None if budget is None else float(budget)
        self.max_batches = max_batches
        self._report: dict[str, Any] = {}

    def allocate(self, layers: list[LayerInfo], target: BitTarget, ctx: AllocationContext) -> dict[str, LayerBits]:
        if not layers:
            return {}
        budget = float(target.w) if self.budget is None else self.budget
        names = [layer.name for layer in layers]
        modules = ctx.modules or dict(ctx.fp_model.named_modules())
        fisher = (empirical_fisher(ctx.fp_model, names, ctx.calib_batches, self.max_batches)
                  if ctx.calib_batches else {n: 1.0 for n in names})
        sens = {n: {b: fisher[n] * quant_error(ctx, modules[n], b) for b in self.candidates} for n in names}
        numel = {layer.name: layer.weight_numel for layer in layers}
        bits = greedy_allocate(numel, sens, self.candidates, budget)
        avg = sum(numel[n] * bits[n] for n in names) / sum(numel.values())
        self._report = {"adq_budget": budget, "adq_avg_weight_bits": avg, "adq_fisher": fisher,
                        "adq_weight_bits": dict(bits)}
        return {n: LayerBits(bits[n], target.a) for n in names}

    def report(self) -> dict[str, Any]:
        return dict(self._report)
