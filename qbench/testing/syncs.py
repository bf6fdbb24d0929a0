"""Count host syncs on a CPU: every read of a tensor's value into Python (``bool(t)``, ``t.item()``,
``t.tolist()``, ``float(t)``, ``int(t)``) makes the CPU wait for the GPU when the tensor is on one.
Patching those reads shows, on any machine, how many a training step makes."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

READS = ("__bool__", "item", "tolist", "__float__", "__int__")


@contextmanager
def counted_reads() -> Iterator[list[str]]:
    """Patch the Tensor methods that copy a value to the host; yield the list of calls made."""
    calls: list[str] = []
    originals = {name: getattr(torch.Tensor, name) for name in READS}

    def wrap(name: str) -> Callable:
        def reader(self: torch.Tensor, *a: object, **k: object) -> object:
            calls.append(name)
            return originals[name](self, *a, **k)
        return reader

    for name in READS:
        setattr(torch.Tensor, name, wrap(name))
    try:
        yield calls
    finally:
        for name, fn in originals.items():
            setattr(torch.Tensor, name, fn)
