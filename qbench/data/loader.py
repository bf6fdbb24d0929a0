"""Batches of file datasets (CIFAR, image folders): a DataLoader whose batches do not depend on
how many worker processes it has.

A DataLoader seeds each of its workers from one base seed plus the worker's number, and a random
transform draws from the RNG of whichever process loads the sample: the same job would crop and
flip differently with 0, 2 or 8 loader workers, and the loader worker count is a property of the
machine (its cores, the pool's size), not of the job. So every sample is loaded under RNGs seeded
from (the pass's seed, the sample's index) alone, the pass's seed drawn from the training
generator: a row is the same for any number of loader workers, on any executor, and a resumed
job (whose generator is restored) sees the augmentation it would have seen.

The order of samples comes from the same generator (``randperm``), in this process.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import random
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

_MASK64 = (1 << 64) - 1


def sample_seed(pass_seed: int, index: int) -> int:
    """A 64-bit seed for sample ``index`` of a pass (SplitMix64's finaliser: neighbouring indices
    get unrelated seeds)."""
    z = (pass_seed * 0x9E3779B97F4A7C15 + index + 1) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


@contextmanager
def seeded_rngs(seed: int) -> Iterator[None]:
    """torch's CPU generator, ``random`` and numpy's global RNG seeded from ``seed`` inside the
    block (torchvision draws from torch, timm from ``random``, some transforms from numpy), and
    restored after it: loading in the training process (0 loader workers) leaves the RNG the
    training draws from as it was. Only the CPU generator: CUDA's are the training's own."""
    torch_state, py_state, np_state = torch.get_rng_state(), random.getstate(), np.random.get_state()
    torch.default_generator.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed & 0xFFFFFFFF)
    try:
        yield
    finally:
        torch.set_rng_state(torch_state)
        random.setstate(py_state)
        np.random.set_state(np_state)


class SeededSamples(Dataset):
    """A dataset indexed by ``(pass seed, index)``: each sample loaded under its own seeds."""

    def __init__(self, ds: Dataset) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        pass_seed, index = key
        with seeded_rngs(sample_seed(pass_seed, index)):
            return self.ds[index]


class PassSampler(Sampler):
    """The ``(pass seed, index)`` keys of the pass about to start (set before each pass)."""

    def __init__(self) -> None:
        self.keys: list[tuple[int, int]] = []

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)


#: this process's loader workers, set by the runner (a pool worker's share of the cores); None: the default
_PROCESS_WORKERS: int | None = None


def set_loader_workers(n: int | None) -> None:
    """Fix this process's loader workers (None: back to the default). A pool of N workers on C cores
    gives each C // N: at the default each would start min(8, C), N times too many for the cores."""
    global _PROCESS_WORKERS
    _PROCESS_WORKERS = None if n is None else max(0, int(n))


def loader_workers() -> int:
    """DataLoader workers for file datasets: ``QBENCH_LOADER_WORKERS`` when set, else what the
    runner set for this process (:func:`set_loader_workers`), else the cores this process may use,
    at most 8 (decoding JPEGs is what they do; more than that rarely feeds one GPU faster). The
    count never changes the batches (see the module's docstring)."""
    env = os.environ.get("QBENCH_LOADER_WORKERS")
    if env is not None:
        return max(0, int(env))
    if _PROCESS_WORKERS is not None:
        return _PROCESS_WORKERS
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


class FileBatches:
    """Passes over a file dataset through one DataLoader.

    :param num_workers: loader worker processes (default :func:`loader_workers`).
    :param device: where batches go; a CUDA device gets pinned memory and non-blocking copies.
    :param persistent: keep the loader workers from one pass to the next (a training phase's
        epochs) instead of starting them again each pass; :meth:`close` ends them.
    """

    def __init__(self, ds: Dataset, batch_size: int, num_workers: int | None = None,
                 device: torch.device | str | None = None, persistent: bool = False) -> None:
        self.device = torch.device(device) if device is not None else None
        self.batch_size = batch_size
        self.num_workers = loader_workers() if num_workers is None else num_workers
        self.pin = self.device is not None and self.device.type == "cuda"
        self.size = len(ds)  # type: ignore[arg-type]
        self.sampler = PassSampler()
        # a private generator: the loader's own base-seed draw must not consume the global RNG
        self.loader: DataLoader | None = DataLoader(
            SeededSamples(ds), batch_size=batch_size, sampler=self.sampler, num_workers=self.num_workers,
            pin_memory=self.pin, persistent_workers=persistent and self.num_workers > 0,
            generator=torch.Generator().manual_seed(0),
            multiprocessing_context=loader_context() if self.num_workers > 0 else None)

    def one_pass(self, shuffle: bool, generator: torch.Generator | None = None, max_batches: int | None = None
                 ) -> Iterator[tuple[Tensor, Tensor]]:
        """The batches of one pass: a shuffled order and the pass's augmentation seed both come
        from ``generator`` (the seed first), an unshuffled pass is in file order under seed 0.
        ``max_batches`` loads only that many (nothing is decoded ahead for batches never used)."""
        assert self.loader is not None, "this FileBatches is closed"
        pass_seed = int(torch.randint(0, 2**63 - 1, (), generator=generator)) if generator is not None else 0
        order = torch.randperm(self.size, generator=generator) if shuffle else torch.arange(self.size)
        if max_batches is not None:
            order = order[:max_batches * self.batch_size]
        self.sampler.keys = [(pass_seed, i) for i in order.tolist()]
        dev, pin = self.device, self.pin
        for xb, yb in self.loader:
            yield (xb.to(dev, non_blocking=pin), yb.to(dev, non_blocking=pin)) if dev is not None else (xb, yb)

    def close(self) -> None:
        """End persistent loader workers now rather than whenever the loader is collected."""
        loader, self.loader = self.loader, None
        it = getattr(loader, "_iterator", None)
        if it is not None and hasattr(it, "_shutdown_workers"):
            it._shutdown_workers()


def first_samples(ds: Dataset, n: int) -> tuple[Tensor, Tensor]:
    """The first ``n`` samples of a file dataset, collated, loaded in this process: what the first
    batch of an unshuffled pass holds, without starting loader workers for one batch (MAC counting,
    the audit batch, a deploy probe)."""
    from torch.utils.data import default_collate

    samples = SeededSamples(ds)
    return default_collate([samples[(0, i)] for i in range(min(n, len(samples)))])
