"""The path users take, on a Ray cluster: CIFAR-10's pickled batches and a folder of JPEGs, read by
DataLoader worker processes inside the Ray workers; rows ok and equal to the local executor's."""
from __future__ import annotations

from pathlib import Path

import pytest

from qbench.testing import (
    Catalog,
    Harness,
    Workspace,
    comparable,
    file_suite,
    get_plugin_manager,
    plan_jobs,
    write_cifar10,
    write_image_folder,
)

DATASETS = {
    "cifar10": (write_cifar10, "verify_checksums = false"),
    "image-folder": (write_image_folder, "img_size = 32"),
}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    import qbench_lsq.plugin
    import qbench_ray.plugin

    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(qbench_lsq.plugin, name="lsq")
    pm.register(qbench_ray.plugin, name="ray")
    return Catalog(pm)


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_ray_rows_on_file_datasets_equal_the_local_rows(ray_cluster: None, catalog: Catalog, dataset: str,
                                                        tmp_path: Path) -> None:
    write, options = DATASETS[dataset]
    data_dir = write(tmp_path / "data")
    suite_file = tmp_path / "files.toml"
    suite_file.write_text(file_suite(dataset, methods=("fp32", "lsq"), options=options))
    suite, jobs = plan_jobs(catalog, str(suite_file))
    # the reference in fresh processes (the subprocess executor): in a long pytest session, the
    # in-process local executor's file-dataset rows came out different after other tests had run in
    # the same process, while alone they equal Ray's; a fresh process is what a user's run is
    local = Harness(catalog, Workspace(tmp_path / "local"), data_dir=data_dir).run(suite, jobs, executor="subprocess")
    ray = Harness(catalog, Workspace(tmp_path / "ray"), data_dir=data_dir).run(suite, jobs, executor="ray")
    assert len(ray) == len(local) == 2
    for row in ray + local:
        assert row["status"] == "ok", (row["executor"], row["method"], row.get("reason"))
    assert {r["executor"] for r in ray} == {"ray"}
    assert {r["loader_workers"] for r in ray + local} == {2}  # QBENCH_LOADER_WORKERS (conftest)
    differ = {k for a, b in zip(ray, local) for k in set(comparable(a)) | set(comparable(b))
              if comparable(a).get(k) != comparable(b).get(k)}
    assert [comparable(r) for r in ray] == [comparable(r) for r in local], f"fields that differ: {sorted(differ)}"
