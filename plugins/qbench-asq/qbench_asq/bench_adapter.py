"""What ASQ's adapter costs on ResNet-20: parameters, and training step time.

Three variants of the same network, trained with the same SGD step on the same random batch:

* ``fp``: the FP ResNet-20;
* ``lsq-style``: POST weights + the ASQ activation quantizer with ``adapter=False`` (beta = 1,
  i.e. LSQ activations through the same code path);
* ``asq``: POST weights + ASQ activations with the adapter (the ``asq`` method).

Body layers are quantized at W4A4; the stem and classifier stay FP (the paper's rule).
Timings are medians over interleaved rounds, so a load spike hits every variant alike.

Run: ``python -m qbench_asq.bench_adapter [--batch 64 --size 32 --chans 3 --rounds 5 --steps 5]``
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import timm
import torch
import torch.nn.functional as F
from torch import nn

from qbench.api import LayerBits, find_layers, quantize_model

from .asq import ASQActQuantizer
from .post import POSTWeightQuantizer


def build(variant: str, chans: int, size: int, seed: int = 0) -> nn.Module:
    """ResNet-20 (FP, lsq-style or asq), quantizers initialised on one batch."""
    torch.manual_seed(seed)
    model = timm.create_model("resnet20", num_classes=10, in_chans=chans)
    if variant == "fp":
        return model
    x = torch.randn(8, chans, size, size)
    plan = {i.name: LayerBits(4, 4) for i in find_layers(model, x) if i.role == "body"}
    adapter = variant == "asq"
    quantize_model(model, plan, lambda b, m: POSTWeightQuantizer(b, m),
                   lambda b, m: ASQActQuantizer(b, m, adapter=adapter))
    with torch.no_grad():
        model(x)  # runs every quantizer's init_from
    return model


def count_params(model: nn.Module) -> dict[str, int]:
    """Total, adapter, and other quantizer parameters (s, alpha)."""
    adapter = sum(p.numel() for n, p in model.named_parameters() if ".aq.adapter." in n)
    quant = sum(p.numel() for n, p in model.named_parameters()
                if (".aq." in n or ".wq." in n) and ".aq.adapter." not in n)
    total = sum(p.numel() for p in model.parameters())
    return {"total": total, "adapter": adapter, "quantizer_other": quant, "network": total - adapter - quant}


def time_steps(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    """Seconds per SGD step (forward, backward, update)."""
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    model.train()
    start = time.perf_counter()
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (time.perf_counter() - start) / steps


def run(batch: int = 64, size: int = 32, chans: int = 3, rounds: int = 5, steps: int = 5,
        threads: int | None = None) -> dict[str, Any]:
    if threads:
        torch.set_num_threads(threads)
    variants = ("fp", "lsq-style", "asq")
    models = {v: build(v, chans, size) for v in variants}
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(batch, chans, size, size, generator=g), torch.randint(0, 10, (batch,), generator=g)
    for m in models.values():
        time_steps(m, x, y, 2)  # warm-up
    times: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(rounds):
        for v in variants:
            times[v].append(time_steps(models[v], x, y, steps))
    med = {v: statistics.median(t) for v, t in times.items()}
    params = count_params(models["asq"])
    return {
        "input": f"{batch}x{chans}x{size}x{size}", "threads": torch.get_num_threads(),
        "params": params,
        "adapter_params_over_network": params["adapter"] / params["network"],
        "step_s": med,
        "asq_over_lsq_style": med["asq"] / med["lsq-style"],
        "asq_over_fp": med["asq"] / med["fp"],
        "lsq_style_over_fp": med["lsq-style"] / med["fp"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--chans", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    r = run(**vars(ap.parse_args()))
    p = r["params"]
    print(f"ResNet-20, input {r['input']}, W4A4 body, {r['threads']} thread(s)")
    print(f"params: network {p['network']}, adapters {p['adapter']} "
          f"({100 * r['adapter_params_over_network']:.2f} % of the network), other quantizer params "
          f"{p['quantizer_other']}")
    print("median step time (s): " + ", ".join(f"{k} {v:.4f}" for k, v in r["step_s"].items()))
    print(f"asq / lsq-style {r['asq_over_lsq_style']:.3f}, asq / fp {r['asq_over_fp']:.3f}, "
          f"lsq-style / fp {r['lsq_style_over_fp']:.3f}")


if __name__ == "__main__":
    main()
