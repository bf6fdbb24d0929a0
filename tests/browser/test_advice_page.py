"""The advice page of ``qbench advise`` in a real browser: verdict, finalists, the screening chart
(one curve per method, a cross where one was cut) and the command, with no console error. The
summary is made up (the rendering is under test; tests/test_advise.py runs the real thing)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from qbench.report.advice import write_report


def sample() -> dict[str, Any]:
    def point(rung: int, epochs: int, top1: float, kept: bool, why: str) -> dict[str, Any]:
        return {"rung": rung, "epochs": epochs, "top1": top1, "status": "ok", "kept": kept, "why": why, "key": "k"}
    hostile = "<img src=x onerror=alert(1)>"
    return {
        "suite": "quick-custom", "version": 4, "model": "mymodels:tiny_cnn", "dataset": "folder", "bits": ["W4A4"],
        "seeds": [0, 1, 2], "qat_epochs": 4, "holdout": 0.2, "holdout_seed": 0, "eta": 2, "finalists": 2,
        "rungs": [1, 2], "methods": ["lsq", "pact", "dorefa", hostile], "budget": 0.5,
        "finals": [{"method": "fp32", "bits": "fp32", "top1": 97.1, "ci95": 0.4, "seeds": 3, "of": 3, "qat_s": 0.0,
                    "reasons": []},
                   {"method": "lsq", "bits": "W4A4", "top1": 96.5, "ci95": 0.6, "seeds": 3, "of": 3, "qat_s": 30.2,
                    "reasons": []},
                   {"method": "pact", "bits": "W4A4", "top1": 95.0, "ci95": math.nan, "seeds": 1, "of": 3,
                    "qat_s": 12.0, "reasons": ["failed: NaN loss"]}],
        "curves": {"lsq": [point(1, 1, 90.0, True, "kept"), point(2, 2, 94.0, True, "finalist")],
                   "pact": [point(1, 1, 88.0, True, "kept"), point(2, 2, 93.0, True, "finalist")],
                   "dorefa": [point(1, 1, 70.0, True, "kept"), point(2, 2, 80.0, False, "rank 3 of 3")],
                   hostile: [point(1, 1, 40.0, False, "rank 4 of 4")]},
        "steps": {"screening": 120, "finals": 480, "total": 600, "full_sweep": 1440, "share": 600 / 1440},
        "seconds": {"screening": 20.5, "finals": 42.2}, "model_source": "0123456789abcdef",
        "data_source": "fedcba9876543210", "command": "qbench advise --model mymodels:tiny_cnn --data imgs --bits W4A4",
    }


def test_the_advice_page_renders(open_page: Any, tmp_path: Path, artifacts: Path) -> None:
    _, html_file = write_report(sample(), tmp_path)
    opened = open_page(html_file)
    page = opened.page
    assert "Use lsq" in page.text_content("#verdict")
    assert page.locator("#finals tr").count() == 4 and page.locator("#screening tr").count() == 5
    box = page.locator("svg.chart").bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 100
    assert page.locator("svg.chart polyline").count() == 3  # methods with two points draw a line
    assert page.locator("svg.chart circle").count() == 5  # kept points; the cut ones are crosses
    assert page.locator("img").count() == 0  # a method name is text, never markup
    assert "qbench advise --model mymodels:tiny_cnn" in page.text_content("#command")
    page.screenshot(path=str(artifacts / "advice.png"), full_page=True)
    assert not opened.errors, opened.errors
