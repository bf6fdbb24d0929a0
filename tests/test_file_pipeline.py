"""The path users take: datasets on disk in their real formats (CIFAR-10's pickled batches, a
folder of JPEGs), read by DataLoader worker processes, through every executor of the host.

Each run is the real command line (``qbench run`` in a fresh process, the toy method), so the pool's
worker processes start DataLoader workers of their own: every row must be ``ok``, and equal
whatever ran it.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qbench.run.runtime import usable_cores
from qbench.testing import comparable, file_suite, write_cifar10, write_image_folder

CLI = Path(__file__).with_name("run_cli_with_toy.py")

DATASETS = {
    "cifar10": (write_cifar10, "verify_checksums = false"),
    "image-folder": (write_image_folder, "img_size = 32"),
}


def run_cli(args: list[str], env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k != "QBENCH_LOADER_WORKERS"}
    full_env.update({"OMP_NUM_THREADS": "1", **(env or {})})
    return subprocess.run([sys.executable, str(CLI), "run", *args], capture_output=True, text=True, env=full_env,
                          timeout=timeout)


def rows_of(workspace: Path, suite: str = "files") -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in (workspace / suite / "rows").glob("*.json")}


@pytest.fixture(scope="module")
def data_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("data")
    return {name: write(root / name) for name, (write, _) in DATASETS.items()}


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_a_file_dataset_gives_the_same_ok_rows_through_every_executor(dataset: str, data_dirs: dict[str, Path],
                                                                      tmp_path: Path) -> None:
    suite = tmp_path / "files.toml"
    suite.write_text(file_suite(dataset, methods=("fp32", "toy"), options=DATASETS[dataset][1]))
    # the pool's workers get their share of the cores (1 loader worker each on 2 cores); the
    # others are told 2: the rows must not care
    share = min(8, usable_cores() // 2)
    runs = {"workers1": (["--workers", "1"], 2), "workers2": (["--workers", "2"], share),
            "subprocess": (["--executor", "subprocess"], 2)}
    rows: dict[str, dict[str, dict]] = {}
    for name, (how, loaders) in runs.items():
        ws = tmp_path / name
        env = {} if name == "workers2" else {"QBENCH_LOADER_WORKERS": "2"}
        done = run_cli(["--suite", str(suite), "--data-dir", str(data_dirs[dataset]), "--workspace", str(ws),
                        "--no-progress", *how], env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        rows[name] = rows_of(ws)
        assert len(rows[name]) == 2, (name, done.stdout)
        for row in rows[name].values():
            assert row["status"] == "ok", (name, row["method"], row.get("reason"))
            assert row["dataset"] == dataset and row["loader_workers"] == loaders
    assert {r["executor"] for r in rows["workers2"].values()} == {"pool"}
    assert {r["executor"] for r in rows["subprocess"].values()} == {"subprocess"}
    reference = {key: comparable(row) for key, row in rows["workers1"].items()}
    for name in ("workers2", "subprocess"):
        assert {key: comparable(row) for key, row in rows[name].items()} == reference, name


def test_rows_do_not_depend_on_the_loader_worker_count(catalog, data_dirs: dict[str, Path], tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """CIFAR's random crops and flips, and timm's random resized crops: each sample is seeded from
    the pass and its index, so 0 and 2 loader workers train the same model. The count is recorded."""
    from qbench.run.harness import Harness
    from qbench.run.plan import plan_jobs
    from qbench.run.workspace import Workspace

    for dataset, (_, options) in DATASETS.items():
        suite_file = tmp_path / f"{dataset}.toml"
        suite_file.write_text(file_suite(dataset, methods=("fp32", "toy"), options=options))
        suite, jobs = plan_jobs(catalog, str(suite_file))
        rows = {}
        for workers in (0, 2):
            monkeypatch.setenv("QBENCH_LOADER_WORKERS", str(workers))
            ws = Workspace(tmp_path / f"{dataset}-{workers}")
            rows[workers] = Harness(catalog, ws, data_dir=data_dirs[dataset]).run(suite, jobs)
            assert [r["status"] for r in rows[workers]] == ["ok", "ok"], [r.get("reason") for r in rows[workers]]
            assert {r["loader_workers"] for r in rows[workers]} == {workers}
        assert [comparable(r) for r in rows[0]] == [comparable(r) for r in rows[2]], dataset
