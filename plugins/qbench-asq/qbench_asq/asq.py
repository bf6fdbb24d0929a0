"""ASQ: Adaptive Step-size Quantization of activations (Zhou et al., arXiv 2504.17263, 2025).

The activation step is ``s_a = s * beta(x)``: ``s`` is an LSQ step (one learnable scalar per
layer) and ``beta(x) > 0`` is one number per sample, computed by a small adapter from the
channel means of the layer's input. The adapter also runs at inference, so the step follows the
distribution of each input instead of staying at what the training set favoured.

Forward: ``x_int = clamp(round(x / s_a), -Q_N, Q_P)``, ``x^ = x_int * s * beta``.
Backward (a custom :class:`torch.autograd.Function`, so the rule is explicit, not implied):

* ``d x^/d x = 1`` inside the range ``-Q_N <= x/s_a <= Q_P``, else 0 (STE);
* ``d x^/d s_a = round(x/s_a) - x/s_a`` inside the range, the bound (``-Q_N`` or ``Q_P``) outside;
* ``dL/ds = g * sum_b beta_b * sum_i dL/dx^_bi * d x^_bi/d s_a`` with LSQ's
  ``g = 1/sqrt(Q_P * numel)``. ``numel`` is not specified by the paper; qbench follows the
  authors' public implementation: the element count of the whole BATCH (``x.numel()``,
  ``grad_count="batch"``, default since method v2). ``grad_count="sample"`` uses one sample's count
  (C*H*W for a conv input, tokens*C for a ViT linear input), LSQ's "features in the layer", as
  method v1 did: it is sqrt(B) times larger;
* ``dL/dbeta_b = s * sum_i dL/dx^_bi * d x^_bi/d s_a``, per sample, without ``g``.

Gradient also reaches ``x`` through the adapter's input (ordinary autograd); set
``detach_adapter_input=True`` to stop it. Not specified by the paper; qbench lets it flow.

Signed inputs (ViT linear inputs after LayerNorm): not specified by the paper; qbench uses the
signed range ``-2^(b-1) .. 2^(b-1)-1`` (``Q_P = 2^(b-1)-1`` in ``g`` and the init). The host's
:class:`~qbench.contract.quant.ActivationQuantizer` decides it from the first batch (``x.min() < 0``) unless
``signed`` is given.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from qbench.api import ActivationQuantizer, features_per_sample, int_range, lsq_grad_scale

from . import kernel


def _per_sample(t: Tensor, like: Tensor) -> Tensor:
    """Reshape a (B,) tensor so it broadcasts over the non-batch dims of ``like``."""
    return t.reshape((-1,) + (1,) * (like.dim() - 1))


class _ASQFunction(torch.autograd.Function):
    """``x^ = clamp(round(x/(s*beta)), -q_n, q_p) * s * beta`` with ASQ's STE gradients."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, s: Tensor, beta: Tensor, q_n: int, q_p: int, g: float) -> Tensor:
        s_a = _per_sample(s * beta, x)
        ctx.save_for_backward(x, s, beta, s_a)
        ctx.q_n, ctx.q_p, ctx.g = q_n, q_p, g
        ctx.fast = kernel.usable(x, s_a)  # asked once: the backward takes the same path
        if ctx.fast:  # one compiled loop, the same bits
            return kernel.forward(x, s_a, float(-q_n), float(q_p))
        q = torch.clamp(torch.round(x / s_a), -q_n, q_p)
        return q * s_a

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        x, s, beta, s_a = ctx.saved_tensors
        if ctx.fast and grad_out.dtype == x.dtype and grad_out.is_contiguous():
            # one compiled loop for the masks, the input gradient and grad_out * d_sa (the same
            # bits); torch still sums the per-sample terms below, in its own order
            grad_x, prod = kernel.backward(x, s_a, grad_out, float(-ctx.q_n), float(ctx.q_p))
            per_sample = prod.reshape(x.shape[0], -1).sum(1)
            grad_x = grad_x if ctx.needs_input_grad[0] else None
        else:
            v = x / s_a
            q = torch.clamp(torch.round(v), -ctx.q_n, ctx.q_p)
            inside = (v >= -ctx.q_n) & (v <= ctx.q_p)
            # Outside the range q already equals the bound it was clipped to.
            d_sa = torch.where(inside, q - v, q)
            per_sample = (grad_out * d_sa).reshape(x.shape[0], -1).sum(1)  # dL/ds_a for each sample
            grad_x = grad_out * inside.to(grad_out.dtype) if ctx.needs_input_grad[0] else None
        grad_s = (ctx.g * (per_sample * beta).sum()).reshape(s.shape) if ctx.needs_input_grad[1] else None
        grad_beta = per_sample * s if ctx.needs_input_grad[2] else None
        return grad_x, grad_s, grad_beta, None, None, None


GRAD_COUNTS = ("batch", "sample")


def asq_quantize(x: Tensor, s: Tensor, beta: Tensor, bits: int, signed: bool, grad_count: str = "batch") -> Tensor:
    """Fake-quantize ``x`` (batch first) with step ``s * beta[b]`` for sample ``b``.

    :param s: the scalar LSQ step (0-d tensor).
    :param beta: one positive factor per sample, shape (B,).
    :param grad_count: the element count N in ``s``'s gradient scale ``1/sqrt(Q_P N)``: ``"batch"``
        (``x.numel()``, the authors' implementation) or ``"sample"`` (one sample's elements).
    """
    if grad_count not in GRAD_COUNTS:
        raise ValueError(f"asq: grad_count must be one of {GRAD_COUNTS}, got {grad_count!r}")
    q_n, q_p = int_range(bits, signed)
    g = lsq_grad_scale(x.numel() if grad_count == "batch" else features_per_sample(x), q_p)
    return _ASQFunction.apply(x, s, beta, q_n, q_p, g)


class ASQAdapter(nn.Module):
    """beta = clamp(ReLU(MLP(channel means)), >= beta_min): one factor per sample.

    ``Linear(C, C/r) -> ReLU -> Linear(C/r, 1) -> ReLU``, or a single ``Linear(C, 1) -> ReLU`` when
    ``C < 8`` (paper). The last Linear starts with weights N(0, init_std) and bias 1, so
    beta ~ 1 and ASQ starts as plain LSQ. ``init_std = 0.01`` is read as a standard deviation.

    :param channels: input channels of the consumer layer.
    :param reduction: hidden width ``max(C // reduction, 1)`` (paper: 4).
    """

    def __init__(self, channels: int, reduction: int = 4, init_std: float = 0.01,
                 beta_min: float = 1e-8, single_below: int = 8) -> None:
        super().__init__()
        self.beta_min = float(beta_min)
        if channels < single_below:
            self.net: nn.Module = nn.Linear(channels, 1)
            self.last = self.net
        else:
            hidden = max(channels // reduction, 1)
            self.net = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, 1))
            self.last = self.net[2]
        with torch.no_grad():
            nn.init.normal_(self.last.weight, 0.0, init_std)
            nn.init.constant_(self.last.bias, 1.0)

    def forward(self, pooled: Tensor) -> Tensor:
        """(B, C) channel means -> (B,) factors."""
        return F.relu(self.net(pooled)).clamp_min(self.beta_min).squeeze(1)


def _consumer_channels(layer: nn.Module) -> tuple[int, bool]:
    """(C, channels_first): C = the consumer layer's input channels."""
    if isinstance(layer, nn.Conv2d):
        return layer.in_channels, True
    if isinstance(layer, nn.Linear):
        return layer.in_features, False
    for attr, first in (("in_channels", True), ("in_features", False)):
        if hasattr(layer, attr):
            return int(getattr(layer, attr)), first
    raise TypeError(f"ASQ needs a Conv2d or Linear consumer layer, got {type(layer).__name__}")


class ASQActQuantizer(ActivationQuantizer):
    """ASQ activation quantizer (``asq-a``): LSQ step times a per-sample adapter factor.

    :param bits: activation bits (read at every forward; an allocator may change it).
    :param layer: the consumer layer (Conv2d: NCHW input; Linear: (B, ..., C) input).
    :param signed: force the signed/unsigned range; ``None`` decides from the first batch.
    :param reduction: adapter hidden width C // reduction (paper: 4).
    :param init_std: std of the last adapter Linear's initial weights (paper: 0.01).
    :param beta_min: lower clamp of beta (paper: 1e-8).
    :param adapter: ``False`` fixes beta = 1 (plain LSQ with the same code path; an ablation).
    :param detach_adapter_input: stop the gradient to x through the adapter (default False).
    :param grad_count: N in the step's gradient scale 1/sqrt(Q_P N): ``"batch"`` (default, the
        authors' implementation: the batch tensor's numel) or ``"sample"`` (one sample's).
    """

    def __init__(self, bits: int, layer: nn.Module, signed: bool | None = None, reduction: int = 4,
                 init_std: float = 0.01, beta_min: float = 1e-8, adapter: bool = True,
                 detach_adapter_input: bool = False, grad_count: str = "batch") -> None:
        super().__init__(bits, signed)  # the host decides and saves signedness (x.min() < 0)
        if grad_count not in GRAD_COUNTS:
            raise ValueError(f"asq-a: grad_count must be one of {GRAD_COUNTS}, got {grad_count!r}")
        self.grad_count = grad_count
        self.channels, self.channels_first = _consumer_channels(layer)
        weight = getattr(layer, "weight", None)
        device = weight.device if isinstance(weight, Tensor) else None
        self.s = nn.Parameter(torch.tensor(1.0, device=device))
        self.adapter = ASQAdapter(self.channels, reduction, init_std, beta_min) if adapter else None
        if self.adapter is not None and device is not None:
            self.adapter.to(device)
        self.detach_adapter_input = detach_adapter_input

    def pool(self, x: Tensor) -> Tensor:
        """Global average pool to (B, C): over H, W for NCHW, over tokens for (B, ..., C)."""
        if self.channels_first:
            return x.flatten(2).mean(2) if x.dim() > 2 else x
        return x.reshape(x.shape[0], -1, x.shape[-1]).mean(1)

    def beta(self, x: Tensor) -> Tensor:
        """The adapter's per-sample factor, shape (B,) (ones without an adapter)."""
        if self.adapter is None:
            return torch.ones(x.shape[0], dtype=x.dtype, device=x.device)
        return self.adapter(self.pool(x.detach() if self.detach_adapter_input else x))

    def ranges(self) -> tuple[int, int]:
        return int_range(self.bits, self.signed)

    def init_from(self, x: Tensor) -> None:
        """s = 2 mean|x| / sqrt(Q_P) from the first batch (signedness is already decided)."""
        q_p = max(self.ranges()[1], 1)
        self.s.fill_(max(2.0 * x.abs().mean().item() / math.sqrt(q_p), 1e-8))

    def forward(self, x: Tensor) -> Tensor:
        return asq_quantize(x, self.s, self.beta(x), self.bits, self.signed, self.grad_count)

    def inference_macs(self, input_shape: tuple[int, ...]) -> int:
        """The adapter's FP multiply-accumulates per sample: its Linear layers, ``C x C/4 + C/4``
        (``C`` for the single Linear when ``C < 8``), the same for any input size since the input
        is pooled first. The pooling's additions and the per-sample rescale ``s x beta`` are not
        counted (additions and rescales are not counted for any layer or quantizer). 0 without an
        adapter (``adapter=False``: beta = 1)."""
        if self.adapter is None:
            return 0
        return sum(m.in_features * m.out_features for m in self.adapter.modules() if isinstance(m, nn.Linear))

    def extra_repr(self) -> str:
        return (f"bits={self.bits}, channels={self.channels}, signed={self.signed}, "
                f"adapter={self.adapter is not None}")
