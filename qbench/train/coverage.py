"""Checks behind the coverage registry (:mod:`qbench.models.coverage`) and ``qbench models --check``.

* :func:`identity_check`: every Conv2d / Linear quantized (first and last layers included) with
  quantizers that return their input unchanged must give the FP model's output, bit for bit with
  ``attention = "fp"`` (the surgery keeps each layer's own forward), to float tolerance with
  ``"quantized"`` (SDPA then runs as explicit matmuls).
* :func:`method_check`: a method's quantized model through the host's own ``prepare`` at W4A4,
  then forward, backward (one SGD step), eval, and the bit audit (levels within 2^b, export parity).
"""
from __future__ import annotations

import copy
import traceback
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import TensorDataset

from qbench.contract.bits import BitTarget, LayerBits
from qbench.contract.quant.base import ActivationQuantizer, WeightQuantizer
from qbench.data.bundle import DataBundle
from qbench.models import create_model
from qbench.models.coverage import ZooModel
from qbench.plugin.catalog import Catalog
from qbench.train.audit import audit_model, export_parity, summarize
from qbench.train.matmul import ATTENTION
from qbench.train.qat import prepare
from qbench.train.surgery import find_layers, quantize_model

STAGES = ("forward", "backward", "eval", "audit")
NUM_CLASSES = 10


class IdentityWeight(WeightQuantizer):
    def forward(self, w: Tensor) -> Tensor:
        return w


class IdentityActivation(ActivationQuantizer):
    def forward(self, x: Tensor) -> Tensor:
        return x


def build(entry: ZooModel, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return create_model(entry.name, NUM_CLASSES, 3, **entry.kwargs)


def inputs(entry: ZooModel, n: int = 2, seed: int = 0) -> Tensor:
    return torch.randn(n, 3, entry.img, entry.img, generator=torch.Generator().manual_seed(seed))


def random_data(entry: ZooModel, n: int = 8) -> DataBundle:
    x = inputs(entry, n)
    y = torch.arange(n) % NUM_CLASSES
    return DataBundle(name="random", train=TensorDataset(x, y), test=TensorDataset(x, y), num_classes=NUM_CLASSES,
                      in_chans=3, image_size=(entry.img, entry.img), fingerprint="random", source="torch.randn")


def identity_check(entry: ZooModel, attention: str = "fp") -> float:
    """Max |output difference| between the FP model and its identity-quantized copy, in eval and
    in training mode (0.0 means bit-identical)."""
    fp = build(entry).eval()
    x = inputs(entry)
    q = copy.deepcopy(fp)
    plan = {info.name: LayerBits(8, 8) for info in find_layers(q, x)}
    token = ATTENTION.set((attention, 8))
    try:
        quantize_model(q, plan, lambda b, m: IdentityWeight(b), lambda b, m: IdentityActivation(b))
    finally:
        ATTENTION.reset(token)
    diff = 0.0
    for training in (False, True):
        fp.train(training)
        q.train(training)
        with torch.no_grad():
            torch.manual_seed(1)
            a = fp(x)
            torch.manual_seed(1)
            b = q(x)
        diff = max(diff, float((a - b).abs().max()))
    return diff


def method_check(entry: ZooModel, method_name: str, catalog: Catalog, bits: int = 4,
                 attention: str = "fp") -> dict[str, str]:
    """Stage -> "ok" or the error, for one method on one registry model."""
    out = {s: "-" for s in STAGES}
    stage = "forward"
    try:
        method = catalog.methods.get(method_name)
        fp = build(entry).eval()
        data = random_data(entry)
        token = ATTENTION.set((attention, bits))
        try:
            qmodel, layers, _ = prepare(method, catalog, fp, data, BitTarget(bits, bits), "fp", 0)
        finally:
            ATTENTION.reset(token)
        x, y = data.train.tensors  # type: ignore[attr-defined]
        qmodel.train()
        loss = F.cross_entropy(qmodel(x), y)
        _finite(loss, "training loss")
        out[stage] = "ok"
        stage = "backward"
        params = [p for p in qmodel.parameters() if p.requires_grad]
        opt = torch.optim.SGD(params, lr=1e-3)
        loss.backward()
        if not any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in params):
            raise RuntimeError("no parameter got a gradient")
        opt.step()
        out[stage] = "ok"
        stage = "eval"
        qmodel.eval()
        with torch.no_grad():
            _finite(qmodel(x), "eval logits")
        out[stage] = "ok"
        stage = "audit"
        summary = summarize(qmodel, audit_model(qmodel, layers, x))
        if not summary["levels_ok"]:
            raise RuntimeError(summary["level_violations"])
        parity = export_parity(qmodel, x)
        if parity > 1e-3:
            raise RuntimeError(f"export parity {parity:.3g}")
        out[stage] = "ok"
    except Exception as exc:  # the matrix shows it; --verbose prints the traceback
        out[stage] = f"FAIL {type(exc).__name__}: {exc}".splitlines()[0][:200]
        out["traceback"] = traceback.format_exc(limit=6)
    return out


def _finite(t: Any, what: str) -> None:
    if not bool(torch.isfinite(t).all()):
        raise RuntimeError(f"{what} not finite")
