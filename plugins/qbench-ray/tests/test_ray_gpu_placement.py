"""GPU placement on a real local Ray cluster that declares two GPUs (Ray schedules declared GPUs
and sets each task's CUDA_VISIBLE_DEVICES whether or not CUDA is present, so placement can be
checked without one; running the jobs on real GPUs is scripts/gpu-check.sh's).

The executor's own task factory (:func:`qbench_ray.resources.remote`) wraps a probe that reports
what Ray gave it: each task must see exactly one GPU as its CUDA_VISIBLE_DEVICES, never share it
with a task running at the same time, and run in a fresh worker process.
"""
from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from qbench_ray.resources import named_gpus, remote, task_options


def probe(hold_s: float) -> dict:
    import ray

    start = time.time()
    time.sleep(hold_s)  # tasks overlap, so a shared GPU would show
    return {"pid": os.getpid(), "gpus": [str(g) for g in ray.get_gpu_ids()],
            "visible": os.environ.get("CUDA_VISIBLE_DEVICES"), "start": start, "end": time.time()}


@pytest.fixture(scope="module")
def two_gpu_cluster() -> Iterator[None]:
    import ray

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_worker_niceness", "0")
        ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def test_each_gpu_task_gets_its_own_gpu_and_a_fresh_process(two_gpu_cluster: None) -> None:
    import ray

    task = remote(probe, gpu=True)
    refs = [task.options(**task_options(1, 0, 0, f"job{i}")).remote(1.0) for i in range(4)]
    seen = ray.get(refs)
    for s in seen:
        assert len(s["gpus"]) == 1 and s["visible"] == s["gpus"][0], s
    assert len({s["pid"] for s in seen}) == 4, "a worker process ran two GPU tasks (max_calls=1 missing)"
    for a in seen:
        for b in seen:
            overlap = a is not b and a["start"] < b["end"] and b["start"] < a["end"]
            assert not (overlap and a["gpus"] == b["gpus"]), (a, b)


def test_a_cpu_run_reuses_workers_and_asks_for_no_gpu(two_gpu_cluster: None) -> None:
    import ray

    task = remote(probe, gpu=False)
    seen = [ray.get(task.options(**task_options(1, 0, 0, f"job{i}")).remote(0.0)) for i in range(3)]
    assert all(s["gpus"] == [] for s in seen)
    assert len({s["pid"] for s in seen}) < 3, "CPU tasks should reuse warm workers"


def test_a_named_gpu_holds_on_a_node_with_more(two_gpu_cluster: None) -> None:
    """A joined cluster's node declares both GPUs; ``--device cuda:1`` still gets GPU 1 only,
    whichever of its slots Ray hands the task."""
    import ray

    task = remote(probe, gpu=True)
    gpus = named_gpus(("cuda:1",), 2, None)
    seen = ray.get([task.options(**task_options(1, 0, 0, f"job{i}", gpus)).remote(0.5) for i in range(4)])
    assert all(s["visible"] == "1" and s["gpus"] == ["1"] for s in seen), seen


def uuid_of_cuda0() -> str:
    import torch

    return str(torch.cuda.get_device_properties(0).uuid)


def test_a_cuda1_task_computes_on_gpu_1(two_gpu_cluster: None) -> None:
    """GPU only (scripts/gpu_check.py's gpus stage): the task's cuda:0 is the driver's cuda:1."""
    import ray
    import torch

    if not torch.cuda.is_available() or torch.cuda.device_count() < 2:
        pytest.skip("needs two CUDA GPUs")
    task = remote(uuid_of_cuda0, gpu=True)
    options = task_options(1, 0, 0, "uuid", named_gpus(("cuda:1",), torch.cuda.device_count(),
                                                       os.environ.get("CUDA_VISIBLE_DEVICES")))
    assert ray.get(task.options(**options).remote()) == str(torch.cuda.get_device_properties(1).uuid)


def test_loader_cpus_are_asked_for() -> None:
    assert task_options(2, 3, 1, "j") == {"num_cpus": 5, "max_retries": 1, "name": "j"}
