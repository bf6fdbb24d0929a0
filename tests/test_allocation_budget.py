"""The budget a row is judged by reaches every allocator (``AllocationContext.budget``), and each
row says which budgeted cost its final allocation left no room on (``budget_bound``)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest
import tomllib
import torch

from qbench import hookimpl
from qbench.api import AllocationContext, BitAllocator, BitTarget, Budget, LayerBits, LayerInfo, Method
from qbench.models import create_model
from qbench.plugin.catalog import Catalog
from qbench.report.budget import budget_bound, flag_row
from qbench.run.suite import parse_suite
from qbench.testing import load_digits, run_suite, tiny_suite
from qbench.train.audit import target_bitops
from qbench.train.qat import prepare
from qbench.train.surgery import find_layers


class Recording(BitAllocator):
    """The target's bits, ``lower`` bits fewer on the body layer with the most weights; records
    what it was given."""

    seen: list[tuple[list[LayerInfo], BitTarget, Budget | None]] = []

    def __init__(self, lower: int = 0) -> None:
        self.lower = lower

    def allocate(self, layers: list[LayerInfo], target: BitTarget, ctx: AllocationContext) -> dict[str, LayerBits]:
        Recording.seen.append((layers, target, ctx.budget))
        plan = {la.name: LayerBits(target.w, target.a) for la in layers}
        big = max(layers, key=lambda la: la.weight_numel).name
        plan[big] = LayerBits(target.w - self.lower, target.a)
        return plan


class _Plugin:
    @hookimpl
    def qbench_register_bit_allocators(self, register: Callable[..., None]) -> None:
        register("recording", Recording)

    @hookimpl
    def qbench_register_methods(self, register: Callable[..., None]) -> None:
        for name, lower in (("toy-rec", 0), ("toy-lower", 1)):
            register(Method(name=name, version=1, weight_quantizer="toy-w", activation_quantizer="toy-a",
                            allocator="recording", params={"allocator": {"lower": lower}}))


@pytest.fixture
def budget_catalog() -> Catalog:
    from toy_plugin import toy_catalog

    return toy_catalog(_Plugin())


def _resnet20_body() -> list[LayerInfo]:
    torch.manual_seed(0)
    model = create_model("resnet20", 10, 1)
    return [la for la in find_layers(model, torch.zeros(1, 1, 8, 8)) if la.role == "body"]


def test_budget_from_target_is_the_body_part_of_what_the_leaderboard_judges() -> None:
    body = _resnet20_body()
    b = Budget.from_target(body, BitTarget(2, 2))
    assert (b.w_bits, b.a_bits) == (2.0, 2.0)
    audit = [{"name": la.name, "role": "body", "macs": la.macs, "w_bits": 2, "a_bits": 2} for la in body]
    assert b.bitops == target_bitops(audit, 2, 2)  # the row's target_gbitops on the same layers
    assert Budget.from_target(body, BitTarget(2, 32)).bitops == target_bitops(audit, 2, 32)  # weight-only
    uniform = {la.name: LayerBits(2, 2) for la in body}
    assert b.fits(body, uniform) and b.bound(body, uniform) == "both"


def test_bound_names_the_cost_that_left_no_room_for_one_more_weight_bit() -> None:
    # "a": many weights, few MACs (a late conv); "b": few weights, many MACs (an early conv)
    layers = [LayerInfo("a", "conv", "body", 1000, 1, 1, 100), LayerInfo("b", "conv", "body", 100, 1, 1, 1000)]
    b = Budget.from_target(layers, BitTarget(4, 4))  # 4 bits a weight; 4 x 4 x 1100 BitOPs

    def plan(wa: int, wb: int, aa: int = 4, ab: int = 4) -> dict[str, LayerBits]:
        return {"a": LayerBits(wa, aa), "b": LayerBits(wb, ab)}
    assert b.bound(layers, plan(4, 4)) == "both" and b.fits(layers, plan(4, 4))
    assert b.bound(layers, plan(3, 3)) == "none" and b.fits(layers, plan(3, 3))
    assert b.bound(layers, plan(4, 4, ab=2)) == "bits"  # bits per weight full, BitOPs at 55 %
    assert b.bound(layers, plan(2, 4, aa=8)) == "bitops"  # BitOPs full, bits per weight at 2.2
    assert b.excess(layers, plan(2, 4, aa=8))["a_bits"] == pytest.approx(0.5)  # A capped too, not in bound
    over = plan(2, 5)
    assert not b.fits(layers, over) and b.excess(layers, over)["bitops"] == pytest.approx(20800 / 17600 - 1)
    assert b.bound(layers, over) == "bitops"  # exceeded counts as bound (over_budget says the rest)
    assert b.only("w_bits").fits(layers, over) and b.scaled(2.0).bitops == b.bitops / 2
    # within a tolerance of the cap: bound (a layer could take one bit, but the allocator stopped there)
    assert b.bound(layers, plan(3, 3, ab=5)) == "none"  # BitOPs 1200 + 15000 of 17600
    assert b.bound(layers, plan(3, 3, ab=5), bitops_rtol=0.1) == "bitops"
    assert b.bound(layers, plan(3, 4), bits_tol=0.1) == "none"  # 3.09 bits per weight: 0.91 left


def test_the_host_hands_every_allocator_the_budget(budget_catalog: Catalog) -> None:
    data = load_digits()
    torch.manual_seed(0)
    fp = create_model("resnet20", 10, 1, width=4).eval()
    method = budget_catalog.methods.get("toy-rec")
    for target in (BitTarget(2, 2), BitTarget(3, 32)):
        Recording.seen.clear()
        prepare(method, budget_catalog, fp, data, target, "fp", 0)
        (layers, seen_target, budget), = Recording.seen
        assert seen_target == target and budget == Budget.from_target(layers, target)
        assert all(la.role == "body" for la in layers)


def test_flag_row_sets_budget_bound_from_the_final_allocation() -> None:
    layers = [{"name": "conv1", "role": "first", "macs": 100, "w_bits": 32, "a_bits": 32, "weight_numel": 10},
              {"name": "b1", "role": "body", "macs": 1000, "w_bits": 2, "a_bits": 2, "weight_numel": 100},
              {"name": "b2", "role": "body", "macs": 1000, "w_bits": 2, "a_bits": 2, "weight_numel": 100}]
    r: dict[str, Any] = {"status": "ok", "bits": "W2A2", "w_bits_target": 2, "a_bits_target": 2, "layers": layers}
    assert flag_row(dict(r), 10)["budget_bound"] == "both"
    lower = [dict(la, w_bits=1) if la["name"] == "b1" else la for la in layers]
    assert budget_bound(dict(r, layers=lower)) == "none"
    assert budget_bound(dict(r, bits="fp32")) == "" and budget_bound(dict(r, status="failed")) == ""
    assert budget_bound({k: v for k, v in r.items() if k != "layers"}) == ""


def test_each_row_of_a_run_says_which_cost_bound(budget_catalog: Catalog, tmp_path: Path) -> None:
    suite = parse_suite(tomllib.loads(tiny_suite(methods=("fp32", "toy-rec", "toy-lower"), bits=("W2A2",),
                                                 fp_epochs=1)))
    rows = {r["method"]: r for r in run_suite(suite, ["fp32", "toy-rec", "toy-lower"], tmp_path, budget_catalog)}
    assert {m: r["status"] for m, r in rows.items()} == {"fp32": "ok", "toy-rec": "ok", "toy-lower": "ok"}
    assert rows["fp32"]["budget_bound"] == ""
    assert rows["toy-rec"]["budget_bound"] == "both"  # every body layer at the target
    assert rows["toy-lower"]["budget_bound"] == "none"  # over the tolerance to spare on both costs
