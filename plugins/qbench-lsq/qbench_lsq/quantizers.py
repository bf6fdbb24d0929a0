"""LSQ quantizer modules: ``lsq-w`` (weights) and ``lsq-a`` (activations).

Both learn one step size s (per tensor, or per output channel for per-channel weights) with the
paper's gradient (:func:`qbench_lsq.function.lsq_quantize`), initialised as
s = 2 mean|v| / sqrt(Q_P) and with gradient scale g = 1 / sqrt(N * Q_P). The integer range
(Q_N, Q_P) is derived from ``self.bits`` at every forward, so a bit allocator may change the
bit-width between steps; s itself is not rescaled when bits change (not specified by the paper;
qbench keeps s as it is).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from qbench.api import ActivationQuantizer, WeightQuantizer, features_per_sample, int_range, lsq_grad_scale

from .function import lsq_quantize


def lsq_init_step(t: Tensor, q_p: int, dims: tuple[int, ...] | None = None, eps: float = 1e-8) -> Tensor:
    """LSQ's step-size init 2 mean|t| / sqrt(Q_P), over ``dims`` (all elements when ``None``).

    Q_P = 0 (signed 1-bit) would divide by zero: the paper never uses it; qbench uses max(Q_P, 1).
    An all-zero tensor gives s = eps (not specified by the paper).
    """
    mean_abs = t.abs().mean() if dims is None else t.abs().mean(dim=dims)
    return (2.0 * mean_abs / math.sqrt(max(q_p, 1))).clamp_min(eps)


class LSQWeightQuantizer(WeightQuantizer):
    """LSQ weights: signed levels -2^(b-1) .. 2^(b-1)-1 times a learned step size.

    :param bits: weight bit-width (read from ``self.bits`` at every forward).
    :param layer: the conv / linear layer whose weight this quantizes (gives the channel count).
    :param per_channel: one step per output channel (dim 0) instead of one per tensor. The paper
        uses one per layer; per-channel is qbench's ``lsq-pc`` variant.
    :param eps: lower bound applied to s in the forward (not specified by the paper; 1e-8).
    """

    def __init__(self, bits: int, layer: nn.Module, per_channel: bool = False, eps: float = 1e-8) -> None:
        super().__init__(bits)
        self.per_channel = bool(per_channel)
        self.eps = float(eps)
        weight = getattr(layer, "weight", None)
        if self.per_channel and weight is None:
            raise ValueError("lsq-w with per_channel=True needs a layer with a weight tensor.")
        n = int(weight.shape[0]) if self.per_channel else 1
        self.step = nn.Parameter(torch.ones(n, device=None if weight is None else weight.device))

    def int_range(self) -> tuple[int, int]:
        """(Q_N, Q_P) at the current bit-width: always signed for weights."""
        return int_range(self.bits, signed=True)

    def _step_view(self, w: Tensor) -> Tensor:
        return self.step.view(-1, *([1] * (w.dim() - 1))) if self.per_channel else self.step

    def _numel_per_step(self, w: Tensor) -> int:
        return w.numel() // w.shape[0] if self.per_channel else w.numel()

    def init_from(self, w: Tensor) -> None:
        _, q_p = self.int_range()
        dims = tuple(range(1, w.dim())) if self.per_channel else None
        self.step.copy_(lsq_init_step(w, q_p, dims, self.eps).reshape(self.step.shape))

    def forward(self, w: Tensor) -> Tensor:
        q_n, q_p = self.int_range()
        g = lsq_grad_scale(self._numel_per_step(w), q_p)
        return lsq_quantize(w, self._step_view(w), q_n, q_p, g, self.eps)

    def learned_state(self) -> dict[str, float]:
        """The learned step s in the weight's units, as the forward uses it (max(s, eps)): per
        tensor ``{"step": s}``; per channel the channels' mean as ``step``, with ``step_min`` and
        ``step_max``."""
        s = self.step.detach().clamp_min(self.eps).double()
        if not self.per_channel:
            return {"step": float(s.mean())}
        return {"step": float(s.mean()), "step_min": float(s.min()), "step_max": float(s.max())}

    def export(self, w: Tensor) -> dict[str, Tensor]:
        """Integer codes in [-Q_N, Q_P] and the step: weight = codes * scale."""
        q_n, q_p = self.int_range()
        with torch.no_grad():
            s = self._step_view(w).clamp_min(self.eps)
            codes = torch.round(torch.clamp(w / s, -q_n, q_p))
            dtype = torch.int8 if self.bits <= 8 else torch.int32
            return {"weight": codes * s, "codes": codes.to(dtype), "scale": s.detach().clone()}

    def extra_repr(self) -> str:
        return f"bits={self.bits}, per_channel={self.per_channel}"


class LSQActivationQuantizer(ActivationQuantizer):
    """LSQ activations: one learned step per layer input.

    Unsigned levels 0 .. 2^b-1 when the calibration input is non-negative (post-ReLU, as in the
    paper); signed levels -2^(b-1) .. 2^(b-1)-1 when it has negatives (the paper quantizes only
    post-ReLU activations; qbench uses the signed weight range there), unless ``signed`` is given.
    The decided signedness is saved in the state dict.

    :param bits: activation bit-width (read from ``self.bits`` at every forward).
    :param layer: the layer whose input this quantizes (unused; part of the factory contract).
    :param signed: force the signed (True) or unsigned (False) range; ``None`` lets the host
        decide from the first calibration batch (``x.min() < 0``).
    :param eps: lower bound applied to s in the forward (not specified by the paper; 1e-8).
    """

    def __init__(self, bits: int, layer: nn.Module | None = None, signed: bool | None = None,
                 eps: float = 1e-8) -> None:
        super().__init__(bits, signed)  # the host decides and saves signedness
        self.eps = float(eps)
        weight = getattr(layer, "weight", None)
        self.step = nn.Parameter(torch.ones(1, device=None if weight is None else weight.device))

    def int_range(self) -> tuple[int, int]:
        """(Q_N, Q_P) at the current bit-width and the decided signedness."""
        return int_range(self.bits, self.signed)

    def init_from(self, x: Tensor) -> None:
        _, q_p = self.int_range()
        self.step.copy_(lsq_init_step(x, q_p, None, self.eps).reshape(1).to(self.step))

    def learned_state(self) -> dict[str, float]:
        """The learned step s in the input's units, as the forward uses it (max(s, eps))."""
        return {"step": float(self.step.detach().clamp_min(self.eps).double().mean())}

    def forward(self, x: Tensor) -> Tensor:
        q_n, q_p = self.int_range()
        # N = features per sample (the paper's "number of features in the layer").
        g = lsq_grad_scale(features_per_sample(x), q_p)
        return lsq_quantize(x, self.step, q_n, q_p, g, self.eps)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, signed={self.signed}"
