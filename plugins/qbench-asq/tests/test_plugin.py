"""Registration and a quantized ResNet-20 built by the host's own surgery with the registered factories."""
from __future__ import annotations

import timm
import torch
import torch.nn.functional as F
from qbench_asq import ASQActQuantizer, POSTWeightQuantizer
from qbench_asq.weights import asq_weight_quantizer

from qbench.api import LayerBits, find_layers, quant_layers, quantize_model
from qbench.testing import get_catalog


def test_registered_method_and_quantizers() -> None:
    cat = get_catalog()
    method = cat.methods.get("asq")
    assert (method.weight_quantizer, method.activation_quantizer) == ("asq-w", "asq-a")
    assert (method.allocator, method.wrapper, method.version) == ("fixed", "plain", 3)
    assert cat.quantizers.get("post-w").factory is POSTWeightQuantizer
    assert cat.quantizers.get("asq-w").factory is asq_weight_quantizer
    assert cat.quantizers.get("asq-w").kind == "weight"
    assert cat.quantizers.get("asq-a").factory is ASQActQuantizer
    assert cat.quantizers.get("asq-a").kind == "activation"
    cat.check_method(method)


def test_resnet20_w4a4_trains_and_deploys_within_bit_budget() -> None:
    torch.manual_seed(0)
    cat = get_catalog()
    method = cat.methods.get("asq")
    model = timm.create_model("resnet20", num_classes=10, in_chans=1)
    x, y = torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,))
    layers = [info for info in find_layers(model, x) if info.role == "body"]
    plan = {info.name: LayerBits(4, 4) for info in layers}
    wf, af = cat.quantizers.get(method.weight_quantizer).factory, cat.quantizers.get(method.activation_quantizer).factory
    quantize_model(model, plan, lambda b, m: wf(b, m, **method.part_params("weight")),
                   lambda b, m: af(b, m, **method.part_params("activation")))
    qlayers = dict(quant_layers(model))
    assert set(qlayers) == set(plan) and any(".downsample." in n for n in qlayers)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(2):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    for layer in qlayers.values():
        assert layer.aq.s.grad is not None and layer.aq.adapter.last.bias.grad is not None
        assert layer.wq.alpha.grad is not None
        hard = layer.hard_weight()
        assert max(hard[c].unique().numel() for c in range(hard.shape[0])) <= 16
    model.eval()
    seen = {}
    hooks = [m.register_forward_hook(lambda mod, inp, out, n=n: seen.__setitem__(n, mod.aq(inp[0])))
             for n, m in qlayers.items()]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    assert set(seen) == set(qlayers)
    for q in seen.values():
        assert max(q[b].unique().numel() for b in range(q.shape[0])) <= 16
