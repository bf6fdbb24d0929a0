"""The N2UQ map's speed against the code before its speed-ups (tests/frozen_function.py), same process.

Usage: python plugins/qbench-n2uq/bench_map.py [THREADS]
One call is the map's forward and backward at 4 bits (15 thresholds) on a micro-ViT-sized and a
ResNet-20-sized activation; the two versions alternate for 60 rounds and the medians are printed
with their ratio. Both give the same numbers bit for bit (tests/test_frozen_reference.py).
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from types import ModuleType

import torch
from qbench_n2uq import function as current

from qbench.testing import sibling_module

frozen = sibling_module(str(Path(__file__).parent / "tests" / "frozen_function.py"), "frozen_function")


def one_call(mod: ModuleType, x0: torch.Tensor, go: torch.Tensor, t0: torch.Tensor, w: torch.Tensor) -> float:
    x, t, ww = x0.clone().requires_grad_(), t0.clone().requires_grad_(), w.clone().requires_grad_()
    start = time.perf_counter()
    mod.n2uq_levels(x, t, ww).backward(go)
    return time.perf_counter() - start


def main() -> None:
    torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
    g = torch.Generator().manual_seed(0)
    for shape in [(64, 17, 64), (64, 17, 256), (128, 16, 8, 8)]:
        x0, go = torch.randn(shape, generator=g).abs() * 2, torch.randn(shape, generator=g)
        t0, w = torch.tensor(0.05), 0.1 + torch.rand(15, generator=g)
        times: dict[str, list[float]] = {"before": [], "now": []}
        for r in range(60):
            order = (("before", frozen), ("now", current)) if r % 2 else (("now", current), ("before", frozen))
            for name, mod in order:
                times[name].append(one_call(mod, x0, go, t0, w))
        before, now = statistics.median(times["before"]), statistics.median(times["now"])
        print(f"{shape}: before {before * 1e3:.2f} ms, now {now * 1e3:.2f} ms, now/before {now / before:.2f}")


if __name__ == "__main__":
    main()
