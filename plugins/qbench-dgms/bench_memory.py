"""Peak memory of ONE DGMS training step (forward + backward), with and without chunking.

Model: timm resnet18 (num_classes=10, in_chans=3), input 2x3x32x32; every Conv2d/Linear except
the first and the last gets ``dgms-w`` at 4 bits (K = 16). Each mode runs in a fresh subprocess;
the number reported is ``ru_maxrss`` (peak resident set, KiB on Linux) after the step minus before
it, so model build and k-means init are not counted. A second, deterministic number is the total
size of the tensors autograd saved for the backward (via ``saved_tensors_hooks``).

Usage: python plugins/qbench-dgms/bench_memory.py [--bits 4] [--chunk-size 262144]
"""
from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import time


def child(chunked: bool, bits: int, chunk_size: int) -> dict[str, float]:
    import timm
    import torch

    from qbench.bits import LayerBits
    from qbench.surgery import find_layers, quantize_model
    from qbench.quant import quant_layers
    from qbench_dgms import DGMSWeightQuantizer

    torch.manual_seed(0)
    model = timm.create_model("resnet18", num_classes=10, in_chans=3)
    x = torch.randn(2, 3, 32, 32)
    y = torch.randint(0, 10, (2,))
    layers = find_layers(model, x)
    plan = {l.name: LayerBits(bits, None) for l in layers if l.role == "body"}
    quantize_model(model, plan, lambda b, layer: DGMSWeightQuantizer(b, layer, chunked=chunked,
                                                                     chunk_size=chunk_size), None)
    n_weights = 0
    for _, layer in quant_layers(model):
        layer.wq.initialize(layer.weight)
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
    return {"chunked": chunked, "bits": bits, "quantized_layers": len(plan), "quantized_weights": n_weights,
            "peak_rss_before_MiB": before / 1024, "peak_rss_after_MiB": after / 1024,
            "step_peak_increase_MiB": (after - before) / 1024, "saved_for_backward_MiB": saved[0] / 2**20,
            "step_seconds": step_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bits", type=int, default=4)
    ap.add_argument("--chunk-size", type=int, default=2**18)
    ap.add_argument("--child", choices=["chunked", "unchunked"])
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child == "chunked", args.bits, args.chunk_size)))
        return
    for mode in ("chunked", "unchunked"):
        out = subprocess.run([sys.executable, __file__, "--child", mode, "--bits", str(args.bits),
                              "--chunk-size", str(args.chunk_size)], check=True, capture_output=True, text=True)
        row = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{mode:>9}: one step's peak RSS increase {row['step_peak_increase_MiB']:8.1f} MiB, "
              f"saved for backward {row['saved_for_backward_MiB']:8.1f} MiB, step {row['step_seconds']:.1f} s "
              f"({row['quantized_layers']} layers, {row['quantized_weights']} weights, W{row['bits']})")


if __name__ == "__main__":
    main()
