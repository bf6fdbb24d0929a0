"""The pluggy plugin manager: default plugins plus the ``qbench`` entry point group.

Environment controls (as datasette and pytest offer):

* ``QBENCH_LOAD_PLUGINS=a,b`` loads only these entry-point plugins (by entry point name or
  distribution name); set it to the empty string to load none. Default plugins always load.
* ``QBENCH_DISABLED_PLUGINS=a,b`` blocks plugins by name (default ones included).
* ``QBENCH_TRACE_PLUGINS=1`` prints every hook call to stderr.

A plugin that fails to import is reported and skipped: one broken package must not take the
suite down.
"""
from __future__ import annotations

import importlib
import importlib.metadata as md
import os
import sys
import warnings
from dataclasses import dataclass, field

import pluggy

from qbench.plugin import hookspecs

ENTRY_POINT_GROUP = "qbench"

#: Plugins shipped inside the host, registered like any other plugin.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "qbench.default_plugins.fp32",
    "qbench.default_plugins.allocators",
    "qbench.default_plugins.wrappers",
    "qbench.default_plugins.datasets",
    "qbench.default_plugins.models",
    "qbench.default_plugins.executors",
    "qbench.default_plugins.suites",
)


@dataclass
class LoadReport:
    """What happened while loading plugins: distributions found, failures, and what was disabled."""

    dists: dict[str, str] = field(default_factory=dict)  # plugin name -> "dist==version"
    errors: dict[str, str] = field(default_factory=dict)  # plugin name -> error message
    disabled: dict[str, str] = field(default_factory=dict)  # plugin name -> distribution, or "default"


class QbenchPluginManager(pluggy.PluginManager):
    """pluggy's manager plus what qbench needs to know about how it was loaded.

    :param load_entrypoints: whether the ``qbench`` entry point group was loaded; a worker
        process rebuilds the same plugin set from it.
    """

    def __init__(self, load_entrypoints: bool = True) -> None:
        super().__init__("qbench")
        self.load_report = LoadReport()
        self.load_entrypoints = load_entrypoints

    def disabled_hint(self) -> str:
        """A sentence for "unknown name" errors: a disabled plugin may be what provides it."""
        if not self.load_report.disabled:
            return ""
        names = ", ".join(f"{n} ({d})" for n, d in sorted(self.load_report.disabled.items()))
        return (f"These plugins are disabled by QBENCH_DISABLED_PLUGINS and may provide it: {names}; "
                "unset or edit that variable to enable them.")


def _env_list(name: str) -> list[str] | None:
    value = os.environ.get(name)
    if value is None:
        return None
    return [p.strip() for p in value.split(",") if p.strip()]


def _short_name(module: str) -> str:
    return module.rsplit(".", 1)[-1]


def get_plugin_manager(load_entrypoints: bool = True) -> QbenchPluginManager:
    """A manager with the hook specs, the default plugins and (optionally) installed plugins.

    :param load_entrypoints: load the ``qbench`` entry point group (tests of the host pass False
        to keep installed third-party plugins out).
    """
    pm = QbenchPluginManager(load_entrypoints)
    pm.add_hookspecs(hookspecs)
    report = pm.load_report
    disabled = set(_env_list("QBENCH_DISABLED_PLUGINS") or [])
    for name in disabled:
        pm.set_blocked(name)
    for modname in DEFAULT_PLUGINS:
        short = _short_name(modname)
        if short in disabled:
            report.disabled[short] = "qbench (default)"
            continue
        pm.register(importlib.import_module(modname), name=short)
        report.dists[short] = "qbench (default)"
    if load_entrypoints:
        _load_entrypoints(pm, report, disabled)
    pm.check_pending()
    if os.environ.get("QBENCH_TRACE_PLUGINS"):
        pm.trace.root.setwriter(lambda msg: print(msg, end="", file=sys.stderr))
        pm.enable_tracing()
    return pm


def _load_entrypoints(pm: QbenchPluginManager, report: LoadReport, disabled: set[str]) -> None:
    only = _env_list("QBENCH_LOAD_PLUGINS")
    seen: set[str] = set()
    for dist in md.distributions():
        dist_name = dist.metadata["Name"]
        for ep in dist.entry_points:
            if ep.group != ENTRY_POINT_GROUP or ep.name in seen:
                continue
            if only is not None and ep.name not in only and dist_name not in only:
                continue
            if ep.name in disabled or dist_name in disabled or pm.is_blocked(ep.name):
                report.disabled[ep.name] = dist_name
                continue
            seen.add(ep.name)
            try:
                plugin = ep.load()
                pm.register(plugin, name=ep.name)
            except Exception as exc:  # a broken plugin is reported, not fatal
                msg = f"{type(exc).__name__}: {exc}"
                report.errors[ep.name] = msg
                warnings.warn(f"qbench plugin {ep.name!r} ({dist_name}) failed to load and was skipped: "
                              f"{msg}. Fix or uninstall it, or set QBENCH_DISABLED_PLUGINS={ep.name}.",
                              stacklevel=2)
                continue
            report.dists[ep.name] = f"{dist_name}=={dist.version}"
