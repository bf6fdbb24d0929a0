"""Executors: the subprocess executor turns a killed or hung job into a row and goes on; the pool
gives the local executor's rows and trains each FP checkpoint once."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from qbench.plugin.catalog import Catalog
from qbench.plugin.manager import get_plugin_manager
from qbench.run.executors import SubprocessExecutor
from qbench.run.harness import Harness
from qbench.run.plan import plan_jobs
from qbench.run.worker import WorkerSpec
from qbench.run.workspace import Workspace
from qbench.testing import tiny_suite

TINY_SUITE = tiny_suite(methods=("fp32", "toy"))  # the suite tests/conftest.py uses


@pytest.fixture
def crashy_catalog() -> Catalog:
    import crashy_plugin
    import toy_plugin

    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(toy_plugin, name="toy")
    pm.register(crashy_plugin, name="crashy")
    return Catalog(pm)


def test_worker_spec_carries_the_hand_registered_plugins(crashy_catalog: Catalog, tmp_path: Path) -> None:
    spec = WorkerSpec.of(Harness(crashy_catalog, Workspace(tmp_path)))
    assert dict(spec.extra_plugins) == {"toy": "toy_plugin", "crashy": "crashy_plugin"}
    assert spec.load_entrypoints is False
    rebuilt = spec.harness().catalog
    assert {"toy", "crash", "hang", "fp32"} <= set(rebuilt.methods.names())


def test_subprocess_executor_records_a_killed_and_a_hung_job_and_goes_on(crashy_catalog: Catalog,
                                                                        tmp_path: Path) -> None:
    suite_file = tmp_path / "tiny.toml"
    suite_file.write_text(TINY_SUITE.replace('methods = ["fp32", "toy"]', 'methods = ["fp32", "crash", "hang", "toy"]')
                          .replace("first_last", "job_timeout_s = 40\nfirst_last"))  # room for a loaded CI machine
    ws = Workspace(tmp_path / "ws")
    harness = Harness(crashy_catalog, ws)
    suite, jobs = plan_jobs(crashy_catalog, str(suite_file), None, None, None, None, None)
    exe = SubprocessExecutor(grace_s=5.0, factor=1.0)  # > a worker's start (~4-9 s: torch, timm)
    assert exe.hard_limit(jobs[0], harness) is None  # no FP checkpoint yet: FP training is not limited
    rows = {r["method"]: r for r in exe.run(jobs, harness)}
    assert [j.method.name for j in jobs] == ["fp32", "crash", "hang", "toy"]
    assert rows["fp32"]["status"] == "ok" and rows["toy"]["status"] == "ok"  # the run went on
    assert rows["crash"]["status"] == "crashed" and "SIGKILL" in rows["crash"]["reason"]
    assert rows["hang"]["status"] == "timeout" and "hard limit of 45 s" in rows["hang"]["reason"]
    # the lost jobs' rows are on disk like any other, with the job's identity
    on_disk = {json.loads(p.read_text())["method"]: json.loads(p.read_text()) for p in ws.rows_dir("tiny").glob("*.json")}
    assert on_disk["crash"]["job_key"] == jobs[1].key and on_disk["hang"]["status"] == "timeout"
    assert rows["toy"]["peak_rss_mb"] > 0 and 0 <= rows["toy"]["top1"] <= 100


def test_pool_rows_equal_local_rows_and_each_fp_checkpoint_is_trained_once(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Two workers, two FP groups of three jobs: every job key and top-1 equals the local
    executor's, each FP checkpoint is trained by exactly one process, and the parent wrote every row."""
    import epoch_log_plugin
    import toy_plugin

    from qbench.run.executors import PoolExecutor

    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(toy_plugin, name="toy")
    pm.register(epoch_log_plugin, name="epoch-log")
    cat = Catalog(pm)
    suite_file = tmp_path / "tiny.toml"
    suite_file.write_text(TINY_SUITE.replace('bits = ["W4A4"]', 'bits = ["W4A4", "W2A2"]')
                          .replace("seeds = [0]", "seeds = [0, 1]"))
    suite, jobs = plan_jobs(cat, str(suite_file), None, None, None, None, None)
    log = tmp_path / "epochs.log"
    monkeypatch.setenv("QBENCH_TEST_EPOCH_LOG", str(log))
    pooled = {r["job_key"]: r for r in Harness(cat, Workspace(tmp_path / "pool")).run(
        suite, jobs, executor="pool", options={"workers": 2})}
    trained = [line.split() for line in log.read_text().splitlines()]
    by_fp: dict[str, set[str]] = {}
    for pid, fp_key, _ in trained:
        by_fp.setdefault(fp_key, set()).add(pid)
    assert len(by_fp) == 2 and all(len(pids) == 1 for pids in by_fp.values()), by_fp
    assert len(trained) == 2 * suite.fp.epochs  # no FP epoch ran twice
    log.unlink()
    local = {r["job_key"]: r for r in Harness(cat, Workspace(tmp_path / "local")).run(suite, jobs)}
    assert pooled.keys() == local.keys() and len(pooled) == 6
    for key, row in pooled.items():
        assert row["status"] == "ok", row.get("reason")
        assert (row["top1"], row["w_bits_measured"], row["gbitops"]) == \
            (local[key]["top1"], local[key]["w_bits_measured"], local[key]["gbitops"]), row["method"]
        assert row["executor"] == "pool" and local[key]["executor"] == "local"
    assert PoolExecutor(workers=2).pool.workers == 2


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"  # a zombie has exited; only its parent's reaping is left


def _cli_with_crashy(tmp_path: Path) -> Path:
    """A ``qbench`` command line with the toy and crashy plugins registered by hand."""
    tests = Path(__file__).parent
    script = tmp_path / "cli.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(tests)!r})\n"
        "import crashy_plugin, toy_plugin\n"
        "from qbench.cli import main\n"
        "from qbench.plugin import catalog as catalog_mod\n"
        "from qbench.plugin.manager import get_plugin_manager\n"
        "pm = get_plugin_manager(load_entrypoints=False)\n"
        "pm.register(toy_plugin, name='toy')\n"
        "pm.register(crashy_plugin, name='crashy')\n"
        "catalog_mod._CACHE[True] = catalog_mod.Catalog(pm)\n"
        "if __name__ == '__main__':\n"
        "    main(sys.argv[1:])\n")
    return script


def _stop_the_run_while_both_workers_hang(tmp_path: Path, sig: int) -> list[int]:
    """Start ``qbench run --workers 2`` on two jobs that hang in QAT, send the run ``sig`` once both
    workers are in them, and return the workers' pids."""
    import subprocess
    import sys
    import time

    suite_file = tmp_path / "tiny.toml"
    suite_file.write_text(tiny_suite(methods=("hang",), seeds=(0, 1)))
    proc = subprocess.Popen([sys.executable, str(_cli_with_crashy(tmp_path)), "run", "--suite", str(suite_file), "--all",
                             "--workers", "2", "--workspace", str(tmp_path / "ws"), "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while len(_children(proc.pid)) < 2 and time.monotonic() < deadline:  # both workers are up
            time.sleep(0.5)
        workers = _children(proc.pid)
        assert len(workers) >= 2, proc.communicate(timeout=5)[0] if proc.poll() is not None else "no workers"
        while len(list((tmp_path / "ws" / "fp").glob("*.safetensors"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(5)  # both workers are now in their "hang" job's QAT: they never send anything again
        proc.send_signal(sig)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return workers


def _assert_all_end(pids: list[int], within_s: float = 30) -> None:
    import os
    import signal
    import time

    deadline = time.monotonic() + within_s
    while any(_alive(w) for w in pids) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = [w for w in pids if _alive(w)]
    for w in left:  # do not leave them sleeping on the test machine
        os.kill(w, signal.SIGKILL)
    assert not left, "workers outlived the run they belonged to"


def test_sigterm_stops_the_pool_workers_with_the_run(tmp_path: Path) -> None:
    import signal

    _assert_all_end(_stop_the_run_while_both_workers_hang(tmp_path, signal.SIGTERM))


def test_a_killed_run_leaves_no_worker_training(tmp_path: Path) -> None:
    """kill -9 runs no handler and no ``finally``: the workers (not daemonic, so that they may start
    DataLoader workers) notice that their parent is gone on their own."""
    import signal

    _assert_all_end(_stop_the_run_while_both_workers_hang(tmp_path, signal.SIGKILL))


@pytest.mark.parametrize("pdeathsig", [True, False])
def test_lifeline_ends_a_process_whose_parent_was_killed(tmp_path: Path, pdeathsig: bool) -> None:
    """Both mechanisms of qbench.run.lifeline alone: the kernel's parent-death signal, and the
    watchdog thread that notices the re-parenting (what a worker started from a thread relies on)."""
    import os
    import signal
    import subprocess
    import sys

    child = ("import os, sys, time\n"
             "from qbench.run.lifeline import die_with_parent\n"
             f"die_with_parent(int(sys.argv[1]), pdeathsig={pdeathsig})\n"
             "print('armed', flush=True)\n"
             "time.sleep(600)\n")
    parent = ("import os, subprocess, sys, time\n"
              f"c = subprocess.Popen([sys.executable, '-c', {child!r}, str(os.getpid())], stdout=subprocess.PIPE, text=True)\n"
              "assert c.stdout.readline().strip() == 'armed'\n"
              "print(c.pid, flush=True)\n"
              "time.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True)
    try:
        grandchild = int(proc.stdout.readline())
        assert _alive(grandchild)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    _assert_all_end([grandchild], within_s=15)
