"""The conformance suite passes a sound method and fails one that keeps more levels than it declares."""
from __future__ import annotations

import pytest

from qbench.contract.method import Method
from qbench.plugin.catalog import Catalog
from qbench.testing import MethodConformance
from qbench.testing.conformance import FAMILIES


class TestToyConformance(MethodConformance):
    """The toy method runs the whole suite (the host's own catalog, not installed plugins)."""

    method = "toy"

    @pytest.fixture
    def catalog(self, catalog: Catalog) -> Catalog:  # type: ignore[override]
        return catalog


def test_cheating_plugin_fails_with_layer_and_counts(catalog: Catalog) -> None:
    catalog.methods.add("toy-cheat", Method(name="toy-cheat", version=1, weight_quantizer="toy-w",
                                            activation_quantizer="toy-a", params={"weight": {"extra_levels": 3}}),
                        "test")

    class Cheat(MethodConformance):
        method = "toy-cheat"
        families = (FAMILIES[0][0],)
        bits = (2,)

    with pytest.raises(AssertionError) as exc:
        Cheat().test_hard_weights_keep_at_most_2_to_the_b_levels(catalog)
    msg = str(exc.value)
    assert "toy-cheat on resnet20 at 2 bits keeps more levels than it declares" in msg
    assert "layer1.0.conv1: 7 weight levels > 2^2" in msg


# -- every installed method, driven by the registry (as timm runs its model tests over its registry) --

def _installed_methods() -> list[str]:
    from qbench.plugin.catalog import get_catalog

    cat = get_catalog()
    return [name for name in cat.methods.names() if not cat.methods.get(name).reference]


CHECKS = sorted(name for name in dir(MethodConformance) if name.startswith("test_"))


@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("method", _installed_methods())
def test_every_installed_method_passes_conformance(method: str, check: str) -> None:
    """No plugin can skip the conformance suite: the host runs it on whatever is installed."""
    import torch

    from qbench.plugin.catalog import get_catalog

    torch.set_num_threads(1)
    suite = type(f"Conformance[{method}]", (MethodConformance,), {"method": method})()
    getattr(suite, check)(get_catalog())
