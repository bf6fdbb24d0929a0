"""Defining properties of the ``adq-sensitivity`` allocator and the ``adq`` method."""
from __future__ import annotations

import copy

import torch
from qbench_adq import ADQSensitivityAllocator, ADQWeightQuantizer
from qbench_adq.allocator import empirical_fisher
from torch import nn

from qbench.api import AllocationContext, BitTarget, LayerInfo, quant_layers, quantize_model
from qbench.testing import get_catalog


class TwoBranch(nn.Module):
    """logits = ka * a(x) + kb * b(x): equal layers, the larger factor makes a layer more sensitive."""

    def __init__(self, ka: float, kb: float) -> None:
        super().__init__()
        self.a, self.b, self.ka, self.kb = nn.Linear(16, 10), nn.Linear(16, 10), ka, kb
        self.b.load_state_dict(self.a.state_dict())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ka * self.a(x) + self.kb * self.b(x)


class Deep(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.l1, self.l2, self.l3, self.l4 = nn.Linear(12, 40), nn.Linear(40, 24), nn.Linear(24, 16), nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.l4(torch.relu(self.l3(torch.relu(self.l2(torch.relu(self.l1(x)))))))


def _infos(model: nn.Module, names: list[str]) -> list[LayerInfo]:
    mods = dict(model.named_modules())
    return [LayerInfo(n, "linear", "body", mods[n].weight.numel(), mods[n].out_features,
                      mods[n].in_features, mods[n].weight.numel()) for n in names]


def _ctx(model: nn.Module, in_dim: int, classes: int, make=None) -> AllocationContext:
    torch.manual_seed(0)
    batches = [(torch.randn(32, in_dim), torch.randint(0, classes, (32,))) for _ in range(3)]
    make = make or (lambda b, m: ADQWeightQuantizer(b, m))
    return AllocationContext(fp_model=model, calib_batches=batches, make_weight_quantizer=make, seed=0,
                             modules=dict(model.named_modules()))


def test_more_sensitive_layer_gets_more_bits_either_way_round():
    torch.manual_seed(0)
    for ka, kb, rich, poor in ((3.0, 0.05, "a", "b"), (0.05, 3.0, "b", "a")):
        model = TwoBranch(ka, kb)
        alloc = ADQSensitivityAllocator(candidates=(2, 3, 4), budget=3)
        plan = alloc.allocate(_infos(model, ["a", "b"]), BitTarget(3, 4), _ctx(model, 16, 10))
        assert plan[rich].w == 4 and plan[poor].w == 2, plan
        assert plan[rich].a == 4 and plan[poor].a == 4  # activation bits = target.a
        fisher = alloc.report()["adq_fisher"]
        assert fisher[rich] > 100 * fisher[poor]


def test_budget_met_and_within_one_upgrade_step():
    torch.manual_seed(1)
    model = Deep()
    names = ["l1", "l2", "l3", "l4"]
    infos = _infos(model, names)
    numel = {i.name: i.weight_numel for i in infos}
    total = sum(numel.values())
    cands = (2, 3, 4, 5, 6, 8)
    make_lsq = get_catalog().quantizers.get("lsq-w").factory  # usable with any weight quantizer
    for budget, make in ((2.81, None), (4.0, None), (3.3, lambda b, m: make_lsq(b, m))):
        plan = ADQSensitivityAllocator(candidates=cands, budget=budget).allocate(
            infos, BitTarget(4, 4), _ctx(model, 12, 5, make))
        avg = sum(numel[n] * plan[n].w for n in names) / total
        assert avg <= budget + 1e-9
        for n in names:  # no single further upgrade fits: within one step of the budget
            b = plan[n].w
            if b != cands[-1]:
                nxt = cands[cands.index(b) + 1]
                assert avg + numel[n] * (nxt - b) / total > budget
        assert budget - avg < max(numel.values()) * 2 / total


def test_two_bit_budget_is_mixed_precision_at_a_two_bit_average():
    """The default candidates (1..8, adq v3) straddle a 2-bit budget: layers get fewer AND more
    than 2 bits, the parameter-weighted average is <= 2.0 and within one upgrade step of it
    (with the v2 candidates 2..8 every layer got exactly 2)."""
    torch.manual_seed(5)
    model = Deep()
    names = ["l1", "l2", "l3", "l4"]
    infos = _infos(model, names)
    numel = {i.name: i.weight_numel for i in infos}
    total = sum(numel.values())
    method = get_catalog().methods.get("adq")
    alloc = get_catalog().allocators.get(method.allocator).factory(**method.part_params("allocator"))
    assert min(alloc.candidates) < 2 < max(alloc.candidates)
    plan = alloc.allocate(infos, BitTarget(2, 2), _ctx(model, 12, 5))
    bits = [plan[n].w for n in names]
    avg = sum(numel[n] * plan[n].w for n in names) / total
    assert min(bits) < 2 < max(bits), bits
    assert 2.0 - max(numel.values()) * 2 / total < avg <= 2.0 + 1e-9
    assert all(plan[n].a == 2 for n in names)
    old = ADQSensitivityAllocator(candidates=(2, 3, 4, 5, 6, 8)).allocate(infos, BitTarget(2, 2), _ctx(model, 12, 5))
    assert {old[n].w for n in names} == {2}


def test_default_budget_is_target_weight_bits():
    torch.manual_seed(2)
    model = Deep()
    infos = _infos(model, ["l1", "l2", "l3"])
    alloc = ADQSensitivityAllocator(candidates=(2, 3, 4, 5, 6, 8))
    plan = alloc.allocate(infos, BitTarget(3, 3), _ctx(model, 12, 5))
    total = sum(i.weight_numel for i in infos)
    avg = sum(i.weight_numel * plan[i.name].w for i in infos) / total
    assert alloc.report()["adq_budget"] == 3.0 and avg <= 3.0


def test_fisher_is_mean_squared_gradient_on_a_copy():
    torch.manual_seed(3)
    model = Deep()
    snapshot = copy.deepcopy(model.state_dict())
    ctx = _ctx(model, 12, 5)
    fisher = empirical_fisher(model, ["l2"], ctx.calib_batches)
    ref = 0.0
    for x, y in ctx.calib_batches:
        m = copy.deepcopy(model)
        nn.functional.cross_entropy(m(x), y).backward()
        ref += float(m.l2.weight.grad.pow(2).mean())
    assert abs(fisher["l2"] - ref / 3) <= 1e-6 * ref
    assert all(p.grad is None and p.requires_grad for p in model.parameters())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in snapshot.items())


def test_method_adq_composes_registered_parts_and_trains():
    cat = get_catalog()
    method = cat.methods.get("adq")
    cat.check_method(method)
    assert (method.weight_quantizer, method.activation_quantizer, method.allocator, method.wrapper) == \
        ("adq-w", "n2uq-a", "adq-sensitivity", "kd")
    assert cat.plugin_of(cat.quantizers, "n2uq-a") != cat.plugin_of(cat.quantizers, "adq-w")
    torch.manual_seed(4)
    fp = Deep()
    model = copy.deepcopy(fp)
    wq = cat.quantizers.get("adq-w").factory
    aq = cat.quantizers.get("n2uq-a").factory
    make_w = lambda b, m: wq(b, m, **method.part_params("weight"))  # noqa: E731
    alloc = cat.allocators.get(method.allocator).factory(**method.part_params("allocator"))
    plan = alloc.allocate(_infos(fp, ["l2", "l3"]), BitTarget(3, 3), _ctx(fp, 12, 5, make_w))
    quantize_model(model, plan, make_w, lambda b, m: aq(b, m, **method.part_params("activation")))
    wrapper = cat.wrappers.get(method.wrapper).factory(**method.part_params("wrapper"))
    wrapper.setup(model, fp.eval())
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = torch.randn(32, 12), torch.randint(0, 5, (32,))
    layers = dict(quant_layers(model))
    for _ in range(3):
        loss = wrapper.loss(model, x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    for name, layer in layers.items():
        assert torch.unique(layer.hard_weight()).numel() <= 2 ** plan[name].w
        assert layer.aq.widths_raw.grad is not None
