"""LSQ reports its learned steps into the row: ``weight.step`` and ``activation.step``, at QAT
start and end, and they move during a short QAT."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import tomllib
import torch
from qbench_lsq import LSQActivationQuantizer, LSQWeightQuantizer
from torch import nn

from qbench.testing import get_catalog, parse_suite, run_suite, tiny_suite


def test_the_report_is_the_step_the_forward_uses() -> None:
    layer = nn.Conv2d(3, 4, 3)
    wq = LSQWeightQuantizer(4, layer)
    wq.initialize(layer.weight)
    assert wq.learned_state() == {"step": pytest.approx(float(wq.step.detach()))}
    pc = LSQWeightQuantizer(4, layer, per_channel=True)
    pc.initialize(layer.weight)
    with torch.no_grad():
        pc.step[0] = -1.0  # below the floor: the forward uses eps
    s = pc.step.detach().clamp_min(pc.eps).double()
    assert pc.learned_state() == {"step": pytest.approx(float(s.mean())), "step_min": pytest.approx(pc.eps),
                                  "step_max": pytest.approx(float(s.max()))}
    aq = LSQActivationQuantizer(4, layer)
    aq.initialize(torch.rand(8, 3, 5, 5))
    assert aq.learned_state() == {"step": pytest.approx(float(aq.step.detach()))}


def test_a_short_qat_job_shows_the_steps_moving(tmp_path: Path) -> None:
    suite = parse_suite(tomllib.loads(tiny_suite(name="lsq-learned", methods=("lsq", "lsq-pc"))))
    rows = run_suite(suite, ["lsq", "lsq-pc"], tmp_path, get_catalog())
    assert [r["status"] for r in rows] == ["ok", "ok"], [r.get("reason") for r in rows]
    by = {r["method"]: r for r in rows}
    assert set(by["lsq"]["learned"]) == {"weight.step", "activation.step"}
    assert set(by["lsq-pc"]["learned"]) == {"weight.step", "weight.step_min", "weight.step_max", "activation.step"}
    for row in rows:
        for name, stats in row["learned"].items():
            assert stats["n"] == 20, name  # resnet20's quantized body, first/last FP
            assert stats["end_mean"] != stats["start_mean"] and stats["mean_abs_change"] > 0, (row["method"], name)
    cells = pd.read_csv(tmp_path / "lsq-learned" / "results.csv").set_index("method")["learned"]
    assert json.loads(cells["lsq"]) == by["lsq"]["learned"]
