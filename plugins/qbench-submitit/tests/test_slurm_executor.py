"""The slurm executor through submitit's local executor: real subprocesses, the code path a Slurm
cluster runs (submit, pickle through the folder, requeue on the preemption signal, collect).

What only a cluster can show (sbatch's parameters, a GPU per job) is in scripts/gpu-check.sh's
notes; everything else runs here.
"""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from qbench.api import QbenchError
from qbench.testing import Catalog, Harness, Workspace, get_plugin_manager, plan_jobs, tiny_suite

#: what a row computes, as opposed to how and where it ran (wall time, memory, executor, date)
COMPUTED = ("top1", "top5", "fp_top1", "w_bits_measured", "a_bits_measured", "gbitops", "size_kb", "fp_key",
            "torch_threads", "levels_ok", "export_max_abs_diff", "dataset_hash")


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    """lsq, this plugin and the test plugin, registered by hand: the jobs import the same modules
    by name (WorkerSpec), and no other installed plugin is loaded."""
    import qbench_lsq.plugin
    import qbench_submitit.plugin
    import slurm_test_plugin

    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(qbench_lsq.plugin, name="lsq")
    pm.register(qbench_submitit.plugin, name="submitit")
    pm.register(slurm_test_plugin, name="slurm-test")
    return Catalog(pm)


def by_key(rows: list[dict]) -> dict[str, dict]:
    return {r["job_key"]: r for r in rows}


def test_rows_equal_the_local_executor_rows_on_the_quick_suite(catalog: Catalog, tmp_path: Path) -> None:
    """The quick suite's ResNet-20 at seed 0 (its FP checkpoint trained by a job of its own), fp32
    and lsq: every computed number equals the local executor's, and the driver wrote the rows."""
    suite, jobs = plan_jobs(catalog, "quick", ["lsq"], models=["resnet20"], seeds=1)
    assert [j.method.name for j in jobs] == ["fp32", "lsq"]
    local = by_key(Harness(catalog, Workspace(tmp_path / "local")).run(suite, jobs, executor="local"))
    ws = Workspace(tmp_path / "slurm")
    slurm = by_key(Harness(catalog, ws).run(suite, jobs, executor="slurm", options={"cluster": "local"}))
    assert set(slurm) == set(local) == {j.key for j in jobs}
    for key, row in slurm.items():
        assert row["status"] == local[key]["status"] == "ok", row.get("reason")
        assert row["executor"] == "slurm"
        for field in COMPUTED:
            assert row[field] == local[key][field], (row["method"], field)
    on_disk = by_key([json.loads(p.read_text()) for p in ws.rows_dir("quick").glob("*.json")])
    assert {k: r["top1"] for k, r in on_disk.items()} == {k: r["top1"] for k, r in slurm.items()}
    assert ws.fp_path(jobs[0].fp_key).exists()
    assert list((tmp_path / "slurm" / "submitit").glob("*/*_result.pkl")), "the jobs went through submitit"


def test_a_preempted_job_requeues_and_resumes_from_its_epoch(catalog: Catalog, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from qbench_submitit.executor import RowTask, SlurmExecutor

    suite_file = tmp_path / "tiny.toml"
    suite_file.write_text(tiny_suite(methods=("lsq",), qat_epochs=3))
    suite, jobs = plan_jobs(catalog, str(suite_file), ["lsq"])
    job = jobs[1]
    uninterrupted = Harness(catalog, Workspace(tmp_path / "local")).run(suite, jobs, executor="local")[1]
    ws = Workspace(tmp_path / "slurm")
    harness = Harness(catalog, ws, executor="slurm")
    harness.train_fp(job)  # in the workspace already: the job starts QAT at once
    marker = tmp_path / "paused"
    monkeypatch.setenv("QBENCH_TEST_PAUSE_MARKER", str(marker))
    exe = SlurmExecutor(cluster="local").submitit_executor(harness, threads=1)
    from qbench.api import WorkerSpec

    sub = exe.submit(RowTask(), WorkerSpec.of(harness), job)
    deadline = time.monotonic() + 300
    while not marker.exists():  # epoch 1 is saved and the job sleeps in the test plugin's hook
        assert time.monotonic() < deadline and not sub.done(), sub.stderr()
        time.sleep(0.1)
    # what Slurm sends the job's processes before preempting it or at its time limit (--signal=USR2@90)
    os.kill(int(marker.read_text()), signal.SIGUSR2)
    row = sub.result()
    assert "Requeued" in (sub.stderr() or "") + (sub.stdout() or ""), "submitit checkpointed and requeued it"
    assert row["status"] == "ok", row.get("reason")
    assert row["resumed_from_epoch"] == 1
    for field in COMPUTED:
        assert row[field] == uninterrupted[field], field


def test_a_job_whose_process_dies_becomes_a_crashed_row_and_the_run_goes_on(catalog: Catalog,
                                                                          tmp_path: Path) -> None:
    suite_file = tmp_path / "tiny.toml"
    suite_file.write_text(tiny_suite(methods=("crash", "lsq")))
    suite, jobs = plan_jobs(catalog, str(suite_file), ["crash", "lsq"])
    rows = {r["method"]: r for r in Harness(catalog, Workspace(tmp_path / "ws")).run(
        suite, jobs, executor="slurm", options={"cluster": "local"})}
    assert rows["crash"]["status"] == "crashed", rows["crash"]
    assert "ended without a row" in rows["crash"]["reason"] and "its log:" in rows["crash"]["reason"]
    assert rows["lsq"]["status"] == rows["fp32"]["status"] == "ok"


def test_bad_options_name_the_fix() -> None:
    from qbench_submitit.executor import SlurmExecutor

    with pytest.raises(QbenchError, match="no option retries"):
        SlurmExecutor(retries=2)
    with pytest.raises(QbenchError, match="cluster='ray'.*slurm.*local"):
        SlurmExecutor(cluster="ray")
    with pytest.raises(QbenchError, match="time_min=0"):
        SlurmExecutor(time_min=0)


def test_without_sbatch_the_error_names_the_local_cluster(catalog: Catalog, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from qbench_submitit.executor import SlurmExecutor

    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here, whatever the machine has
    with pytest.raises(QbenchError, match="no sbatch on PATH.*-X cluster=local"):
        SlurmExecutor().submitit_executor(Harness(catalog, Workspace(tmp_path / "ws")), threads=1)
