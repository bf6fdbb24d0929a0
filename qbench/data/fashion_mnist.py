"""Fashion-MNIST from its IDX files: Debian's dataset-fashion-mnist, a data directory, or a download.

Search order: ``data_dir``, ``$QBENCH_DATA_DIR/fashion-mnist``, ``/usr/share/datasets/fashion-mnist``
(Debian). If none holds the four IDX files and ``download`` is true, torchvision downloads them
into ``data_dir`` (needs internet).
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from qbench.data.bundle import DataBundle, tensor_fingerprint
from qbench.errors import QbenchError

FILES = {
    "train_x": "train-images-idx3-ubyte", "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte", "test_y": "t10k-labels-idx1-ubyte",
}
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
MEAN, STD = 0.2860, 0.3530  # of the training images in [0, 1]


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped): magic, dims, then big-endian uint8 data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise QbenchError(f"{path} is not an unsigned-byte IDX file (bad magic number).")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise QbenchError(f"{path} is truncated: expected {int(np.prod(dims))} values, found {arr.size}.")
    return arr.reshape(dims)


def _find(dirs: list[Path], stem: str) -> Path | None:
    for d in dirs:
        for cand in (d / stem, d / f"{stem}.gz", d / "FashionMNIST" / "raw" / stem):
            if cand.exists():
                return cand
    return None


def candidate_dirs(data_dir: Path | None) -> list[Path]:
    dirs = [Path(data_dir)] if data_dir else []
    if os.environ.get("QBENCH_DATA_DIR"):
        dirs.append(Path(os.environ["QBENCH_DATA_DIR"]) / "fashion-mnist")
    dirs.append(DEBIAN_DIR)
    return dirs


def load_fashion_mnist(data_dir: Path | None = None, train_subset: int | None = None,
                       download: bool = False) -> DataBundle:
    """Fashion-MNIST as 1x28x28 standardised images.

    :param train_subset: keep a fixed, class-balanced subset of this many training images
        (the first ones of each class in file order), to size a suite for a CPU.
    """
    dirs = candidate_dirs(data_dir)
    paths = {k: _find(dirs, stem) for k, stem in FILES.items()}
    if any(p is None for p in paths.values()):
        if download and data_dir:
            from torchvision.datasets import FashionMNIST
            FashionMNIST(str(data_dir), train=True, download=True)
            FashionMNIST(str(data_dir), train=False, download=True)
            paths = {k: _find(dirs, stem) for k, stem in FILES.items()}
        if any(p is None for p in paths.values()):
            raise QbenchError(
                "Fashion-MNIST IDX files not found in " + ", ".join(map(str, dirs)) + ". Fix: "
                "`apt-get install dataset-fashion-mnist` (Debian), or pass --data-dir DIR with the four "
                "IDX files, or allow a download with the dataset option download=true.")
    arrays = {k: read_idx(p) for k, p in paths.items()}  # type: ignore[arg-type]
    xtr = torch.from_numpy(arrays["train_x"].copy()).float().div_(255).unsqueeze(1)
    ytr = torch.from_numpy(arrays["train_y"].astype(np.int64))
    xte = torch.from_numpy(arrays["test_x"].copy()).float().div_(255).unsqueeze(1)
    yte = torch.from_numpy(arrays["test_y"].astype(np.int64))
    if train_subset is not None and train_subset < len(ytr):
        per_class = train_subset // 10
        keep = torch.cat([torch.nonzero(ytr == c).flatten()[:per_class] for c in range(10)]).sort().values
        xtr, ytr = xtr[keep], ytr[keep]
    xtr, xte = (xtr - MEAN) / STD, (xte - MEAN) / STD
    return DataBundle(
        name="fashion-mnist", train=TensorDataset(xtr, ytr), test=TensorDataset(xte, yte), num_classes=10,
        in_chans=1, image_size=(28, 28), fingerprint=tensor_fingerprint(xtr, ytr, xte, yte),
        source=str(paths["train_x"].parent) + (f" (train_subset={train_subset})" if train_subset else ""))
