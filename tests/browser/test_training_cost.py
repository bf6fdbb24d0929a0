"""The leaderboard page's training-cost table, in a real browser: shown for rows that measured
their passes per step, absent for rows that did not. Rows are generated (html_sample)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from html_sample import SUITE, sample_rows

from qbench.report.html import write_pages
from qbench.report.leaderboard import publish


def _rows() -> list[dict]:
    """lsq takes 10 s a seed, beta 20 s (KD: one teacher pass a step), the rest 15 s."""
    out = []
    for r in sample_rows():
        r = dict(r)
        if r["bits"] != "fp32" and r["status"] == "ok":
            r["qat_s"] = {"lsq": 10.0, "beta": 20.0}.get(r["method"], 15.0)
            r["qat_passes_per_step"] = 2.0 if r["method"] == "beta" else 1.0
            r["qat_teacher_passes_per_step"] = 1.0 if r["method"] == "beta" else 0.0
        out.append(r)
    return out


def test_the_page_shows_passes_per_step_and_time_against_lsq(tmp_path: Path, open_page: Any, artifacts: Path) -> None:
    d = publish(_rows(), tmp_path / "lb", SUITE, plot=False)
    write_pages(tmp_path / "lb", SUITE)
    opened = open_page(d / "index.html")
    page = opened.page
    assert page.is_visible("#costs") and page.text_content("#costs h2") == "Training cost"
    cells = page.eval_on_selector_all("#costs-table tbody tr", "rs => rs.map(r => [...r.cells].map(c => c.textContent))")
    assert ["digits", "resnet20", "W4A4", "beta v1", "2.00", "1.00", "20.0", "2.00x"] in cells
    assert ["digits", "resnet20", "W4A4", "lsq v1", "1.00", "0.00", "10.0", "1.00x"] in cells
    page.locator("#costs").screenshot(path=str(artifacts / "training-cost.png"))
    assert not opened.errors, opened.errors

    plain = publish(sample_rows(), tmp_path / "old", SUITE, plot=False)
    write_pages(tmp_path / "old", SUITE)
    opened = open_page(plain / "index.html")
    assert opened.page.is_hidden("#costs") and not opened.errors
