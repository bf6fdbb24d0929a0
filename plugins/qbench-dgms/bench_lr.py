"""DGMS under the suite's learning rate: top-1 of the hard model per epoch on digits/resnet20.

Usage: python plugins/qbench-dgms/bench_lr.py FP_CHECKPOINT.safetensors --lr 0.01 --epochs 3
       --bits 2 [--mixture-lr-scale 0.002]
FP_CHECKPOINT is a resnet20 digits checkpoint from a qbench workspace (WORKSPACE/fp/KEY.safetensors).
The mixture parameters train at --mixture-lr-scale x --lr (an OptimSpec the host applies);
each epoch is its own 1-epoch run of qbench's training loop (SGD 0.9, wd 5e-4, cosine), seed 0.
"""
from __future__ import annotations

import argparse

import torch
from safetensors.torch import load_file

from qbench.api import BitTarget, quant_layers
from qbench.testing import TrainRecipe, create_model, evaluate, get_catalog, load_digits, prepare, train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("fp")
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--bits", type=int, default=2)
    ap.add_argument("--mixture-lr-scale", type=float, default=1.0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    cat = get_catalog()
    method = cat.methods.get("dgms").compose("dgms-bench", params={"weight": {"mixture_lr_scale": args.mixture_lr_scale}})
    fp = create_model("resnet20", 10, 1)
    fp.load_state_dict(load_file(args.fp))
    data = load_digits()
    q, _, _ = prepare(method, cat, fp.eval(), data, BitTarget(args.bits, args.bits), "fp", 0)

    def show(tag: str) -> None:
        q.eval()
        top1 = evaluate(q, data)["top1"]
        q.train()
        levels = [int(l.hard_weight().unique().numel()) for _, l in quant_layers(q) if l.wq is not None]
        print(f"{tag}: top-1 {top1:.1f}, levels per layer {levels}", flush=True)

    show("init")
    recipe = TrainRecipe(epochs=1, batch_size=64, lr=args.lr, momentum=0.9, weight_decay=5e-4, schedule="cosine")
    for e in range(args.epochs):
        train(q, lambda x, y: torch.nn.functional.cross_entropy(q(x), y), data, recipe, 0)
        show(f"epoch {e + 1}")


if __name__ == "__main__":
    main()
