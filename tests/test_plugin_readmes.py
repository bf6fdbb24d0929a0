"""Each plugin README names only files, folders and tests that exist.

A README is how a reader finds their way into a plugin: a file it names that was removed or
renamed (a test file the host's tests replaced, a suite that lives in another plugin) sends them
nowhere. Names resolve as a reader would look for them: from the plugin folder, its tests, its
package, or the repository root.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
READMES = sorted(ROOT.glob("plugins/*/README.md"))

#: A file name with an extension a README points at (``tests/test_kernel.py``, ``_kernel.c``,
#: ``suites/x.toml``), not inside a longer word or path.
FILE = re.compile(r"(?<![\w/.-])([\w/-]*\w\.(?:py|c|toml|json|sh))\b")
#: A repository path (``plugins/qbench-dgms/bench_lr.py``, ``leaderboards/quick/v4``).
REPO_PATH = re.compile(r"(?<![\w/.-])((?:plugins|qbench|tests|benchmarks|leaderboards|docs)/[\w./-]*\w)")
#: A test named in backticks.
TEST_NAME = re.compile(r"`(test_\w+)`")


def _bases(plugin: Path) -> list[Path]:
    packages = [d for d in plugin.iterdir() if d.is_dir() and d.name.startswith("qbench_")]
    return [plugin, plugin / "tests", *packages, ROOT]


def test_there_are_plugin_readmes() -> None:
    assert len(READMES) >= 10


@pytest.mark.parametrize("readme", READMES, ids=lambda p: p.parent.name)
def test_every_file_a_plugin_readme_names_exists(readme: Path) -> None:
    text = readme.read_text()
    names = set(FILE.findall(text)) | set(REPO_PATH.findall(text))
    missing = sorted(n for n in names if not any((base / n).exists() for base in _bases(readme.parent)))
    assert not missing, f"{readme.relative_to(ROOT)} names files that do not exist: {missing}"


@pytest.mark.parametrize("readme", READMES, ids=lambda p: p.parent.name)
def test_every_test_a_plugin_readme_names_exists(readme: Path) -> None:
    defined = {name for f in readme.parent.rglob("test_*.py")
               for name in re.findall(r"^\s*def (test_\w+)", f.read_text(), re.M)}
    missing = sorted(set(TEST_NAME.findall(readme.read_text())) - defined)
    assert not missing, f"{readme.relative_to(ROOT)} names tests that do not exist: {missing}"


def test_the_patterns_find_what_a_reader_would_follow() -> None:
    text = ("`tests/test_kernel.py`, (suites/bwrf-combos.toml), `python plugins/qbench-dgms/bench_lr.py WS` "
            "and `leaderboards/quick/v4`; not qbench.api.load_kernel or 2.5x")
    assert set(FILE.findall(text)) == {"tests/test_kernel.py", "suites/bwrf-combos.toml",
                                       "plugins/qbench-dgms/bench_lr.py"}
    assert set(REPO_PATH.findall(text)) == {"tests/test_kernel.py", "plugins/qbench-dgms/bench_lr.py",
                                            "leaderboards/quick/v4"}
