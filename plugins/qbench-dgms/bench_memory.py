"""Peak memory of ONE DGMS training step (forward + backward), with and without chunking.

Model: timm resnet18 (num_classes=10, in_chans=3), input 2x3x32x32; every Conv2d/Linear except
the first and the last gets ``dgms-w`` at 4 bits (K = 16). Each mode runs in a fresh subprocess;
the number reported is ``ru_maxrss`` (peak resident set, KiB on Linux) after the step minus before
it. The k-means init runs once in a separate process that saves the state dict; each measuring
process loads it, so the init's own transient peak cannot mask the step's (ru_maxrss is a
high-water mark). A second, deterministic number is the total
size of the tensors autograd saved for the backward (via ``saved_tensors_hooks``).

Usage: python plugins/qbench-dgms/bench_memory.py [--bits 4] [--chunk-size 262144]
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from typing import Any


def build(chunked: bool, bits: int, chunk_size: int, threads: int) -> tuple[Any, Any, Any, int]:
    """resnet18 with dgms-w on every body layer (quantizers not yet initialised)."""
    import timm
    import torch
    from qbench_dgms import DGMSWeightQuantizer

    from qbench.api import LayerBits, find_layers, quantize_model

    if threads > 0:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = timm.create_model("resnet18", num_classes=10, in_chans=3)
    x = torch.randn(2, 3, 32, 32)
    y = torch.randint(0, 10, (2,))
    plan = {l.name: LayerBits(bits, None) for l in find_layers(model, x) if l.role == "body"}
    quantize_model(model, plan, lambda b, layer: DGMSWeightQuantizer(b, layer, chunked=chunked,
                                                                     chunk_size=chunk_size), None)
    return model, x, y, len(plan)


def prepare(path: str, bits: int, threads: int) -> None:
    """k-means-initialise every quantizer and save the state dict."""
    import torch

    from qbench.api import quant_layers

    model, *_ = build(True, bits, 2**18, threads)
    for _, layer in quant_layers(model):
        layer.wq.initialize(layer.weight)
    torch.save(model.state_dict(), path)


def child(chunked: bool, bits: int, chunk_size: int, threads: int, path: str) -> dict[str, float]:
    import torch

    from qbench.api import quant_layers

    model, x, y, n_layers = build(chunked, bits, chunk_size, threads)
    model.load_state_dict(torch.load(path))

    from qbench.api import quant_layers

    n_weights = 0
    for _, layer in quant_layers(model):
        assert bool(layer.wq.initialized)
        n_weights += layer.weight.numel()
    model.train()
    saved = [0]

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[0] += t.numel() * t.element_size()
        return t

    gc.collect()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    step_s = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"chunked": chunked, "bits": bits, "quantized_layers": n_layers, "quantized_weights": n_weights,
            "peak_rss_before_MiB": before / 1024, "peak_rss_after_MiB": after / 1024,
            "step_peak_increase_MiB": (after - before) / 1024, "saved_for_backward_MiB": saved[0] / 2**20,
            "step_seconds": step_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bits", type=int, default=4)
    ap.add_argument("--chunk-size", type=int, default=2**18)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--only", choices=["chunked", "unchunked"], help="run one mode only")
    ap.add_argument("--child", choices=["chunked", "unchunked", "prepare"])
    ap.add_argument("--state", help="state-dict file (internal)")
    args = ap.parse_args()
    if args.child == "prepare":
        prepare(args.state, args.bits, args.threads)
        return
    if args.child:
        print(json.dumps(child(args.child == "chunked", args.bits, args.chunk_size, args.threads, args.state)))
        return
    common = ["--bits", str(args.bits), "--chunk-size", str(args.chunk_size), "--threads", str(args.threads)]
    with tempfile.TemporaryDirectory() as tmp:
        state = os.path.join(tmp, "dgms_resnet18.pt")
        subprocess.run([sys.executable, __file__, "--child", "prepare", "--state", state, *common], check=True)
        for mode in [args.only] if args.only else ["chunked", "unchunked"]:
            out = subprocess.run([sys.executable, __file__, "--child", mode, "--state", state, *common],
                                 check=True, capture_output=True, text=True)
            report(json.loads(out.stdout.strip().splitlines()[-1]), mode)


def report(row: dict[str, float], mode: str) -> None:
    print(f"{mode:>9}: one step's peak RSS increase {row['step_peak_increase_MiB']:8.1f} MiB, "
          f"saved for backward {row['saved_for_backward_MiB']:8.1f} MiB, step {row['step_seconds']:.1f} s "
          f"({row['quantized_layers']} layers, {row['quantized_weights']} weights, W{row['bits']})")


if __name__ == "__main__":
    main()
