"""A suite that names a papers file: its page shows the paper column and the gaps (in a real
browser), and a page without one shows none of it. Rows are generated (html_sample): the test is
about rendering, the numbers are made up."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from html_sample import SUITE, sample_rows

from qbench.report.html import page_data, write_pages
from qbench.report.leaderboard import publish

PAPERS = """dataset = "digits"
model = "resnet20"
[[entry]]
method = "lsq"
bits = "W4A4"
top1 = 97.0
fp_top1 = 98.0
source = "Made-up et al., Table 7"
note = "generated for the test"
"""


def _published(root: Path) -> Path:
    suite_dir = root.parent / "suites"
    (suite_dir / "papers").mkdir(parents=True)
    (suite_dir / "papers" / "demo.toml").write_text(PAPERS)
    recipe = suite_dir / "demo.toml"
    recipe.write_text(f'name = "{SUITE}"\nversion = 1\npapers = "papers/demo.toml"\n')
    d = publish(sample_rows(1), root, SUITE, plot=False, recipe_file=recipe)
    write_pages(root, SUITE)
    return d


def _cell(page: Any, method: str, bits: str, col: str) -> str:
    return page.text_content(f"#table tbody tr[data-method='{method}'][data-bits='{bits}'] td[data-col='{col}']")


def test_the_page_shows_the_paper_column_and_the_gaps(tmp_path: Path, open_page: Any) -> None:
    d = _published(tmp_path / "lb")
    entry = next(e for e in page_data(d, SUITE)["entries"]
                 if (e["dataset"], e["method"], e["bits"]) == ("digits", "lsq", "W4A4"))
    opened = open_page(d / "index.html")
    page = opened.page
    page.select_option("#filter-dataset", "digits")
    heads = page.eval_on_selector_all("#table thead th", "hs => hs.map(h => h.textContent)")
    at = heads.index("Δ FP")
    assert heads[at + 1:at + 5] == ["paper", "paper Δ FP", "ours − paper", "Δ FP − paper Δ FP"]
    assert _cell(page, "lsq", "W4A4", "paper_top1") == "97.00"
    assert _cell(page, "lsq", "W4A4", "paper_gap") == "-1.00"
    assert _cell(page, "lsq", "W4A4", "vs_paper") == f"{entry['top1'] - 97.0:+.2f}"
    assert _cell(page, "lsq", "W4A4", "vs_paper_gap") == f"{entry['gap'] + 1.0:+.2f}"
    title = page.get_attribute("#table tbody tr[data-method='lsq'][data-bits='W4A4'] td[data-col='paper_top1'] span",
                               "title")
    assert title == "Made-up et al., Table 7"
    assert _cell(page, "lsq", "W2A2", "paper_top1") == "" and _cell(page, "lsq", "W2A2", "vs_paper") == ""
    page.click("th button[data-sort='vs_paper']")  # sortable like every number; no paper sorts last
    sources = page.text_content("#papers-sources")
    assert "lsq / W4A4: 97.00 (FP 98.00): Made-up et al., Table 7 (generated for the test)" in sources
    assert opened.errors == []


def test_a_page_without_papers_has_no_paper_column(pages: Path, open_page: Any) -> None:
    opened = open_page(pages / "quick" / "v1" / "index.html")
    page = opened.page
    assert page.query_selector("th button[data-sort='paper_top1']") is None
    assert page.query_selector("#papers-note") is None and page.query_selector("#papers-sources") is None
    assert opened.errors == []
