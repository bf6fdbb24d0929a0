"""The plugin is discovered through its ``qbench`` entry point and registers what it promises."""
from __future__ import annotations

from qbench_lsq import LSQActivationQuantizer, LSQWeightQuantizer
from torch import nn

from qbench.testing import get_catalog, reset_catalog


def test_entry_point_registers_lsq() -> None:
    reset_catalog()
    try:
        cat = get_catalog()
        assert "lsq" not in cat.errors
        assert {"lsq", "lsq-pc"} <= set(cat.methods.names())
        assert {"lsq-w", "lsq-a"} <= set(cat.quantizers.names())
        assert cat.quantizers.get("lsq-w").kind == "weight"
        assert cat.quantizers.get("lsq-a").kind == "activation"
        assert cat.quantizers.get("lsq-w").factory is LSQWeightQuantizer
        assert cat.quantizers.get("lsq-a").factory is LSQActivationQuantizer
        assert cat.plugin_of(cat.methods, "lsq") == "lsq"
        for name, per_channel in (("lsq", False), ("lsq-pc", True)):
            method = cat.methods.get(name)
            cat.check_method(method)
            assert (method.weight_quantizer, method.activation_quantizer) == ("lsq-w", "lsq-a")
            assert (method.allocator, method.wrapper) == ("fixed", "plain")
            # The method's params build the quantizer it promises.
            layer = nn.Linear(4, 3)
            wq = cat.quantizers.get(method.weight_quantizer).factory(2, layer, **method.part_params("weight"))
            aq = cat.quantizers.get(method.activation_quantizer).factory(2, layer, **method.part_params("activation"))
            assert wq.per_channel is per_channel and wq.step.numel() == (3 if per_channel else 1)
            assert aq.signed_param is None
    finally:
        reset_catalog()
