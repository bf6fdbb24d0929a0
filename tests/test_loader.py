"""File datasets' batching: loader workers last a training phase, single batches are read in this
process, a pool shares the cores between its workers' loaders, and a large tree's fingerprint is
computed once."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import torch
from torch.utils.data import Dataset

from qbench.data import fingerprint as fp_mod
from qbench.data.bundle import DataBundle, first_batch, iterate_batches
from qbench.data.image_datasets import load_cifar
from qbench.data.loader import loader_workers, set_loader_workers
from qbench.testing import write_cifar10, write_image_folder
from qbench.train.loop import train
from qbench.train.recipe import TrainRecipe


class PidLog(Dataset):
    """Appends the pid of the process that loads each sample to a file (a loader worker, or this one)."""

    def __init__(self, ds: Dataset, log: Path) -> None:
        self.ds, self.log = ds, log

    def __len__(self) -> int:
        return len(self.ds)  # type: ignore[arg-type]

    def __getitem__(self, i: int):
        with open(self.log, "a") as f:
            f.write(f"{os.getpid()}\n")
        return self.ds[i]

    def pids(self) -> list[int]:
        return [int(p) for p in self.log.read_text().split()] if self.log.exists() else []


@pytest.fixture(scope="module")
def cifar_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_cifar10(tmp_path_factory.mktemp("cifar"), per_batch=20, test=40)


def logged_bundle(cifar_dir: Path, tmp_path: Path) -> tuple[DataBundle, PidLog, PidLog]:
    b = load_cifar(10, cifar_dir, verify_checksums=False)
    train_log, test_log = PidLog(b.train, tmp_path / "train.pids"), PidLog(b.test, tmp_path / "test.pids")
    b.train, b.test = train_log, test_log
    return b, train_log, test_log


def test_loader_workers_last_the_whole_training_phase(cifar_dir: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QBENCH_LOADER_WORKERS", "2")
    data, train_log, _ = logged_bundle(cifar_dir, tmp_path)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10))
    history = train(model, lambda x, y: torch.nn.functional.cross_entropy(model(x), y), data,
                    TrainRecipe(epochs=3, batch_size=25, lr=0.01), seed=0)
    assert len(history) == 3
    pids = train_log.pids()
    assert len(pids) == 3 * 100  # every sample of every epoch, once
    assert os.getpid() not in pids and len(set(pids)) == 2  # two workers, started once for three epochs


def test_single_batches_are_read_in_this_process_and_match_the_first_batch_of_a_pass(
        cifar_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QBENCH_LOADER_WORKERS", "2")
    data, train_log, test_log = logged_bundle(cifar_dir, tmp_path)
    x, y = first_batch(data.test, 16)
    assert set(test_log.pids()) == {os.getpid()} and len(test_log.pids()) == 16
    assert data.sample(3).shape == (3, 3, 32, 32) and set(train_log.pids()) == {os.getpid()}
    xl, yl = next(iterate_batches(data.test, 16, shuffle=False))  # the same samples, through loader workers
    assert torch.equal(x, xl) and torch.equal(y, yl)
    assert os.getpid() not in test_log.pids()[16:]
    # the augmented training split too: sample i of an unshuffled pass is seeded alike everywhere
    assert torch.equal(data.sample(4), next(iterate_batches(data.train, 4, shuffle=False))[0])


def test_a_pass_cut_short_loads_only_the_batches_it_yields(cifar_dir: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Calibration reads a few shuffled batches: nothing more is decoded for batches never used."""
    monkeypatch.setenv("QBENCH_LOADER_WORKERS", "2")
    data, train_log, _ = logged_bundle(cifar_dir, tmp_path)
    gen = torch.Generator().manual_seed(0)
    batches = list(iterate_batches(data.train, 10, True, gen, max_batches=2))
    assert [len(y) for _, y in batches] == [10, 10] and len(train_log.pids()) == 20
    full = list(iterate_batches(data.train, 10, True, torch.Generator().manual_seed(0)))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, full))  # the first batches of the full pass


def test_in_memory_single_batches_and_cut_passes_are_the_old_ones() -> None:
    from qbench.data.digits import load_digits

    d = load_digits()
    x, y = first_batch(d.test, 256)
    assert torch.equal(x, d.test.tensors[0][:256]) and torch.equal(y, d.test.tensors[1][:256])
    cut = list(iterate_batches(d.train, 64, True, torch.Generator().manual_seed(3), max_batches=4))
    full = list(iterate_batches(d.train, 64, True, torch.Generator().manual_seed(3)))
    assert len(cut) == 4 and all(torch.equal(a[0], b[0]) for a, b in zip(cut, full))


def test_a_pool_shares_the_cores_between_its_workers_loaders(monkeypatch: pytest.MonkeyPatch) -> None:
    from qbench.run.pool import WorkerPool
    from qbench.run.runtime import usable_cores

    monkeypatch.delenv("QBENCH_LOADER_WORKERS", raising=False)
    assert WorkerPool(2).loader_share() == min(8, usable_cores() // 2)
    assert WorkerPool(1).loader_share() == min(8, usable_cores())
    assert loader_workers() == min(8, usable_cores())
    try:
        set_loader_workers(3)
        assert loader_workers() == 3
        monkeypatch.setenv("QBENCH_LOADER_WORKERS", "0")  # the user's setting wins
        assert loader_workers() == 0
    finally:
        set_loader_workers(None)


def _old_fingerprint(root: Path) -> str:
    """The fingerprint as it was always computed, so rows made before the cache keep matching."""
    h = hashlib.sha256()
    for dirpath, _, files in sorted(os.walk(root)):
        for f in sorted(files):
            p = Path(dirpath) / f
            h.update(f"{p.relative_to(root)}:{p.stat().st_size}".encode())
    return h.hexdigest()[:16]


def test_a_large_trees_fingerprint_is_computed_once_and_follows_changes(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_image_folder(tmp_path / "images", train_per_class=3, val_per_class=2)
    direct = fp_mod.files_fingerprint(root)  # a small tree: hashed directly
    assert direct == _old_fingerprint(root)
    monkeypatch.setattr(fp_mod, "SMALL_TREE", 0)  # from here on it counts as large
    cache = tmp_path / "ws" / "cache"
    token = fp_mod.CACHE_DIR.set(cache)
    try:
        assert fp_mod.files_fingerprint(root) == direct
        assert len(list(cache.glob("fingerprint-*.json"))) == 1
        fp_mod._MEMO.clear()  # another process: the cache file answers, no file is hashed

        def no_hashing(*args: object) -> str:
            raise AssertionError("hashed every file again")

        monkeypatch.setattr(fp_mod, "_hash", no_hashing)
        assert fp_mod.files_fingerprint(root) == direct
        monkeypatch.undo()
        monkeypatch.setattr(fp_mod, "SMALL_TREE", 0)
        (root / "train" / "cat" / "extra.JPEG").write_bytes((root / "train" / "cat" / "cat_0000.JPEG").read_bytes())
        changed = fp_mod.files_fingerprint(root)  # a new file: its directory's listing changed
        assert changed != direct and changed == _old_fingerprint(root)
    finally:
        fp_mod.CACHE_DIR.reset(token)
        fp_mod._MEMO.clear()
