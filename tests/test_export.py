"""Each kind of quantizer export, on a small conv + linear model: what the host deploys it as, that
onnxruntime computes what qbench computes, that integer kernels run where both sides are uniform,
and that weights.safetensors holds the codes packed at their bits (the audit's size)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

import export_plugin as xp  # noqa: E402

from qbench.contract.bits import LayerBits  # noqa: E402
from qbench.contract.layer_info import LayerInfo  # noqa: E402
from qbench.contract.quant.layers import quant_layers  # noqa: E402
from qbench.deploy import export_model, write  # noqa: E402
from qbench.deploy.pack import pack_bits, unpack_bits, unpack_weight  # noqa: E402
from qbench.train.audit import audit_model, packed_size_bits  # noqa: E402
from qbench.train.surgery import quantize_model  # noqa: E402


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.c1 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.fc1 = nn.Linear(16 * 4 * 4, 32)
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x))
        x = torch.relu(self.bn(self.c1(x)))
        x = torch.relu(self.c2(x))
        x = self.fc1(x.flatten(1))  # fc1's input is signed for the signed quantizers
        return self.head(torch.tanh(x) * 3 - 1)


BODY = ("c1", "c2", "fc1")


def build(wq: type | None, aq: type | None, bits: int = 4, a_params: dict | None = None,
          net: type[nn.Module] = Net) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = net()
    x = torch.randn(64, 1, 8, 8)
    plan = {n: LayerBits(bits if wq else None, bits if aq else None) for n in BODY}
    quantize_model(model, plan, (lambda b, layer: wq(b, layer)) if wq else None,
                   (lambda b, layer: aq(b, layer, **(a_params or {}))) if aq else None)
    for _, layer in quant_layers(model):
        if layer.wq is not None:
            layer.wq.initialize(layer.weight)
    model.train()
    with torch.no_grad():
        model(x)  # activation quantizers initialise on this batch
    return model.eval(), x


def check(model: nn.Module, x: torch.Tensor, tmp_path: Path) -> tuple:
    exp = export_model(model, x)
    with torch.no_grad():
        ref = model(x).numpy()
    got = exp.session.run(None, {"input": x.numpy()})[0]
    assert abs(got - ref).max() <= 1e-4 * max(1.0, abs(ref).max()), abs(got - ref).max()
    out = write(exp, tmp_path / "out")
    assert {p.name for p in out.iterdir()} == {"model.onnx", "weights.safetensors", "manifest.json"}
    man = json.loads((out / "manifest.json").read_text())
    # weights.safetensors rebuilds every hard weight, and its size is the audit's packed size
    from safetensors.torch import load_file

    tensors = load_file(str(out / "weights.safetensors"))
    for entry, (_, layer) in zip(man["layers"], quant_layers(model)):
        if layer.wq is not None:
            torch.testing.assert_close(unpack_weight(tensors, entry["name"], entry), layer.hard_weight(),
                                       rtol=0, atol=1e-5 * float(layer.hard_weight().abs().max()))
    infos = [LayerInfo(n, "conv" if isinstance(m, nn.Conv2d) else "linear", "body", m.weight.numel(), 0, 0, 0)
             for n, m in quant_layers(model)]
    audit_bytes = packed_size_bits(model, audit_model(model, infos, x)) / 8
    # the same bytes, but each layer's weight quantizer state (what the audit counts for it) is
    # replaced by the scales / zero points / LUTs the export stores; codes pad to a whole byte
    quantizer_state = sum(t.numel() * 4 for _, layer in quant_layers(model) if layer.wq is not None
                          for t in list(layer.wq.parameters()) + list(layer.wq.buffers()) if t.is_floating_point())
    grid_bytes = sum(t.numel() * t.element_size() for k, t in tensors.items()
                     if k.endswith((".scale", ".zero_point", ".lut")))
    expected = audit_bytes - quantizer_state + grid_bytes
    assert expected <= exp.packed_bytes <= expected + len(man["layers"])
    return exp, man


def test_uniform_per_tensor_runs_integer_kernels(tmp_path: Path) -> None:
    model, x = build(xp.UniformW, xp.UniformA)
    exp, man = check(model, x, tmp_path)
    assert [p.weight.scheme for p in exp.plans] == ["uniform"] * 3
    assert all(p.weight.source == "export()" and not p.weight.per_channel for p in exp.plans)
    assert [p.act.scheme for p in exp.plans] == ["uniform"] * 3
    assert exp.integer_ops == {"ConvInteger": 2, "MatMulInteger": 1}
    fc1 = man["layers"][2]
    assert fc1["weight"]["bits"] == 4 and fc1["activation"]["levels"] <= 16 and fc1["integer_op"]


def test_uniform_per_channel_with_zero_points(tmp_path: Path) -> None:
    model, x = build(xp.ChannelW, xp.UniformA, a_params={"signed": True})
    exp, man = check(model, x, tmp_path)
    assert all(p.weight.scheme == "uniform" and p.weight.per_channel for p in exp.plans)
    assert exp.plans[0].weight.int_scale.numel() == 8
    assert exp.plans[2].act.zero_point == 8  # signed 4-bit input: codes 0..15 around 8
    assert sum(exp.integer_ops.values()) == 3
    assert len(man["layers"][1]["weight"]["zero_point"]) == 16


def test_lut_weights_and_traced_nonuniform_activations(tmp_path: Path) -> None:
    model, x = build(xp.Pow2W, xp.SquareA)
    exp, man = check(model, x, tmp_path)
    assert [p.weight.scheme for p in exp.plans] == ["lut"] * 3
    assert all(p.weight.source == "export()" for p in exp.plans)
    assert [p.act.scheme for p in exp.plans] == ["steps"] * 3  # exact thresholds, levels by Gather
    assert "not evenly spaced" in exp.plans[0].act.note
    assert len(man["layers"][0]["activation"]["levels"]) <= 16
    assert not exp.integer_ops
    assert len(man["layers"][0]["weight"]["lut"]) == 15


def test_weight_only_per_channel_lut_inferred_from_the_hard_weight(tmp_path: Path) -> None:
    model, x = build(xp.QuantileW, None, bits=2)
    exp, man = check(model, x, tmp_path)
    assert all(p.weight.scheme == "lut" and p.weight.per_channel and p.weight.source == "inferred"
               for p in exp.plans)
    assert all(p.act.scheme == "none" for p in exp.plans)
    assert man["layers"][0]["weight"]["bits"] == 2 and man["layers"][0]["activation"]["scheme"] == "fp32"


def test_default_export_uniform_grid_is_inferred(tmp_path: Path) -> None:
    """A uniform quantizer with only the default export() still deploys as integer codes."""
    class Plain(xp.UniformW):
        def export(self, w: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"weight": self.hard(w)}

    model, x = build(Plain, xp.UniformA, bits=2)
    exp, _ = check(model, x, tmp_path)
    assert all(p.weight.scheme == "uniform" and p.weight.source == "inferred" for p in exp.plans)
    assert sum(exp.integer_ops.values()) == 3


def test_half_step_grid_packs_at_its_bits() -> None:
    """DoReFa's odd symmetric levels (no zero level) pack at b bits with a half-integer zero point."""
    from qbench.deploy.analyze import WeightPlan, _grid
    from qbench.deploy.pack import uniform_codes

    levels = (torch.arange(4) * 2 - 3).float() / 3  # 2 bits: -1, -1/3, 1/3, 1
    w = levels[torch.randint(0, 4, (50,))]
    codes, s = _grid(w)
    plan = WeightPlan("uniform", False, 2, 4, "inferred", int_codes=codes.to(torch.int8), int_scale=torch.tensor([s]))
    k, zp, scale = uniform_codes(plan)
    assert int(k.max()) <= 3 and float(zp[0]) == 1.5
    torch.testing.assert_close(((k.float() - zp[:, None]) * scale[:, None]).reshape(-1), w)


def test_pack_bits_round_trip() -> None:
    for bits in (1, 2, 3, 4, 5, 8):
        codes = torch.randint(0, 2 ** bits, (1001,))
        packed = pack_bits(codes, bits)
        assert packed.numel() == -(-1001 * bits // 8)
        assert torch.equal(unpack_bits(packed, bits, 1001), codes)


def test_lut_weights_behind_uniform_activations_keep_their_levels(tmp_path: Path) -> None:
    """onnxruntime re-quantizes a float weight that follows a DequantizeLinear input to int8; the
    export keeps LUT layers out of that pattern, so the power-of-two levels survive."""
    model, x = build(xp.Pow2W, xp.UniformA)
    exp, _ = check(model, x, tmp_path)
    assert [(p.weight.scheme, p.act.scheme) for p in exp.plans] == [("lut", "uniform")] * 3


class DynamicA(xp.UniformA):
    """A per-sample dynamic scale (max |x| of each sample): no static grid, traced as its own ops."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.detach().abs().flatten(1).amax(1).clamp_min(1e-8) / 15
        s = s.reshape(-1, *([1] * (x.dim() - 1)))
        return torch.round(torch.clamp(x / s, 0, 15)) * s


def test_dynamic_activations_are_traced(tmp_path: Path) -> None:
    model, x = build(xp.UniformW, DynamicA)
    exp, _ = check(model, x, tmp_path)
    assert [p.act.scheme for p in exp.plans] == ["traced"] * 3
    assert all(p.weight.scheme == "uniform" for p in exp.plans) and not exp.integer_ops


class SqrtThresholdA(xp.UniformA):
    """Uniform output levels k * s behind non-uniform (square-law) thresholds, as N2UQ's are."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = 2 ** self.bits - 1
        return torch.round(torch.sqrt(torch.clamp(x / (self.s * n), 0, 1)) * n) * self.s


def test_uniform_levels_behind_learned_thresholds_run_integer_kernels(tmp_path: Path) -> None:
    model, x = build(xp.UniformW, SqrtThresholdA)
    exp, _ = check(model, x, tmp_path)
    assert [p.act.scheme for p in exp.plans] == ["steps"] * 3 and all(p.integer for p in exp.plans)
    assert exp.integer_ops == {"ConvInteger": 2, "MatMulInteger": 1}


class SameNet(Net):
    """c2 is timm's Conv2dSame (tf_ models): on 8x8 at stride 2 it pads 0 before and 1 after,
    where a plain conv's padding=1 pads both sides."""

    def __init__(self) -> None:
        super().__init__()
        from timm.layers import Conv2dSame

        self.c2 = Conv2dSame(8, 16, 3, stride=2)


class MeanScaledA(xp.UniformA):
    """A per-sample step from the mean |x| (as ASQ's adapts to its input): zeros padded into the
    input would change it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.detach().abs().flatten(1).mean(1).clamp_min(1e-8) / 4
        s = s.reshape(-1, *([1] * (x.dim() - 1)))
        return torch.round(torch.clamp(x / s, 0, 15)) * s


@pytest.mark.parametrize("aq", [xp.UniformA, xp.SquareA, "MeanScaledA"])
def test_a_conv_that_pads_same_in_its_forward_deploys_with_that_padding(aq: type | str, tmp_path: Path) -> None:
    """Found by the zoo suite: tf_mobilenetv3 at 28x28 failed to export ("Kernel size can't be
    greater than actual input size"); the deployed conv had dropped Conv2dSame's own padding. The
    padding comes after the activation quantizer, as in qbench's model: a data-dependent quantizer
    (ASQ on tf_mobilenetv3 moved 1,711 of 10,000 predictions) must not see the zeros."""
    aq = MeanScaledA if aq == "MeanScaledA" else aq
    model, x = build(xp.UniformW, aq, net=SameNet)
    exp, _ = check(model, x, tmp_path)  # onnxruntime's logits are qbench's
    assert exp.plans[1].name == "c2"


def test_integer_accumulators_are_rescaled_by_cast_and_mul_not_dequantizelinear() -> None:
    """Found by the zoo suite (mobilevit_xxs x lsq: 1,372 of 10,000 predictions moved, every logit
    off; onnxruntime agreed with the graph only with its QDQPropagationTransformer disabled). A
    DequantizeLinear of an int32 accumulator is moved forward past Reshape/Transpose (MobileViT's
    patch unfolding) through an inserted QuantizeLinear of the default type, uint8, which clips the
    accumulator. An integer op's output is rescaled as onnxruntime's own dynamic quantization does
    it: Cast to float, then Mul by the scale."""
    import onnx

    model, x = build(xp.UniformW, xp.UniformA)
    exp = export_model(model, x)
    graph = onnx.load_from_string(exp.onnx).graph
    producer = {o: n for n in graph.node for o in n.output}
    integer = [n for n in graph.node if n.op_type in ("ConvInteger", "MatMulInteger")]
    assert len(integer) == 3
    consumers = [c for n in integer for c in graph.node if n.output[0] in c.input]
    assert [c.op_type for c in consumers] == ["Cast"] * 3
    assert not [n for n in graph.node if n.op_type == "DequantizeLinear" and
                producer.get(n.input[0]) is not None and producer[n.input[0]].op_type in ("ConvInteger", "MatMulInteger")]
