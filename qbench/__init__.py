"""qbench: compare quantization-aware-training methods fairly, on one frozen recipe.

The host defines hook specifications (:mod:`qbench.plugin.hookspecs`); every method, dataset, model
and executor, including the ones shipped here, arrives through those hooks. Plugins import from
:mod:`qbench.api` (and :mod:`qbench.testing` in their tests), nothing else.
"""
from __future__ import annotations

import os
import platform

import pluggy

__version__ = "0.3.0"

#: The distribution name, which differs from the import name: "qbench" on PyPI is an unrelated
#: project, so a plugin that required "qbench" would make pip install someone else's code into a
#: fresh environment. Plugins require :data:`HOST_REQUIREMENT` instead.
DISTRIBUTION = "qbench-qat"


def _compatible_range(version: str) -> str:
    """``>=X.Y,<X.(Y+1)`` for a 0.x release (a minor release may change the plugin API),
    ``>=X.Y,<(X+1)`` from 1.0 on."""
    major, minor = (int(p) for p in version.split(".")[:2])
    upper = f"{major}.{minor + 1}" if major == 0 else f"{major + 1}"
    return f">={major}.{minor},<{upper}"


#: What a plugin puts in its ``dependencies``: this host's distribution, within the releases that
#: keep the plugin API of this one. The scaffold writes it; a test holds every plugin to it.
HOST_REQUIREMENT = f"{DISTRIBUTION}{_compatible_range(__version__)}"

#: The instruction set torch's CPU kernels may use, unless ``$QBENCH_CPU_ISA`` is ``native``: on
#: x86 the same torch build computes other float32 bits with AVX-512 than with AVX2 (oneDNN's
#: convolutions and ATen's vectorised loops both dispatch on the CPU), so a row trained on an
#: AVX-512 server differed from the same job on an AVX2 laptop. Capping both at AVX2, the level
#: every x86 CPU of the last decade has, makes a row the same on any of them. A CPU below the cap
#: keeps its own level (torch never raises it), and rows record what ran (``cpu_isa``).
CPU_ISA = "avx2"


def _cap_cpu_isa() -> None:
    """Set the caps before torch's CPU kernels first dispatch (torch reads both variables lazily);
    a value the user set wins, and ``QBENCH_CPU_ISA=native`` leaves torch alone."""
    if os.environ.get("QBENCH_CPU_ISA", CPU_ISA).lower() == "native":
        return
    if platform.machine().lower() in ("x86_64", "amd64"):
        os.environ.setdefault("ATEN_CPU_CAPABILITY", CPU_ISA)
        os.environ.setdefault("ONEDNN_MAX_CPU_ISA", CPU_ISA.upper())


_cap_cpu_isa()

#: Marker plugins use to implement qbench hooks: ``@qbench.hookimpl``.
hookimpl = pluggy.HookimplMarker("qbench")

__all__ = ["DISTRIBUTION", "HOST_REQUIREMENT", "__version__", "hookimpl"]

from qbench import compat as _compat  # noqa: E402  (old module paths of 0.1 keep working)

_compat.install()
