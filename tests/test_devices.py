"""--device: which GPUs a run uses (only those named), and where each pool worker computes; the
rules are pure functions of the GPU count, checked here without a GPU."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from qbench.errors import QbenchError
from qbench.run.runtime import default_workers, parse_devices, worker_device
from qbench.run.worker import WorkerSpec


def cuda(*indices: int) -> list[torch.device]:
    return [torch.device("cuda", i) for i in indices]


@pytest.mark.parametrize("spec, count, expected", [
    ("cpu", 4, [torch.device("cpu")]),
    ("auto", 0, [torch.device("cpu")]),
    ("auto", 2, cuda(0, 1)),
    ("cuda", 4, cuda(0, 1, 2, 3)),
    ("cuda:1", 4, cuda(1)),
    ("CUDA:1", 4, cuda(1)),
    ("cuda:3,1", 4, cuda(3, 1)),
])
def test_device_specs_name_exactly_the_gpus_to_use(spec: str, count: int, expected: list[torch.device]) -> None:
    assert parse_devices(spec, count) == expected


@pytest.mark.parametrize("spec, count, message", [
    ("cuda:4", 4, "has 4 CUDA device(s), numbered from 0"),
    ("cuda", 0, "torch sees no CUDA device"),
    ("cuda:0", 0, "torch sees no CUDA device"),
    ("cuda:1,1", 4, "names a GPU twice"),
    ("cuda:x", 4, "is not a device"),
    ("tpu", 4, "qbench runs on cpu or cuda"),
])
def test_bad_device_specs_say_what_is_wrong(spec: str, count: int, message: str) -> None:
    with pytest.raises(QbenchError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_devices(spec, count)


def test_one_named_gpu_takes_every_worker() -> None:
    one = parse_devices("cuda:1", 4)
    assert default_workers(1, one) == 1
    assert [worker_device(one, w) for w in range(3)] == cuda(1, 1, 1)
    two = parse_devices("cuda:0,2", 4)
    assert default_workers(1, two) == 2
    assert [worker_device(two, w) for w in range(3)] == cuda(0, 2, 0)
    assert worker_device(torch.device("cpu"), 5) == torch.device("cpu")


def test_pool_workers_and_their_lost_rows_get_the_named_devices(catalog, tmp_path: Path) -> None:
    """The parent computes each worker's device as the worker does, so a worker that dies leaves
    a row naming the GPU it was on (WorkerPool._lost passes it to record_lost)."""
    from qbench.run.harness import Harness
    from qbench.run.workspace import Workspace

    harness = Harness(catalog, Workspace(tmp_path), device="cpu")
    spec = WorkerSpec.of(harness)
    assert spec.devices == ("cpu",) and spec.worker_device(3) == "cpu"
    gpus = WorkerSpec.of(Harness(catalog, Workspace(tmp_path), devices=("cuda:1", "cuda:3")))
    assert [gpus.worker_device(i) for i in range(3)] == ["cuda:1", "cuda:3", "cuda:1"]
    worker = gpus.on_device(gpus.worker_device(1))  # what a worker rebuilds its harness from
    assert worker.device == "cuda:3" and worker.devices == ("cuda:3",)
