"""qbench: compare quantization-aware-training methods fairly, on one frozen recipe.

The host defines hook specifications (:mod:`qbench.plugin.hookspecs`); every method, dataset, model
and executor, including the ones shipped here, arrives through those hooks. Plugins import from
:mod:`qbench.api` (and :mod:`qbench.testing` in their tests), nothing else.
"""
from __future__ import annotations

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

#: Marker plugins use to implement qbench hooks: ``@qbench.hookimpl``.
hookimpl = pluggy.HookimplMarker("qbench")

__all__ = ["DISTRIBUTION", "HOST_REQUIREMENT", "__version__", "hookimpl"]

from qbench import compat as _compat  # noqa: E402  (old module paths of 0.1 keep working)

_compat.install()
