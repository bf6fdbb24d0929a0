"""Every cost counted: FP work a quantizer runs at inference goes into BitOPs against the budget,
and a method's training cost (forward passes per step, measured; QAT time relative to lsq) reaches
its row and the leaderboard without moving any other number."""
from __future__ import annotations

import contextlib
import copy
import math
import sys
from pathlib import Path

import pandas as pd
import pytest
import tomllib
import torch
from torch import Tensor, nn
from torch.utils.data import TensorDataset
from toy_plugin import ToyAct

from qbench.contract.method import Method
from qbench.data.bundle import DataBundle
from qbench.data.digits import load_digits
from qbench.errors import PluginError
from qbench.models import create_model
from qbench.plugin.catalog import Component
from qbench.report.costs import cost_markdown, training_cost
from qbench.report.leaderboard import publish
from qbench.testing import parse_suite, run_suite, tiny_suite
from qbench.train.audit import QUANTIZER_ROLE, audit_model, target_bitops
from qbench.train.loop import train
from qbench.train.passes import PassCounter, teacher_modules
from qbench.train.recipe import TrainRecipe

sys.path.insert(0, str(Path(__file__).parent / "browser"))
from html_sample import SUITE, sample_rows  # noqa: E402

from qbench.report.html import page_data  # noqa: E402


class AdapterAct(ToyAct):
    """ToyAct that declares FP work at inference: 3 MACs per input channel (a stand-in for an
    adapter MLP). Its numbers are ToyAct's: only the declaration differs."""

    def inference_macs(self, input_shape: tuple[int, ...]) -> int:
        return 3 * int(input_shape[0])


class BadAct(ToyAct):
    def inference_macs(self, input_shape: tuple[int, ...]) -> int:
        return -1  # type: ignore[return-value]


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """One tiny-suite run of the same toy quantizers: plain, with FP work declared, and with KD."""
    from toy_plugin import toy_catalog

    cat = toy_catalog()
    cat.quantizers.add("adapter-a", Component("adapter-a", AdapterAct, "", "activation"), "test")
    cat.methods.add("toy-adapter", Method(name="toy-adapter", version=1, weight_quantizer="toy-w",
                                          activation_quantizer="adapter-a"), "test")
    cat.methods.add("toy-kd", Method(name="toy-kd", version=1, weight_quantizer="toy-w", activation_quantizer="toy-a",
                                     wrapper="kd"), "test")
    methods = ["fp32", "toy", "toy-adapter", "toy-kd"]
    suite = parse_suite(tomllib.loads(tiny_suite(name="costs", methods=tuple(methods), bits=("W2A2",))))
    out = run_suite(suite, methods, tmp_path_factory.mktemp("costs"), cat)
    assert [r["status"] for r in out] == ["ok"] * 4, [r.get("reason") for r in out]
    return {r["method"]: r for r in out}


def test_declared_fp_work_is_in_gbitops_at_32x32_and_not_in_the_target(rows: dict[str, dict]) -> None:
    row = rows["toy-adapter"]
    fp_work = [la for la in row["layers"] if la["role"] == QUANTIZER_ROLE]
    body = [la for la in row["layers"] if la["role"] == "body"]
    assert len(fp_work) == len(body) == 20  # one adapter per quantized input
    inputs = {la["name"]: la for la in row["layers"]}
    for la in fp_work:
        assert la["name"].endswith(".aq") and la["kind"] == "AdapterAct" and la["w_bits"] == la["a_bits"] == 32
        assert la["name"][:-3] in inputs
    # input channels of the width-4 body: 8 layers read 4 channels, 7 read 8, 5 read 16
    assert sum(la["macs"] for la in fp_work) == 3 * (8 * 4 + 7 * 8 + 5 * 16)
    layers = [la for la in row["layers"] if la["role"] != QUANTIZER_ROLE]
    plain = sum(la["macs"] * la["w_bits_measured"] * la["a_bits_measured"] for la in layers)
    assert round(row["gbitops"] * 1e9) == plain + sum(la["macs"] for la in fp_work) * 32 * 32
    assert row["target_gbitops"] == pytest.approx(target_bitops(layers, 2, 2) / 1e9)
    assert row["over_budget"] and "GBitOPs" in row["budget_reason"]


def test_the_declaration_changes_nothing_else(rows: dict[str, dict]) -> None:
    """toy and toy-adapter compute the same: every number but BitOPs and the budget agrees."""
    a, b = rows["toy"], rows["toy-adapter"]
    for key in ("top1", "top5", "w_bits_measured", "a_bits_measured", "size_kb", "export_max_abs_diff",
                "target_gbitops", "qat_passes_per_step", "deploy_top1"):
        assert a.get(key) == b.get(key), key
    assert [la for la in b["layers"] if la["role"] != QUANTIZER_ROLE] == a["layers"]
    assert not a["over_budget"] and not any(la["role"] == QUANTIZER_ROLE for la in a["layers"])


def test_passes_per_step_count_the_kd_teacher(rows: dict[str, dict]) -> None:
    assert (rows["toy"]["qat_passes_per_step"], rows["toy"]["qat_teacher_passes_per_step"]) == (1.0, 0.0)
    assert (rows["toy-kd"]["qat_passes_per_step"], rows["toy-kd"]["qat_teacher_passes_per_step"]) == (2.0, 1.0)
    assert "qat_passes_per_step" not in rows["fp32"]  # no QAT, no steps


def test_a_hook_that_breaks_the_rule_fails_naming_the_quantizer() -> None:
    torch.manual_seed(0)
    from qbench.contract.bits import LayerBits
    from qbench.train.surgery import find_layers, quantize_model
    from toy_plugin import ToyWeight

    model = create_model("resnet20", 10, 1, width=4)
    x = torch.randn(4, 1, 8, 8)
    layers = find_layers(model, x)
    quantize_model(model, {l.name: LayerBits(2, 2) for l in layers if l.role == "body"},
                   lambda b, m: ToyWeight(b, m), lambda b, m: BadAct(b, m))
    model(x)
    with pytest.raises(PluginError, match=r"BadAct at 'layer1.0.conv1.aq': inference_macs\(\(4, 8, 8\)\) returned -1"):
        audit_model(model, layers, x)


# -- the counter ---------------------------------------------------------------------------------

class Pair(nn.Module):
    """A student whose forward calls itself again (a nested call) and a teacher it never sees."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x: Tensor, nested: bool = False) -> Tensor:
        return self.lin(x) if not nested else self(self.lin(x))


def test_outermost_calls_count_once_per_role_even_when_a_forward_raises() -> None:
    student, teacher = Pair(), Pair()
    x = torch.randn(2, 4)
    with PassCounter(student, [teacher]) as c:
        student(x, nested=True)
        teacher(x)
        teacher(x)
        with pytest.raises(RuntimeError):
            student(torch.randn(2, 5))
        student(x)
        c.step()
        c.step()
    student(x)  # after the block: hooks gone
    assert c.calls == {"student": 3, "teacher": 2}
    assert c.report() == {"qat_passes_per_step": 2.5, "qat_teacher_passes_per_step": 1.0}
    assert not student._forward_pre_hooks and not student._forward_hooks


def test_teachers_are_models_a_wrapper_holds_other_than_the_student_and_its_parts() -> None:
    student, teacher, own = Pair(), Pair(), Pair()

    class Holder:
        def __init__(self) -> None:
            self.qmodel, self.fp_model, self.view = student, teacher, nn.ModuleList([student.lin])
            self.block, self.own = student.lin, own

    assert teacher_modules(student, [Holder()], teacher) == [teacher, own]


def test_counting_changes_no_trained_number() -> None:
    """The hooks only count: training inside a counter ends at the same weights, bit for bit."""
    d = load_digits()
    xtr, ytr = d.train.tensors
    data = DataBundle(name="d", train=TensorDataset(xtr[:256], ytr[:256]), test=d.test, num_classes=10, in_chans=1,
                      image_size=(8, 8), fingerprint="", source="")
    torch.manual_seed(0)
    base = create_model("resnet20", 10, 1, width=4)
    states = []
    for counted in (False, True):
        model = copy.deepcopy(base)
        teacher = copy.deepcopy(base).eval()
        loss = lambda x, y: nn.functional.cross_entropy(model(x), y)  # noqa: E731
        counter = PassCounter(model, [teacher])
        with counter if counted else contextlib.nullcontext():
            train(model, loss, data, TrainRecipe(epochs=1, batch_size=64, lr=0.01), seed=0,
                  after_step=lambda *a: counter.step())
        states.append(model.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert counter.report()["qat_passes_per_step"] == 1.0


# -- the report ----------------------------------------------------------------------------------

def _cost_rows() -> list[dict]:
    """The page sample's rows with QAT time and passes: lsq 10 s, beta 20 s and 30 s (2x and 3x the
    same seed's lsq), the others without an lsq row of their bits (W2A2 has one; fashion W4A4 too)."""
    out = []
    for r in sample_rows():
        r = dict(r)
        if r["bits"] != "fp32" and r["status"] == "ok":
            r["qat_s"] = {"lsq": 10.0, "beta": 20.0 + 10 * r["seed"]}.get(r["method"], 15.0)
            r["qat_passes_per_step"] = 2.0 if r["method"] == "beta" else 1.0
            r["qat_teacher_passes_per_step"] = 1.0 if r["method"] == "beta" else 0.0
        out.append(r)
    return out


def test_training_cost_divides_by_the_same_seeds_lsq() -> None:
    cost = training_cost(pd.DataFrame(_cost_rows()))
    by = {(r["dataset"], r["method"], r["bits"]): r for r in cost.to_dict("records")}
    assert by[("digits", "beta", "W4A4")]["qat_vs_lsq"] == pytest.approx(2.5)  # mean of 2x and 3x
    assert by[("digits", "beta", "W4A4")]["passes_per_step"] == 2.0
    assert by[("digits", "lsq", "W2A2")]["qat_vs_lsq"] == 1.0
    assert by[("digits", "gamma", "W2A2")]["qat_vs_lsq"] == pytest.approx(1.5)
    assert ("digits", "fp32", "fp32") not in by


def test_the_leaderboard_shows_training_cost_only_for_rows_that_measured_it(tmp_path: Path) -> None:
    assert cost_markdown(pd.DataFrame(sample_rows())) == ""
    d = publish(_cost_rows(), tmp_path, SUITE, plot=False)
    md = (d / "leaderboard.md").read_text()
    assert "## Training cost" in md
    assert "| digits / resnet20 | W4A4 | beta v1 | 2.00 | 1.00 | 25.0 | 2.50x |" in md
    data = page_data(d, SUITE)
    beta = next(r for r in data["training_cost"] if r["method"] == "beta" and r["dataset"] == "digits")
    assert beta["qat_vs_lsq"] == pytest.approx(2.5) and beta["teacher_passes_per_step"] == 1.0
    plain = publish(sample_rows(), tmp_path / "old", SUITE, plot=False)
    assert "training_cost" not in page_data(plain, SUITE) and "Training cost" not in (plain / "leaderboard.md").read_text()
    assert not math.isnan(beta["qat_s"])
