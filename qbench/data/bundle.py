"""The dataset contract and batching.

Small benchmarks (digits, Fashion-MNIST) live in memory as tensors: batching them by index is
an order of magnitude faster than a DataLoader collating single items, which matters on two
cores. Anything else (CIFAR, ImageNet folders) goes through a torch DataLoader.
"""
from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, TensorDataset


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

    def sample(self, n: int = 2) -> Tensor:
        """A few training inputs (for shape inference and MAC counting)."""
        return next(iterate_batches(self.train, n, shuffle=False))[0]


def tensor_fingerprint(*tensors: Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def loader_workers() -> int:
    """DataLoader workers for file datasets: the cores this process may use, at most 8 (decoding
    JPEGs is what they do; more than that rarely feeds one GPU faster). ``QBENCH_LOADER_WORKERS``
    overrides it. The worker count never changes the batches: their order comes from the
    sampler's generator alone."""
    env = os.environ.get("QBENCH_LOADER_WORKERS")
    if env is not None:
        return max(0, int(env))
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return min(8, cores)


def loader_context() -> mp.context.BaseContext | None:
    """How DataLoader workers start: fork on Linux (torch's own default there), whatever process
    starts them. Inside a pool worker, itself started with spawn, multiprocessing's default is spawn,
    and each loader worker would import torch again (seconds) every time a loader starts."""
    if sys.platform.startswith("linux") and "fork" in mp.get_all_start_methods():
        return mp.get_context("fork")
    return None


def iterate_batches(ds: Dataset, batch_size: int, shuffle: bool, generator: torch.Generator | None = None,
                    num_workers: int | None = None, device: torch.device | str | None = None
                    ) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield ``(x, y)`` batches on ``device``; an in-memory ``TensorDataset`` is indexed directly,
    file datasets go through a DataLoader with workers (and pinned memory for a GPU)."""
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
    workers = loader_workers() if num_workers is None else num_workers
    pin = dev is not None and dev.type == "cuda"
    loader = DataLoader(ds, batch_size=batch_size, shuffle=shuffle, generator=generator, num_workers=workers,
                        pin_memory=pin, persistent_workers=False,
                        multiprocessing_context=loader_context() if workers > 0 else None)
    for xb, yb in loader:
        yield (xb.to(dev, non_blocking=pin), yb.to(dev, non_blocking=pin)) if dev is not None else (xb, yb)


def num_batches(ds: Dataset, batch_size: int) -> int:
    return -(-len(ds) // batch_size)  # type: ignore[arg-type]
