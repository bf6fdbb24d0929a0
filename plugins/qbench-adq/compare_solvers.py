"""adq-sensitivity's solvers on trained checkpoints: v4's price-weight search, one fixed price
weight t = 0.5, and v3's bits-only greedy, at W2A2 on the quick suite's ResNet-20.

    python plugins/qbench-adq/compare_solvers.py WS/fp/<fp_key>.safetensors [...]

The i-th path is the ResNet-20 FP checkpoint of the quick suite for seed i (a workspace's ``fp/`` after
``qbench run --suite quick``; its row's ``fp_key`` names it). Prints, per checkpoint and solver,
the total sensitivity sum_l S_l(b_l) (lower is better), the parameter-weighted bits, the body's
BitOPs as a fraction of the budget, and the bits per body layer.
"""
from __future__ import annotations

import sys

from qbench_adq.allocator import _greedy, greedy_allocate
from safetensors.torch import load_file

from qbench.api import BitTarget
from qbench.testing import create_model, get_catalog, load_digits, prepare


def main(paths: list[str]) -> None:
    cat = get_catalog()
    method, data = cat.methods.get("adq"), load_digits()
    for seed, path in enumerate(paths):
        fp = create_model("resnet20", 10, 1)
        fp.load_state_dict(load_file(path))
        _, _, alloc = prepare(method, cat, fp.eval(), data, BitTarget(2, 2), "fp", seed)
        numel, sens, cands, budget, ops, ops_cap = alloc.problem
        total = sum(numel.values())
        caps = [({n: float(v) for n, v in numel.items()}, budget * total), (ops, ops_cap)]
        for name, bits in (("search (v4)", greedy_allocate(numel, sens, cands, budget, ops, ops_cap)),
                           ("fixed t=0.5", _greedy(sens, sorted(cands), caps, [0.5, 0.5])),
                           ("bits only (v3)", greedy_allocate(numel, sens, cands, budget))):
            s = sum(sens[n][b] for n, b in bits.items())
            avg = sum(numel[n] * b for n, b in bits.items()) / total
            used = sum(ops[n] * b for n, b in bits.items()) / ops_cap
            print(f"{path}: {name:14s} sum S {s:.4g}, {avg:.3f} bits/weight, BitOPs {used:.3f} of the budget, "
                  f"bits {list(bits.values())}")


if __name__ == "__main__":
    main(sys.argv[1:])
