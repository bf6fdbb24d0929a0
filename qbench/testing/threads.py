"""Thread counts for plugin tests: one torch thread per test for suites that opt in, and a block
on several threads for the tests of a compiled kernel's split.

Tiny tensors gain nothing from more threads, and on a shared 2-core machine oversubscription makes
small training loops many times slower. Opt in from a plugin's ``tests/conftest.py``::

    from qbench.testing.threads import one_torch_thread  # noqa: F401
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch on ``n`` threads inside the block, whatever OMP_NUM_THREADS says (CI sets 1), so a
    compiled kernel that splits its work by ``qbench.api.kernel_threads`` runs its split path
    (more threads than cores is fine: the split, not the speed, is under test)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
