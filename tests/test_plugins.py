"""The plugin manager and the registries: default plugins, env controls, errors."""
from __future__ import annotations

import warnings

import pytest

from qbench import hookimpl
from qbench.contract.method import Method
from qbench.errors import PluginError, QbenchError, UnknownNameError
from qbench.plugin.catalog import Catalog
from qbench.plugin.manager import DEFAULT_PLUGINS, get_plugin_manager
from qbench.plugin.registry import Registry


def test_default_plugins_register_the_reference_parts() -> None:
    cat = Catalog(get_plugin_manager(load_entrypoints=False))
    assert "fp32" in cat.methods and cat.methods.get("fp32").reference
    assert {"fixed"} <= set(cat.allocators.names())
    assert {"plain", "kd"} <= set(cat.wrappers.names())
    assert {"digits", "fashion-mnist", "cifar10", "cifar100", "imagenet"} <= set(cat.datasets.names())
    assert "resnet20" in cat.models and "local" in cat.executors
    assert {"quick", "fmnist", "cifar10", "imagenet"} <= set(cat.suites.names())
    assert cat.methods.entry("fp32").plugin == "fp32"
    # the host names no method plugin
    assert cat.quantizers.names() == []


def test_disabled_plugins_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QBENCH_DISABLED_PLUGINS", "wrappers")
    cat = Catalog(get_plugin_manager(load_entrypoints=False))
    assert cat.wrappers.names() == []
    assert len(DEFAULT_PLUGINS) == 7


def test_load_plugins_env_empty_loads_no_entrypoints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QBENCH_LOAD_PLUGINS", "")
    pm = get_plugin_manager(load_entrypoints=True)
    names = {n for n, _ in pm.list_name_plugin()}
    assert names == {m.rsplit(".", 1)[1] for m in DEFAULT_PLUGINS}


def test_trace_env_prints_hook_calls(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("QBENCH_TRACE_PLUGINS", "1")
    Catalog(get_plugin_manager(load_entrypoints=False))
    # Catalog calls implementations one by one; trace the hook caller too
    pm = get_plugin_manager(load_entrypoints=False)
    pm.hook.qbench_register_suites(register=lambda *a, **k: None)
    assert "qbench_register_suites" in capsys.readouterr().err


def test_check_pending_rejects_unknown_hook() -> None:
    class Bad:
        @hookimpl
        def qbench_register_quantizer(self, register):  # typo: missing s
            pass

    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(Bad(), name="bad")
    with pytest.raises(Exception, match="unknown hook"):
        pm.check_pending()


def test_duplicate_name_blames_both_plugins() -> None:
    class Dup:
        @hookimpl
        def qbench_register_methods(self, register):
            register(Method(name="fp32", version=1, reference=True))

    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(Dup(), name="dup")
    cat = Catalog(pm)  # registries fill on first use: the duplicate is found when methods are asked for
    with pytest.raises(PluginError, match="registered twice: by plugin 'fp32' and by plugin 'dup'"):
        cat.methods
    with pytest.raises(PluginError, match="registered twice"):  # every use, not a half-filled registry after
        cat.methods


def test_failing_registration_hook_is_reported_not_fatal() -> None:
    class Broken:
        @hookimpl
        def qbench_register_methods(self, register):
            raise RuntimeError("boom")

    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(Broken(), name="broken")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        cat = Catalog(pm)
        assert "fp32" in cat.methods  # the hook runs (and warns) when methods are first asked for
    assert "broken" in cat.errors and "boom" in cat.errors["broken"]
    assert any("broken" in str(x.message) for x in w)


def test_unknown_name_suggests() -> None:
    r: Registry[int] = Registry("method")
    r.add("lsq", 1, "p")
    r.add("lsqplus", 2, "p")
    with pytest.raises(UnknownNameError) as e:
        r.get("lqs")
    assert str(e.value).startswith("Unknown method 'lqs'. Did you mean 'lsq'")
    assert "Available: lsq, lsqplus." in str(e.value)


def test_method_validation() -> None:
    with pytest.raises(QbenchError, match="version must be a positive integer"):
        Method(name="m", version=0, weight_quantizer="x")
    with pytest.raises(QbenchError, match="quantizes nothing"):
        Method(name="m", version=1)
    with pytest.raises(QbenchError, match="unknown params section"):
        Method(name="m", version=1, weight_quantizer="x", params={"wieght": {}})


def test_method_kind_mismatch_is_an_error(catalog: Catalog) -> None:
    bad = Method(name="bad", version=1, weight_quantizer="toy-a")
    with pytest.raises(QbenchError, match="is an activation quantizer"):
        catalog.check_method(bad)
