"""Matmuls that are not Conv2d / Linear layers: found, counted, and (on request) quantized.

Attention multiplies activations by activations (QK^T, AV), through ``torch.matmul`` / ``@`` /
``bmm`` / ``einsum`` or ``F.scaled_dot_product_attention``; some models also call ``F.linear``
with a weight outside a Linear module's forward. None of these is a layer the surgery swaps, yet
they cost MACs. A TorchFunctionMode sees every such call during a forward pass; each call is
named by the module whose own forward makes it (its innermost running module) and its index
among that forward's matmul calls: a **site**, e.g. ``blocks.0.attn:sdpa0``.

* :func:`record_sites` measures each site's MACs per sample (and the bits its inputs run at).
* :func:`attach_matmul_quantizers` quantizes the inputs of every activation x activation site:
  both operands of a matmul; q, k, v and the softmax output of an SDPA call (which then runs as
  softmax(q k^T * scale + mask) v, so that its probabilities can be quantized).
"""
from __future__ import annotations

import contextvars
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from qbench.contract.quant.base import ActivationQuantizer, Quantizer
from qbench.errors import QbenchError

FP_BITS = 32
QUANT_ATTR = "qbench_matmul"  # the ModuleDict of a site owner's quantizers, by site index
ATTENTION_SETTINGS = ("fp", "quantized")

_MATMULS = {torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__, torch.mm, torch.Tensor.mm, torch.bmm,
            torch.Tensor.bmm, torch.baddbmm, torch.Tensor.baddbmm, torch.einsum}
_SDPA = F.scaled_dot_product_attention
_WEIGHTED = {F.linear, F.conv1d, F.conv2d, F.conv3d}
_bypass = contextvars.ContextVar("qbench_matmul_bypass", default=False)


@dataclass
class MatmulSite:
    """One op site: per-sample MACs and the bits of its two inputs (32 when FP)."""

    name: str  # "<owner module>:<op><index>[.qk|.av]"
    op: str  # matmul | sdpa.qk | sdpa.av | linear_fn | conv_fn
    macs: int
    bits_left: int = FP_BITS
    bits_right: int = FP_BITS


def _operands(func: Any, args: tuple) -> tuple[int, int] | None:
    """Positions of the two multiplied tensors in ``args``."""
    if func in (torch.baddbmm, torch.Tensor.baddbmm):
        return (1, 2)
    if func is torch.einsum:
        return (1, 2) if len(args) == 3 else None
    return (0, 1)


class _Tracker(TorchFunctionMode):
    """Keeps the stack of running modules (by forward hooks) and calls ``on_op`` for each
    matmul-like call made by a module's own forward, outside Conv/Linear layers and quantizers."""

    def __init__(self, model: nn.Module, on_op: Callable[..., Any], manage_mode: bool = True) -> None:
        super().__init__()
        self.on_op, self.manage_mode = on_op, manage_mode
        self.names = {id(m): n for n, m in model.named_modules()}
        self.stack: list[list[Any]] = []  # [module, matmul calls so far in this call of it]
        self.inside_quantizer = 0
        self.hooks = []
        for m in model.modules():
            self.hooks.append(m.register_forward_pre_hook(self._enter))
            self.hooks.append(m.register_forward_hook(self._leave, always_call=True))

    def remove(self) -> None:
        for h in self.hooks:
            h.remove()

    def _enter(self, module: nn.Module, args: Any) -> None:
        if not self.stack and self.manage_mode:
            self.__enter__()
        self.stack.append([module, 0])
        self.inside_quantizer += isinstance(module, Quantizer)

    def _leave(self, module: nn.Module, args: Any, out: Any) -> None:
        if self.stack and self.stack[-1][0] is module:
            self.stack.pop()
            self.inside_quantizer -= isinstance(module, Quantizer)
            if not self.stack and self.manage_mode:
                self.__exit__(None, None, None)

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        if self.stack and not self.inside_quantizer and (func in _MATMULS or func is _SDPA or func in _WEIGHTED):
            frame = self.stack[-1]
            owner = frame[0]
            if func in _WEIGHTED and isinstance(owner, (nn.Conv2d, nn.Linear, nn.Conv1d)):
                return func(*args, **kwargs)  # a layer's own weight op: the surgery's, counted as a layer
            index = frame[1]
            frame[1] += 1
            return self.on_op(func, args, kwargs, owner, self.names.get(id(owner), "?"), index)
        return func(*args, **kwargs)


def _is_activation(t: Any) -> bool:
    return isinstance(t, Tensor) and not isinstance(t, nn.Parameter)


def _quantizers(owner: nn.Module, index: int) -> nn.ModuleList | None:
    holder = getattr(owner, QUANT_ATTR, None)
    return holder[str(index)] if holder is not None and str(index) in holder else None


def _macs(func: Any, args: tuple, kwargs: dict, out: Tensor) -> list[tuple[str, int]]:
    if func is _SDPA:
        q, k, v = args[:3]
        s, ev = k.shape[-2], v.shape[-1]
        return [("sdpa.qk", out.numel() // ev * s * q.shape[-1]), ("sdpa.av", out.numel() * s)]
    if func in _WEIGHTED:
        w = args[1] if len(args) > 1 else kwargs["weight"]
        return [("linear_fn" if func is F.linear else "conv_fn", out.numel() * (w[0].numel()))]
    if func is torch.einsum:
        ins, _, outs = args[0].replace(" ", "").partition("->")
        sizes: dict[str, int] = {}
        for t, spec in zip(args[1:], ins.split(",")):
            letters = spec.replace("...", "")
            sizes.update(zip(letters, t.shape[t.dim() - len(letters):]))
        contracted = 1
        for letter, size in sizes.items():
            contracted *= 1 if letter in outs else int(size)
        return [("matmul", out.numel() * contracted)]
    pos = _operands(func, args)
    a = args[pos[0]] if pos else args[0]
    return [("matmul", out.numel() * (a.shape[-1] if a.dim() > 0 else 1))]


def record_sites(model: nn.Module, sample: Tensor) -> list[MatmulSite]:
    """Every matmul-like site of one forward pass of ``sample`` (MACs per sample: use one sample),
    with the bits its inputs run at: its quantizers' bits, or 32."""
    sites: dict[str, MatmulSite] = {}

    def on_op(func: Any, args: tuple, kwargs: dict, owner: nn.Module, name: str, index: int) -> Any:
        out = func(*args, **kwargs)
        qs = _quantizers(owner, index)
        kind = "sdpa" if func is _SDPA else "fn" if func in _WEIGHTED else "matmul"
        for op, macs in _macs(func, args, kwargs, out):
            site = f"{name}:{kind}{index}" + (op[4:] if op.startswith("sdpa") else "")
            bl = br = FP_BITS
            if qs is not None:
                bl, br = (qs[0].bits, qs[1].bits) if op != "sdpa.av" else (qs[3].bits, qs[2].bits)
            if site in sites:
                sites[site].macs += macs
            else:
                sites[site] = MatmulSite(site, op, macs, bl, br)
        return out

    tracker = _Tracker(model, on_op, manage_mode=False)  # its mode is entered below any the model has
    was = model.training
    model.eval()
    token = _bypass.set(True)
    try:
        with torch.no_grad(), tracker:
            model(sample)
    finally:
        _bypass.reset(token)
        tracker.remove()
        model.train(was)
    return list(sites.values())


def _quantize(q: ActivationQuantizer, x: Tensor) -> Tensor:
    if not q.is_initialized:
        q.initialize(x)
    return q(x)


def _sdpa(qs: nn.ModuleList, q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None = None,
          dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None,
          enable_gqa: bool = False) -> Tensor:
    """F.scaled_dot_product_attention with quantized q, k, v and softmax output."""
    q, k, v = _quantize(qs[0], q), _quantize(qs[1], k), _quantize(qs[2], v)
    if enable_gqa and k.shape[-3] != q.shape[-3]:
        k = k.repeat_interleave(q.shape[-3] // k.shape[-3], -3)
        v = v.repeat_interleave(q.shape[-3] // v.shape[-3], -3)
    attn = (q @ k.transpose(-2, -1)) * (scale if scale is not None else q.shape[-1] ** -0.5)
    if is_causal:
        keep = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool, device=q.device).tril()
        attn = attn.masked_fill(~keep, float("-inf"))
    if attn_mask is not None:
        attn = attn.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool else attn + attn_mask
    attn = attn.softmax(-1)
    if dropout_p > 0:
        attn = F.dropout(attn, dropout_p)
    return _quantize(qs[3], attn) @ v


class MatmulQuantization:
    """Owns the tracker that quantizes the inputs of a model's activation x activation sites.
    Sites get their quantizers on the first forward after attaching (in ``prepare``, the
    calibration batch); later forwards reuse them."""

    def __init__(self, make_aq: Callable[[int, nn.Module], ActivationQuantizer], bits: int) -> None:
        self.make_aq, self.bits, self.discover = make_aq, int(bits), True
        self.tracker: _Tracker | None = None

    def bind(self, model: nn.Module) -> None:
        self.tracker = _Tracker(model, self.on_op)
        model.register_forward_hook(self._first_done)

    def _first_done(self, module: nn.Module, args: Any, out: Any) -> None:
        self.discover = False

    def on_op(self, func: Any, args: tuple, kwargs: dict, owner: nn.Module, name: str, index: int) -> Any:
        if _bypass.get() or func in _WEIGHTED:
            return func(*args, **kwargs)
        qs = _quantizers(owner, index)
        if qs is None and self.discover:
            qs = self._create(func, args, owner, index)
        if qs is None:
            return func(*args, **kwargs)
        if func is _SDPA:
            return _sdpa(qs, *args, **kwargs)
        pos = _operands(func, args)
        args = list(args)
        for q, p in zip(qs, pos or ()):
            args[p] = _quantize(q, args[p])
        return func(*args, **kwargs)

    def _create(self, func: Any, args: tuple, owner: nn.Module, index: int) -> nn.ModuleList | None:
        pos = (0, 1, 2) if func is _SDPA else _operands(func, args)
        if pos is None or not all(_is_activation(args[p]) for p in pos):
            return None  # a weight in it (x @ W): not an attention matmul
        like = args[pos[0]]
        try:
            made = [self.make_aq(self.bits, owner) for _ in range(4 if func is _SDPA else 2)]
        except Exception as exc:  # a TypeError here would reach the user as "unsupported operand ... @"
            raise QbenchError(
                f"attention = \"quantized\": the method's activation quantizer cannot quantize the inputs of "
                f"the matmul in {type(owner).__name__} ({type(exc).__name__}: {exc}). Use attention = \"fp\" "
                "for this method (docs/models.md, 'Quantized attention').") from exc
        qs = nn.ModuleList(made).to(like.device)
        holder = getattr(owner, QUANT_ATTR, None)
        if holder is None:
            holder = nn.ModuleDict()
            setattr(owner, QUANT_ATTR, holder)
        holder[str(index)] = qs
        return qs


def attach_matmul_quantizers(model: nn.Module, make_aq: Callable[[int, nn.Module], ActivationQuantizer],
                             bits: int) -> nn.Module:
    """Quantize the inputs of ``model``'s activation x activation matmuls at ``bits`` (in place)."""
    mq = MatmulQuantization(make_aq, bits)
    object.__setattr__(model, "_qbench_matmul_quantization", mq)  # its quantizers live on the site owners
    mq.bind(model)
    return model


#: ("fp" | "quantized", activation bits) for :func:`qbench.train.surgery.quantize_model`; set by the harness
ATTENTION: contextvars.ContextVar[tuple[str, int] | None] = contextvars.ContextVar("qbench_attention", default=None)
