"""Rows that timed the deployed model: the page shows the cost columns after ``deploy`` (the
fp32 line without a speedup) and each seed's timing in its provenance, in a real browser; a page
of older rows shows none of it. Rows are generated (html_sample): the numbers are made up."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from html_sample import SUITE, sample_rows

from qbench.report.html import write_pages
from qbench.report.leaderboard import publish


def _with_cost(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for r in rows:
        if r["bits"] != "fp32" and r["status"] == "ok":
            r.update({"deploy_top1": r["top1"], "deploy_ok": True, "deploy_latency_ms": 0.5 + r["seed"],
                      "deploy_fp32_latency_ms": 1.0, "deploy_speedup": 2.0 / (1 + 2 * r["seed"]),
                      "deploy_batch_latency_ms": 10.0, "deploy_fp32_batch_latency_ms": 30.0,
                      "deploy_batch_speedup": 3.0, "deploy_peak_mb": 4.0, "deploy_fp32_peak_mb": 6.0,
                      "deploy_onnx_kb": 100.0, "deploy_fp32_onnx_kb": 400.0, "deploy_latency_batch": 256,
                      "deploy_latency_threads": 1, "onnxruntime_version": "1.32.0"})
    return rows


def _cell(page: Any, method: str, bits: str, col: str) -> str:
    return page.text_content(f"#table tbody tr[data-method='{method}'][data-bits='{bits}'] td[data-col='{col}']")


def test_the_page_shows_the_cost_and_each_seeds_timing(tmp_path: Path, open_page: Any) -> None:
    root = tmp_path / "lb"
    d = publish(_with_cost(sample_rows(1)), root, SUITE, plot=False)
    write_pages(root, SUITE)
    opened = open_page(d / "index.html")
    page = opened.page
    page.select_option("#filter-dataset", "digits")
    heads = page.eval_on_selector_all("#table thead th", "hs => hs.map(h => h.textContent)")
    at = heads.index("deploy")
    assert heads[at + 1:at + 7] == ["ORT ms b1", "ORT ms batch", "speedup b1", "speedup batch", "ORT MB", "ONNX KB"]
    assert _cell(page, "lsq", "W4A4", "latency_ms") == "1.00" and _cell(page, "lsq", "W4A4", "speedup") == "1.33×"
    assert _cell(page, "lsq", "W4A4", "batch_speedup") == "3.00×" and _cell(page, "lsq", "W4A4", "onnx_kb") == "100"
    # the reference: the FP32 models timed beside the quantized rows, no speedup of its own
    assert _cell(page, "fp32", "fp32", "latency_ms") == "1.00" and _cell(page, "fp32", "fp32", "speedup") == "—"
    assert _cell(page, "fp32", "fp32", "peak_mb") == "6.0"
    page.click("#table tbody tr[data-method='lsq'][data-bits='W4A4']")
    box = page.locator("#provenance")
    assert "speedup b1" in box.locator("#seeds thead").text_content()
    assert box.locator("#seeds tbody tr").first.locator("td").nth(8).text_content() == "2.00"
    assert "1.32.0" in box.locator("dd[data-field='onnxruntime_version']").text_content()
    assert "never compare milliseconds across machines" in page.text_content("#deploy-cost-note")
    assert opened.errors == []


def test_a_page_of_older_rows_has_no_cost_column(pages: Path, open_page: Any) -> None:
    opened = open_page(pages / "quick" / "v1" / "index.html")
    assert opened.page.query_selector("th button[data-sort='speedup']") is None
    assert opened.page.query_selector("#deploy-cost-note") is None
    assert opened.errors == []
