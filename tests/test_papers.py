"""Papers files: the published numbers a suite names, and the leaderboard's paper columns.

The rows here are generated (they test rendering, not results); the paper numbers are made up
for the rendering tests, and read from the shipped file where the test is about that file.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from qbench.errors import QbenchError
from qbench.plugin.catalog import get_catalog
from qbench.report.html import page_data
from qbench.report.leaderboard import publish, render, render_markdown
from qbench.report.papers import PaperEntry, load_papers, papers_of_version
from qbench.run.suite import load_suite, parse_suite

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

REPO = Path(__file__).parents[1]
SUITES = REPO / "qbench" / "suites"
SHIPPED_PAPERS = SUITES / "papers" / "cifar10-resnet20.toml"

#: (method, bits) -> top-1 per seed; our FP model reaches 92.0
SPEC = {("fp32", "fp32"): [92.0, 92.0], ("apot", "W2A2"): [90.0, 90.4], ("lsq", "W2A2"): [89.0, 89.6],
        ("apot", "W4A4"): [91.8, 92.0]}
PAPERS = [PaperEntry("cifar10", "resnet20", "apot", "W2A2", 91.0, 91.6, "Made-up et al., Table 9"),
          PaperEntry("cifar10", "resnet20", "apot", "W4A4", 92.3, 91.6, "Made-up et al., Table 9")]
PAPERS_TOML = """dataset = "cifar10"
model = "resnet20"
[[entry]]
method = "apot"
bits = "W2A2"
top1 = 91.0
fp_top1 = 91.6
source = "Made-up et al., Table 9"
"""


def rows(version: int = 1) -> list[dict]:
    out = []
    for (method, bits), accs in SPEC.items():
        for seed, acc in enumerate(accs):
            w = 32 if bits == "fp32" else int(bits[1])
            out.append({"job_key": f"{method}-{bits}-{seed}", "suite": "paperdemo", "suite_version": version,
                        "dataset": "cifar10", "model": "resnet20", "method": method, "method_version": 1,
                        "bits": bits, "seed": seed, "status": "ok", "top1": acc, "top5": 100.0, "fp_top1": 92.0,
                        "w_bits_measured": w, "a_bits_measured": w, "gbitops": 0.01 * w * w, "size_kb": 10.0 * w,
                        "first_last": "8bit", "dataset_hash": "abc", "plugin": "p", "command": "qbench run x"})
    return out


def _row(md: str, method: str, bits: str) -> list[str]:
    line = next(x for x in md.splitlines() if f"| {method} v1 | {bits} |" in x)
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_markdown_shows_the_paper_and_both_gaps() -> None:
    md = render_markdown(pd.DataFrame(rows()), "paperdemo", papers=PAPERS)
    header = next(x for x in md.splitlines() if x.startswith("| rank |"))
    assert header.endswith("| deploy | paper | paper Δ FP | ours − paper | Δ FP − paper Δ FP |")
    cells = _row(md, "apot", "W2A2")  # ours 90.2 from FP 92.0 (-1.8); paper 91.0 from 91.6 (-0.6)
    assert cells[-4:] == ["91.00", "-0.60", "-0.80", "-1.20"]
    cells = _row(md, "apot", "W4A4")  # ours 91.9 (-0.1); paper 92.3 (+0.7)
    assert cells[-4:] == ["92.30", "+0.70", "-0.40", "-0.80"]
    assert _row(md, "lsq", "W2A2")[-4:] == ["", "", "", ""]  # no paper reports it: blank, not n/a
    assert len(_row(md, "lsq", "W2A2")) == len(header.strip().strip("|").split("|"))
    assert "## Paper numbers" in md and "apot / W2A2: 91.00 (FP 91.60): Made-up et al., Table 9" in md


def test_without_a_papers_file_the_table_is_unchanged() -> None:
    md = render_markdown(pd.DataFrame(rows()), "paperdemo")
    assert "| paper |" not in md and "Paper numbers" not in md and "*paper*" not in md
    assert md == render_markdown(pd.DataFrame(rows()), "paperdemo", papers=None)


@pytest.mark.parametrize("suite, version", [("quick", 4), ("fmnist", 2), ("zoo", 1)])
def test_committed_leaderboards_regenerate_byte_for_byte(tmp_path: Path, suite: str, version: int) -> None:
    """Suites that name no papers file render as they did: table and page data alike."""
    src = REPO / "leaderboards" / suite / f"v{version}"
    shutil.copytree(src.parent, tmp_path / suite)  # every version: the page links them
    d = tmp_path / suite / f"v{version}"
    assert render(d, suite) == (src / "leaderboard.md").read_text()
    html = (src / "index.html").read_text()
    committed = json.loads(re.search(r'id="qbench-data">(.*?)</script>', html, re.S).group(1))
    data = json.loads(json.dumps(page_data(d, suite)))
    assert data == committed and "papers" not in data and "paper_top1" not in data["entries"][0]


def _publish_with_papers(tmp_path: Path) -> Path:
    suite_dir = tmp_path / "suites"
    (suite_dir / "papers").mkdir(parents=True)
    (suite_dir / "papers" / "demo.toml").write_text(PAPERS_TOML)
    recipe = suite_dir / "paperdemo.toml"
    recipe.write_text('name = "paperdemo"\nversion = 1\npapers = "papers/demo.toml"\n')
    return publish(rows(), tmp_path / "lb", "paperdemo", plot=False, recipe_file=recipe)


def test_publish_keeps_the_papers_file_beside_the_recipe_and_the_table_uses_it(tmp_path: Path) -> None:
    d = _publish_with_papers(tmp_path)
    assert (d / "papers" / "demo.toml").read_text() == PAPERS_TOML  # suite.toml's relative path resolves
    assert [p.method for p in papers_of_version(d)] == ["apot"]
    md = (d / "leaderboard.md").read_text()
    assert _row(md, "apot", "W2A2")[-4:] == ["91.00", "-0.60", "-0.80", "-1.20"]
    data = page_data(d, "paperdemo")
    apot = next(e for e in data["entries"] if e["method"] == "apot" and e["bits"] == "W2A2")
    assert apot["paper_top1"] == 91.0 and apot["vs_paper"] == pytest.approx(-0.8)
    assert apot["vs_paper_gap"] == pytest.approx(-1.2) and apot["paper_source"] == "Made-up et al., Table 9"
    lsq = next(e for e in data["entries"] if e["method"] == "lsq")
    assert lsq["paper_top1"] is None and lsq["paper_source"] == ""
    assert data["papers"] == [{"dataset": "cifar10", "model": "resnet20", "method": "apot", "bits": "W2A2",
                               "top1": 91.0, "fp_top1": 91.6, "source": "Made-up et al., Table 9", "note": ""}]


@pytest.mark.parametrize("text, message", [
    (PAPERS_TOML.replace("source", "sauce"), "unknown keys"),
    (PAPERS_TOML.replace('source = "Made-up et al., Table 9"', ""), "missing"),
    (PAPERS_TOML.replace("top1 = 91.0", "top1 = 0.91e3"), "top-1 in percent"),
    (PAPERS_TOML.replace('bits = "W2A2"', 'bits = "two"'), "Invalid bit target"),
    (PAPERS_TOML.replace('source = "Made-up et al., Table 9"', 'source = " "'), "source is empty"),
    (PAPERS_TOML + PAPERS_TOML[PAPERS_TOML.index("[[entry]]"):].replace('"W2A2"', '"w2a2"'), "a second entry"),
    (PAPERS_TOML.replace('model = "resnet20"\n', ""), "no dataset/model"),
])
def test_a_bad_papers_file_names_the_entry_and_the_fix(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(QbenchError, match=message):
        load_papers(path)


def _suite(**extra: object) -> dict:
    raw = tomllib.loads((SUITES / "cifar10.toml").read_text())
    raw.pop("papers", None)
    return {**raw, **extra}


@pytest.mark.parametrize("ref", ["/etc/papers.toml", "../papers.toml", "papers/../../x.toml", "papers.txt", 3])
def test_a_suite_names_its_papers_file_below_itself(ref: object) -> None:
    with pytest.raises(QbenchError, match="relative path to a .toml file"):
        parse_suite(_suite(papers=ref))


def test_the_papers_file_is_not_part_of_the_recipe_or_the_job_keys() -> None:
    plain, named = parse_suite(_suite()), parse_suite(_suite(papers="papers/cifar10-resnet20.toml"))
    assert named.papers and not plain.papers
    assert plain.recipe() == named.recipe() and plain.sha == named.sha  # editing the papers retrains nothing


def test_a_suite_whose_papers_file_is_broken_fails_when_it_loads(tmp_path: Path) -> None:
    text = (SUITES / "cifar10.toml").read_text()
    (tmp_path / "s.toml").write_text(text)
    with pytest.raises(QbenchError, match="does not exist"):
        load_suite(str(tmp_path / "s.toml"), {})
    (tmp_path / "papers").mkdir()
    (tmp_path / "papers" / "cifar10-resnet20.toml").write_text(PAPERS_TOML.replace("91.0", "910.0"))
    with pytest.raises(QbenchError, match="entry 1: top1"):
        load_suite(str(tmp_path / "s.toml"), {})


def test_the_shipped_paper_numbers_name_installed_methods_and_their_tables() -> None:
    entries = load_papers(SHIPPED_PAPERS)
    assert entries, "the shipped papers file holds no number"
    methods = set(get_catalog().methods.names())
    if not {"apot", "pact", "dorefa"} <= methods:
        pytest.skip("the apot, pact and dorefa plugins are not installed (scripts/install.sh installs them)")
    for e in entries:
        assert e.method in methods, f"{e.method} is not a qbench method: the leaderboard would never show it"
        assert (e.dataset, e.model) == ("cifar10", "resnet20") and re.search(r"Table \d", e.source)
        assert e.fp_top1 == 91.6  # every entry comes from APoT's Table 2, whose header is FP 91.6
    assert {(e.method, e.bits) for e in entries} == {(m, f"W{b}A{b}") for m in ("apot", "pact", "dorefa")
                                                      for b in (2, 3, 4)}
