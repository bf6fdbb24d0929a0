"""The ray executor on a real local Ray cluster: the same rows as the local executor, and a job
whose worker dies becomes a ``crashed`` row while the run goes on."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from qbench.api import QbenchError
from qbench.testing import Catalog, Harness, Workspace, get_plugin_manager, plan_jobs, tiny_suite

TINY_SUITE = tiny_suite(methods=("fp32", "lsq"))


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    """lsq, this plugin and the test's ``crash`` method, registered by hand: the Ray workers
    import the same modules by name (WorkerSpec), and no other installed plugin is loaded."""
    import qbench_lsq.plugin
    import qbench_ray.plugin
    import ray_crash_plugin

    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(qbench_lsq.plugin, name="lsq")
    pm.register(qbench_ray.plugin, name="ray")
    pm.register(ray_crash_plugin, name="crashy")
    return Catalog(pm)


@pytest.fixture(scope="module")
def suite_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("suite") / "tiny.toml"
    path.write_text(TINY_SUITE)
    return path


def by_key(rows: list[dict]) -> dict[str, dict]:
    return {r["job_key"]: r for r in rows}


def test_ray_rows_equal_the_local_rows(ray_cluster: None, catalog: Catalog, suite_file: Path,
                                       tmp_path: Path) -> None:
    suite, jobs = plan_jobs(catalog, str(suite_file))
    assert [j.method.name for j in jobs] == ["fp32", "lsq"]
    local = by_key(Harness(catalog, Workspace(tmp_path / "local")).run(suite, jobs, executor="local"))
    ws = Workspace(tmp_path / "ray")
    ray = by_key(Harness(catalog, ws).run(suite, jobs, executor="ray"))
    assert set(ray) == set(local) == {j.key for j in jobs}
    for key, row in ray.items():
        assert row["status"] == local[key]["status"] == "ok", row.get("reason")
        assert row["executor"] == "ray" and local[key]["executor"] == "local"
        for field in ("top1", "top5", "fp_top1", "w_bits_measured", "a_bits_measured", "fp_key", "torch_threads"):
            assert row[field] == local[key][field], (row["method"], field)
    # the driver wrote the rows, and kept the FP checkpoint a Ray worker trained
    on_disk = by_key([json.loads(p.read_text()) for p in ws.rows_dir("tiny").glob("*.json")])
    assert {k: r["top1"] for k, r in on_disk.items()} == {k: r["top1"] for k, r in ray.items()}
    assert ws.fp_path(jobs[0].fp_key).exists()
    assert not list((tmp_path / "ray").glob("**/epochs*")), "no epoch checkpoint is left behind"


def test_a_killed_ray_worker_becomes_a_crashed_row_and_the_run_goes_on(ray_cluster: None, catalog: Catalog,
                                                                       tmp_path: Path) -> None:
    suite_file = tmp_path / "tiny.toml"  # a second dataset whose loading kills the FP task's worker
    suite_file.write_text(TINY_SUITE + '\n[[datasets]]\nname = "kill-data"\n')
    suite, jobs = plan_jobs(catalog, str(suite_file), ["crash", "lsq"])
    assert [(j.dataset.name, j.method.name) for j in jobs] == [
        ("digits", "fp32"), ("digits", "crash"), ("digits", "lsq"),
        ("kill-data", "fp32"), ("kill-data", "crash"), ("kill-data", "lsq")]
    ws = Workspace(tmp_path / "ws")
    harness = Harness(catalog, ws)
    fp_bytes, fp_meta = harness.train_fp(jobs[0])  # already in the workspace: the driver sends it
    fp_file = ws.fp_path(jobs[0].fp_key).read_bytes()
    rows = {(r["dataset"], r["method"]): r for r in harness.run(suite, jobs, executor="ray")}
    assert len(rows) == 6
    # QAT kills the worker: that job's row says so, the other jobs of its FP checkpoint are ok
    crashed = rows["digits", "crash"]
    assert crashed["status"] == "crashed" and crashed["job_key"] == jobs[1].key and crashed["wall_s"] >= 0
    assert "worker process died" in crashed["reason"] and "1 attempt" in crashed["reason"]
    assert rows["digits", "fp32"]["status"] == "ok" and rows["digits", "lsq"]["status"] == "ok"
    assert rows["digits", "fp32"]["fp_top1"] == fp_meta["top1"] == rows["digits", "lsq"]["fp_top1"]
    assert ws.fp_path(jobs[0].fp_key).read_bytes() == fp_file  # sent as it was, not trained again
    # FP training kills the worker: every job of that checkpoint is crashed, naming the FP task
    for method in ("fp32", "crash", "lsq"):
        row = rows["kill-data", method]
        assert row["status"] == "crashed", row
        assert row["reason"].startswith("its FP checkpoint's task (FP kill-data/resnet20/seed0) did not finish: "
                                        "the Ray worker process died"), row["reason"]
    assert not ws.fp_path(jobs[3].fp_key).exists()
    assert ws.read_row("tiny", jobs[1].key)["status"] == "crashed"  # on disk; a rerun retries it


def test_options() -> None:
    from qbench_ray.executor import RayExecutor

    assert RayExecutor().retries == 0 and RayExecutor(address="auto", retries=2).retries == 2
    with pytest.raises(QbenchError, match="no option workers"):
        RayExecutor(workers=3)
    with pytest.raises(QbenchError, match="retries"):
        RayExecutor(retries=-1)


def test_registered_through_the_entry_point_group() -> None:
    cat = Catalog(get_plugin_manager(load_entrypoints=True))
    assert "ray" in cat.executors.names()
