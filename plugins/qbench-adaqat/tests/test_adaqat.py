"""AdaQAT's defining properties: ceil semantics, the finite-difference rule without autograd,
lambda trading bits for loss, freezing, the floor, and per-layer pairs."""
from __future__ import annotations

import io
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from qbench_adaqat import AdaQATAllocator, ceil_bits
from qbench_dorefa import DoReFaWeightQuantizer
from qbench_pact import PACTActQuantizer
from torch import nn

from qbench.api import AllocationContext, BitTarget, LayerBits, StepContext, find_layers, quantize_model
from qbench.testing import TrainRecipe, get_catalog, load_digits, tiny_digits, train

BODY = ["conv2", "conv3"]


class TinyNet(nn.Module):
    """conv1 (first) -> conv2, conv3 (body) -> fc (last), for 1x8x8 digits."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(16)
        self.conv3 = nn.Conv2d(16, 16, 3, padding=1, stride=2)
        self.bn3 = nn.BatchNorm2d(16)
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = F.relu(self.bn3(self.conv3(x)))
        return self.fc(x.mean((2, 3)))


def build(alloc: AdaQATAllocator, target: BitTarget = BitTarget(4, 4), edge_bits: int | None = 8,
          seed: int = 0) -> nn.Module:
    """A TinyNet quantized with dorefa-w / pact-a, body bits from ``alloc``, first/last at ``edge_bits``."""
    torch.manual_seed(seed)
    model = TinyNet()
    layers = find_layers(model, torch.zeros(1, 1, 8, 8))
    body = [layer for layer in layers if layer.role == "body"]
    assert [layer.name for layer in body] == BODY
    ctx = AllocationContext(fp_model=model, calib_batches=[], make_weight_quantizer=None, seed=seed)
    plan = dict(alloc.allocate(body, target, ctx))
    for layer in layers:
        if layer.role != "body" and edge_bits is not None:
            plan[layer.name] = LayerBits(edge_bits, edge_bits)
    quantize_model(model, plan, lambda b, m: DoReFaWeightQuantizer(b, m),
                   lambda b, m: PACTActQuantizer(b, m, init_alpha="max"))
    model(torch.randn(8, 1, 8, 8))  # activation quantizers initialise from a first batch
    alloc.attach(model)
    return model


def bits_of(model: nn.Module) -> dict[str, tuple[int, int]]:
    return {n: (getattr(model, n).wq.bits, getattr(model, n).aq.bits) for n in ("conv1", *BODY, "fc")}


def step_ctx(model: nn.Module, loss_fn: Callable[[], float], step: int = 0) -> StepContext:
    return StepContext(model, torch.zeros(1), torch.zeros(1), 0.0, step, 0, loss_fn)


def synthetic(model: nn.Module, per_bit: dict[str, float]) -> Callable[[], float]:
    """A loss that depends only on the body quantizers' bits: sum of -c * bits (more bits, lower loss)."""
    def loss_fn() -> float:
        total = 0.0
        for name in BODY:
            layer = getattr(model, name)
            total -= per_bit.get(f"{name}.w", 0.0) * layer.wq.bits + per_bit.get(f"{name}.a", 0.0) * layer.aq.bits
        return total
    return loss_fn


def test_ceil_semantics() -> None:
    assert [ceil_bits(v) for v in (3.0, 3.01, 2.99, 1.5, 2.0)] == [3, 4, 3, 2, 2]
    # N = 3.0 exactly runs at 3 bits
    alloc = AdaQATAllocator(lam=0.0, eta=0.1, init_w=3, init_a=3)
    model = build(alloc)
    assert all(bits_of(model)[n] == (3, 3) for n in BODY)
    # L(N) - L(N - 1) = -0.1 with lambda = 0: N goes 3.0 -> 3.01, and every body op now uses 4 bits
    all_sides = {f"{n}.{s}": 0.1 / len(BODY) for n in BODY for s in "wa"}
    alloc.after_step(step_ctx(model, synthetic(model, all_sides)))
    assert alloc.pairs[0].w.value == pytest.approx(3.01) and alloc.pairs[0].a.value == pytest.approx(3.01)
    assert all(bits_of(model)[n] == (4, 4) for n in BODY)
    # the first/last layers keep the suite's rule
    assert bits_of(model)["conv1"] == (8, 8) and bits_of(model)["fc"] == (8, 8)
    # g = -0.1 + lambda * 3 = +0.1: N goes 3.0 -> 2.99, still 3 bits (ceil, not round or floor)
    alloc2 = AdaQATAllocator(lam=0.2 / 3, eta=0.1, init_w=3, init_a=3)
    model2 = build(alloc2)
    alloc2.after_step(step_ctx(model2, synthetic(model2, all_sides)))
    assert alloc2.pairs[0].w.value == pytest.approx(2.99)
    assert all(bits_of(model2)[n] == (3, 3) for n in BODY)


def test_finite_difference_builds_no_graph_and_changes_no_parameter() -> None:
    alloc = AdaQATAllocator(lam=0.02, eta=0.1)
    model = build(alloc)
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))
    F.cross_entropy(model(x), y).backward()  # leave real .grad values in place
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    seen: list[tuple[bool, bool, tuple[int, int]]] = []

    def loss_fn() -> float:  # deliberately no torch.no_grad() here: the allocator must provide it
        out = F.cross_entropy(model(x), y)
        seen.append((torch.is_grad_enabled(), out.grad_fn is not None, bits_of(model)["conv2"]))
        return float(out)

    alloc.after_step(StepContext(model, x, y, 2.3, 0, 0, loss_fn))
    assert len(seen) == 3  # L(Nw, Na) recomputed, then L(Nw - 1, Na) and L(Nw, Na - 1)
    assert all(not grad_on and not has_graph for grad_on, has_graph, _ in seen)
    assert sorted(b for *_, b in seen) == [(3, 4), (4, 3), (4, 4)]
    for n, p in model.named_parameters():
        assert torch.equal(p.detach(), params[n]), n
        if n in grads:
            assert torch.equal(p.grad, grads[n]), n
    assert all(bits_of(model)[n] == (ceil_bits(alloc.pairs[0].w.value), ceil_bits(alloc.pairs[0].a.value))
               for n in BODY)  # bits restored to ceil(N) after the probes
    # base_loss="step" reuses the training loss: one forward fewer
    alloc_step = AdaQATAllocator(base_loss="step")
    model_s = build(alloc_step)
    calls: list[int] = []
    alloc_step.after_step(step_ctx(model_s, lambda: calls.append(1) or 0.0))
    assert len(calls) == 2 and alloc_step.extra_forwards == 2


def _train_digits(lam: float, steps: int = 36, seed: int = 0) -> dict:
    data = load_digits()
    xtr, ytr = data.train.tensors
    alloc = AdaQATAllocator(lam=lam, eta=0.1)
    model = build(alloc, seed=seed, edge_bits=None)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    gen = torch.Generator().manual_seed(seed)
    for step in range(steps):
        idx = torch.randint(0, len(ytr), (64,), generator=gen)
        x, y = xtr[idx], ytr[idx]
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        alloc.after_step(StepContext(model, x, y, loss.item(), step, 0,
                                     lambda x=x, y=y: float(F.cross_entropy(model(x), y))))
    rep = alloc.report()["adaqat"]
    assert rep["bits_w"] == model.conv2.wq.bits and rep["bits_a"] == model.conv3.aq.bits
    assert rep["updates"] == steps
    return rep


def test_larger_lambda_ends_at_fewer_bits_on_digits() -> None:
    small, large = _train_digits(lam=0.005), _train_digits(lam=0.2)
    assert large["bits_w"] + large["bits_a"] < small["bits_w"] + small["bits_a"]
    assert large["N_w"] < small["N_w"] and large["N_a"] < small["N_a"]
    # the floor: N >= 1.5, so never fewer than 2 bits
    assert large["N_w"] >= 1.5 and large["bits_w"] >= 2 and large["bits_a"] >= 2


def test_floor_keeps_at_least_two_bits() -> None:
    alloc = AdaQATAllocator(lam=1.0, eta=0.5)
    model = build(alloc)
    for step in range(10):
        alloc.after_step(step_ctx(model, lambda: 0.0, step))
    assert alloc.pairs[0].w.value == 1.5 and alloc.pairs[0].a.value == 1.5
    assert all(bits_of(model)[n] == (2, 2) for n in BODY)


def test_frozen_bit_widths_stop_moving() -> None:
    alloc = AdaQATAllocator(lam=0.02, eta=0.5, freeze_after=2, budget="free")  # the paper's rule: N may rise
    model = build(alloc)
    all_sides = {f"{n}.{s}": 0.5 for n in BODY for s in "wa"}  # lower bits cost a lot: N rises
    calls = []
    base = synthetic(model, all_sides)

    def loss_fn() -> float:
        calls.append(1)
        return base()

    step = 0
    while not (alloc.pairs[0].w.frozen and alloc.pairs[0].a.frozen):
        alloc.after_step(step_ctx(model, loss_fn, step))
        step += 1
        assert step < 100
    w = alloc.pairs[0].w
    assert w.ups == 3 and w.bits == 4 + 3  # frozen once the integer went up more than 2 times
    frozen_value, frozen_bits, n_calls = w.value, bits_of(model), len(calls)
    for more in range(5):
        alloc.after_step(step_ctx(model, loss_fn, step + more))
    assert w.value == frozen_value and bits_of(model) == frozen_bits
    assert len(calls) == n_calls  # a fully frozen allocator costs no extra forward
    assert alloc.report()["adaqat"]["frozen_w"] is True


def test_layer_granularity_learns_one_pair_per_layer() -> None:
    alloc = AdaQATAllocator(lam=0.3, eta=0.5, granularity="layer")
    model = build(alloc)
    assert [p.name for p in alloc.pairs] == BODY
    calls = []
    base = synthetic(model, {"conv2.w": 2.0})  # only conv2's weights matter to the loss

    def loss_fn() -> float:
        calls.append(bits_of(model))
        return base()

    for step in range(4):
        alloc.after_step(step_ctx(model, loss_fn, step))
    assert len(calls) == 4 * (1 + 2 * len(BODY))  # base + each side of each layer lowered alone
    lowered = [c for c in calls[1:5]]
    assert sum(c["conv2"] != (4, 4) for c in lowered) == 2 and sum(c["conv3"] != (4, 4) for c in lowered) == 2
    assert all(c["conv2"] == (4, 4) or c["conv3"] == (4, 4) for c in lowered)  # one layer at a time
    rep = alloc.report()["adaqat"]
    assert set(rep["N_w"]) == set(BODY) and set(rep["bits_a"]) == set(BODY)
    assert rep["bits_w"]["conv2"] > 4 > rep["bits_w"]["conv3"]  # each layer followed its own gradient
    assert bits_of(model)["conv2"][0] == rep["bits_w"]["conv2"]


def test_update_every_skips_steps() -> None:
    alloc = AdaQATAllocator(update_every=3)
    model = build(alloc)
    for step in range(9):
        alloc.after_step(step_ctx(model, lambda: 0.0, step))
    assert alloc.updates == 3


def test_allocate_uses_target_or_init_and_method_is_registered() -> None:
    alloc = AdaQATAllocator(init_w=3, init_a=4, budget="free")
    model = build(alloc, target=BitTarget(2, 2))
    assert bits_of(model)["conv2"] == (3, 4)  # the paper's W3/A4 start
    model = build(AdaQATAllocator(init_w=3, init_a=4), target=BitTarget(2, 2))
    assert bits_of(model)["conv2"] == (2, 2)  # held: a start above the budget comes down to it
    model = build(AdaQATAllocator(), target=BitTarget(2, 2))
    assert bits_of(model)["conv3"] == (2, 2)
    cat = get_catalog()
    m = cat.methods.get("adaqat")
    assert (m.weight_quantizer, m.activation_quantizer, m.allocator, m.wrapper) == \
        ("dorefa-w", "pact-a", "adaqat", "plain")
    cat.check_method(m)
    assert isinstance(cat.allocators.get("adaqat").factory(**m.part_params("allocator")), AdaQATAllocator)
    # v3: DoReFa weights at the layer's FP scale (max|w_FP|), not the paper's bare [-1, 1] grid;
    # v4: the bits held to the job's budget
    assert m.version == 4 and m.part_params("weight")["scale"] == "max_abs"
    assert m.part_params("allocator")["budget"] == "hold"
    layer = nn.Linear(64, 64)
    wq = cat.quantizers.get("dorefa-w").factory(bits=3, layer=layer, **m.part_params("weight"))
    wq.initialize(layer.weight)
    ratio = float(wq.hard(layer.weight).norm() / layer.weight.norm())
    assert 0.6 < ratio < 1.6, ratio


class _MemoryCheckpoint:
    """The host's checkpoint interface (save / load) in memory, through torch.save and
    torch.load(weights_only=True) as the host's epoch checkpoints are."""

    def __init__(self) -> None:
        self.blob: bytes | None = None

    def save(self, state: dict) -> None:
        buf = io.BytesIO()
        torch.save(state, buf)
        self.blob = buf.getvalue()

    def load(self) -> dict | None:
        return None if self.blob is None else torch.load(io.BytesIO(self.blob), weights_only=True)


class _Killed(Exception):
    pass


def _qat(alloc: AdaQATAllocator, checkpoint: _MemoryCheckpoint, kill_after_epoch: int | None = None):
    model = build(alloc, edge_bits=None)
    data = tiny_digits(n_train=256)
    recipe = TrainRecipe(epochs=3, batch_size=64, lr=0.05)

    def after_step(x, y, loss, step, epoch):
        alloc.after_step(StepContext(model, x, y, loss, step, epoch,
                                     lambda: float(F.cross_entropy(model(x), y))))

    def on_epoch(stats):
        if stats.epoch == kill_after_epoch:
            raise _Killed

    train(model, lambda x, y: F.cross_entropy(model(x), y), data, recipe, seed=0, after_step=after_step,
          on_epoch=on_epoch, checkpoint=checkpoint, stateful=(alloc,))
    return model


def test_state_dict_round_trips_and_a_killed_job_resumes_exactly() -> None:
    """state_dict() holds the real-valued bit-widths and the counters (plain data that survives
    torch.load(weights_only=True)); load_state_dict() restores them and the quantizers' bits.
    Through the host's training loop, a job killed after epoch 1 and resumed from its epoch
    checkpoint ends with the same N, counters, trace and weights as an uninterrupted run."""
    lam = 0.3  # large enough that the integer bits change during the run
    whole = AdaQATAllocator(lam=lam, eta=0.1)
    model_whole = _qat(whole, _MemoryCheckpoint())
    assert whole.updates == 12 and whole.pairs[0].trace  # 3 epochs x 4 steps, bits moved

    ckpt = _MemoryCheckpoint()
    first = AdaQATAllocator(lam=lam, eta=0.1)
    with pytest.raises(_Killed):
        _qat(first, ckpt, kill_after_epoch=1)
    saved = ckpt.load()["stateful"][0]
    assert saved["updates"] == 4 and saved["pairs"][0]["w"]["value"] == pytest.approx(first.pairs[0].w.value)
    resumed = AdaQATAllocator(lam=lam, eta=0.1)  # a fresh process: rebuilt from the suite's config
    model_resumed = _qat(resumed, ckpt)
    assert resumed.state_dict() == whole.state_dict()
    assert resumed.report() == whole.report()
    for (n, a), (_, b) in zip(model_whole.state_dict().items(), model_resumed.state_dict().items()):
        if torch.is_tensor(a):
            assert torch.equal(a, b), n
    assert _body_bits(model_resumed) == _body_bits(model_whole)

    # the plain round trip: a fresh allocator on a fresh model takes the state and the bits
    fresh = AdaQATAllocator(lam=lam, eta=0.1)
    model_fresh = build(fresh, edge_bits=None)
    buf = io.BytesIO()
    torch.save(whole.state_dict(), buf)
    fresh.load_state_dict(torch.load(io.BytesIO(buf.getvalue()), weights_only=True))
    assert fresh.state_dict() == whole.state_dict()
    assert all(b == (fresh.pairs[0].w.bits, fresh.pairs[0].a.bits) for b in _body_bits(model_fresh).values())
    with pytest.raises(ValueError, match="pairs"):
        _layer_alloc().load_state_dict(whole.state_dict())


def _body_bits(model: nn.Module) -> dict[str, tuple[int, int]]:
    return {n: (getattr(model, n).wq.bits, getattr(model, n).aq.bits) for n in BODY}


def _layer_alloc() -> AdaQATAllocator:
    alloc = AdaQATAllocator(granularity="layer")
    build(alloc, edge_bits=None)
    return alloc
