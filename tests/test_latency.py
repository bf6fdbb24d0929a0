"""The deployed model's cost: the timing protocol (warm-up, interleaving, threads) pinned on real
onnxruntime sessions without asserting any time, the memory window, and the cost in tables."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

pytest.importorskip("onnxruntime")

from qbench.deploy import fp32_onnx  # noqa: E402
from qbench.deploy.latency import Call, Protocol, measure  # noqa: E402
from qbench.report.row import fields as row_fields  # noqa: E402
from qbench.testing.helpers import VOLATILE_ROW_FIELDS  # noqa: E402

#: row fields that are not measurements of the machine's speed (so not volatile)
STABLE = {"deploy_latency_threads", "deploy_latency_batch", "deploy_onnx_kb", "deploy_fp32_onnx_kb",
          "onnxruntime_version"}


def tiny(width: int) -> nn.Module:
    torch.manual_seed(width)
    return nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(width * 64, 10)).eval()


@pytest.fixture(scope="module")
def models() -> tuple[bytes, bytes, torch.Tensor]:
    x = torch.randn(6, 1, 8, 8)
    return fp32_onnx(tiny(4), x), fp32_onnx(tiny(8), x), x


def expected_calls(batches: list[int], warmup: int, pairs: int) -> list[Call]:
    """The protocol as documented in qbench/deploy/latency.py."""
    out = [Call("quantized", 1, "prime"), Call("fp32", 1, "prime"),
           Call("quantized", batches[-1], "load"), Call("fp32", batches[-1], "load")]
    for b in batches:  # the load runs are the largest batch's first warm-up
        out += [Call(m, b, "warmup") for _ in range(warmup - (b == batches[-1])) for m in ("fp32", "quantized")]
        for i in range(pairs):
            order = ("fp32", "quantized") if i % 2 == 0 else ("quantized", "fp32")
            out += [Call(m, b, "timed") for m in order]
    return out


def test_the_protocol_warms_up_interleaves_and_fixes_the_threads(models: tuple[bytes, bytes, torch.Tensor]) -> None:
    q, fp, x = models
    res = measure(q, fp, x, Protocol(threads=2, batches=(1, 4), warmup=2, min_runs=3, max_runs=3, time_cap_s=60))
    # every call the real sessions made, in order, with the batch read from each session's output
    assert res.calls == expected_calls([1, 4], warmup=2, pairs=3)
    assert res.threads == {"quantized": 2, "fp32": 2}  # read back from the sessions' options
    assert {k: len(v) for k, v in res.ms.items()} == {(m, b): 3 for m in ("fp32", "quantized") for b in (1, 4)}
    f = res.fields()
    assert f["deploy_latency_threads"] == 2 and f["deploy_latency_batch"] == 4
    assert "2 intra-op threads" in f["deploy_latency_protocol"]
    assert "batch 1: 2 warm-up + 3 timed; batch 4: 2 warm-up + 3 timed" in f["deploy_latency_protocol"]
    assert f["deploy_speedup"] == round(res.median("fp32", 1) / res.median("quantized", 1), 3)
    assert f["deploy_onnx_kb"] == round(len(q) / 1024, 1) and f["deploy_fp32_onnx_kb"] == round(len(fp) / 1024, 1)
    # every field is in the row schema; the measured ones are volatile (two runs never agree on them)
    assert set(f) <= set(row_fields()), set(f) - set(row_fields())
    assert set(f) - STABLE <= VOLATILE_ROW_FIELDS and not STABLE & VOLATILE_ROW_FIELDS


def test_the_time_cap_stops_after_the_minimum_and_a_batch_is_capped_by_the_sample(
        models: tuple[bytes, bytes, torch.Tensor]) -> None:
    q, fp, x = models
    res = measure(q, fp, x[:5], Protocol(threads=1, batches=(1, 256), warmup=1, min_runs=2, max_runs=50,
                                         time_cap_s=0.0))
    assert res.calls == expected_calls([1, 5], warmup=1, pairs=2)
    assert res.threads == {"quantized": 1, "fp32": 1} and res.fields()["deploy_latency_batch"] == 5


def _resettable() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _resettable(), reason="the peak resident set cannot be reset here (not Linux)")
def test_the_memory_window_measures_its_work_and_keeps_the_process_peak() -> None:
    import numpy as np

    from qbench.deploy.memory import peak_window, process_peak_kb

    big = np.ones(96 * 2**20 // 8)  # raise the process's peak well above what the window will use
    peak = process_peak_kb()
    del big
    with peak_window() as w:
        held = np.ones(32 * 2**20 // 8)  # 32 MiB, touched
    assert held.sum() > 0 and w.mb is not None and 30 <= w.mb <= 40, w.mb
    assert process_peak_kb() >= peak  # the reset lowered ru_maxrss; the process's peak stands


def cost_rows(with_cost: bool) -> list[dict]:
    out = []
    for method, bits in (("fp32", "fp32"), ("a", "W2A2")):
        for seed in (0, 1):
            r = {"job_key": f"{method}{seed}", "suite": "s", "suite_version": 1, "dataset": "digits",
                 "model": "resnet20", "method": method, "method_version": 1, "bits": bits, "seed": seed,
                 "status": "ok", "top1": 90.0 + seed, "top5": 99.0, "fp_top1": 95.0, "w_bits_measured": 2,
                 "a_bits_measured": 2, "gbitops": 0.1, "size_kb": 10.0, "first_last": "fp", "command": "qbench run"}
            if with_cost and bits != "fp32":
                r.update({"deploy_top1": 90.0, "deploy_ok": True, "deploy_latency_ms": 0.5 + seed,
                          "deploy_fp32_latency_ms": 1.0, "deploy_speedup": 2.0 / (1 + 2 * seed),
                          "deploy_batch_latency_ms": 10.0, "deploy_fp32_batch_latency_ms": 30.0,
                          "deploy_batch_speedup": 3.0, "deploy_peak_mb": 4.0, "deploy_fp32_peak_mb": 6.0,
                          "deploy_onnx_kb": 100.0, "deploy_fp32_onnx_kb": 400.0, "deploy_latency_batch": 256})
            out.append(r)
    return out


def test_tables_show_the_cost_only_when_rows_carry_it(tmp_path: Path) -> None:
    from qbench.report.html import page_data
    from qbench.report.leaderboard import publish, render_markdown

    md = render_markdown(pd.DataFrame(cost_rows(True)), "s")
    header = next(line for line in md.splitlines() if line.startswith("| rank"))
    assert header.endswith("| deploy | ORT ms (b1) | speedup (b1 / batch) | ORT MB | ONNX KB |")
    lines = {line.split("|")[2].strip(): line for line in md.splitlines() if line.startswith("| ")}
    # the quantized entry: means over seeds; the reference: the FP32 models timed beside, no speedup
    assert lines["a v1"].endswith("| 1 | 1.33× / 3.00× | 4 | 100 |"), lines["a v1"]
    assert lines["fp32 v1"].endswith("| 1 | — | 6 | 400 |"), lines["fp32 v1"]
    assert "*ORT ms*" in md
    plain = render_markdown(pd.DataFrame(cost_rows(False)), "s")
    assert "ORT ms" not in plain and "speedup" not in plain
    d = publish(cost_rows(True), tmp_path, "s", plot=False)
    data = page_data(d, "s")
    entry = next(e for e in data["entries"] if e["method"] == "a")
    assert data["deploy_cost"] and entry["speedup"] == pytest.approx(4 / 3) and entry["batch_latency_ms"] == 10.0
    assert "deploy_cost" not in page_data(publish(cost_rows(False), tmp_path / "old", "s", plot=False), "s")


def test_the_gate_compares_rows_with_the_cost_against_a_leaderboard_without_it() -> None:
    from qbench.report.compare import compare

    repo = Path(__file__).resolve().parents[1]
    run = pd.read_csv(repo / "leaderboards" / "quick" / "v4" / "results.csv")
    assert "deploy_speedup" not in run  # the published rows predate the measurement
    quantized = run["bits"] != "fp32"
    run.loc[quantized, "deploy_latency_ms"] = 0.5
    run.loc[quantized, "deploy_speedup"] = 1.1
    run.loc[quantized, "deploy_fp32_latency_ms"] = 0.55
    result = compare(run, repo / "leaderboards" / "quick")
    assert result.ok and set(result.table["status"]) == {"within"}
    assert not any("deploy_" in n or "latency" in n for n in result.notes)


def test_rows_of_a_job_carry_the_cost_and_deploy_bench_measures_it_again(tmp_path: Path) -> None:
    """One real job through the harness, then ``qbench deploy-bench`` on its workspace."""
    import tomllib

    from qbench.cli import main
    from qbench.run.suite import parse_suite
    from qbench.testing import tiny_suite
    from qbench.testing.helpers import run_suite

    suite = parse_suite(tomllib.loads(tiny_suite(methods=("fp32", "lsq"), bits=("W2A2",))))
    rows = {r["method"]: r for r in run_suite(suite, ["fp32", "lsq"], tmp_path / "ws")}
    assert all(r["status"] == "ok" for r in rows.values()), [r.get("reason") for r in rows.values()]
    q = rows["lsq"]
    timed = {k for k in row_fields() if "latency" in k or "speedup" in k or k.endswith(("peak_mb", "onnx_kb"))}
    assert timed <= set(q), timed - set(q)
    assert not timed & set(rows["fp32"])  # the reference row is the FP model itself: timed beside each job
    assert q["deploy_latency_threads"] == 1 and q["deploy_latency_batch"] == 256  # the recipe's threads; eval batch
    assert q["deploy_speedup"] == pytest.approx(q["deploy_fp32_latency_ms"] / q["deploy_latency_ms"], rel=2e-3)
    assert all(math.isfinite(q[k]) and q[k] > 0 for k in ("deploy_latency_ms", "deploy_batch_latency_ms",
                                                          "deploy_onnx_kb", "deploy_latency_s"))
    assert q["deploy_top1"] == pytest.approx(q["top1"], abs=0.5)  # parity fields untouched beside the timing
    csv = tmp_path / "bench.csv"
    main(["deploy-bench", "--suite", "tiny", "--workspace", str(tmp_path / "ws"), "--batch", "16", "--warmup", "1",
          "--runs", "2", "--min-runs", "2", "--time-cap", "0", "--csv", str(csv)])
    got = pd.read_csv(csv)
    assert list(got["method"]) == ["lsq"] and got["deploy_latency_batch"].iloc[0] == 16
    assert got["job_key"].iloc[0] == q["job_key"] and got["deploy_latency_threads"].iloc[0] == 1
    assert "1 warm-up + 2 timed" in got["deploy_latency_protocol"].iloc[0]
