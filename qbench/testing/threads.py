"""One torch thread per test, for plugin test suites that opt in.

Tiny tensors gain nothing from more threads, and on a shared 2-core machine oversubscription makes
small training loops many times slower. Opt in from a plugin's ``tests/conftest.py``::

    from qbench.testing.threads import one_torch_thread  # noqa: F401
"""
from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
