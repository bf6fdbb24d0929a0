"""PACT reports its learned clipping level into the row: ``activation.alpha``, at QAT start and
end, and it moves during a short QAT. DoReFa weights learn nothing: no ``weight.*`` key."""
from __future__ import annotations

from pathlib import Path

import pytest
import tomllib
import torch
from qbench_pact import PACTActQuantizer

from qbench.testing import get_catalog, parse_suite, run_suite, tiny_suite


def test_the_report_is_the_alpha_the_forward_uses() -> None:
    q = PACTActQuantizer(4, init_alpha=2.5)
    assert q.learned_state() == {"alpha": 2.5}
    with torch.no_grad():
        q.alpha.fill_(-1.0)  # below min_alpha: the forward clips at min_alpha
    assert q.learned_state() == {"alpha": pytest.approx(q.min_alpha)}


def test_a_short_qat_job_shows_alpha_moving(tmp_path: Path) -> None:
    suite = parse_suite(tomllib.loads(tiny_suite(name="pact-learned", methods=("pact",))))
    (row,) = run_suite(suite, ["pact"], tmp_path, get_catalog())
    assert row["status"] == "ok", row.get("reason")
    assert set(row["learned"]) == {"activation.alpha"}
    alpha = row["learned"]["activation.alpha"]
    assert alpha["n"] == 20 and alpha["end_mean"] != alpha["start_mean"] and alpha["mean_abs_change"] > 0
    assert 0 < alpha["end_min"] <= alpha["end_mean"] <= alpha["end_max"]
    assert all(set(v["end"]) == {"alpha"} for v in row["learned_layers"].values())
