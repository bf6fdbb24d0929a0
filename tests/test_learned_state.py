"""What a quantizer learned reaches its row: the contract's rules, the host's read at QAT start
and end, the summary in ``learned``, and rows of quantizers without the hook left as they were."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import tomllib
import torch
from torch import Tensor, nn

from qbench.contract.method import Method
from qbench.contract.quant import ActivationQuantizer, QuantLinear
from qbench.contract.quant.learned import MAX_JSON_BYTES, MAX_KEYS, MAX_LIST, check_learned_state
from qbench.contract.quant.ste import round_ste
from qbench.errors import PluginError
from qbench.plugin.catalog import Component
from qbench.report.row import fields
from qbench.testing import parse_suite, run_suite, tiny_suite
from qbench.train.learned import STATS, LearnedStateWarning, read_learned, summarize_learned


class StepAct(ActivationQuantizer):
    """Unsigned activations on a learned step (LSQ's forward without its gradient scale): reports
    the step, and the clipping range as a two-value list."""

    def __init__(self, bits: int, layer: nn.Module | None = None) -> None:
        super().__init__(bits, signed=False)
        self.step = nn.Parameter(torch.tensor(1.0))

    def init_from(self, x: Tensor) -> None:
        self.step.fill_(float(x.clamp(min=0).max()) / (2**self.bits - 1))

    def forward(self, x: Tensor) -> Tensor:
        n = 2**self.bits - 1
        return round_ste(torch.clamp(x / self.step, 0, n)) * self.step

    def learned_state(self) -> dict[str, float | list[float]]:
        s = float(self.step)
        return {"step": s, "clip": [0.0, s * (2**self.bits - 1)]}


class Broken(StepAct):
    def learned_state(self) -> dict[str, float | list[float]]:
        raise RuntimeError("no state yet")


class Nan(StepAct):
    def learned_state(self) -> dict[str, float | list[float]]:
        return {"step": math.nan}


# -- the contract's rules ---------------------------------------------------------------------

def test_a_valid_report_comes_back_as_plain_floats() -> None:
    got = check_learned_state({"step": torch.tensor(0.5).item(), "levels": (1, 2, 3)}, "Q")
    assert got == {"step": 0.5, "levels": [1.0, 2.0, 3.0]} and all(type(v) is float for v in got["levels"])
    assert check_learned_state({}, "Q") == {}


@pytest.mark.parametrize(("state", "says"), [
    ([("step", 1.0)], "not a dict"),
    ({"Step": 1.0}, "is not lower snake case"),
    ({"step": torch.tensor(1.0)}, "holds Tensor, not real numbers"),
    ({"step": True}, "holds bool"),
    ({"step": "0.1"}, "holds str"),
    ({"step": math.inf}, "is not finite"),
    ({"levels": [0.0, math.nan]}, "is not finite"),
    ({"levels": []}, "a list holds 1 to"),
    ({"levels": [0.0] * (MAX_LIST + 1)}, "a list holds 1 to"),
    ({f"k{i}": 1.0 for i in range(MAX_KEYS + 1)}, f"more than {MAX_KEYS}"),
    ({f"{'k' * 30}{i}": [1.0 / 3] * MAX_LIST for i in range(2)}, f"more than {MAX_JSON_BYTES}"),
])
def test_a_report_breaking_a_rule_is_refused_naming_the_quantizer(state: object, says: str) -> None:
    with pytest.raises(PluginError, match="StepAct at 'fc.aq'.learned_state") as exc:
        check_learned_state(state, "StepAct at 'fc.aq'")
    assert says in str(exc.value)


# -- the host's read and summary ------------------------------------------------------------

def _model(*acts: type[StepAct]) -> nn.Sequential:
    layers = [QuantLinear.from_float(nn.Linear(4, 4), None, cls(4), f"l{i}") for i, cls in enumerate(acts)]
    model = nn.Sequential(*layers)
    with torch.no_grad():
        model(torch.rand(8, 4))  # each quantizer initialises from its first input
    return model


def test_read_and_summary_cover_every_reporting_quantizer() -> None:
    model = _model(StepAct, StepAct)
    start = read_learned(model)
    assert list(start) == ["0.aq", "1.aq"] and start["0.aq"][0] == "activation"
    steps = [q.step for q in (model[0].aq, model[1].aq)]
    with torch.no_grad():
        steps[0].mul_(2.0)
    end = read_learned(model)
    got = summarize_learned(start, end)
    assert set(got) == {"activation.step", "activation.clip"} and all(list(v) == list(STATS) for v in got.values())
    s0, s1 = (start[p][1]["step"] for p in ("0.aq", "1.aq"))
    step = got["activation.step"]
    assert step["n"] == 2 and step["start_mean"] == pytest.approx((s0 + s1) / 2, rel=1e-6)
    assert step["end_mean"] == pytest.approx((2 * s0 + s1) / 2, rel=1e-6)
    assert step["end_max"] == pytest.approx(max(2 * s0, s1), rel=1e-6)
    assert step["mean_abs_change"] == pytest.approx(s0 / 2, rel=1e-6)  # one of two moved by s0
    clip = got["activation.clip"]  # lists count value by value: the zeros are values too
    assert clip["end_min"] == 0.0 and clip["mean_abs_change"] == pytest.approx(15 * s0 / 4, rel=1e-6)
    assert summarize_learned({}, end)["activation.step"]["start_mean"] is None  # no start: no start stats


def test_a_quantizer_without_the_hook_or_a_broken_one_adds_nothing() -> None:
    from toy_plugin import ToyAct

    model = _model(StepAct, Broken, Nan)
    model.append(QuantLinear.from_float(nn.Linear(4, 4), None, ToyAct(4), "toy"))  # no hook: the default {}
    with pytest.warns(LearnedStateWarning) as caught:
        got = read_learned(model)
    assert list(got) == ["0.aq"]
    text = " ".join(str(w.message) for w in caught)
    assert "Broken at '1.aq'.learned_state() raised RuntimeError: no state yet" in text
    assert "Nan at '2.aq'.learned_state(): 'step' is not finite" in text and "left out of the row" in text
    assert summarize_learned({}, {}) == {}


# -- a real job: the row, the CSV ---------------------------------------------------------------

@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict], Path]:
    from toy_plugin import toy_catalog

    cat = toy_catalog()
    cat.quantizers.add("step-a", Component("step-a", StepAct, "learned step", "activation"), "test")
    cat.methods.add("toy-step", Method(name="toy-step", version=1, weight_quantizer="toy-w",
                                       activation_quantizer="step-a"), "test")
    suite = parse_suite(tomllib.loads(tiny_suite(name="learned", methods=("fp32", "toy", "toy-step"))))
    ws = tmp_path_factory.mktemp("learned")
    out = run_suite(suite, ["fp32", "toy", "toy-step"], ws, cat)
    assert [r["status"] for r in out] == ["ok"] * 3, [r.get("reason") for r in out]
    return out, ws


def test_a_short_qat_job_reports_how_far_the_quantizers_moved(rows: tuple[list[dict], Path]) -> None:
    by = {r["method"]: r for r in rows[0]}
    learned = by["toy-step"]["learned"]
    assert set(learned) == {"activation.step", "activation.clip"}  # toy-w reports nothing: no weight.* keys
    step = learned["activation.step"]
    assert step["n"] == 20 and step["end_mean"] != step["start_mean"] and step["mean_abs_change"] > 0
    assert step["end_min"] <= step["end_mean"] <= step["end_max"]
    layers = by["toy-step"]["learned_layers"]
    assert len(layers) == 20 and all(v["kind"] == "activation" for v in layers.values())
    first = next(iter(layers.values()))
    assert set(first["start"]) == {"step", "clip"} and first["start"] != first["end"]
    json.dumps(by["toy-step"], allow_nan=False)  # the row stays plain JSON


def test_rows_of_quantizers_without_the_hook_are_unchanged(rows: tuple[list[dict], Path]) -> None:
    by = {r["method"]: r for r in rows[0]}
    for method in ("fp32", "toy"):
        assert "learned" not in by[method] and "learned_layers" not in by[method]
    assert {"learned", "learned_layers"} <= set(fields())


def test_the_csv_holds_the_summary_as_json_and_not_the_per_layer_detail(rows: tuple[list[dict], Path]) -> None:
    df = pd.read_csv(rows[1] / "learned" / "results.csv")
    assert "learned" in df.columns and "learned_layers" not in df.columns
    cells = dict(zip(df["method"], df["learned"]))
    assert json.loads(cells["toy-step"]) == {r["method"]: r for r in rows[0]}["toy-step"]["learned"]
    assert pd.isna(cells["toy"]) and pd.isna(cells["fp32"])
