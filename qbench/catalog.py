"""The catalog: every registry, filled by calling each plugin's registration hooks.

Each hook implementation is called on its own with a ``register`` bound to its plugin's name, so
every entry knows which plugin gave it and a failing plugin is reported and skipped.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pluggy

from .errors import PluginError, QbenchError
from .method import Method
from .registry import Registry

INSTALL_HINT = "Install a plugin that provides it (pip install plugins/qbench-<name>) or check the spelling."


@dataclass(frozen=True)
class Component:
    """A registered factory with a description (allocators, wrappers, datasets, executors)."""

    name: str
    factory: Callable[..., Any]
    description: str = ""
    kind: str = ""


class Catalog:
    """All registries of one plugin manager."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        self.quantizers: Registry[Component] = Registry("quantizer", INSTALL_HINT)
        self.allocators: Registry[Component] = Registry("bit-allocator", INSTALL_HINT)
        self.wrappers: Registry[Component] = Registry("training wrapper", INSTALL_HINT)
        self.methods: Registry[Method] = Registry("method", INSTALL_HINT + " `qbench list methods` shows what is installed.")
        self.datasets: Registry[Component] = Registry("dataset", INSTALL_HINT)
        self.models: Registry[Component] = Registry("model")
        self.executors: Registry[Component] = Registry("executor")
        self.suites: Registry[Path] = Registry("suite", "Or pass the path of a suite TOML file.")
        self.errors: dict[str, str] = dict(getattr(pm, "qbench_load_report").errors) \
            if hasattr(pm, "qbench_load_report") else {}
        self._collect()

    # -- filling -----------------------------------------------------------------------------
    def _collect(self) -> None:
        self._call("qbench_register_quantizers", self._add_quantizer)
        self._call("qbench_register_bit_allocators", self._adder(self.allocators, "allocator"))
        self._call("qbench_register_training_wrappers", self._adder(self.wrappers, "wrapper"))
        self._call("qbench_register_methods", self._add_method)
        self._call("qbench_register_datasets", self._adder(self.datasets, "dataset"))
        self._call("qbench_register_models", self._add_model)
        self._call("qbench_register_executors", self._adder(self.executors, "executor"))
        self._call("qbench_register_suites", self._add_suite)

    def _call(self, hook_name: str, add: Callable[..., None]) -> None:
        hook = getattr(self.pm.hook, hook_name)
        for impl in hook.get_hookimpls():  # registration order: defaults first
            plugin = impl.plugin_name

            def register(*args: Any, _plugin: str = plugin, **kwargs: Any) -> None:
                add(_plugin, *args, **kwargs)

            try:
                impl.function(register=register)
            except QbenchError:
                raise
            except Exception as exc:
                msg = f"{hook_name} failed: {type(exc).__name__}: {exc}"
                self.errors[plugin] = msg
                warnings.warn(f"qbench plugin {plugin!r}: {msg}. Its registrations were skipped.", stacklevel=2)

    def _add_quantizer(self, plugin: str, name: str, factory: Callable[..., Any], kind: str | None = None,
                       description: str = "") -> None:
        kind = kind or getattr(factory, "kind", "")
        if kind not in ("weight", "activation"):
            raise PluginError(f"Plugin {plugin!r} registered quantizer {name!r} without a valid kind "
                              f"(got {kind!r}); pass kind='weight' or kind='activation'.")
        self.quantizers.add(name, Component(name, factory, description or _doc(factory), kind), plugin)

    def _adder(self, registry: Registry[Component], what: str) -> Callable[..., None]:
        def add(plugin: str, name: str, factory: Callable[..., Any], description: str = "") -> None:
            if not callable(factory):
                raise PluginError(f"Plugin {plugin!r} registered {what} {name!r} with a non-callable factory.")
            registry.add(name, Component(name, factory, description or _doc(factory)), plugin)
        return add

    def _add_method(self, plugin: str, method: Method) -> None:
        if not isinstance(method, Method):
            raise PluginError(f"Plugin {plugin!r}: qbench_register_methods must register qbench.method.Method "
                              f"objects, got {type(method).__name__}.")
        self.methods.add(method.name, method, plugin)

    def _add_model(self, plugin: str, name: str, description: str = "") -> None:
        self.models.add(name, Component(name, lambda: None, description), plugin)

    def _add_suite(self, plugin: str, name: str, path: str | Path) -> None:
        self.suites.add(name, Path(path), plugin)

    # -- checks ------------------------------------------------------------------------------
    def check_method(self, method: Method) -> None:
        """Every part a method names must be registered, with the right kind."""
        for attr, kind in (("weight_quantizer", "weight"), ("activation_quantizer", "activation")):
            qname = getattr(method, attr)
            if qname is None:
                continue
            entry = self.quantizers.get(qname)
            if entry.kind != kind:
                raise QbenchError(f"Method {method.name!r}: {attr} {qname!r} is an {entry.kind} quantizer, "
                                  f"not a {kind} quantizer.")
        if not method.reference:
            self.allocators.get(method.allocator)
            self.wrappers.get(method.wrapper)

    def plugin_of(self, registry: Registry[Any], name: str) -> str:
        return registry.entry(name).plugin


def _doc(obj: Any) -> str:
    doc = (getattr(obj, "__doc__", None) or "").strip()
    return doc.splitlines()[0] if doc else ""


_CACHE: dict[bool, Catalog] = {}


def get_catalog(load_entrypoints: bool = True) -> Catalog:
    """The process-wide catalog (built on first use)."""
    if load_entrypoints not in _CACHE:
        from .plugins import get_plugin_manager
        _CACHE[load_entrypoints] = Catalog(get_plugin_manager(load_entrypoints))
    return _CACHE[load_entrypoints]


def reset_catalog() -> None:
    """Forget the cached catalog (tests, or after installing a plugin in-process)."""
    _CACHE.clear()
