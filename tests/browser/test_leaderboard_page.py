"""The leaderboard pages in a real browser (Debian's Chromium, headless): sorting and filtering
change the visible rows, the Pareto chart renders with the right front and tooltips, a click
shows provenance, the console stays clean, and each suite page is saved as a screenshot."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from html_sample import EVIL, SUITE

from qbench.report.html import page_data
from qbench.report.leaderboard import published_versions
from qbench.report.plot import pareto_front

REPO = Path(__file__).resolve().parents[2]


def visible(page: Any, attr: str) -> list[str]:
    return page.eval_on_selector_all("#table tbody tr", f"rs => rs.map(r => r.getAttribute('{attr}'))")


def cells(page: Any, col: str) -> list[str]:
    return page.eval_on_selector_all(f"#table tbody td[data-col='{col}']", "cs => cs.map(c => c.textContent)")


def test_sorting_and_filtering_change_the_visible_rows(pages: Path, open_page: Any) -> None:
    opened = open_page(pages / "quick" / "v1" / "index.html")
    page = opened.page
    n = len(page_data(pages / "quick" / "v1", "quick")["entries"])
    assert len(visible(page, "data-id")) == n and page.text_content("#count") == f"{n} of {n} entries"
    before = visible(page, "data-id")
    page.click("th button[data-sort='top1']")  # numbers sort best first
    top1 = [float(c.split(" ±")[0]) for c in cells(page, "top1")]
    assert top1 == sorted(top1, reverse=True) and visible(page, "data-id") != before
    assert page.get_attribute("th:has(button[data-sort='top1'])", "aria-sort") == "descending"
    page.click("th button[data-sort='top1']")
    top1 = [float(c.split(" ±")[0]) for c in cells(page, "top1")]
    assert top1 == sorted(top1)
    page.click("th button[data-sort='method']")
    methods = [c.rsplit(" v", 1)[0] for c in cells(page, "method")]
    assert methods == sorted(methods)

    page.select_option("#filter-bits", "W2A2")
    assert set(visible(page, "data-bits")) == {"W2A2"} and 0 < len(visible(page, "data-id")) < n
    page.select_option("#filter-method", "lsq")
    assert visible(page, "data-method") == ["lsq", "lsq"]  # lsq W2A2 on resnet20 and on vit-micro
    page.select_option("#filter-model", "vit-micro")
    assert visible(page, "data-method") == ["lsq"] and page.text_content("#count") == f"1 of {n} entries"
    page.click("#reset")
    assert len(visible(page, "data-id")) == n
    assert opened.errors == []


def test_chart_marks_the_front_and_its_tooltip_names_the_method(pages: Path, open_page: Any) -> None:
    d = pages / SUITE / "v2"
    data = page_data(d, SUITE)
    opened = open_page(d / "index.html")
    page = opened.page
    panel = [e for e in data["entries"] if (e["dataset"], e["model"]) == ("digits", "resnet20")]
    assert page.input_value("#panel") == "digits / resnet20"
    for key, svg in (("gbitops", "#chart-gbitops"), ("size_kb", "#chart-size_kb")):
        circles = page.eval_on_selector_all(f"{svg} circle.point", "cs => cs.map(c => [c.dataset.method, "
                                            "c.dataset.bits, c.dataset.front])")
        assert sorted((m, b) for m, b, _ in circles) == sorted((e["method"], e["bits"]) for e in panel)
        ranked = [e for e in panel if not e.get("collapsed")]  # a collapsed entry is on no front
        expected = {(e["method"], e["bits"]) for e, on in
                    zip(ranked, pareto_front([e[key] for e in ranked], [e["top1"] for e in ranked])) if on}
        assert {(m, b) for m, b, f in circles if f == "true"} == expected, key
        assert ("delta", "W2A2") in expected and ("gamma", "W2A2") not in expected

    tip = page.locator("#tooltip")
    page.hover("#chart-gbitops circle[data-method='beta']")
    assert tip.is_visible()
    assert tip.locator("[data-field='method']").text_content() == "beta v1"
    text = tip.text_content()
    assert "bits W4A4" in text and "top-1 97.70" in text and "GBitOPs 0.06000" in text and "Pareto-optimal" in text
    page.hover("#chart-size_kb circle[data-method='gamma']")
    assert "gamma v1" in tip.text_content() and "collapsed" in tip.text_content()
    methods = page.eval_on_selector_all("#chart-gbitops circle.point", "cs => cs.map(c => c.dataset.method)")
    page.locator("#chart-gbitops circle.point").nth(methods.index(EVIL)).hover()  # no CSS selector can name it
    assert tip.locator("[data-field='method']").text_content() == EVIL + " v1"  # shown as text, never parsed
    assert page.locator("img").count() == 0
    page.mouse.move(2, 2)
    assert not tip.is_visible()

    page.select_option("#filter-dataset", "fashion")  # the chart follows the table's filters
    assert page.input_value("#panel") == "fashion / resnet20"
    assert page.locator("#chart-gbitops circle.point").count() == 2
    assert opened.errors == []


def test_a_click_shows_provenance_flags_and_the_diff(pages: Path, open_page: Any) -> None:
    opened = open_page(pages / SUITE / "v2" / "index.html")
    page = opened.page
    assert page.is_hidden("#provenance")
    page.click("#table tbody tr[data-method='lsq'][data-bits='W4A4']")
    box = page.locator("#provenance")
    assert box.is_visible() and "lsq v1 W4A4 on digits / resnet20" in box.locator("h2").text_content()
    keys = box.locator("#seeds tbody td code").all_text_contents()
    assert "diglsqW4A4s0v2" in keys and "diglsqW4A4s1v2" in keys
    assert box.locator("dd[data-field='command']").text_content() == f"qbench run --suite {SUITE} --all"
    assert box.locator("dd[data-field='torch_version']").text_content() == "2.13.0"
    page.click("#close-provenance")
    assert page.is_hidden("#provenance")

    delta = page.locator("#table tbody tr[data-method='delta']")
    assert delta.locator("td[data-col='rank']").text_content() == "—"
    assert delta.locator(".badge").all_text_contents() == ["over budget"]
    assert page.locator("#table tbody tr[data-method='gamma'] .badge").all_text_contents() == ["collapsed"]
    delta.click()
    assert "measured W bits 3.1 > target 2" in page.text_content("#flag-reason")

    assert "Changes against v1" in page.text_content("#diff h2")
    assert "changed top-1" in page.text_content("#diff-summary")
    moved = page.eval_on_selector_all("#diff-table tbody tr",
                                      "rs => rs.map(r => [r.cells[2].textContent, r.cells[6].textContent])")
    assert {m for m, _ in moved} >= {"lsq"}
    # only lsq's top-1 moved; another entry is listed when the paired ranks moved with it
    assert all(float(d) == 0 for m, d in moved if m != "lsq"), moved
    assert "out of memory" in page.text_content("#failed")
    page.click("nav a[href='../v1/index.html']")  # the versions link each other
    assert page.title() == f"qbench leaderboard: {SUITE} v1"
    assert opened.errors == []


def test_the_provenance_panel_shows_what_the_quantizers_learned(pages: Path, open_page: Any, artifacts: Path) -> None:
    """lsq's rows carry ``learned``: the panel lists each quantity per seed, start to end; a method
    whose rows carry none (fp32, beta) shows no such table."""
    opened = open_page(pages / SUITE / "v2" / "index.html")
    page = opened.page
    page.click("#table tbody tr[data-method='lsq'][data-bits='W4A4'][data-id]")
    table = page.locator("#provenance #learned")
    assert table.is_visible()
    rows = page.eval_on_selector_all("#learned tbody tr", "rs => rs.map(r => [r.dataset.key, r.dataset.seed])")
    assert rows == [["activation.step", "0"], ["activation.step", "1"], ["weight.step", "0"], ["weight.step", "1"]]
    weight = table.locator("tr[data-key='weight.step'][data-seed='0']")
    assert weight.locator("td[data-stat='start_mean']").text_content() == "0.2"
    assert weight.locator("td[data-stat='end_mean']").text_content() == "0.21"
    assert weight.locator("td[data-stat='end_range']").text_content() == "0.071 … 0.34"
    assert weight.locator("td[data-stat='mean_abs_change']").text_content() == "0.0125"
    act = table.locator("tr[data-key='activation.step'][data-seed='1'] td[data-stat='end_mean']")
    assert act.text_content() == "0.29"
    page.locator("#provenance").screenshot(path=str(artifacts / "provenance-learned.png"))
    for method in ("fp32", "beta"):
        page.click(f"#table tbody tr[data-method='{method}'][data-bits='{'fp32' if method == 'fp32' else 'W4A4'}']"
                   " >> nth=0")
        assert page.locator("#provenance").is_visible() and page.locator("#learned").count() == 0
    assert opened.errors == []


def _check_and_shoot(open_page: Any, path: Path, shot: Path) -> None:
    opened = open_page(path)
    page = opened.page
    data = json.loads(page.text_content("#qbench-data"))
    assert len(visible(page, "data-id")) == len(data["entries"]) > 0
    assert page.locator("#chart-gbitops circle.point").count() > 0
    page.hover("#chart-gbitops circle.front >> nth=0")
    assert page.locator("#tooltip").is_visible()
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert opened.errors == [], f"{path}: {opened.errors}"


def test_every_committed_suite_page_renders_cleanly(open_page: Any, artifacts: Path) -> None:
    """The pages in leaderboards/ as committed (what GitHub Pages serves): each opens from the
    index with no console error; a screenshot of each is kept."""
    root = REPO / "leaderboards"
    opened = open_page(root / "index.html")
    links = opened.page.eval_on_selector_all("main a[href$='index.html']", "as => as.map(a => a.getAttribute('href'))")
    suites = sorted(p.name for p in root.iterdir() if p.is_dir() and published_versions(root, p.name))
    assert sorted(links) == sorted(f"{s}/v{v}/index.html" for s in suites for v in published_versions(root, s))
    assert {"quick", "fmnist"} <= set(suites)
    opened.page.screenshot(path=str(artifacts / "index.png"), full_page=True)
    for link in links:
        suite, version = link.split("/")[:2]
        _check_and_shoot(open_page, root / link, artifacts / f"{suite}-{version}.png")
