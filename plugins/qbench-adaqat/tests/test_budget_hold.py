"""adaqat v4's budget-holding mode: after every step of a real QAT run the bits meet the budget
the leaderboard judges (bits per weight, activation bits, BitOPs), where the paper's rule alone
("free") leaves it on the first steps; the projection is a clamp for one pair per network."""
from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from qbench_adaqat import AdaQATAllocator
from qbench_adaqat.budget import project

from qbench.api import BitTarget, Budget, LayerBits, StepContext, frozen_bn_stats, quant_layers
from qbench.testing import TrainRecipe, fp_model, get_catalog, prepare, tiny_digits, train


def _run(target: BitTarget, **allocator: object) -> tuple[list[dict], AdaQATAllocator, Budget]:
    """adaqat through the host's prepare() and training loop (tiny ResNet-20, real digits);
    the budget's excess after every step."""
    cat = get_catalog()
    method = cat.methods.get("adaqat")
    method = dataclasses.replace(method, params={**method.params,
                                                 "allocator": {**method.params["allocator"], **allocator}})
    data = tiny_digits(n_train=512)
    qmodel, layers, alloc = prepare(method, cat, fp_model("resnet20"), data, target, "fp", 0)
    body = [la for la in layers if la.role == "body"]
    budget = Budget.from_target(body, target)
    quant = dict(quant_layers(qmodel))
    seen: list[dict] = []

    def after_step(x: torch.Tensor, y: torch.Tensor, loss: float, step: int, epoch: int) -> None:
        def loss_fn() -> float:  # as the host's QAT step hands it over
            with torch.no_grad(), frozen_bn_stats(qmodel):
                return float(F.cross_entropy(qmodel(x), y))
        alloc.after_step(StepContext(qmodel, x, y, loss, step, epoch, loss_fn))
        plan = {la.name: LayerBits(quant[la.name].wq.bits, quant[la.name].aq.bits) for la in body}
        seen.append(budget.excess(body, plan))

    train(qmodel, lambda x, y: F.cross_entropy(qmodel(x), y), data, TrainRecipe(epochs=2, batch_size=64, lr=0.05),
          seed=0, after_step=after_step)
    assert alloc.updates == len(seen) == 16
    return seen, alloc, budget


@pytest.mark.parametrize("target,granularity", [(BitTarget(2, 2), "network"), (BitTarget(3, 3), "network"),
                                                (BitTarget(3, 3), "layer")], ids=str)
def test_hold_meets_the_budget_after_every_step(target: BitTarget, granularity: str) -> None:
    seen, alloc, _ = _run(target, granularity=granularity, lam=0.005)
    assert all(not any(e.values()) for e in seen), seen
    rep = alloc.report()["adaqat"]
    assert rep["budget"] == "hold" and rep["projections"] > 0  # the paper's step did push over the budget


def test_free_is_the_papers_rule_and_leaves_the_budget() -> None:
    seen, alloc, _ = _run(BitTarget(2, 2), budget="free", lam=0.005)
    assert any(any(e.values()) for e in seen)  # lowering to 1 bit costs more loss than lambda saves
    assert alloc.report()["adaqat"]["projections"] == 0


def test_network_projection_is_a_clamp_and_the_floor_is_checked() -> None:
    def box(bits: list[int]) -> dict[str, float]:  # the suite's caps on one pair: N_w <= 4, N_a <= 3
        return {"w_bits": max(bits[0] - 4, 0) / 4, "a_bits": max(bits[1] - 3, 0) / 3}
    assert project([5.7, 2.4], [0, 1], 1.5, box) == [4.0, 2.4]
    assert project([4.0, 3.01], [0, 1], 1.5, box) == [4.0, 3.0]
    assert project([3.2, 2.9], [0, 1], 1.5, box) == [3.2, 2.9]  # within budget: untouched
    with pytest.raises(ValueError, match="no bit-width can be lowered"):
        project([2.0, 2.0], [0, 1], 1.5, lambda b: {"w_bits": 0.5})


def test_layer_projection_undoes_the_nearest_rise_first() -> None:
    """Two layers sharing a cap of 8 bits, at 4 + 5 after the step: the one the step just took over
    an integer boundary (3.05, back to 3 at a move of 0.05) goes down, not the one at 4.6."""
    def cap(bits: list[int]) -> dict[str, float]:
        return {"w_bits": max(sum(bits) - 8, 0) / 8}
    assert project([3.05, 4.6], [0, 1], 1.5, cap) == [3.0, 4.6]
    assert project([2.2, 5.9], [1], 1.5, cap) == [2.2, 5.0]  # only movable ones move
