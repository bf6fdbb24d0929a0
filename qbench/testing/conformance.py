"""The conformance suite every method plugin's methods pass.

The host's ``tests/test_conformance.py`` runs it on every installed method, but only in a qbench
checkout (qbench's tests are not installed with it). A plugin kept elsewhere runs it from its own
tests: subclass :class:`MethodConformance` and name the method::

    from qbench.testing import MethodConformance

    class TestLsqConformance(MethodConformance):
        method = "lsq"

Each check builds the method's quantized model through the host's own path
(:func:`qbench.train.qat.run_qat`: allocator, first/last rule, quantizers, calibration, wrapper, a few
optimiser steps) on a few timm families and the embedded digits data, then asserts:
forward and backward work, gradients reach the quantizer parameters, every hard-quantized layer
keeps at most 2^b levels (measured by the bit audit, not declared) and has not collapsed (most
quantized layers below 2^(b-1) levels: :func:`collapse_reasons`), the export is exact, the
state dict round-trips through ``torch.load(weights_only=True)``, a seed fixes the result,
a quantizer's optional ``learned_state()`` is small, JSON-safe and finite, and its optional
``inference_macs()`` a non-negative int.
"""
from __future__ import annotations

import io
import json
from typing import Any, ClassVar

import pytest
import torch
from torch.utils.data import TensorDataset

from qbench.contract.bits import BitTarget
from qbench.contract.quant.base import Quantizer
from qbench.contract.quant.layers import quant_layers
from qbench.contract.quant.learned import check_learned_state
from qbench.data.bundle import DataBundle
from qbench.data.digits import load_digits
from qbench.models import create_model
from qbench.plugin.catalog import Catalog, get_catalog
from qbench.run.suite import TrainRecipe
from qbench.train.audit import audit_model, export_parity, summarize
from qbench.train.qat import QatResult, frozen_copy, prepare, run_qat

#: (label, timm name, kwargs): small members of distinct families, for 1x8x8 inputs.
FAMILIES: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("resnet20", "resnet20", {"width": 4}),
    ("vit", "vit_tiny_patch16_224", {"img_size": 8, "patch_size": 2, "depth": 2, "embed_dim": 32, "num_heads": 2}),
)
RECIPE = TrainRecipe(epochs=1, batch_size=64, lr=0.01)


def collapse_reasons(layers: list[dict[str, Any]]) -> list[str]:
    """Why a short training counts as collapsed: most quantized layers keep fewer than 2^(b-1)
    weight levels (or activation levels per sample), b the layer's declared bits; the rule rows
    are flagged by (:mod:`qbench.report.budget`). Empty when it did not collapse."""
    from qbench.report.budget import _layer_collapse

    return _layer_collapse(layers)


def tiny_digits(n_train: int = 128, n_test: int = 64) -> DataBundle:
    """The embedded digits data cut to a few batches (real data, small)."""
    d = load_digits()
    xtr, ytr = d.train.tensors
    xte, yte = d.test.tensors
    return DataBundle(name="digits-tiny", train=TensorDataset(xtr[:n_train], ytr[:n_train]),
                      test=TensorDataset(xte[:n_test], yte[:n_test]), num_classes=10, in_chans=1,
                      image_size=(8, 8), fingerprint=d.fingerprint, source=d.source)


def fp_model(family: str, seed: int = 0) -> torch.nn.Module:
    _, name, kwargs = next(f for f in FAMILIES if f[0] == family)
    torch.manual_seed(seed)
    return create_model(name, 10, 1, **kwargs).eval()


def qat(method_name: str, family: str, bits: int, seed: int = 0, catalog: Catalog | None = None) -> QatResult:
    cat = catalog or get_catalog()
    method = cat.methods.get(method_name)
    return run_qat(method, cat, fp_model(family), tiny_digits(), BitTarget(bits, bits), RECIPE, "fp", seed)


class MethodConformance:
    """Base class of a plugin's conformance tests; set ``method`` (and optionally ``families``)."""

    method: ClassVar[str] = ""
    families: ClassVar[tuple[str, ...]] = tuple(f[0] for f in FAMILIES)
    bits: ClassVar[tuple[int, ...]] = (2, 4)

    @pytest.fixture(autouse=True)
    def _one_thread(self) -> None:
        torch.set_num_threads(1)

    @pytest.fixture
    def catalog(self) -> Catalog:
        cat = get_catalog()
        cat.methods.get(self.method)  # a clear "Unknown method" when the plugin is not installed
        return cat

    def test_forward_backward_and_gradients_reach_quantizers(self, catalog: Catalog) -> None:
        method = catalog.methods.get(self.method)
        data = tiny_digits()
        for family in self.families:
            qmodel, _, allocator = prepare(method, catalog, fp_model(family), data, BitTarget(4, 4), "fp", 0)
            wrapper = catalog.wrappers.get(method.wrapper).factory(**method.part_params("wrapper"))
            wrapper.setup(qmodel, frozen_copy(fp_model(family)))
            x, y = data.train.tensors[0][:32], data.train.tensors[1][:32]
            loss = wrapper.loss(qmodel, x, y)
            assert torch.isfinite(loss), f"{self.method} on {family}: loss {loss}"
            loss.backward()
            qids = {id(p) for m in qmodel.modules() if isinstance(m, Quantizer) for p in m.parameters()}
            qparams = [(n, p) for n, p in qmodel.named_parameters() if p.requires_grad and id(p) in qids]
            missing = [n for n, p in qparams if p.grad is None]
            assert not missing, f"{self.method} on {family}: no gradient reaches quantizer parameters {missing}"
            if qparams:
                assert any(float(p.grad.abs().sum()) > 0 for _, p in qparams), \
                    f"{self.method} on {family}: every quantizer parameter has a zero gradient"
            assert any(p.grad is not None and float(p.grad.abs().sum()) > 0
                       for n, p in qmodel.named_parameters() if n.endswith("weight")), \
                f"{self.method} on {family}: no gradient reaches the weights"

    def test_hard_weights_keep_at_most_2_to_the_b_levels(self, catalog: Catalog) -> None:
        data = tiny_digits()
        x = data.test.tensors[0]
        for family in self.families:
            for b in self.bits:
                res = qat(self.method, family, b, catalog=catalog)
                summary = summarize(res.model, audit_model(res.model, res.layers, x))
                assert summary["levels_ok"], (f"{self.method} on {family} at {b} bits keeps more levels than it "
                                              f"declares: {summary['level_violations']}")
                quantized = [la for la in summary["layers"] if la["w_levels"]]
                assert quantized, f"{self.method} on {family}: no layer has quantized weights"
                collapse = collapse_reasons(summary["layers"])
                assert not collapse, (f"{self.method} on {family} at {b} bits collapsed after a short training: "
                                      f"{'; '.join(collapse)}")

    def test_export_is_exact(self, catalog: Catalog) -> None:
        res = qat(self.method, self.families[0], 4, catalog=catalog)
        x = tiny_digits().test.tensors[0]
        assert export_parity(res.model, x) < 1e-4
        for name, layer in quant_layers(res.model):
            if layer.wq is not None:
                exported = layer.wq.export(layer.weight)
                assert exported and all(isinstance(v, torch.Tensor) for v in exported.values()), name

    def test_state_dict_round_trip(self, catalog: Catalog) -> None:
        res = qat(self.method, self.families[0], 4, catalog=catalog)
        buf = io.BytesIO()
        torch.save(res.model.state_dict(), buf)
        buf.seek(0)
        state = torch.load(buf, weights_only=True)
        fresh = qat(self.method, self.families[0], 4, seed=1, catalog=catalog).model
        fresh.load_state_dict(state)
        x = tiny_digits().test.tensors[0]
        res.model.eval()
        fresh.eval()
        with torch.no_grad():
            assert torch.allclose(res.model(x), fresh(x), atol=1e-5), f"{self.method}: state dict does not round-trip"

    def test_learned_state_is_json_safe_small_and_finite(self, catalog: Catalog) -> None:
        """A quantizer's optional ``learned_state()`` (after calibration and after training) keeps
        the contract's rules (:func:`check_learned_state`) and only reads: the state dict is
        unchanged by the call. Quantizers without it pass."""
        method = catalog.methods.get(self.method)
        built = prepare(method, catalog, fp_model(self.families[0]), tiny_digits(), BitTarget(4, 4), "fp", 0)[0]
        for when, model in (("after calibration", built), ("after QAT", qat(self.method, self.families[0], 4,
                                                                                catalog=catalog).model)):
            for path, q in model.named_modules():
                hook = getattr(q, "learned_state", None) if isinstance(q, Quantizer) else None
                if not callable(hook):
                    continue
                before = {k: v.clone() for k, v in q.state_dict().items() if isinstance(v, torch.Tensor)}
                with torch.no_grad():
                    state = check_learned_state(hook(), f"{self.method}: {type(q).__name__} at {path!r} {when}")
                json.dumps(state, allow_nan=False)
                after = q.state_dict()
                changed = [k for k, v in before.items() if not torch.equal(v, after[k])]
                assert not changed, f"{self.method}: {type(q).__name__}.learned_state() changed {changed} {when}"

    def test_inference_macs_is_a_non_negative_int(self, catalog: Catalog) -> None:
        """A quantizer's optional ``inference_macs(input_shape)`` (FP work it runs at inference per
        sample, counted into the row's BitOPs) returns a non-negative int for the input shapes
        its layers see. Quantizers without it pass (the base class returns 0)."""
        method = catalog.methods.get(self.method)
        for family in self.families:
            model = prepare(method, catalog, fp_model(family), tiny_digits(), BitTarget(4, 4), "fp", 0)[0].eval()
            shapes: dict[str, tuple[int, ...]] = {}
            hooks = [layer.register_forward_pre_hook(
                lambda m, inp, n=name: shapes.__setitem__(n, tuple(inp[0].shape[1:]))) for name, layer in
                quant_layers(model)]
            with torch.no_grad():
                model(tiny_digits().test.tensors[0][:4])
            for h in hooks:
                h.remove()
            for name, layer in quant_layers(model):
                for q in (layer.aq, layer.wq):
                    hook = getattr(q, "inference_macs", None)
                    if q is None or not callable(hook):
                        continue
                    macs = hook(shapes[name])
                    assert isinstance(macs, int) and not isinstance(macs, bool) and macs >= 0, (
                        f"{self.method} on {family}: {type(q).__name__}.inference_macs({shapes[name]}) at {name!r} "
                        f"returned {macs!r}; it must be a non-negative int")

    def test_a_seed_fixes_the_result(self, catalog: Catalog) -> None:
        x = tiny_digits().test.tensors[0]
        outs = []
        for _ in range(2):
            m = qat(self.method, self.families[0], 2, seed=3, catalog=catalog).model.eval()
            with torch.no_grad():
                outs.append(m(x))
        assert torch.equal(outs[0], outs[1]), f"{self.method}: two runs with one seed differ"
