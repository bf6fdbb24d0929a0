"""The catalog: every registry, filled through pluggy's own hook calls.

Each registration hook is called once through ``pm.hook`` (so ``QBENCH_TRACE_PLUGINS`` shows it
and a plugin's hookwrapper wraps it). The ``register`` callback finds which plugin called it by
the hook implementation on the call stack, so every entry knows its plugin. When one plugin's
implementation raises, its plugin is reported and the hook is called again without it: a
failing plugin never takes the others' registrations down with it.

Each registry is filled when first used: ``qbench list methods`` calls ``qbench_register_methods``
and no other hook, so a plugin that imports torch inside its quantizer hook only (and not in its
entry module) is listed without torch. :meth:`Catalog.complete` calls every hook.
"""
from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import CodeType, TracebackType
from typing import Any

from qbench.contract.method import Method
from qbench.contract.params import bind_params
from qbench.errors import PluginError, QbenchError
from qbench.plugin.manager import QbenchPluginManager
from qbench.plugin.registry import Registry

INSTALL_HINT = "Install a plugin that provides it (pip install plugins/qbench-<name>) or check the spelling."


@dataclass(frozen=True)
class Component:
    """A registered factory with a description (allocators, wrappers, datasets, executors)."""

    name: str
    factory: Callable[..., Any]
    description: str = ""
    kind: str = ""


class Catalog:
    """All registries of one plugin manager, each filled through its hook on first use."""

    def __init__(self, pm: QbenchPluginManager) -> None:
        self.pm = pm
        hint = INSTALL_HINT + (" " + pm.disabled_hint() if pm.disabled_hint() else "")
        self._registries: dict[str, Registry[Any]] = {
            "quantizers": Registry("quantizer", hint), "allocators": Registry("bit-allocator", hint),
            "wrappers": Registry("training wrapper", hint),
            "methods": Registry("method", hint + " `qbench list methods` shows what is installed."),
            "datasets": Registry("dataset", hint), "models": Registry("model"),
            "executors": Registry("executor", hint),
            "suites": Registry("suite", "Or pass the path of a suite TOML file.")}
        self._filled: set[str] = set()
        self._errors: dict[str, str] = dict(pm.load_report.errors)

    # -- the registries, each filled by its hook on first use ------------------------------------
    @property
    def quantizers(self) -> Registry[Component]:
        return self._registry("quantizers")

    @property
    def allocators(self) -> Registry[Component]:
        return self._registry("allocators")

    @property
    def wrappers(self) -> Registry[Component]:
        return self._registry("wrappers")

    @property
    def methods(self) -> Registry[Method]:
        return self._registry("methods")

    @property
    def datasets(self) -> Registry[Component]:
        return self._registry("datasets")

    @property
    def models(self) -> Registry[Component]:
        return self._registry("models")

    @property
    def executors(self) -> Registry[Component]:
        return self._registry("executors")

    @property
    def suites(self) -> Registry[Path]:
        return self._registry("suites")

    @property
    def errors(self) -> dict[str, str]:
        """Plugin name -> why it failed to load or to register: every hook is called first."""
        self.complete()
        return self._errors

    def complete(self) -> None:
        """Fill every registry (calls every registration hook, importing what the plugins import there)."""
        for kind in self._registries:
            self._registry(kind)

    # -- filling -----------------------------------------------------------------------------
    def _registry(self, kind: str) -> Registry[Any]:
        if kind not in self._filled:
            hook, add = self._hooks()[kind]
            try:
                self._call(hook, add)
            except BaseException:  # a registry half filled must not be used: the next access retries
                old = self._registries[kind]
                self._registries[kind] = Registry(old.kind, old.hint)
                raise
            self._filled.add(kind)
        return self._registries[kind]

    def _hooks(self) -> dict[str, tuple[str, Callable[..., None]]]:
        """kind -> (its registration hook, what adds one registration)."""
        r = self._registries
        return {"quantizers": ("qbench_register_quantizers", self._add_quantizer),
                "allocators": ("qbench_register_bit_allocators", self._adder(r["allocators"], "allocator")),
                "wrappers": ("qbench_register_training_wrappers", self._adder(r["wrappers"], "wrapper")),
                "methods": ("qbench_register_methods", self._add_method),
                "datasets": ("qbench_register_datasets", self._adder(r["datasets"], "dataset")),
                "models": ("qbench_register_models", self._add_model),
                "executors": ("qbench_register_executors", self._adder(r["executors"], "executor")),
                "suites": ("qbench_register_suites", self._add_suite)}

    def _call(self, hook_name: str, add: Callable[..., None]) -> None:
        """Call the hook through pluggy, staging registrations until every implementation ran."""
        owners = _impl_owners(self.pm, hook_name)
        excluded: list[str] = []
        while True:
            staged: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

            def register(*args: Any, **kwargs: Any) -> None:
                staged.append((_caller_plugin(owners), args, kwargs))

            caller = getattr(self.pm.hook, hook_name) if not excluded else self.pm.subset_hook_caller(
                hook_name, remove_plugins=[self.pm.get_plugin(n) for n in excluded])
            try:
                caller(register=register)
            except QbenchError:
                raise
            except Exception as exc:
                plugin = _blame(exc.__traceback__, owners)
                if plugin is None or plugin in excluded:
                    raise
                excluded.append(plugin)
                msg = f"{hook_name} failed: {type(exc).__name__}: {exc}"
                self._errors[plugin] = msg
                warnings.warn(f"qbench plugin {plugin!r}: {msg}. Its registrations were skipped.", stacklevel=4)
                continue
            break
        # pluggy calls the newest plugin first; register in load order (defaults first), so a
        # duplicate name is blamed on the plugin that came second
        order = {name: i for i, (name, _) in enumerate(self.pm.list_name_plugin())}
        for plugin, args, kwargs in sorted(staged, key=lambda s: order.get(s[0], len(order))):
            add(plugin, *args, **kwargs)

    def _add_quantizer(self, plugin: str, name: str, factory: Callable[..., Any], kind: str | None = None,
                       description: str = "") -> None:
        kind = kind or getattr(factory, "kind", "")
        if kind not in ("weight", "activation"):
            raise PluginError(f"Plugin {plugin!r} registered quantizer {name!r} without a valid kind "
                              f"(got {kind!r}); pass kind='weight' or kind='activation'.")
        self._registries["quantizers"].add(name, Component(name, factory, description or _doc(factory), kind), plugin)

    def _adder(self, registry: Registry[Component], what: str) -> Callable[..., None]:
        def add(plugin: str, name: str, factory: Callable[..., Any], description: str = "") -> None:
            if not callable(factory):
                raise PluginError(f"Plugin {plugin!r} registered {what} {name!r} with a non-callable factory.")
            registry.add(name, Component(name, factory, description or _doc(factory)), plugin)
        return add

    def _add_method(self, plugin: str, method: Method) -> None:
        if not isinstance(method, Method):
            raise PluginError(f"Plugin {plugin!r}: qbench_register_methods must register qbench.contract.method.Method "
                              f"objects, got {type(method).__name__}.")
        self._registries["methods"].add(method.name, method, plugin)

    def _add_model(self, plugin: str, name: str, description: str = "") -> None:
        self._registries["models"].add(name, Component(name, lambda: None, description), plugin)

    def _add_suite(self, plugin: str, name: str, path: str | Path) -> None:
        self._registries["suites"].add(name, Path(path), plugin)

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

    def bind_params(self, method: Method) -> dict[str, dict[str, Any]]:
        """Every part's parameters bound against its factory's signature, defaults included.

        Called when jobs are planned: an unknown key fails here, before any training, and the
        result goes into the job key, so a changed default is a new job.
        """
        if method.reference:
            return {}
        parts = {"weight": (self.quantizers, method.weight_quantizer),
                 "activation": (self.quantizers, method.activation_quantizer),
                 "allocator": (self.allocators, method.allocator), "wrapper": (self.wrappers, method.wrapper)}
        bound: dict[str, dict[str, Any]] = {}
        for part, (registry, name) in parts.items():
            if name is None:
                if method.params.get(part):
                    raise QbenchError(f"Method {method.name!r} sets {part} parameters but has no {part} part; "
                                      f"remove params[{part!r}].")
                continue
            bound[part] = bind_params(registry.get(name).factory, method.part_params(part), method=method.name,
                                      part=part, component=name)
        return bound

    def plugin_of(self, registry: Registry[Any], name: str) -> str:
        return registry.entry(name).plugin


def _code(fn: Any) -> CodeType | None:
    fn = getattr(fn, "__func__", fn)
    return getattr(fn, "__code__", None)


def _impl_owners(pm: QbenchPluginManager, hook_name: str) -> dict[CodeType, str]:
    """The code object of every implementation of a hook -> its plugin's name."""
    owners = {}
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        code = _code(impl.function)
        if code is not None:
            owners[code] = impl.plugin_name
    return owners


def _caller_plugin(owners: dict[CodeType, str]) -> str:
    """The plugin whose hook implementation is on the stack above ``register``."""
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code in owners:
            return owners[frame.f_code]
        frame = frame.f_back  # type: ignore[assignment]
    return "?"


def _blame(tb: TracebackType | None, owners: dict[CodeType, str]) -> str | None:
    """The plugin whose implementation raised: the innermost implementation frame in ``tb``."""
    found = None
    while tb is not None:
        if tb.tb_frame.f_code in owners:
            found = owners[tb.tb_frame.f_code]
        tb = tb.tb_next
    return found


def _doc(obj: Any) -> str:
    doc = (getattr(obj, "__doc__", None) or "").strip()
    return doc.splitlines()[0] if doc else ""


_CACHE: dict[bool, Catalog] = {}


def get_catalog(load_entrypoints: bool = True) -> Catalog:
    """The process-wide catalog (built on first use)."""
    if load_entrypoints not in _CACHE:
        from qbench.plugin.manager import get_plugin_manager
        _CACHE[load_entrypoints] = Catalog(get_plugin_manager(load_entrypoints))
    return _CACHE[load_entrypoints]


def registered_quantizer(name: str, kind: str | None = None) -> Callable[..., Any]:
    """The factory registered as quantizer ``name`` in this process's catalog, called as
    ``factory(bits=..., layer=..., **params)``: how one plugin's quantizer builds another plugin's
    by name (a plugin imports no other plugin; declare that plugin as a dependency), as a method
    names it. ``kind`` ("weight" / "activation") is checked when given. An unknown name raises
    :class:`~qbench.errors.UnknownNameError` naming the install fix."""
    entry = get_catalog().quantizers.get(name)
    if kind is not None and entry.kind != kind:
        raise QbenchError(f"Quantizer {name!r} is an {entry.kind} quantizer, not a {kind} quantizer; "
                          f"pick a registered {kind} quantizer (`qbench list quantizers`).")
    return entry.factory


def reset_catalog() -> None:
    """Forget the cached catalog (tests, or after installing a plugin in-process)."""
    _CACHE.clear()
