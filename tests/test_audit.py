"""The bit audit counts levels, not declarations; BitOPs and size follow one convention."""
from __future__ import annotations

import torch
from torch import nn
from toy_plugin import ToyAct, ToyWeight

from qbench.contract.bits import LayerBits
from qbench.models import create_model
from qbench.train.audit import LayerAudit, audit_model, bitops, bits_for_levels, count_levels, export_parity, summarize
from qbench.train.surgery import find_layers, quantize_model


def _quantized(extra_levels: int = 0, bits: int = 2) -> tuple[nn.Module, list, torch.Tensor]:
    torch.manual_seed(0)
    model = create_model("resnet20", 10, 1, width=4)
    x = torch.randn(8, 1, 8, 8)
    layers = find_layers(model, x)
    plan = {l.name: LayerBits(bits, bits) for l in layers if l.role == "body"}
    quantize_model(model, plan, lambda b, m: ToyWeight(b, m, extra_levels=extra_levels), lambda b, m: ToyAct(b, m))
    model.eval()
    model(x)  # initialise activation ranges
    return model, layers, x


def test_levels_and_bits() -> None:
    assert bits_for_levels(16) == 4 and bits_for_levels(17) == 5 and bits_for_levels(1) == 0
    t = torch.tensor([[0.0, 1.0, 1.0, 2.0], [5.0, 5.0, 5.0, 5.0]])
    assert count_levels(t) == 4
    assert count_levels(t, groups=2) == 3


def test_audit_measures_levels_within_declared_bits() -> None:
    model, layers, x = _quantized()
    audits = audit_model(model, layers, x)
    body = [a for a in audits if a.role == "body"]
    assert body and all(1 < a.w_levels <= 4 and a.w_bits_measured == 2 for a in body)
    assert all(a.a_levels <= 4 for a in body)
    edges = [a for a in audits if a.role != "body"]
    assert all(a.w_bits == 32 and a.w_levels == 0 for a in edges)
    s = summarize(model, audits)
    assert s["levels_ok"] and s["w_bits_measured"] == 2.0


def test_audit_flags_a_quantizer_that_keeps_more_levels_than_declared() -> None:
    model, layers, x = _quantized(extra_levels=3)
    s = summarize(model, audit_model(model, layers, x))
    assert not s["levels_ok"]
    assert "layer1.0.conv1" in s["level_violations"] and "> 2^2" in s["level_violations"]


def test_bitops_is_macs_times_bits() -> None:
    la = [LayerAudit("a", "body", 10, 100, 4, 8, 16, 4, 256, 8, False),
          LayerAudit("b", "first", 10, 50, 32, 32, 0, 32, 0, 32, False)]
    assert bitops(la) == 100 * 4 * 8 + 50 * 32 * 32


def test_find_layers_roles_and_macs() -> None:
    model = create_model("resnet20", 10, 1, width=4)
    layers = find_layers(model, torch.randn(2, 1, 8, 8))
    assert layers[0].name == "conv1" and layers[0].role == "first"
    assert layers[-1].name == "fc" and layers[-1].role == "last"
    # conv1: 4 out channels x 1 in x 3x3 kernel x 8x8 output positions
    assert layers[0].macs == 4 * 1 * 9 * 64
    assert layers[-1].macs == 16 * 10


def test_export_parity_is_exact() -> None:
    model, _, x = _quantized(bits=4)
    assert export_parity(model, x) < 1e-5


def test_sparsity_counts_exact_zeros_of_the_deployed_weights() -> None:
    model, layers, x = _quantized(bits=2)
    audits = audit_model(model, layers, x)
    quant = [(la, mod) for la in audits for name, mod in model.named_modules() if name == la.name and la.w_levels]
    assert quant
    for la, mod in quant:
        assert la.w_zeros == int((mod.hard_weight() == 0).sum())
    zeros = sum(la.w_zeros for la, _ in quant)
    total = sum(la.weight_numel for la, _ in quant)
    assert 0 < zeros < total  # 2-bit symmetric levels {-2, -1, 0, 1} * s: some weights round to 0
    assert summarize(model, audits)["w_sparsity"] == round(zeros / total, 4)
    fp = create_model("resnet20", 10, 1, width=4)
    assert summarize(fp, audit_model(fp, find_layers(fp, x), x))["w_sparsity"] is None
