"""ASQ's adapters are counted (their MACs at 32 x 32 bits in the row's BitOPs, against the budget),
and ``asq-w`` pairs ASQ activations with POST weights from 3 bits and with LSQ weights below."""
from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import torch
from qbench_asq import ASQActQuantizer, POSTWeightQuantizer
from qbench_asq.weights import asq_weight_quantizer, uses_post
from torch import nn

from qbench.api import QbenchError, registered_quantizer
from qbench.testing import get_catalog, parse_suite, run_suite, tiny_suite


def test_adapter_macs_by_hand() -> None:
    """Linear(C, C/4) + Linear(C/4, 1) for C >= 8, Linear(C, 1) below; the input size does not
    matter (the adapter sees channel means); no adapter, no MACs."""
    assert ASQActQuantizer(2, nn.Conv2d(16, 16, 3)).inference_macs((16, 8, 8)) == 16 * 4 + 4 * 1
    assert ASQActQuantizer(2, nn.Conv2d(16, 16, 3)).inference_macs((16, 32, 32)) == 68
    assert ASQActQuantizer(2, nn.Conv2d(4, 8, 3)).inference_macs((4, 8, 8)) == 4
    assert ASQActQuantizer(2, nn.Linear(256, 64)).inference_macs((17, 256)) == 256 * 64 + 64
    assert ASQActQuantizer(2, nn.Conv2d(16, 16, 3), adapter=False).inference_macs((16, 8, 8)) == 0


def test_asq_weights_follow_the_paper_and_the_authors_pairing() -> None:
    conv = nn.Conv2d(8, 16, 3)
    lsq = registered_quantizer("lsq-w")
    two = asq_weight_quantizer(2, conv)
    assert type(two) is lsq and two.per_channel and two.bits == 2  # the authors' default: LSQ, per channel
    for bits in (3, 4):
        assert isinstance(asq_weight_quantizer(bits, conv), POSTWeightQuantizer)
    assert isinstance(asq_weight_quantizer(2, conv, scheme="post"), POSTWeightQuantizer)  # method v2
    assert type(asq_weight_quantizer(4, conv, scheme="lsq")) is lsq
    assert not asq_weight_quantizer(2, conv, lsq_per_channel=False).per_channel
    assert [uses_post(b) for b in (1, 2, 3, 4, 8)] == [False, False, True, True, True]
    with pytest.raises(QbenchError, match="scheme must be one of paper, post, lsq, got 'pots'"):
        asq_weight_quantizer(2, conv, scheme="pots")


def test_the_method_builds_lsq_weights_at_2_bits_and_post_at_4() -> None:
    cat = get_catalog()
    method = cat.methods.get("asq")
    factory = cat.quantizers.get(method.weight_quantizer).factory
    conv = nn.Conv2d(8, 16, 3)
    assert type(factory(2, conv, **method.part_params("weight"))) is registered_quantizer("lsq-w")
    assert isinstance(factory(4, conv, **method.part_params("weight")), POSTWeightQuantizer)


def test_the_rows_bitops_include_every_adapter_at_32x32(tmp_path: Path) -> None:
    """A tiny suite (digits, ResNet-20 of width 4, W2A2): 20 quantized body layers, whose inputs
    have 4 channels (8 layers: Linear(4, 1) = 4 MACs), 8 (7 layers: Linear(8, 2) + Linear(2, 1)
    = 18) or 16 (5 layers: Linear(16, 4) + Linear(4, 1) = 68): 8*4 + 7*18 + 5*68 = 498 MACs."""
    torch.manual_seed(0)
    suite = parse_suite(tomllib.loads(tiny_suite(name="asqcost", methods=("fp32", "asq"), bits=("W2A2",))))
    row = next(r for r in run_suite(suite, ["fp32", "asq"], tmp_path) if r["method"] == "asq")
    assert row["status"] == "ok", row.get("reason")
    adapters = {la["name"]: la["macs"] for la in row["layers"] if la["role"] == "quantizer"}
    assert len(adapters) == 20 and all(name.endswith(".aq") for name in adapters)
    assert sorted(adapters.values()) == sorted([4] * 8 + [18] * 7 + [68] * 5)
    assert adapters["layer1.0.conv1.aq"] == 4 and adapters["layer3.2.conv2.aq"] == 68
    assert sum(adapters.values()) == 498
    layers = [la for la in row["layers"] if la["role"] != "quantizer"]
    without = sum(la["macs"] * la["w_bits_measured"] * la["a_bits_measured"] for la in layers)
    assert round(row["gbitops"] * 1e9) == without + 498 * 32 * 32
    assert row["over_budget"] and "GBitOPs" in row["budget_reason"]
    assert row["qat_passes_per_step"] == 1.0 and row["qat_teacher_passes_per_step"] == 0.0
