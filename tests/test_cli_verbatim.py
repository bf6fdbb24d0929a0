"""Text a plugin supplies is printed as it is: rich would read "[l, u]" or "[bold]" as markup and
drop it ("learned [l, u]" came out as "learned ,"). On a terminal and in a pipe alike."""
from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from typing import Any

import pytest

from qbench import hookimpl
from qbench.cli import info, main, render
from qbench.contract.method import Method
from qbench.plugin import catalog as catalog_mod
from qbench.plugin.catalog import Catalog
from qbench.plugin.manager import get_plugin_manager

TEXT = "learned [l, u], [bold]not bold[/bold] and [red]not red"
PLUGIN = "brackets[1]"


def _factory(*args: Any, **kwargs: Any) -> None:
    """Never called: the listing only reads names and descriptions."""


class Brackets:
    """A plugin whose every name and description holds markup-like text."""

    @hookimpl
    def qbench_register_quantizers(self, register: Callable[..., None]) -> None:
        register("q[w]", _factory, kind="weight", description=TEXT)

    @hookimpl
    def qbench_register_bit_allocators(self, register: Callable[..., None]) -> None:
        register("alloc[b]", _factory, description=TEXT)

    @hookimpl
    def qbench_register_training_wrappers(self, register: Callable[..., None]) -> None:
        register("wrap[b]", _factory, description=TEXT)

    @hookimpl
    def qbench_register_methods(self, register: Callable[..., None]) -> None:
        register(Method(name="m[bold]", version=1, weight_quantizer="q[w]", allocator="alloc[b]", wrapper="wrap[b]"))
        register(Method(name="ref[i]", version=1, reference=True, description=TEXT))

    @hookimpl
    def qbench_register_datasets(self, register: Callable[..., None]) -> None:
        register("data[x]", _factory, description=TEXT)

    @hookimpl
    def qbench_register_models(self, register: Callable[..., None]) -> None:
        register("model[x]", description=TEXT)

    @hookimpl
    def qbench_register_executors(self, register: Callable[..., None]) -> None:
        register("exec[x]", _factory, description=TEXT)


class BrokenBrackets:
    @hookimpl
    def qbench_register_suites(self, register: Callable[..., None]) -> None:
        raise RuntimeError("bad [value] in [bold]config")


#: kind -> what its listing must show verbatim
EXPECTED = {
    "methods": ["m[bold]", "W: q[w]", "allocator: alloc[b], wrapper: wrap[b]", "ref[i]", TEXT],
    "quantizers": ["q[w]", f"weight: {TEXT}"],
    "allocators": ["alloc[b]", TEXT],
    "wrappers": ["wrap[b]", TEXT],
    "datasets": ["data[x]", TEXT],
    "models": ["model[x]", TEXT],
    "executors": ["exec[x]", TEXT],
}


@pytest.fixture
def brackets(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's catalog: the default plugins, Brackets and BrokenBrackets (no installed plugins)."""
    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(Brackets(), name=PLUGIN)
    pm.register(BrokenBrackets(), name="broken[2]")
    monkeypatch.setitem(catalog_mod._CACHE, True, Catalog(pm))


def _run(args: list[str], terminal: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> str:
    """stdout and stderr of ``qbench ARGS``: rich's own tables on a (wide) terminal, else Markdown."""
    if terminal:
        out = io.StringIO()
        console = render.PipeAwareConsole(file=out, force_terminal=True, color_system=None, width=400)
        monkeypatch.setattr(info, "console", console)
        monkeypatch.setattr(info, "err_console", console)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # BrokenBrackets' warning: what is tested is what is printed
        main(args)
    captured = capsys.readouterr()
    return (out.getvalue() if terminal else "") + captured.out + captured.err


@pytest.mark.usefixtures("brackets")
@pytest.mark.parametrize("terminal", [False, True], ids=["pipe", "terminal"])
@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_list_prints_plugin_text_verbatim(kind: str, terminal: bool, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = _run(["list", kind], terminal, monkeypatch, capsys)
    for text in [*EXPECTED[kind], PLUGIN]:
        assert text in out, f"qbench list {kind}: {text!r} not printed as it is:\n{out}"


@pytest.mark.usefixtures("brackets")
@pytest.mark.parametrize("terminal", [False, True], ids=["pipe", "terminal"])
def test_plugins_prints_names_and_failures_verbatim(terminal: bool, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = _run(["plugins"], terminal, monkeypatch, capsys)
    assert PLUGIN in out and "broken[2]" in out
    assert "bad [value]" not in out  # no hook is called without --check
    out = _run(["plugins", "--check"], terminal, monkeypatch, capsys)
    assert "failed broken[2]: qbench_register_suites failed: RuntimeError: bad [value] in [bold]config" in out
