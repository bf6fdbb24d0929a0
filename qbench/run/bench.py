"""Training-step cost of each method relative to the FP32 step, measured side by side in one process.

Why ratios: the absolute time of a step depends on the machine, the device and whatever else runs
on it; the ratio QAT step / FP32 step of the same model, batch and thread count, measured in
interleaved rounds, is what a method costs and is stable enough to compare across machines and to
guard against regressions. One round times one FP32 step, then one QAT step (warm-up steps
first); the reported ratio is the median over rounds of the per-round ratios, so a burst of load
on a shared machine spoils one round, not the result.

A step is what :func:`qbench.train.loop.train` does per batch: the method's loss (its training
wrapper), backward, optimiser step, then the allocator's ``after_step``. Forward passes through
the quantized model and through the frozen FP teacher are counted, so a wrapper or allocator that
runs extra passes (BWRF, AdaQAT) is also reported per pass.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import TensorDataset

from qbench.contract.bits import BitTarget
from qbench.data.bundle import DataBundle
from qbench.models import create_model
from qbench.plugin.catalog import Catalog
from qbench.run.suite import TrainRecipe
from qbench.train.loop import build_optimizer, method_param_specs, param_groups
from qbench.train.qat import frozen_copy, qat_parts

#: The benchmark models: (timm name, kwargs, image size). ``vit-micro`` is the quick suite's ViT.
MODELS: dict[str, tuple[str, dict[str, Any], int]] = {
    "resnet18": ("resnet18", {}, 32),
    "vit-micro": ("vit_tiny_patch16_224", {"img_size": 8, "patch_size": 2, "depth": 4, "embed_dim": 64,
                                           "num_heads": 4}, 8),
}
BATCH = 64
CLASSES = 10
RECIPE = TrainRecipe(epochs=1, batch_size=BATCH, lr=0.01)


@dataclass
class BenchRow:
    """One method on one model: the median per-round ratio and what it was measured from."""

    method: str
    model: str
    ratio: float          # median over rounds of (QAT step time / FP32 step time)
    passes: float         # forward passes per QAT step (quantized model + FP teacher)
    per_pass: float       # ratio / passes
    qat_ms: float         # median QAT step (machine-dependent; informative only)
    fp_ms: float          # median FP32 step
    prepare_s: float      # building the quantized model: allocation, quantizer init, calibration
    rounds: int
    init_s: float = 0.0   # of prepare_s, the weight quantizers' initialisation alone (DGMS: k-means)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def bench_data(image_size: int, n: int = 4 * BATCH, seed: int = 0) -> DataBundle:
    """Random images and labels: step time does not depend on the data's content."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, image_size, image_size, generator=gen)
    y = torch.randint(0, CLASSES, (n,), generator=gen)
    ds = TensorDataset(x, y)
    return DataBundle(name="bench", train=ds, test=ds, num_classes=CLASSES, in_chans=3,
                      image_size=(image_size, image_size), fingerprint="bench", source="random")


def bench_model(model: str, seed: int = 0) -> tuple[nn.Module, DataBundle]:
    """The FP model (random init: step time does not depend on the weights) and its data."""
    name, kwargs, size = MODELS[model]
    torch.manual_seed(seed)
    return create_model(name, CLASSES, 3, **kwargs), bench_data(size, seed=seed)


@contextmanager
def _count_forwards(modules: Sequence[nn.Module]) -> Iterator[list[int]]:
    count = [0]
    handles = [m.register_forward_pre_hook(lambda *_: count.__setitem__(0, count[0] + 1)) for m in modules]
    try:
        yield count
    finally:
        for h in handles:
            h.remove()


Step = Callable[[], None]


def _optimizer(model: nn.Module, extra: Sequence[tuple[nn.Parameter, Any]] = ()) -> torch.optim.Optimizer:
    specs = method_param_specs(model)
    specs.update({id(p): spec for p, spec in extra})
    named = list(model.named_parameters()) + [(f"extra{i}", p) for i, (p, _) in enumerate(extra)]
    return build_optimizer(param_groups(named, specs, RECIPE), RECIPE, 1000)[0]


def fp_step(model: nn.Module, x: Tensor, y: Tensor) -> Step:
    """The FP32 training step: cross-entropy, backward, SGD."""
    model.train()
    opt = _optimizer(model)

    def step() -> None:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def qat_step(method_name: str, catalog: Catalog, fp_model: nn.Module, data: DataBundle, x: Tensor, y: Tensor,
             bits: str = "W4A4", first_last: str = "fp", seed: int = 0, device: torch.device | None = None
             ) -> tuple[Step, tuple[float, float], list[nn.Module]]:
    """The method's training step as :func:`qbench.train.qat.run_qat` runs it; also the seconds
    :func:`prepare` took and, of those, its weight quantizers' initialisation, and the modules
    whose forwards count as passes."""
    method = catalog.methods.get(method_name)
    target = BitTarget.parse(bits)
    if method.weight_only:
        target = BitTarget(target.w, 32)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    parts = qat_parts(method, catalog, fp_model, data, target, first_last, seed, device, timings)
    prepare_s = time.perf_counter() - t0
    parts.qmodel.train()
    opt = _optimizer(parts.qmodel, parts.extra)
    counter = [0]

    def step() -> None:  # one pass of train()'s loop body, with run_qat's loss and allocator hook
        loss = parts.loss_fn(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        counter[0] += 1
        parts.after_step(x, y, loss.detach(), counter[0], 1)
    return step, (prepare_s, timings.get("weight_init_s", 0.0)), [parts.qmodel, parts.teacher]


def _timed(step: Step, device: torch.device) -> float:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    step()
    sync()
    return time.perf_counter() - t0


def measure(method: str, model: str, catalog: Catalog, rounds: int = 10, warmup: int = 2,
            bits: str = "W4A4", device: torch.device | str = "cpu") -> BenchRow:
    """Interleaved rounds of one FP32 step and one QAT step of ``method`` on ``model``."""
    dev = torch.device(device)
    fp, data = bench_model(model)
    fp.to(dev)
    x, y = (t[:BATCH].to(dev) for t in data.train.tensors)  # type: ignore[attr-defined]
    fstep = fp_step(frozen_copy(fp).requires_grad_(True), x, y)
    qstep, (prep_s, init_s), counted = qat_step(method, catalog, fp, data, x, y, bits, device=dev)
    for _ in range(warmup):
        fstep()
        qstep()
    with _count_forwards(counted) as count:
        qstep()
    passes = float(count[0])
    ratios, qs, fs = [], [], []
    for i in range(rounds):
        # alternate which runs first, so a step never always follows the same kind of step
        if i % 2:
            q, f = _timed(qstep, dev), _timed(fstep, dev)
        else:
            f, q = _timed(fstep, dev), _timed(qstep, dev)
        ratios.append(q / f)
        qs.append(q)
        fs.append(f)
    ratio = statistics.median(ratios)
    return BenchRow(method=method, model=model, ratio=round(ratio, 3), passes=passes,
                    per_pass=round(ratio / max(passes, 1.0), 3), qat_ms=round(1e3 * statistics.median(qs), 1),
                    fp_ms=round(1e3 * statistics.median(fs), 1), prepare_s=round(prep_s, 2), rounds=rounds,
                    init_s=round(init_s, 2))


def bench_methods(catalog: Catalog) -> list[str]:
    """Every installed method that trains (fp32 is the reference, not a method to time)."""
    return sorted(n for n in catalog.methods.names() if n != "fp32")


def regressions(rows: Sequence[BenchRow], baseline: dict[str, Any], max_regression: float) -> list[str]:
    """Rows whose ratio exceeds the baseline's by more than ``max_regression`` (0.2 = 20 %)."""
    base = {(r["method"], r["model"]): r["ratio"] for r in baseline.get("rows", [])}
    bad = []
    for r in rows:
        ref = base.get((r.method, r.model))
        if ref is not None and r.ratio > ref * (1.0 + max_regression):
            bad.append(f"{r.method} on {r.model}: ratio {r.ratio:.2f} > baseline {ref:.2f} + {max_regression:.0%}")
    return bad
