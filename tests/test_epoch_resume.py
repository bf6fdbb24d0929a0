"""Epoch checkpoints: a phase stopped after an epoch and resumed from the file ends where the
uninterrupted phase ends (dropout's RNG, the shuffling generator and file datasets' augmentation
included), and a file holds the job's own device's RNG only, so it loads with fewer GPUs."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from qbench.data.digits import load_digits
from qbench.data.image_datasets import load_cifar
from qbench.run.epochs import EpochCheckpoint
from qbench.testing import write_cifar10
from qbench.train.loop import train
from qbench.train.recipe import TrainRecipe
from qbench.train.resume import _saved_device_rng

RECIPE = TrainRecipe(epochs=3, batch_size=25, lr=0.01)


class Stop(Exception):
    """Stands in for a kill after an epoch's checkpoint was written."""


def _model(in_features: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(in_features, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 10))


def _run(data, in_features: int, checkpoint: EpochCheckpoint | None = None, stop_after: int | None = None
         ) -> dict[str, torch.Tensor]:
    model = _model(in_features)
    torch.manual_seed(1)  # the global RNG dropout draws from, as the harness leaves it

    def on_epoch(stats) -> None:
        if stop_after is not None and stats.epoch == stop_after:
            raise Stop

    train(model, lambda x, y: nn.functional.cross_entropy(model(x), y), data, RECIPE, seed=0,
          on_epoch=on_epoch, checkpoint=checkpoint, device=torch.device("cpu"))
    return model.state_dict()


def _bundle(kind: str, tmp_path: Path):
    if kind == "digits":
        return load_digits(), 64
    return load_cifar(10, write_cifar10(tmp_path / "cifar", per_batch=20, test=20), verify_checksums=False), 3072


@pytest.mark.parametrize("kind", ["digits", "cifar10"])
def test_a_phase_resumed_from_its_cpu_checkpoint_ends_as_the_uninterrupted_one(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QBENCH_LOADER_WORKERS", "2")
    data, features = _bundle(kind, tmp_path)
    reference = _run(data, features)
    ckpt = EpochCheckpoint(tmp_path / "phase.pt", quarantine=lambda path, why: pytest.fail(why))
    with pytest.raises(Stop):
        _run(data, features, ckpt, stop_after=1)
    state = torch.load(tmp_path / "phase.pt", weights_only=True)
    assert state["epoch"] == 1
    assert "device_rng" not in state and "cuda_rng" not in state  # a CPU job has no device stream to keep
    resumed = _run(data, features, EpochCheckpoint(tmp_path / "phase.pt", quarantine=lambda path, why: None))
    assert all(torch.equal(reference[k], resumed[k]) for k in reference)


def test_the_saved_gpu_stream_goes_to_the_jobs_gpu_whatever_its_index() -> None:
    stream = torch.arange(16, dtype=torch.uint8)
    assert _saved_device_rng({"device_rng": stream}, torch.device("cuda", 3)) is stream
    # files written before: every GPU's state by index; a machine with fewer GPUs still loads them
    legacy = {"cuda_rng": [torch.full((16,), i, dtype=torch.uint8) for i in range(4)]}
    assert int(_saved_device_rng(legacy, torch.device("cuda", 2))[0]) == 2
    assert _saved_device_rng(legacy, torch.device("cuda", 7)) is None
    assert _saved_device_rng({}, torch.device("cuda", 0)) is None
