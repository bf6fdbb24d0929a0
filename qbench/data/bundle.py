"""The dataset contract and batching.

Small benchmarks (digits, Fashion-MNIST) live in memory as tensors: batching them by index is
an order of magnitude faster than a DataLoader collating single items, which matters on two
cores. Anything else (CIFAR, ImageNet folders) goes through a torch DataLoader.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.data import Dataset, TensorDataset

from qbench.data.loader import FileBatches, loader_workers


@dataclass
class DataBundle:
    """A dataset ready for training.

    :param fingerprint: a hash of the data actually used (recorded in every result row).
    :param source: where the data came from (a path, a package), for provenance.
    """

    name: str
    train: Dataset
    test: Dataset
    num_classes: int
    in_chans: int
    image_size: tuple[int, int]
    fingerprint: str
    source: str

    def loader_workers(self) -> int:
        """The DataLoader workers a pass over this data uses in this process (0: in memory, indexed
        in this process): provenance in each row, never part of a job's key."""
        return 0 if isinstance(self.train, TensorDataset) else loader_workers()

    def sample(self, n: int = 2) -> Tensor:
        """A few training inputs (for shape inference and MAC counting)."""
        return next(iterate_batches(self.train, n, shuffle=False))[0]


def tensor_fingerprint(*tensors: Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def iterate_batches(ds: Dataset, batch_size: int, shuffle: bool, generator: torch.Generator | None = None,
                    num_workers: int | None = None, device: torch.device | str | None = None
                    ) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield ``(x, y)`` batches on ``device``; an in-memory ``TensorDataset`` is indexed directly,
    file datasets go through a DataLoader with workers (:class:`~qbench.data.loader.FileBatches`:
    the batches do not depend on the worker count)."""
    dev = torch.device(device) if device is not None else None
    if isinstance(ds, TensorDataset):
        x, y = ds.tensors
        n = len(x)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        for i in range(0, n, batch_size):
            idx = order[i:i + batch_size]
            xb, yb = x[idx], y[idx]
            yield (xb.to(dev), yb.to(dev)) if dev is not None and dev.type != "cpu" else (xb, yb)
        return
    yield from FileBatches(ds, batch_size, num_workers, dev).one_pass(shuffle, generator)


def num_batches(ds: Dataset, batch_size: int) -> int:
    return -(-len(ds) // batch_size)  # type: ignore[arg-type]
