"""Registration: the `bwrf` wrapper and method, and BWRF around the real LSQ quantizers."""
from __future__ import annotations

import torch
from qbench_bwrf import BWRFWrapper

from qbench.api import QuantLayer, kd_loss
from qbench.testing import get_catalog


def test_wrapper_and_method_are_registered() -> None:
    cat = get_catalog()
    method = cat.methods.get("bwrf")
    assert (method.weight_quantizer, method.activation_quantizer, method.allocator, method.wrapper) == \
        ("lsq-w", "lsq-a", "fixed", "bwrf")
    cat.check_method(method)  # every part it names is installed, with the right kind
    wrapper = cat.wrappers.get("bwrf").factory(**method.part_params("wrapper"))
    assert isinstance(wrapper, BWRFWrapper)
    assert wrapper.reading == "progressive" and wrapper.granularity == "block" and wrapper.num_mp is None


def test_method_distils_at_temperature_1_with_unit_weights() -> None:
    """bwrf v2: the paper gives no KD temperature or weights; qbench measured T = 1 against the v1
    T = 4 (README, "Distillation"). At T = 1 the KD term's gradient on the student logits is
    (softmax(s) - softmax(t)) / B, the scale of the CE gradient; at T = 4 with the T^2 factor it is
    4 x (softmax(s/4) - softmax(t/4)) / B."""
    method = get_catalog().methods.get("bwrf")
    assert method.version == 2
    params = method.part_params("wrapper")
    assert params["temperature"] == 1.0
    assert all(params[k] == 1.0 for k in ("w_ce_lp", "w_kd_fp_lp", "w_ce_mp", "w_kd_fp_mp", "w_kd_mp_lp"))
    assert BWRFWrapper().temperature == 1.0
    torch.manual_seed(0)
    s, t = torch.randn(8, 10, requires_grad=True), torch.randn(8, 10)
    for temp in (1.0, 4.0):
        s.grad = None
        kd_loss(s, t, temp).backward()
        want = temp * (torch.softmax(s.detach() / temp, 1) - torch.softmax(t / temp, 1)) / 8
        torch.testing.assert_close(s.grad, want)


def test_compose_swaps_the_quantizers_and_keeps_the_wrapper() -> None:
    method = get_catalog().methods.get("bwrf")
    other = method.compose("bwrf-other", weight_quantizer="other-w", activation_quantizer="other-a")
    assert other.wrapper == "bwrf" and other.part_params("wrapper") == method.part_params("wrapper")


def test_one_step_with_lsq_quantizers_on_resnet20(build_models) -> None:
    cat = get_catalog()
    method = cat.methods.get("bwrf")
    wq, aq = (cat.quantizers.get(n).factory for n in (method.weight_quantizer, method.activation_quantizer))
    wp, ap = method.part_params("weight"), method.part_params("activation")
    qmodel, fp, x, y = build_models("resnet20", lambda b, m: wq(b, m, **wp), lambda b, m: aq(b, m, **ap))
    w = cat.wrappers.get("bwrf").factory(**method.part_params("wrapper"))
    w.setup(qmodel, fp)
    loss = w.loss(qmodel, x, y)
    loss.backward()
    assert torch.isfinite(loss)
    steps = [p.grad for m in qmodel.modules() if isinstance(m, QuantLayer) for p in m.wq.parameters()]
    assert steps and all(g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 for g in steps)
