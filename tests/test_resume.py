"""Kill `qbench run` midway, run it again: every job exactly once."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from qbench.testing import tiny_suite

TINY_SUITE = tiny_suite(methods=("fp32", "toy"))  # the suite tests/conftest.py uses

RUNNER = Path(__file__).parent / "run_cli_with_toy.py"


def test_killed_run_resumes_without_duplicates(tmp_path: Path) -> None:
    suite = tmp_path / "tiny.toml"
    suite.write_text(TINY_SUITE.replace('bits = ["W4A4"]', 'bits = ["W4A4", "W2A2"]').replace("seeds = [0]", "seeds = [0, 1]"))
    ws = tmp_path / "ws"
    cmd = [sys.executable, str(RUNNER), "run", "--suite", str(suite), "--workspace", str(ws), "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    rows_dir = ws / "tiny" / "rows"
    deadline = time.time() + 240
    while time.time() < deadline and len(list(rows_dir.glob("*.json"))) < 2:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = {p.name: json.loads(p.read_text())["date"] for p in rows_dir.glob("*.json")}
    assert 2 <= len(first) < 6, "the kill should land midway"
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(p.read_text()) for p in rows_dir.glob("*.json")]
    # 2 seeds x (fp32 + toy at 2 bit targets) = 6 jobs, each exactly once, all ok
    assert len(rows) == 6
    assert len({r["job_key"] for r in rows}) == 6
    assert all(r["status"] == "ok" for r in rows)
    # rows finished before the kill were not redone
    assert all(json.loads((rows_dir / n).read_text())["date"] == d for n, d in first.items())
    assert not list(rows_dir.glob(".*.tmp"))
    csv_lines = (ws / "tiny" / "results.csv").read_text().strip().splitlines()
    assert len(csv_lines) == 7
