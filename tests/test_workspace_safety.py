"""A workspace survives kills, concurrent runs and damaged files.

* kill -9 during FP training, then a rerun: it resumes from the last epoch checkpoint and ends
  with the rows of an uninterrupted run, bit for bit.
* two `qbench run` on one workspace: every job trained once.
* a truncated row, a truncated FP checkpoint and a foreign file: moved to quarantine/ with a
  one-line warning, and the jobs run again.
"""
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
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "default"}


def _cmd(suite: Path, ws: Path, *extra: str) -> list[str]:
    return [sys.executable, str(RUNNER), "run", "--suite", str(suite), "--workspace", str(ws), "--no-progress",
            "--workers", "1", *extra]


def _rows(ws: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in (ws / "tiny" / "rows").glob("*.json")}


def _same(a: dict[str, dict], b: dict[str, dict]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        for field in ("top1", "top5", "fp_top1", "w_bits_measured", "a_bits_measured", "gbitops"):
            assert a[key][field] == b[key][field], (key, field, a[key][field], b[key][field])


def test_kill_during_fp_training_resumes_to_identical_rows(tmp_path: Path) -> None:
    suite = tmp_path / "tiny.toml"
    suite.write_text(TINY_SUITE.replace("epochs = 2\nlr = 0.05", "epochs = 6\nlr = 0.05"))
    reference = tmp_path / "uninterrupted"
    done = subprocess.run(_cmd(suite, reference), env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr

    ws = tmp_path / "killed"
    proc = subprocess.Popen(_cmd(suite, ws), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    epochs = ws / "epochs"
    deadline = time.time() + 300
    while time.time() < deadline and not list(epochs.glob("*.fp.pt")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list(epochs.glob("*.fp.pt")), "the kill should land after the first FP epoch was saved"
    assert not list((ws / "fp").glob("*.safetensors")), "the kill should land before FP training ended"

    again = subprocess.run(_cmd(suite, ws), env=ENV, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    _same(_rows(reference), _rows(ws))
    assert not list(epochs.glob("*.pt")), "epoch checkpoints are removed once their rows are written"


def test_two_runs_on_one_workspace_train_each_job_once(tmp_path: Path) -> None:
    suite = tmp_path / "tiny.toml"
    suite.write_text(TINY_SUITE.replace('bits = ["W4A4"]', 'bits = ["W4A4", "W2A2"]'))
    ws = tmp_path / "ws"
    procs = [subprocess.Popen(_cmd(suite, ws), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    rows = _rows(ws)
    assert len(rows) == 3 and all(r["status"] == "ok" for r in rows.values())
    # each row was written once: its date and wall time are those of the one process that ran it,
    # and exactly one FP checkpoint meta exists (trained once)
    assert len(list((ws / "fp").glob("*.json"))) == 1
    meta = json.loads(next((ws / "fp").glob("*.json")).read_text())
    assert meta["train_s"] > 0


def test_damaged_and_foreign_files_are_quarantined_and_rerun(tmp_path: Path) -> None:
    suite = tmp_path / "tiny.toml"
    suite.write_text(TINY_SUITE)
    ws = tmp_path / "ws"
    first = subprocess.run(_cmd(suite, ws), env=ENV, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    before = _rows(ws)
    rows_dir = ws / "tiny" / "rows"
    victim = next(k for k, r in before.items() if r["method"] == "toy")
    path = rows_dir / f"{victim}.json"
    path.write_text(path.read_text()[:40])  # a truncated row
    (rows_dir / "notes.json").write_text('{"mine": "not a row"}')  # a foreign file
    fp = next((ws / "fp").glob("*.safetensors"))
    fp.write_bytes(fp.read_bytes()[:100])  # a truncated FP checkpoint

    again = subprocess.run(_cmd(suite, ws), env=ENV, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    warnings = [line for line in again.stderr.splitlines() if "moved it to" in line]
    assert any(f"{victim}.json is not a readable result row" in w for w in warnings), again.stderr
    assert any("notes.json is not a qbench result row" in w for w in warnings), again.stderr
    assert any(f"{fp.name} is not a readable FP checkpoint" in w for w in warnings), again.stderr
    quarantined = {p.name.split(".")[0] for p in (ws / "quarantine").iterdir()}
    assert {victim, "notes", fp.stem} <= quarantined
    after = _rows(ws)
    assert after.keys() == before.keys()  # the foreign file is gone from rows/, the row is back
    _same(before, after)  # the FP checkpoint was retrained to the same weights
