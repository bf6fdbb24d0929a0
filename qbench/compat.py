"""Old import paths (qbench 0.1) keep working for third-party plugins, with a DeprecationWarning.

qbench 0.2 moved its flat modules into layer packages (docs/changelog.md). A plugin written
against 0.1's docs imported ``qbench.method``, ``qbench.quant``, ``qbench.bits`` and friends; this
finder maps each old name to the module that now holds it, so such a plugin still installs and
passes conformance while its author moves to :mod:`qbench.api`.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType

#: old module -> new module. ``qbench.train`` is not here: it is now a package, whose
#: ``__getattr__`` forwards the old names (see qbench/train/__init__.py).
MOVED: dict[str, str] = {
    "qbench.hookspecs": "qbench.plugin.hookspecs",
    "qbench.plugins": "qbench.plugin.manager",
    "qbench.registry": "qbench.plugin.registry",
    "qbench.catalog": "qbench.plugin.catalog",
    "qbench.scaffold": "qbench.plugin.scaffold",
    "qbench.bits": "qbench.contract.bits",
    "qbench.method": "qbench.contract.method",
    "qbench.allocation": "qbench.contract.allocation",
    "qbench.wrappers": "qbench.contract.wrappers",
    "qbench.quant": "qbench.contract.quant",
    "qbench.quant.base": "qbench.contract.quant.base",
    "qbench.quant.layers": "qbench.contract.quant.layers",
    "qbench.quant.ste": "qbench.contract.quant.ste",
    "qbench.quant.calibration": "qbench.contract.quant.calibration",
    "qbench.quant.levels": "qbench.contract.quant.levels",
    "qbench.surgery": "qbench.train.surgery",
    "qbench.qat": "qbench.train.qat",
    "qbench.audit": "qbench.train.audit",
    "qbench.suite": "qbench.run.suite",
    "qbench.jobs": "qbench.run.jobs",
    "qbench.harness": "qbench.run.harness",
    "qbench.workspace": "qbench.run.workspace",
    "qbench.executors": "qbench.run.executors",
    "qbench.worker": "qbench.run.worker",
    "qbench.progress": "qbench.run.progress",
    "qbench.provenance": "qbench.run.provenance",
    "qbench.stats": "qbench.report.stats",
    "qbench.leaderboard": "qbench.report.leaderboard",
    "qbench.compare": "qbench.report.compare",
    "qbench.plot": "qbench.report.plot",
}


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(self.target)

    def exec_module(self, module: ModuleType) -> None:
        """The target module is already executed; the alias only names it."""


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Resolves an old qbench module name to its new module (the same object)."""

    def find_spec(self, fullname: str, path: object = None, target: object = None
                  ) -> importlib.machinery.ModuleSpec | None:
        new = MOVED.get(fullname)
        if new is None:
            return None
        warnings.warn(f"{fullname} moved to {new} in qbench 0.2; plugins should import from qbench.api "
                      "(see docs/changelog.md).", DeprecationWarning, stacklevel=3)
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(new))


def install() -> None:
    """Put the finder first on ``sys.meta_path``, once. First, because the path finder would
    otherwise load ``qbench.quant.ste`` a second time from the aliased package's directory,
    giving two copies of every class."""
    if not any(isinstance(f, MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, MovedModuleFinder())
