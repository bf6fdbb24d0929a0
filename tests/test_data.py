"""Datasets: the embedded digits split, Fashion-MNIST's IDX files, CIFAR and image folders
through torchvision's/timm's loaders on small files written in the real formats."""
from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from qbench.data.digits import load_digits
from qbench.data.fashion_mnist import DEBIAN_DIR, load_fashion_mnist, read_idx
from qbench.data.image_datasets import load_cifar, load_image_folder
from qbench.errors import QbenchError


def test_digits_fixed_stratified_split() -> None:
    a, b = load_digits(), load_digits()
    assert a.fingerprint == b.fingerprint
    xtr, ytr = a.train.tensors
    xte, yte = a.test.tensors
    assert xtr.shape[1:] == (1, 8, 8) and len(ytr) + len(yte) == 1797
    assert abs(len(yte) / 1797 - 0.2) < 0.01
    frac_tr = torch.bincount(ytr, minlength=10).float() / len(ytr)
    frac_te = torch.bincount(yte, minlength=10).float() / len(yte)
    assert (frac_tr - frac_te).abs().max() < 0.02
    assert abs(float(xtr.mean())) < 1e-4


def _write_idx(path: Path, arr: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def test_idx_reader_and_fashion_mnist_from_a_data_dir(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for split, n in (("train", 50), ("t10k", 20)):
        _write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    arr = read_idx(tmp_path / "t10k-labels-idx1-ubyte.gz")
    assert arr.tolist() == [i % 10 for i in range(20)]
    b = load_fashion_mnist(tmp_path, train_subset=20)
    assert len(b.train) == 20 and len(b.test) == 20
    assert torch.bincount(b.train.tensors[1], minlength=10).tolist() == [2] * 10


def test_fashion_mnist_missing_says_how_to_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("qbench.data.fashion_mnist.DEBIAN_DIR", tmp_path / "nowhere")
    with pytest.raises(QbenchError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path / "empty")


@pytest.mark.skipif(not DEBIAN_DIR.exists(), reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_real_files() -> None:
    b = load_fashion_mnist(None, train_subset=10000)
    assert len(b.test) == 10000 and len(b.train) == 10000
    assert b.train.tensors[0].shape[1:] == (1, 28, 28)
    assert torch.bincount(b.test.tensors[1]).tolist() == [1000] * 10


def _write_cifar(root: Path, n: int = 20) -> None:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "wb") as f:
            pickle.dump({"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                         "labels": (np.arange(n) % 10).tolist()}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, f)


def test_cifar10_through_torchvision(tmp_path: Path) -> None:
    _write_cifar(tmp_path)
    b = load_cifar(10, tmp_path, verify_checksums=False)
    assert len(b.train) == 100 and len(b.test) == 20 and b.num_classes == 10
    x, y = b.train[3]
    assert x.shape == (3, 32, 32) and y == 3
    # DataLoader workers started with spawn or forkserver receive the dataset pickled
    assert pickle.loads(pickle.dumps(b.train)).targets == b.train.targets
    with pytest.raises(QbenchError, match="corrupted"):  # the official MD5s do not match these files
        load_cifar(10, tmp_path, verify_checksums=True)
    with pytest.raises(QbenchError, match="needs a data directory"):
        load_cifar(10, None)


def test_image_folder_through_timm(tmp_path: Path) -> None:
    from PIL import Image

    for split in ("train", "val"):
        for c in ("cat", "dog", "eel"):
            d = tmp_path / split / c
            d.mkdir(parents=True)
            for i in range(2):
                Image.fromarray(np.full((40, 48, 3), 40 * i, dtype=np.uint8)).save(d / f"{i}.png")
    b = load_image_folder(tmp_path, name="imagenet", img_size=32)
    assert b.num_classes == 3 and len(b.train) == 6 and len(b.test) == 6
    x, y = b.test[5]
    assert x.shape == (3, 32, 32) and y == 2
