"""The deploy parity rule: what flags a row, what its reason says, and the leaderboards' deploy column."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from torch import nn

from qbench.deploy.parity import float64_agreement, verdict
from qbench.report.html import page_data
from qbench.report.leaderboard import publish, render_markdown


def _cmp(**over: object) -> dict:
    base = {"top1": 98.0, "deploy_top1": 98.0, "max_diff": 1e-6, "tol": 0.01, "outliers": 0, "flips": 0,
            "n": 1000, "float64": None}
    base.update(over)
    return base


def test_a_faithful_export_is_ok_and_each_broken_bound_is_named_with_its_gap() -> None:
    assert verdict(_cmp())["deploy_ok"]
    assert verdict(_cmp(outliers=10, max_diff=0.3))["deploy_ok"]  # 1 % of samples may flip a code
    v = verdict(_cmp(outliers=11, max_diff=0.3))
    assert not v["deploy_ok"]
    assert "11 of 1000 samples beyond the logit tolerance 0.01 (max diff 0.3)" in v["deploy_reason"]
    v = verdict(_cmp(deploy_top1=97.8, flips=2))
    assert not v["deploy_ok"] and "(-0.20 points: 2 of 1000 predictions differ)" in v["deploy_reason"]


def test_the_reason_says_whether_float64_explains_the_outliers() -> None:
    explained = verdict(_cmp(outliers=20, max_diff=0.3, float64=(20, 20)))["deploy_reason"]
    assert "agrees with onnxruntime on 20 of 20" in explained and "not the export" in explained
    part = verdict(_cmp(outliers=20, max_diff=0.3, float64=(5, 20)))["deploy_reason"]
    assert "5 of 20" in part and "the rest is not explained" in part
    none = verdict(_cmp(outliers=20, max_diff=0.3, float64=(0, 20)))["deploy_reason"]
    assert "check the export" in none


class _Codes(nn.Module):
    """A linear layer whose output is rounded to a 0.5-step grid: a float32 sum can land either side
    of a boundary, the exact (float64) sum cannot."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 3, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.round(self.lin(x) * 2) / 2


def test_float64_agreement_separates_rounding_flips_from_a_wrong_export() -> None:
    torch.manual_seed(0)
    model = _Codes().eval()
    x = torch.randn(8, 4)
    with torch.no_grad():
        exact = torch.round(x.double() @ model.lin.weight.double().T * 2) / 2  # what integer kernels compute
    assert float64_agreement(model, [(x, exact.float())], tol=1e-3) == (8, 8)
    assert float64_agreement(model, [(x, exact.float() + 0.5)], tol=1e-3) == (0, 8)
    assert float64_agreement(model, [], tol=1e-3) is None


def test_the_leaderboard_shows_deploy_top1_flags_and_integer_kernels(tmp_path: Path) -> None:
    def row(method: str, seed: int, ok: bool, integer: bool) -> dict:
        return {"job_key": f"{method}{seed}", "suite": "s", "suite_version": 1, "dataset": "digits",
                "model": "resnet20", "method": method, "method_version": 1, "bits": "W4A4", "seed": seed,
                "status": "ok", "top1": 90.0 + seed, "top5": 100.0, "fp_top1": 95.0, "w_bits_target": 4,
                "a_bits_target": 4, "w_bits_measured": 4, "a_bits_measured": 4, "gbitops": 0.16, "size_kb": 40.0,
                "first_last": "fp", "dataset_hash": "abc", "plugin": "p", "command": "qbench run x",
                "deploy_top1": 90.0 + seed, "deploy_ok": ok, "deploy_integer_kernels": integer,
                "deploy_reason": "" if ok else "12 of 1000 samples beyond the logit tolerance"}

    rows = [row("lsq", 0, True, True), row("lsq", 1, False, True), row("apot", 0, True, False),
            row("apot", 1, True, False)]
    md = render_markdown(pd.DataFrame(rows), "s")
    d = publish(rows, tmp_path, "s", plot=False)
    page = {e["method"]: e for e in page_data(d, "s")["entries"]}
    assert page["lsq"]["deploy"] == "90.50 ⚠ 1/2 int" and "seed 1: 12 of 1000" in page["lsq"]["deploy_reason"]
    lines = {ln.split(" | ")[1]: ln for ln in md.splitlines() if ln.startswith("| 1 |")}
    assert lines["lsq v1"].endswith("| 90.50 ⚠ 1/2 int |")
    assert lines["apot v1"].endswith("| 90.50 |")
    assert "## Deployment parity flags" in md
    assert "resnet20 / lsq v1 / W4A4: seed 1: 12 of 1000 samples beyond the logit tolerance" in md
    assert "qbench export --workspace" in md  # says how to get the model behind a row
