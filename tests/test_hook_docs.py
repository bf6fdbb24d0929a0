"""docs/plugin_hooks.md documents every hook in qbench/plugin/hookspecs.py, and only those."""
from __future__ import annotations

import inspect
import re
from pathlib import Path

from qbench.plugin import hookspecs

DOC = Path(__file__).resolve().parent.parent / "docs" / "plugin_hooks.md"


def _specs() -> dict[str, list[str]]:
    return {name: list(inspect.signature(fn).parameters)
            for name, fn in vars(hookspecs).items() if name.startswith("qbench_") and callable(fn)}


def _sections() -> dict[str, str]:
    text = DOC.read_text()
    parts = re.split(r"^### (qbench_\w+)\s*$", text, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


def test_every_hook_is_documented_and_nothing_else() -> None:
    assert set(_specs()) == set(_sections())


def test_every_hook_parameter_is_named_in_its_section() -> None:
    sections = _sections()
    for name, params in _specs().items():
        for p in params:
            assert f"`{p}`" in sections[name], f"{name}: parameter {p!r} not documented"


def test_every_hookspec_has_param_docstrings() -> None:
    for name, fn in vars(hookspecs).items():
        if name.startswith("qbench_"):
            for p in inspect.signature(fn).parameters:
                assert f":param {p}:" in (fn.__doc__ or ""), f"{name} lacks :param {p}:"
