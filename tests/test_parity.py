"""The deploy parity rule: what flags a row, what its reason says, and the leaderboards' deploy column."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from qbench.deploy.parity import float64_self_check, verdict
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


def test_the_reason_reads_a_logit_flag_against_qbenchs_own_float_rounding() -> None:
    explained = verdict(_cmp(outliers=20, max_diff=0.3, float64=(3, 9, 1000, 0.2)))["deploy_reason"]
    assert "own logits move beyond it on 3 of 1000 samples in float64 and on 9 when the input moves" in explained
    assert "(max 0.2): comparable to the model's own rounding sensitivity" in explained
    beyond = verdict(_cmp(outliers=40, max_diff=0.3, float64=(3, 9, 1000, 0.2)))["deploy_reason"]
    assert "more than the model's own rounding sensitivity explains" in beyond


class _Codes(nn.Module):
    """A linear layer whose output is rounded to a 0.5-step grid, as a quantized activation is."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(64, 8, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.round(self.lin(x) * 2) / 2


def test_the_self_check_counts_codes_that_flip_in_float64_and_under_a_ppm_input_change() -> None:
    torch.manual_seed(0)
    model = _Codes().eval()
    x = torch.randn(512, 64)
    with torch.no_grad():  # put half the samples' first output exactly on a rounding boundary in float64
        w = model.lin.weight.double()
        target = torch.round(x.double() @ w[0]) + 0.25  # y*2 = k + 0.5
        x[:256, 0] += ((target[:256] - x[:256].double() @ w[0]) / w[0, 0]).float()
    k64, k_ppm, n, worst = float64_self_check(model, [(x[:256], None), (x[256:], None)], tol=1e-3)
    assert n == 512 and 0 < k64 <= 256 and 0 < k_ppm <= 256 and worst == 0.5  # boundary samples flip one code
    smooth = float64_self_check(nn.Linear(64, 8).eval(), [(x, None)], tol=1e-3)
    assert smooth is not None and smooth[:2] == (0, 0)  # without rounding, every path agrees within tol


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
    md = render_markdown(pd.DataFrame(rows), "s", "qbench run x")
    d = publish(rows, tmp_path, "s", plot=False)
    page = {e["method"]: e for e in page_data(d, "s")["entries"]}
    assert page["lsq"]["deploy"] == "90.50 ⚠ 1/2 int" and "seed 1: 12 of 1000" in page["lsq"]["deploy_reason"]
    lines = {ln.split(" | ")[1]: ln for ln in md.splitlines() if ln.startswith("| 1 |")}
    assert lines["lsq v1"].endswith("| 90.50 ⚠ 1/2 int |")
    assert lines["apot v1"].endswith("| 90.50 |")
    assert "## Deployment parity flags" in md
    assert "resnet20 / lsq v1 / W4A4: seed 1: 12 of 1000 samples beyond the logit tolerance" in md
    assert "qbench export --workspace" in md  # says how to get the model behind a row


def test_onnxruntime_takes_the_idle_cores_of_a_gpu_job_and_the_recipe_threads_of_a_cpu_job() -> None:
    from qbench.deploy.parity import session_threads

    assert session_threads(torch.device("cpu")) == torch.get_num_threads()
    assert session_threads(torch.device("cuda", 0)) == len(os.sched_getaffinity(0))


def test_overlapping_onnxruntime_with_the_model_compares_the_same_numbers() -> None:
    """The GPU path runs onnxruntime in a helper thread beside the model: same batches, same pairs."""
    pytest.importorskip("onnxruntime")
    from qbench.deploy import export_model
    from qbench.deploy.parity import compare

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)).eval()
    x, y = torch.randn(300, 1, 8, 8), torch.randint(0, 10, (300,))
    exp = export_model(model, x[:16], threads=1)
    batches = [(x[i:i + 64], y[i:i + 64]) for i in range(0, 300, 64)]
    sequential = compare(model, exp.session, batches, overlap=False)
    overlapped = compare(model, exp.session, batches, overlap=True)
    assert overlapped == sequential and sequential["n"] == 300
