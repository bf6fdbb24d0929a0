"""The house: layers import downwards only, modules stay small, plugins use the declared API."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "qbench"

#: Each top-level part of the host and its layer: a module may import its own layer and below.
#: contract (what plugins implement) < plugin machinery < training core < reports < runner < entry points.
#: The one source of the numbers: docs/architecture.md's table and the package docstrings are
#: checked against it below.
LAYERS = {
    "errors": 0, "atomic": 0, "compat": 0, "lazy": 0, "__init__": 0,
    "contract": 1, "data": 1, "models": 1,
    "plugin": 2,
    "train": 3,
    "report": 4,
    "run": 5, "deploy": 5,
    "api": 6, "apidoc": 6, "testing": 6, "default_plugins": 6,
    "cli": 7,
}
MAX_LINES = 300
ALLOWED_FOR_PLUGINS = {"qbench", "qbench.api", "qbench.testing"}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join(parts)


def _runtime_imports(path: Path) -> list[tuple[int, str]]:
    """qbench modules a file imports when it runs (``if TYPE_CHECKING:`` blocks excluded)."""
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for b in node.body for n in ast.walk(b))
    found = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, a.name) for a in node.names)
    return [(n, m) for n, m in found if m == "qbench" or m.startswith("qbench.")]


def _files() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py") if "templates" not in p.parts)


def test_every_part_of_the_host_has_a_layer() -> None:
    parts = {_part(_module_name(p)) for p in _files()}
    assert parts <= set(LAYERS), f"add {sorted(parts - set(LAYERS))} to LAYERS with the layer they belong to"


def test_imports_point_down_the_layers() -> None:
    bad = []
    for path in _files():
        me = _module_name(path)
        for line, target in _runtime_imports(path):
            if LAYERS[_part(target)] > LAYERS[_part(me)]:
                bad.append(f"{path.relative_to(ROOT)}:{line} ({_part(me)}) imports {target} ({_part(target)})")
    assert not bad, "imports against the layers:\n" + "\n".join(bad)


def test_type_only_imports_point_down_too() -> None:
    """An ``if TYPE_CHECKING:`` import names a type a module works with: one from a layer above
    means the type lives too high (as the training recipe did, above the loop that reads it)."""
    bad = []
    for path in _files():
        me = _module_name(path)
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                for imp in (n for b in node.body for n in ast.walk(b) if isinstance(n, ast.ImportFrom)):
                    if imp.module and imp.module.startswith("qbench.") and \
                            LAYERS[_part(imp.module)] > LAYERS[_part(me)]:
                        bad.append(f"{path.relative_to(ROOT)}:{imp.lineno} ({_part(me)}) imports {imp.module}")
    assert not bad, "type-only imports against the layers:\n" + "\n".join(bad)


def test_the_training_recipe_lives_with_the_loop_and_the_old_path_still_works() -> None:
    from qbench.run.suite import TrainRecipe as from_suite
    from qbench.train.recipe import TrainRecipe

    assert from_suite is TrainRecipe


def test_no_import_cycles_between_modules() -> None:
    graph: dict[str, set[str]] = {}
    for path in _files():
        graph[_module_name(path)] = {m for _, m in _runtime_imports(path)}
    nodes = set(graph)

    def resolve(m: str) -> str | None:  # `from qbench.x import name` names module qbench.x
        return m if m in nodes else None

    edges = {n: {t for t in map(resolve, deps) if t and t != n} for n, deps in graph.items()}
    # a package's __init__ re-exporting its own modules is not a cycle worth flagging
    edges = {n: {t for t in deps if not n.startswith(t + ".")} for n, deps in edges.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> None:
        state[n] = 1
        stack.append(n)
        for t in sorted(edges.get(n, ())):
            if state.get(t) == 1:
                cycle = stack[stack.index(t):] + [t]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if t not in state:
                visit(t)
        stack.pop()
        state[n] = 2

    for n in sorted(edges):
        if n not in state:
            visit(n)


def test_modules_stay_small() -> None:
    big = {str(p.relative_to(ROOT)): n for p in _files() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not big, f"modules over {MAX_LINES} lines (split them by what they do): {big}"


def test_plugins_import_only_the_declared_api() -> None:
    bad = []
    for path in sorted((ROOT / "plugins").rglob("*.py")):
        for line, target in _runtime_imports(path) + _type_only_imports(path):
            if target not in ALLOWED_FOR_PLUGINS:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert not bad, "plugins may import qbench, qbench.api and qbench.testing only:\n" + "\n".join(bad)


def _type_only_imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    return [(n.lineno, n.module) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
            and n.level == 0 and (n.module == "qbench" or n.module.startswith("qbench."))]


def test_the_api_exports_what_it_lists() -> None:
    import qbench.api as api
    import qbench.testing as testing

    for mod in (api, testing):
        missing = [n for n in mod.__all__ if not hasattr(mod, n)]
        assert not missing, f"{mod.__name__}.__all__ names what it does not define: {missing}"


def test_old_module_paths_still_import_with_a_deprecation_warning() -> None:
    import importlib
    import sys

    import qbench.contract.method as new

    sys.modules.pop("qbench.method", None)
    with pytest.warns(DeprecationWarning, match="qbench.method moved to qbench.contract.method"):
        old = importlib.import_module("qbench.method")
    assert old is new
    from qbench.contract.quant import ste

    sys.modules.pop("qbench.quant.ste", None)
    with pytest.warns(DeprecationWarning):
        assert importlib.import_module("qbench.quant.ste").round_ste is ste.round_ste


# -- docs/architecture.md's layer table and the package docstrings agree with LAYERS and the files --

ARCHITECTURE = ROOT / "docs" / "architecture.md"
_TABLE_ROW = re.compile(r"^\| (\d+) \| ([^|]+) \| (.+) \|$", re.M)
_NAMED = re.compile(r"`([\w./-]+)`")


def _layer_rows() -> list[tuple[int, list[str], str]]:
    """The table's rows: (layer, the parts it names, e.g. ``contract`` for `contract/`, what it holds)."""
    rows = []
    for layer, parts, holds in _TABLE_ROW.findall(ARCHITECTURE.read_text()):
        rows.append((int(layer), [re.sub(r"(\.py|/)$", "", n) for n in _NAMED.findall(parts)], holds))
    return rows


def _entries(package: str) -> set[str]:
    """A package's modules (``x.py``) and subpackages (``sub/``), as the table names them."""
    root = PKG / package
    return ({p.name for p in root.glob("*.py") if p.name != "__init__.py"}
            | {f"{d.name}/" for d in root.iterdir() if (d / "__init__.py").is_file()})


def test_the_architecture_table_gives_every_part_its_layer() -> None:
    table: dict[str, int] = {}
    for layer, parts, _ in _layer_rows():
        for part in parts:
            assert part not in table, f"docs/architecture.md names {part} in two rows"
            table[part] = layer
    wrong = {p: (table.get(p), LAYERS.get(p)) for p in set(table) | set(LAYERS) if table.get(p) != LAYERS.get(p)}
    assert not wrong, f"docs/architecture.md's layer table disagrees with LAYERS (part: (doc, LAYERS)): {wrong}"


def test_the_architecture_table_names_every_module_and_no_other() -> None:
    """A row that names modules names each existing one, and all of its packages' modules."""
    checked = 0
    for _, parts, holds in _layer_rows():
        packages = [p for p in parts if (PKG / p).is_dir()]
        named = [n for n in _NAMED.findall(holds) if n.endswith((".py", "/"))]
        if not packages or not named:
            continue
        checked += 1
        gone = [n for n in named if not (PKG / n).exists() and not any((PKG / p / n).exists() for p in packages)]
        assert not gone, f"docs/architecture.md's {parts} row names what does not exist: {gone}"
        unnamed = set().union(*(_entries(p) for p in packages)) - set(named)
        assert not unnamed, f"docs/architecture.md's {parts} row does not name {sorted(unnamed)}"
    assert checked >= 7  # contract, plugin, train, report, run, deploy, cli


def test_the_architecture_table_names_every_cli_command() -> None:
    from qbench.cli import cli

    holds = next(h for _, parts, h in _layer_rows() if parts == ["cli"])
    commands = {n for n in _NAMED.findall(holds) if re.fullmatch(r"[a-z][a-z-]*", n)}
    assert commands == set(cli.commands), (
        f"docs/architecture.md's cli row: {sorted(commands)}; the CLI: {sorted(cli.commands)}")


def test_docstrings_state_no_layer_number_but_LAYERS() -> None:
    """A part's docstring may say which layer it is; if it gives a number, it is LAYERS'."""
    top = max(LAYERS.values())
    bad = []
    for part, layer in LAYERS.items():
        path = PKG / "__init__.py" if part == "__init__" else PKG / part / "__init__.py"
        path = path if path.exists() else PKG / f"{part}.py"
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        for m in re.finditer(r"\blayer (\d+)(?: of (\d+))?", doc, re.I):
            if int(m.group(1)) != layer or (m.group(2) and int(m.group(2)) != top):
                bad.append(f"{path.relative_to(ROOT)}: '{m.group(0)}', LAYERS says {layer} (top {top})")
    assert not bad, "\n".join(bad)
