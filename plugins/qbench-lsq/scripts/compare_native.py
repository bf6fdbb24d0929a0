"""Compare qbench's LSQ (paper rule) with torch's native learnable fake-quant on ReLU activations.

Prints, at 2 and 4 bits, the step-size gradient under both rules, the share of inputs within half a
step above Q_P (where the rules differ for the step) and the forward+backward time of each.
Run: python plugins/qbench-lsq/scripts/compare_native.py
"""
from __future__ import annotations

import time

import torch
from qbench_lsq import LSQActivationQuantizer


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    x = torch.relu(torch.randn(32, 64, 16, 16))
    go = torch.randn_like(x)
    for bits in (2, 4):
        qa = LSQActivationQuantizer(bits)
        qa.initialize(x)
        q_p = 2**bits - 1
        g = 1 / ((x.numel() // x.shape[0]) * q_p) ** 0.5

        def ours() -> torch.Tensor:
            qa.step.grad = None
            qa(x.clone().requires_grad_()).backward(go)
            return qa.step.grad.clone()

        def native() -> torch.Tensor:
            s = qa.step.detach().clone().requires_grad_()
            torch._fake_quantize_learnable_per_tensor_affine(
                x.clone().requires_grad_(), s, torch.zeros(1), 0, q_p, g).backward(go)
            return s.grad

        v = x / qa.step.detach()
        zone = ((v >= q_p) & (v < q_p + 0.5)).float().mean().item()
        print(f"b={bits}: step grad paper rule {ours().item():+.4f}, native {native().item():+.4f}; "
              f"inputs within half a step above Q_P: {100 * zone:.2f} %")
        for name, fn in (("paper rule (qbench)", ours), ("native op", native)):
            fn()
            t = time.perf_counter()
            for _ in range(20):
                fn()
            print(f"  {name}: {(time.perf_counter() - t) / 20 * 1e3:.1f} ms forward+backward, 1 thread")


if __name__ == "__main__":
    main()
