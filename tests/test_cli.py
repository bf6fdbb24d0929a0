"""CLI: lists, plugins, dry runs, and errors that name the thing and the fix (exit 2, no traceback)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

RUNNER = Path(__file__).parent / "run_cli_with_toy.py"


def qbench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(RUNNER), *args], capture_output=True, text=True, timeout=120,
                          env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})


@pytest.mark.parametrize("args, expected", [
    (["run", "--method", "toyy", "--dry-run"], "Unknown method 'toyy'. Did you mean 'toy'"),
    (["run", "--model", "resnet2O", "--dry-run"], "Unknown model 'resnet2O'. Did you mean"),
    (["run", "--dataset", "digitz", "--dry-run"], "Unknown dataset 'digitz'. Did you mean 'digits'"),
    (["run", "--suite", "quik", "--dry-run"], "Unknown suite 'quik'. Did you mean 'quick'"),
    (["run", "--bits", "W4X", "--dry-run"], "Invalid bit target 'W4X'"),
    (["run", "--seeds", "0", "--dry-run"], "--seeds must be a positive count"),
    (["run", "--suite", "missing.toml", "--dry-run"], "Suite file 'missing.toml' does not exist"),
    (["run", "--executor", "cloud", "--dry-run"], "Unknown executor 'cloud'"),
])
def test_bad_input_exits_2_with_a_helpful_message(args: list[str], expected: str) -> None:
    res = qbench(*args)
    assert res.returncode == 2, res.stdout + res.stderr
    assert expected in " ".join(res.stderr.split()), res.stderr
    assert "Traceback" not in res.stderr


def test_bad_suite_key_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "b"\nversion = 1\ndatasets = ["digits"]\nmodels = ["resnet20"]\nbits = [4]\n'
                   'seeds = [0]\n[fp]\nepochs = 1\nlrr = 0.1\n[qat]\nepochs = 1\n')
    res = qbench("run", "--suite", str(bad), "--dry-run")
    assert res.returncode == 2
    assert "Unknown key 'lrr'" in res.stderr and "Did you mean 'lr'" in res.stderr


def test_list_and_plugins() -> None:
    res = qbench("list", "methods")
    assert res.returncode == 0 and "toy" in res.stdout and "fp32" in res.stdout
    res = qbench("list", "quantizers")
    assert "toy-w" in res.stdout and "weight" in res.stdout
    res = qbench("list", "suites")
    assert all(s in res.stdout for s in ("quick", "fmnist", "cifar10", "imagenet"))
    res = qbench("plugins")
    assert res.returncode == 0 and "qbench_register_methods" in res.stdout and "toy" in res.stdout
    res = qbench("list", "things")
    assert res.returncode == 2 and "Invalid value" in res.stderr


# imagenet starts from a pretrained file: tests/test_fp_start.py plans it with one it writes
@pytest.mark.parametrize("suite", ["cifar10", "cifar10-fast", "fmnist", "quick"])
def test_every_shipped_suite_validates_and_plans(suite: str) -> None:
    res = qbench("run", "--suite", suite, "--dry-run", "--workspace", "/nonexistent/ws")
    assert res.returncode == 0, res.stderr
    version = {"quick": 4, "fmnist": 2, "cifar10": 2}.get(suite, 1)
    assert f"Suite {suite} v{version}" in res.stdout and "plan (dry run)" in res.stdout


def test_run_filters_expand_to_the_right_jobs() -> None:
    res = qbench("run", "--method", "toy", "--model", "resnet20", "--bits", "4,2", "--seeds", "3", "--dry-run",
                 "--workspace", "/nonexistent/ws")
    assert res.returncode == 0, res.stderr
    # fp32 is added for the table: 3 seeds x (fp32 + toy x 2 bit targets)
    assert "9 jobs" in res.stdout
    assert "digits/resnet20/toy/W2A2/seed2" in res.stdout


def test_publish_takes_only_rows_the_suite_plans_now(tmp_path: Path) -> None:
    from qbench.testing import tiny_suite
    TINY_SUITE = tiny_suite(methods=("fp32", "toy"))  # the suite tests/conftest.py uses

    suite = tmp_path / "tiny.toml"
    suite.write_text(TINY_SUITE)
    ws, root = tmp_path / "ws", tmp_path / "lb"
    res = subprocess.run([sys.executable, str(RUNNER), "run", "--suite", str(suite), "--workspace", str(ws),
                          "--no-progress"], capture_output=True, text=True, timeout=600,
                         env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr
    rows_dir = ws / "tiny" / "rows"
    toy = next(json.loads(p.read_text()) for p in rows_dir.glob("*.json") if json.loads(p.read_text())["method"] == "toy")
    # a row left by an older version of the method: same cell, another job key
    stale = {**toy, "job_key": "00000000stale000", "method_version": 0, "top1": 1.0}
    (rows_dir / "00000000stale000.json").write_text(json.dumps(stale))
    res = qbench("publish", str(suite), "--workspace", str(ws), "--root", str(root))
    assert res.returncode == 0, res.stderr
    out = " ".join(res.stdout.split())
    assert "Left out 1 rows the suite no longer plans" in out and "toy v0" in out
    published = pd.read_csv(root / "tiny" / "v1" / "results.csv")
    assert sorted(published["method"]) == ["fp32", "toy"] and "00000000stale000" not in set(published["job_key"])
    assert toy["top1"] in set(published["top1"])
    # an unfinished job is reported, and the table holds what finished
    (rows_dir / f"{toy['job_key']}.json").unlink()
    res = qbench("publish", str(suite), "--workspace", str(ws), "--root", str(root))
    assert res.returncode == 0 and "1 of 2 planned jobs have no row yet" in " ".join(res.stdout.split())
    assert list(pd.read_csv(root / "tiny" / "v1" / "results.csv")["method"]) == ["fp32"]
    # the recipe is kept with its leaderboard, so the version can be run after the suite moves on
    assert (root / "tiny" / "v1" / "suite.toml").read_text() == suite.read_text()


def test_an_older_published_version_runs_from_the_recipe_kept_with_it() -> None:
    res = qbench("run", "--suite", "quick@v2", "--dry-run", "--workspace", "/nonexistent/ws")
    assert res.returncode == 0, res.stderr
    assert "Suite quick v2: " in res.stdout and "(0 finished)" in res.stdout
    res = qbench("run", "--suite", "quick@v1", "--dry-run", "--workspace", "/nonexistent/ws")
    assert res.returncode != 0 and "No recipe for suite 'quick' v1" in res.stderr and "quick@v2" in res.stderr


def test_a_piped_run_prints_a_line_per_job_as_it_finishes(tmp_path: Path) -> None:
    """Under CI or nohup stdout is a file: each job's line comes when the job ends, not with the
    table at the end (the first line is read while the run still computes the second job)."""
    import os
    import re

    from qbench.testing import tiny_suite

    suite = tmp_path / "tiny.toml"
    suite.write_text(tiny_suite(methods=("fp32", "toy"), qat_epochs=3))
    proc = subprocess.Popen([sys.executable, str(RUNNER), "run", "--suite", str(suite), "--workspace",
                             str(tmp_path / "ws"), "--workers", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"})
    try:
        lines = []
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.append(line)
            if line.split()[1:2] == ["job"]:
                break
        assert proc.poll() is None, "the first job's line came only when the run had ended"
        rest, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    job_lines = [ln for ln in [*lines, *rest.splitlines()] if ln.split()[1:2] == ["job"]]
    assert len(job_lines) == 2
    pattern = r"\d\d:\d\d:\d\d job (\d)/2 ok ([0-9a-f]{16}) digits/resnet20/(\w+)/(\w+)/seed0 top1=\d+\.\d\d wall=\S+s left=(\d)"
    parsed = [re.fullmatch(pattern, ln.strip()) for ln in job_lines]
    assert all(parsed), job_lines
    assert [(m[1], m[3], m[4], m[5]) for m in parsed] == [("1", "fp32", "fp32", "1"), ("2", "toy", "W4A4", "0")]
    rows = {json.loads(p.read_text())["job_key"] for p in (tmp_path / "ws" / "tiny" / "rows").glob("*.json")}
    assert {m[2] for m in parsed} == rows
    assert "### tiny v1" in rest  # and the table still comes at the end
