"""``qbench new-plugin``: the generated tree, its key contents, a working registration, and errors."""
from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import cli_run
import pytest
import tomllib

import qbench
from qbench.errors import QbenchError
from qbench.plugin.catalog import Catalog
from qbench.plugin.manager import get_plugin_manager
from qbench.plugin.scaffold import CONFORMANCE_TEST, create_plugin, host_runs_conformance, render_plugin, validate_name

ROOT = Path(__file__).resolve().parent.parent

#: Outside a qbench checkout (tmp_path): the plugin's own conformance test included.
EXPECTED_TREE = {
    "pyproject.toml",
    "README.md",
    "qbench_my_method/__init__.py",
    "qbench_my_method/plugin.py",
    "tests/test_my_method.py",
    "tests/test_conformance.py",
}


def tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The command's status and its output with whitespace collapsed (rich wraps long lines)."""
    code, out, err = cli_run.run_cli(capsys, *args)
    return code, " ".join(out.split()), " ".join(err.split())


def test_generated_tree_and_key_contents(tmp_path: Path) -> None:
    root = create_plugin("my_method", tmp_path)
    assert root == tmp_path / "qbench-my_method"
    assert tree(root) == EXPECTED_TREE

    meta = tomllib.loads((root / "pyproject.toml").read_text())
    assert meta["project"]["name"] == "qbench-my_method"
    # the host under its own distribution name and a compatible range: never PyPI's unrelated "qbench"
    assert meta["project"]["dependencies"] == [qbench.HOST_REQUIREMENT]
    assert meta["project"]["dependencies"][0].startswith("qbench-qat>=")
    assert meta["project"]["entry-points"]["qbench"] == {"my_method": "qbench_my_method.plugin"}
    assert 'my_method = "qbench_my_method.plugin"' in (root / "pyproject.toml").read_text().splitlines()
    assert meta["tool"]["setuptools"]["packages"]["find"]["include"] == ["qbench_my_method*"]

    plugin = (root / "qbench_my_method/plugin.py").read_text()
    assert 'name="my_method", version=1, weight_quantizer="my_method-w", activation_quantizer="my_method-a"' in plugin
    assert "class MyMethodWeightQuantizer(WeightQuantizer)" in plugin
    assert "class MyMethodActivationQuantizer(ActivationQuantizer)" in plugin
    assert "from qbench.api import (" in plugin

    conformance = (root / "tests/test_conformance.py").read_text()
    assert "class TestMyMethodConformance(MethodConformance):" in conformance
    assert 'method = "my_method"' in conformance
    assert "from qbench_my_method import" in (root / "tests/test_my_method.py").read_text()
    readme = (root / "README.md").read_text()
    assert "not specified by the paper; qbench uses" in readme and "## Paper" in readme

    for rel in EXPECTED_TREE:
        text = (root / rel).read_text()
        assert "${" not in text and "NAME" not in text, f"unrendered placeholder in {rel}"
        if rel.endswith(".py"):
            ast.parse(text, rel)  # valid Python


def test_inside_a_checkout_the_host_runs_conformance_so_no_copy_is_written(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A ``plugins/`` folder beside the host's tests/test_conformance.py gets no second copy of the
    suite; its README and the CLI say which host test runs it."""
    (tmp_path / "tests").mkdir()
    (tmp_path / CONFORMANCE_TEST).write_text("")
    assert host_runs_conformance(tmp_path / "plugins") and not host_runs_conformance(tmp_path / "elsewhere")
    assert not host_runs_conformance(tmp_path / "tests")  # beside the file, but not a plugins/ folder
    code, out, _ = run_cli(capsys, "new-plugin", "abc", "--dir", str(tmp_path / "plugins"))
    root = tmp_path / "plugins" / "qbench-abc"
    assert code == 0 and tree(root) == {p.replace("my_method", "abc") for p in EXPECTED_TREE} - {CONFORMANCE_TEST}
    assert f"python -m pytest {CONFORMANCE_TEST} -q -p no:cacheprovider -k abc" in (root / "README.md").read_text()
    assert "-k abc (the host runs conformance on it)" in out
    assert set(render_plugin("abc", conformance_test=False)) == tree(root)


def test_this_repository_runs_conformance_for_its_plugins_from_the_host_tests() -> None:
    """The rule above, applied here: the shipped plugins keep no copy of the suite, and the host's
    test they rely on runs every conformance check on every installed method."""
    assert host_runs_conformance(ROOT / "plugins")
    assert not sorted(ROOT.glob(f"plugins/*/{CONFORMANCE_TEST}"))
    host = ast.parse((ROOT / CONFORMANCE_TEST).read_text())
    tests = {f.name: ast.unparse(f) for f in host.body if isinstance(f, ast.FunctionDef)}
    every = tests["test_every_installed_method_passes_conformance"]  # parametrized over the registry
    assert "_installed_methods()" in every and "CHECKS" in every and "get_catalog()" in every


def test_generated_plugin_registers_a_method_the_host_accepts(tmp_path: Path) -> None:
    """Imported from the generated folder (no install): its hooks give a complete, checkable method."""
    root = create_plugin("scaffoldprobe", tmp_path)
    sys.path.insert(0, str(root))
    try:
        module = importlib.import_module("qbench_scaffoldprobe.plugin")
        pm = get_plugin_manager(load_entrypoints=False)
        pm.register(module, name="scaffoldprobe")
        cat = Catalog(pm)
        method = cat.methods.get("scaffoldprobe")
        assert method.version == 1
        cat.check_method(method)
        assert cat.quantizers.get("scaffoldprobe-w").kind == "weight"
        assert cat.quantizers.get("scaffoldprobe-a").kind == "activation"
        assert cat.plugin_of(cat.methods, "scaffoldprobe") == "scaffoldprobe"
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m.split(".")[0] == "qbench_scaffoldprobe"]:
            del sys.modules[name]


def test_cli_writes_under_dir_and_refuses_to_overwrite_without_force(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "new-plugin", "abc", "--dir", str(tmp_path / "out"))
    root = tmp_path / "out" / "qbench-abc"
    assert code == 0 and f"Created {root.as_posix()}/" in out
    assert tree(root) == {p.replace("my_method", "abc") for p in EXPECTED_TREE}

    (root / "qbench_abc/plugin.py").write_text("# my edits\n")
    (root / "stale.txt").write_text("left over")
    code, _, err = run_cli(capsys, "new-plugin", "abc", "--dir", str(tmp_path / "out"))
    assert code == 2
    assert f"{root} already exists" in err and "--force" in err and "Traceback" not in err
    assert (root / "qbench_abc/plugin.py").read_text() == "# my edits\n"  # untouched

    code, _, _ = run_cli(capsys, "new-plugin", "abc", "--dir", str(tmp_path / "out"), "--force")
    assert code == 0
    assert tree(root) == {p.replace("my_method", "abc") for p in EXPECTED_TREE}  # stale file gone
    assert (root / "qbench_abc/plugin.py").read_text() == render_plugin("abc")["qbench_abc/plugin.py"]


@pytest.mark.parametrize("bad, suggestion", [
    ("My-Method", "my_method"),
    ("qbench-foo", "foo"),
    ("qbench_foo", "foo"),
    ("fp32", "my_fp32"),
    ("9lives", "lives"),
    ("foo.bar", "foo_bar"),
    ("", "mymethod"),
    ("a" * 40, "a" * 31),
])
def test_bad_names_are_refused_with_a_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          bad: str, suggestion: str) -> None:
    with pytest.raises(QbenchError, match=f"Invalid plugin name {bad!r}: .* Use {suggestion!r}\\."):
        validate_name(bad)
    assert validate_name(suggestion) == suggestion  # the suggested fix is itself valid
    code, _, err = run_cli(capsys, "new-plugin", bad, "--dir", str(tmp_path))
    assert code == 2 and f"Invalid plugin name {bad!r}" in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize("good", ["x", "lsq2", "my_method"])
def test_good_names_are_accepted(good: str) -> None:
    assert validate_name(good) == good


def test_templates_ship_as_package_data() -> None:
    """Every template is matched by the package-data glob, so a wheel install can generate plugins."""
    pkg = Path(qbench.__file__).parent
    pyproject = pkg.parent / "pyproject.toml"
    globs = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-data"]["qbench"]
    templates = {p for p in (pkg / "templates").rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    shipped = {p for g in globs for p in pkg.glob(g) if p.is_file()}
    assert templates and templates <= shipped
