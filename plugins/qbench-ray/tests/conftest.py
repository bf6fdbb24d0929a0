"""A real local Ray cluster (2 CPUs) shared by this directory's tests: Ray takes ~10 s to start."""
from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from qbench.testing import one_torch_thread  # noqa: F401

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    import ray

    # the Ray workers import the test plugin by name: they inherit this PYTHONPATH from the raylet
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])))
        mp.setenv("OMP_NUM_THREADS", "1")
        # file datasets' DataLoader workers inside the Ray workers (the in-memory ones use none)
        mp.setenv("QBENCH_LOADER_WORKERS", "2")
        # Ray nices its workers to 15: on a machine shared with other work they would crawl
        mp.setenv("RAY_worker_niceness", "0")
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()
