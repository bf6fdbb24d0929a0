"""Another CPU for a test: what a plugin's compiled kernel does where it cannot run.

The kernels are built for x86-64-v3 and the machines that run the tests have it, so the path a
user on an older CPU takes (the library refused before it is opened, the torch code instead,
one warning) would go untested. :func:`fake_cpu` makes the host's CPU probe report other
features for the length of a block; nothing else is faked.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from qbench.contract import ckernel, cpu


@contextmanager
def fake_cpu(features: str | Iterable[str]) -> Iterator[frozenset[str]]:
    """Inside the block the host sees an x86-64 CPU with exactly ``features``: a level's name
    (``"x86-64-v2"``: no AVX, AVX2, FMA, BMI, as x86 CPUs were until 2013) or /proc/cpuinfo flag
    names. Yields the flags.

    Every kernel may say again that it steps aside (a fresh once-per-process record, restored
    after). A plugin caches its loaded library (its ``kernel._lib``): clear that cache before the
    block and after it, or the library loaded on the real CPU is used.
    """
    flags = cpu.level_flags(features) if isinstance(features, str) else frozenset(features)
    saved = cpu.cpu_flags, cpu.is_x86_64, set(ckernel._warned)
    cpu.cpu_flags, cpu.is_x86_64 = (lambda: flags), (lambda: True)  # type: ignore[assignment]
    ckernel._warned.clear()
    try:
        yield flags
    finally:
        cpu.cpu_flags, cpu.is_x86_64 = saved[0], saved[1]  # type: ignore[assignment]
        ckernel._warned.clear()
        ckernel._warned.update(saved[2])
