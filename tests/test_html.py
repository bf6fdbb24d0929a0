"""The static leaderboard pages without a browser: the data they embed, escaping, the files
publish writes, the committed pages, and whole tables when output goes to a pipe."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent / "browser"))

from html_sample import ENTRIES, EVIL, SUITE, publish_sample, sample_rows  # noqa: E402

from qbench.report.html import page_data, publish_pages, render_index, render_page, write_pages  # noqa: E402
from qbench.report.html.data import _flags  # noqa: E402
from qbench.report.leaderboard import publish, published_versions  # noqa: E402
from qbench.report.stats import aggregate  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
LEADERBOARDS = REPO / "leaderboards"


def embedded(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="qbench-data">(.*?)</script>', html, re.S)
    assert m, "the page carries no data block"
    return json.loads(m.group(1))


PAGES_SUITE = """
name = "pages"
version = 1
seeds = [0, 1]
bits = ["W4A4"]
first_last = "fp"
methods = ["fp32", "lsq"]

[[datasets]]
name = "digits"

[[models]]
name = "resnet20"

[fp]
epochs = 1

[qat]
epochs = 1
"""


def test_publish_command_writes_the_pages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`qbench publish` on a workspace whose rows carry the keys the suite plans (no training)."""
    from qbench.cli import main
    from qbench.plugin.catalog import get_catalog
    from qbench.run.plan import plan_jobs
    from qbench.run.workspace import Workspace

    suite = tmp_path / "pages.toml"
    suite.write_text(PAGES_SUITE)
    _, jobs = plan_jobs(get_catalog(), str(suite))
    template = {r["method"]: r for r in sample_rows(1) if r["dataset"] == "digits" and r["bits"] in ("fp32", "W4A4")}
    ws = Workspace(tmp_path / "ws")
    for job in jobs:
        dataset, model, method, bits, seed = job.label.split("/")
        ws.write_row("pages", {**template[method], "suite": "pages", "job_key": job.key, "seed": int(seed[4:]),
                               "dataset": dataset, "model": model, "bits": bits})
    root = tmp_path / "lb"
    main(["publish", str(suite), "--workspace", str(ws.root), "--root", str(root)])
    out = " ".join(capsys.readouterr().out.split())
    assert (root / "pages" / "v1" / "index.html").is_file() and (root / "index.html").is_file()
    assert f"Pages: {root / 'pages' / 'v1' / 'index.html'}" in out
    assert [e["method"] for e in page_data(root / "pages" / "v1", "pages")["entries"]] == ["fp32", "lsq"]


def test_a_page_failure_never_fails_publishing(tmp_path: Path) -> None:
    d = publish(sample_rows(1), tmp_path, SUITE, plot=False)
    (d / "results.csv").write_text("not,a\nleaderboard,csv\n")  # the view breaks; the message says how to retry
    msg = publish_pages(tmp_path, SUITE)
    assert "HTML pages were not written" in msg and f"qbench leaderboard {SUITE} --html --root {tmp_path}" in msg


def test_publishing_writes_every_version_page_and_the_index(tmp_path: Path) -> None:
    v2 = publish_sample(tmp_path)
    v1 = tmp_path / SUITE / "v1"
    assert (v1 / "index.html").is_file() and (v2 / "index.html").is_file()
    # writing after v2's publication rewrote the v1 page, so it links the newer version
    assert embedded((v1 / "index.html").read_text())["versions"] == [1, 2]
    index = (tmp_path / "index.html").read_text()
    assert f'href="{SUITE}/v1/index.html"' in index and f'href="{SUITE}/v2/index.html"' in index
    assert index.index(f"{SUITE}/v2/") < index.index(f"{SUITE}/v1/")  # newest first


def test_page_data_carries_ranks_ci_flags_provenance_and_diff(tmp_path: Path) -> None:
    d = publish_sample(tmp_path)
    data = page_data(d, SUITE)
    assert data["suite"] == SUITE and data["version"] == 2
    by = {(e["dataset"], e["method"], e["bits"]): e for e in data["entries"]}
    lsq = by[("digits", "lsq", "W4A4")]
    assert lsq["n"] == 2 and lsq["top1"] == pytest.approx(97.3) and lsq["ci95"] > 0 and lsq["rank"] >= 1
    assert [s["job_key"] for s in lsq["seeds"]] == ["diglsqW4A4s0v2", "diglsqW4A4s1v2"]
    assert lsq["seeds"][0]["command"] == f"qbench run --suite {SUITE} --all"
    assert set(data["flags"]) == {"over_budget", "collapsed", "deploy_diverged"}
    assert by[("digits", "delta", "W2A2")]["over_budget"] and by[("digits", "delta", "W2A2")]["rank"] is None
    assert by[("digits", "gamma", "W2A2")]["collapsed"] and not by[("digits", "lsq", "W2A2")]["collapsed"]
    assert data["diff"]["against"] == "v1" and len(data["diff"]["rows"]) == len(data["entries"])
    moved = {r["method"]: r["top1_diff"] for r in data["diff"]["rows"] if r["top1_diff"]}
    assert set(moved) == {"lsq"} and all(v == pytest.approx(0.5) for v in moved.values())
    assert [(f["method"], f["status"]) for f in data["failed"]] == [("lsq", "failed")]
    assert "diff.csv" in data["files"] and "results.csv" in data["files"]


def test_page_data_carries_the_learned_state_of_rows_that_have_it(tmp_path: Path) -> None:
    """``learned`` is JSON text in results.csv; the page gets it back as a dict per seed, and
    null for rows without it (fp32 and every other sample method)."""
    from html_sample import learned_sample

    d = publish_sample(tmp_path)
    assert "learned" in pd.read_csv(d / "results.csv").columns
    by = {(e["dataset"], e["method"], e["bits"]): e for e in page_data(d, SUITE)["entries"]}
    lsq = by[("digits", "lsq", "W4A4")]
    assert [s["learned"] for s in lsq["seeds"]] == [learned_sample(0), learned_sample(1)]
    assert all(s["learned"] is None for s in by[("digits", "fp32", "fp32")]["seeds"])
    assert all(s["learned"] is None for s in by[("digits", "beta", "W4A4")]["seeds"])


def test_flags_are_optional(tmp_path: Path) -> None:
    """Rows without flag columns (older CSVs) give a page without a flags column, unless the
    aggregate computes them; an aggregate without them takes them from the rows."""
    df = pd.DataFrame(sample_rows(1))
    agg = aggregate(df).drop(columns=["over_budget", "collapsed"], errors="ignore")
    assert _flags(df, agg) == ["over_budget", "collapsed", "deploy_diverged"]
    assert agg.set_index(["method", "bits"]).loc[("gamma", "W2A2"), "collapsed"].item() is True
    bare = aggregate(df).drop(columns=["over_budget", "collapsed", "deploy_diverged"], errors="ignore")
    assert _flags(df.drop(columns=["over_budget", "collapsed"]), bare) == []
    publish(sample_rows(1, flags=False), tmp_path, SUITE, plot=False)
    data = page_data(tmp_path / SUITE / "v1", SUITE)  # renders, whatever the aggregate knows
    assert set(data["flags"]) <= {"over_budget", "collapsed", "deploy_diverged"} and len(data["entries"]) == len(ENTRIES)


def test_page_is_self_contained_escaped_and_deterministic(tmp_path: Path) -> None:
    d = publish_sample(tmp_path)
    html = (d / "index.html").read_text()
    assert html == render_page(page_data(d, SUITE))  # same input, same bytes: no churn in git
    assert EVIL not in html and "<img" not in html  # the method name can neither close the script nor add markup
    assert any(e["method"] == EVIL for e in embedded(html)["entries"])  # ... and survives as data
    assert not re.search(r'<(script|link)[^>]+(src|href)=', html)  # nothing fetched: no CDN
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "") and "https://" not in html


def test_write_pages_names_an_unpublished_version(tmp_path: Path) -> None:
    from qbench.errors import QbenchError

    publish(sample_rows(1), tmp_path, SUITE, plot=False)
    with pytest.raises(QbenchError, match=r"no published version \[3\].*qbench publish demo"):
        write_pages(tmp_path, SUITE, [3])


def test_leaderboard_command_writes_the_page(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from qbench.cli import main

    publish(sample_rows(1), tmp_path, SUITE, plot=False)  # the library call writes no page: the commands do
    assert not (tmp_path / SUITE / "v1" / "index.html").exists()
    main(["leaderboard", SUITE, "--root", str(tmp_path), "--html"])
    assert (tmp_path / SUITE / "v1" / "index.html").is_file() and (tmp_path / "index.html").is_file()
    assert str(tmp_path / SUITE / "v1" / "index.html") in capsys.readouterr().out


def test_every_published_version_has_a_committed_page() -> None:
    index = (LEADERBOARDS / "index.html").read_text()
    for suite in ("quick", "fmnist"):
        versions = published_versions(LEADERBOARDS, suite)
        assert versions, f"leaderboards/{suite} has no published version"
        for v in versions:
            page = LEADERBOARDS / suite / f"v{v}" / "index.html"
            assert page.is_file(), f"{page} is missing: run `qbench leaderboard {suite} --version {v} --html`"
            data = embedded(page.read_text())
            assert data["suite"] == suite and data["version"] == v and data["entries"]
            assert f'href="{suite}/v{v}/index.html"' in index
    assert render_index(LEADERBOARDS) == index  # the index lists exactly what is published


def _cells(line: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def test_compare_in_a_pipe_prints_every_column_whole() -> None:
    """`qbench compare ... | cat`: stdout is a pipe, rich would assume 80 columns and cut cells."""
    results = LEADERBOARDS / "quick" / "v1" / "results.csv"
    res = subprocess.run([sys.executable, "-m", "qbench.cli", "compare", str(results), "--against",
                          str(LEADERBOARDS / "quick")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "COLUMNS": "80", "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr
    assert "…" not in res.stdout
    rows = [_cells(line) for line in res.stdout.splitlines() if line.startswith("| ")]
    header, body = rows[0], rows[1:]
    assert header == ["dataset", "model", "method", "bits", "committed", "run", "Δ", "tolerance", "status"]
    ref = aggregate(pd.read_csv(LEADERBOARDS / "quick" / "v1" / "results.csv"))
    expected = {(r.dataset, r.model, r.method, r.bits) for r in ref.itertuples()}
    assert {tuple(r[:4]) for r in body} == expected  # every entry, every name whole (vit-micro, dgms-paperlr)
    assert all(len(r) == 9 and r[8] == "within" for r in body)
    assert "No significant regression." in res.stdout


def test_summary_and_list_in_a_pipe_are_markdown(capsys: pytest.CaptureFixture[str]) -> None:
    from qbench.cli.render import print_summary

    print_summary(sample_rows(1), "demo v1")
    out = capsys.readouterr().out
    assert "### demo v1" in out and "| alpha-with-a-long-name |" in out and "…" not in out
    lines = [line for line in out.splitlines() if line.startswith("|")]
    assert len({len(_cells(line)) for line in lines}) == 1 and len(lines) == 2 + len(ENTRIES)  # header, rule, entries
    from qbench.cli import main

    main(["list", "suites"])  # capsys's stdout is no terminal, as a pipe is not
    out = capsys.readouterr().out
    assert "### suites" in out and "| name | plugin | details |" in out and "…" not in out
    assert re.search(r"^\| quick \| .+ \|$", out, re.M)


def test_republishing_a_version_keeps_its_diff_against_the_version_before(tmp_path: Path) -> None:
    d = publish_sample(tmp_path)
    publish(sample_rows(2, shift=1.5), tmp_path, SUITE, plot=False)  # v2 again, lsq moved once more
    diff = pd.read_csv(d / "diff.csv")
    assert set(diff["against"]) == {"v1"}  # what a reader of v2 wants: what moved since v1
    moved = diff[diff["top1_diff"].abs() > 0]
    # v1 holds lsq at +0.5, so the republished v2 (+1.5) moved it by 1.0
    assert set(moved["method"]) == {"lsq"} and moved["top1_diff"].tolist() == pytest.approx([1.0] * len(moved))
