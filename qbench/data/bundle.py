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

from qbench.data.loader import FileBatches, first_samples, loader_workers


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
        return first_batch(self.train, n)[0]


def tensor_fingerprint(*tensors: Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def iterate_batches(ds: Dataset, batch_size: int, shuffle: bool, generator: torch.Generator | None = None,
                    num_workers: int | None = None, device: torch.device | str | None = None,
                    max_batches: int | None = None) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield ``(x, y)`` batches on ``device``; an in-memory ``TensorDataset`` is indexed directly,
    file datasets go through a DataLoader with workers (:class:`~qbench.data.loader.FileBatches`:
    the batches do not depend on the worker count). ``max_batches`` stops after that many (a file
    dataset then loads only those, with no more loader workers than batches)."""
    dev = torch.device(device) if device is not None else None
    if isinstance(ds, TensorDataset):
        x, y = ds.tensors
        n = len(x)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        for b, i in enumerate(range(0, n, batch_size)):
            if max_batches is not None and b >= max_batches:
                return
            idx = order[i:i + batch_size]
            xb, yb = x[idx], y[idx]
            yield (xb.to(dev), yb.to(dev)) if dev is not None and dev.type != "cpu" else (xb, yb)
        return
    workers = loader_workers() if num_workers is None else num_workers
    if max_batches is not None:
        workers = min(workers, max_batches)
    yield from FileBatches(ds, batch_size, workers, dev).one_pass(shuffle, generator, max_batches)


def first_batch(ds: Dataset, n: int, device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
    """The first batch of an unshuffled pass (``n`` samples), read in this process: a file dataset
    starts no loader worker for a single batch."""
    if isinstance(ds, TensorDataset):
        x, y = (t[:n] for t in ds.tensors)
    else:
        x, y = first_samples(ds, n)
    return (x, y) if device is None else (x.to(device), y.to(device))


class EpochBatches:
    """Every epoch of one training phase: in-memory data indexed as by :func:`iterate_batches`; a
    file dataset through one DataLoader whose workers last the whole phase (started once, not at
    each epoch). Use as a context manager: leaving it ends the loader workers."""

    def __init__(self, ds: Dataset, batch_size: int, device: torch.device | str | None = None) -> None:
        self.ds, self.batch_size, self.device = ds, batch_size, device
        self.files = None if isinstance(ds, TensorDataset) else FileBatches(ds, batch_size, device=device,
                                                                             persistent=True)

    def epoch(self, generator: torch.Generator) -> Iterator[tuple[Tensor, Tensor]]:
        if self.files is None:
            return iterate_batches(self.ds, self.batch_size, shuffle=True, generator=generator, device=self.device)
        return self.files.one_pass(True, generator)

    def __enter__(self) -> "EpochBatches":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.files is not None:
            self.files.close()


def num_batches(ds: Dataset, batch_size: int) -> int:
    return -(-len(ds) // batch_size)  # type: ignore[arg-type]
