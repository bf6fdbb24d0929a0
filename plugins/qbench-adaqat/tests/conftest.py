"""One intra-op thread per test: the tiny models here gain nothing from more, and on a shared
2-core machine oversubscribed threads made a 2-second training loop take minutes."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
