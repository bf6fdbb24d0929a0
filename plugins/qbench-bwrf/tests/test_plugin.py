"""Registration: the `bwrf` wrapper and method, and BWRF around the real LSQ quantizers."""
from __future__ import annotations

import torch
from qbench_bwrf import BWRFWrapper

from qbench.api import QuantLayer
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
