"""``--device cuda:1`` under Ray: every task gets the named GPU and no other.

On a real local cluster that the executor starts itself (``ray.init(num_cpus=2)``, plus the named
GPUs declared), without CUDA: Ray schedules declared GPUs and sets each task's
``CUDA_VISIBLE_DEVICES`` whether or not a GPU is there, so what a task is given (its visible
devices, Ray's GPU ids, the device its job computes on) is checked here. That the job's CUDA work
then lands on that GPU needs two real ones: test_ray_gpu_placement.py's GPU-only test, which
scripts/gpu_check.py's ``gpus`` stage runs.
"""
from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from qbench_ray.executor import RayExecutor, task_device
from qbench_ray.resources import named_gpus, remote, task_options


def probe(device: str, hold_s: float) -> dict:
    import ray

    start = time.time()
    time.sleep(hold_s)  # tasks would overlap if Ray ran two on one declared GPU
    return {"visible": os.environ.get("CUDA_VISIBLE_DEVICES"), "gpus": [str(g) for g in ray.get_gpu_ids()],
            "device": task_device(device), "pid": os.getpid(), "start": start, "end": time.time()}


def test_which_gpus_a_run_names() -> None:
    assert named_gpus(("cuda:1",), 2, None) == "1"
    assert named_gpus(("cuda:0", "cuda:2"), 4, None) == "0,2"
    # cuda:1 is the driver's second visible GPU, as torch in the driver numbered it
    assert named_gpus(("cuda:1",), 2, "4,6") == "6"
    # every GPU the driver sees (--device cuda), or a CPU run: Ray may give any
    assert named_gpus(("cuda:0", "cuda:1"), 2, None) is None
    assert named_gpus(("cpu",), 0, None) is None


def test_options_of_a_named_gpu_run() -> None:
    assert task_options(2, 0, 0, "j", "1") == {"num_cpus": 2, "max_retries": 0, "name": "j",
                                               "runtime_env": {"env_vars": {"CUDA_VISIBLE_DEVICES": "1"}}}
    assert "runtime_env" not in task_options(2, 0, 0, "j")


@pytest.fixture(scope="module")
def cuda1_cluster() -> Iterator[RayExecutor]:
    """The local cluster the executor starts for ``--device cuda:1`` on a driver with two GPUs."""
    import ray

    executor = RayExecutor(num_cpus=2)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_worker_niceness", "0")
        executor._connect(named_gpus(("cuda:1",), 2, None))
    try:
        yield executor
    finally:
        ray.shutdown()


def test_every_task_of_a_cuda1_run_gets_gpu_1_alone(cuda1_cluster: RayExecutor) -> None:
    import ray

    assert cuda1_cluster._started and ray.cluster_resources().get("GPU") == 1, ray.cluster_resources()
    task = remote(probe, gpu=True)
    gpus = named_gpus(("cuda:1",), 2, None)
    seen = ray.get([task.options(**task_options(1, 0, 0, f"job{i}", gpus)).remote("cuda:1", 0.5)
                    for i in range(3)])
    for s in seen:
        assert s["visible"] == "1" and s["gpus"] == ["1"], s
        assert s["device"] == "cuda:0", s  # the one GPU it sees: physical GPU 1
    assert len({s["pid"] for s in seen}) == 3, "a worker process ran two GPU tasks"
    for a in seen:  # one named GPU: one task at a time
        for b in seen:
            assert a is b or a["end"] <= b["start"] or b["end"] <= a["start"], (a, b)
