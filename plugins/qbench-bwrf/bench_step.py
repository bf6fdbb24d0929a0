"""Training-step cost of BWRF relative to the unwrapped step, same quantizer (resnet20, 8x8 inputs).

One step = loss, backward, SGD update. The unwrapped step is the plain wrapper (CE on the LP
model); BWRF adds the no-grad FP teacher pass and the MP models. Times are medians over
``--steps`` steps after ``--warmup`` steps, on one CPU thread (the machine is shared).

    python plugins/qbench-bwrf/bench_step.py [--batch 128] [--steps 15] [--bits 4]
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time
from typing import Callable

import torch
import torch.nn.functional as F
from qbench_bwrf import BWRFWrapper
from torch import Tensor, nn

from qbench.api import LayerBits, find_layers, quantize_model
from qbench.testing import create_model, get_catalog

VARIANTS: list[tuple[str, dict]] = [
    ("progressive, block (default)", {}),
    ("progressive, block, no prefix sharing", {"share_prefix": False}),
    ("single, block", {"reading": "single"}),
    ("single, block, no prefix sharing", {"reading": "single", "share_prefix": False}),
    ("progressive, stage", {"granularity": "stage"}),
    ("progressive, block, num_mp=2", {"num_mp": 2}),
]


def build(bits: int, batch: int) -> tuple[nn.Module, nn.Module, Tensor, Tensor]:
    """resnet20 with the bwrf method's own quantizers (lsq-w / lsq-a) on every body layer."""
    cat = get_catalog()
    method = cat.methods.get("bwrf")
    wq, aq = (cat.quantizers.get(n).factory for n in (method.weight_quantizer, method.activation_quantizer))
    wp, ap = method.part_params("weight"), method.part_params("activation")
    torch.manual_seed(0)
    fp = create_model("resnet20", 10, 3).eval()
    x, y = torch.randn(batch, 3, 8, 8), torch.randint(0, 10, (batch,))
    plan = {layer.name: LayerBits(bits, bits) for layer in find_layers(fp, x) if layer.role == "body"}
    q = quantize_model(copy.deepcopy(fp), plan, lambda b, m: wq(b, m, **wp), lambda b, m: aq(b, m, **ap))
    with torch.no_grad():
        q.eval()(x)
    return q.train(), copy.deepcopy(fp).requires_grad_(False), x, y


def time_steps(q: nn.Module, loss_fn: Callable[[], Tensor], steps: int, warmup: int) -> float:
    opt = torch.optim.SGD(q.parameters(), lr=1e-3, momentum=0.9)
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss_fn().backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--bits", type=int, default=4)
    args = ap.parse_args()
    torch.set_num_threads(1)
    q0, fp0, x, y = build(args.bits, args.batch)
    q = copy.deepcopy(q0)
    base = time_steps(q, lambda: F.cross_entropy(q(x), y), args.steps, args.warmup)
    print(f"resnet20, 8x8, batch {args.batch}, W{args.bits}A{args.bits} lsq-w/lsq-a, 1 thread")
    print(f"{'unwrapped (plain CE)':42s} {base * 1e3:8.1f} ms/step  ratio 1.00")
    for label, params in VARIANTS:
        q, fp = copy.deepcopy(q0), copy.deepcopy(fp0)
        w = BWRFWrapper(**params)
        w.setup(q, fp)
        t = time_steps(q, lambda: w.loss(q, x, y), args.steps, args.warmup)
        n = len(w.block_names)
        mp = len(w.configs) if w.num_mp is None else min(w.num_mp, len(w.configs))
        print(f"{'BWRF ' + label:42s} {t * 1e3:8.1f} ms/step  ratio {t / base:5.2f}  (n={n}, {mp} MP models)")


if __name__ == "__main__":
    main()
