"""What pip sees: the host's distribution name and every plugin's requirements, from built metadata.

Why from built metadata and not from pyproject.toml text: pip resolves what the build backend
writes (``Requires-Dist``), so that is what must never name PyPI's unrelated ``qbench`` project.
``build.util.project_wheel_metadata`` asks setuptools for the wheel's metadata without compiling
the plugins' C kernels, so this costs about a second per plugin.
"""
from __future__ import annotations

import re
from email.message import Message
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

import qbench
from qbench.plugin.scaffold import create_plugin

REPO = Path(__file__).resolve().parents[1]
PLUGIN_DIRS = sorted(p for p in (REPO / "plugins").glob("qbench-*") if (p / "pyproject.toml").exists())
#: PyPI's "qbench" is the SDK of a laboratory information system: it also installs an import package
#: named qbench, so requiring it would replace this project's code with someone else's.
FOREIGN = "qbench"


def built_metadata(project: Path) -> Message:
    build_util = pytest.importorskip("build.util", reason="`build` is in qbench's test extra")
    return build_util.project_wheel_metadata(str(project), isolated=False)


def our_distributions() -> dict[str, Version]:
    """Every distribution this repository builds: name -> version."""
    ours = {canonicalize_name(qbench.DISTRIBUTION): Version(qbench.__version__)}
    for d in PLUGIN_DIRS:
        project = tomllib.loads((d / "pyproject.toml").read_text())["project"]
        ours[canonicalize_name(project["name"])] = Version(project["version"])
    return ours


def requirement_problems(requires: list[str], ours: dict[str, Version]) -> list[str]:
    """Why each requirement could let pip pick a package that is not the one meant (empty: none)."""
    problems = []
    for text in requires:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        if name == FOREIGN:
            problems.append(f"{text!r} names PyPI's unrelated 'qbench'; require {qbench.HOST_REQUIREMENT!r}")
        elif name in ours:
            if ours[name] not in req.specifier:
                problems.append(f"{text!r} excludes the {name} {ours[name]} this repository builds")
            if not any(s.operator in ("<", "<=", "==", "~=") for s in req.specifier):
                problems.append(f"{text!r} has no upper bound: a future release with another API would satisfy it")
        elif name.startswith("qbench"):
            problems.append(f"{text!r} is in qbench's namespace but no distribution of this repository")
    return problems


def test_the_host_is_distributed_under_its_own_name() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["name"] == qbench.DISTRIBUTION == "qbench-qat"
    assert project["version"] == qbench.__version__
    meta = built_metadata(REPO)
    assert (meta["Name"], meta["Version"]) == (qbench.DISTRIBUTION, qbench.__version__)
    assert Version(qbench.__version__) in Requirement(qbench.HOST_REQUIREMENT).specifier


@pytest.mark.parametrize("plugin", PLUGIN_DIRS, ids=lambda p: p.name)
def test_every_plugin_requires_our_host_with_a_range(plugin: Path) -> None:
    meta = built_metadata(plugin)
    requires = meta.get_all("Requires-Dist") or []
    hosts = [r for r in requires if canonicalize_name(Requirement(r).name) == qbench.DISTRIBUTION]
    assert len(hosts) == 1, requires
    assert Requirement(hosts[0]).specifier == Requirement(qbench.HOST_REQUIREMENT).specifier, hosts
    assert requirement_problems(requires, our_distributions()) == []


def test_the_scaffold_writes_the_same_requirement(tmp_path: Path) -> None:
    meta = built_metadata(create_plugin("third_party", tmp_path))
    assert meta.get_all("Requires-Dist") == [str(Requirement(qbench.HOST_REQUIREMENT))]


def test_the_requirement_check_can_fail() -> None:
    ours = {"qbench-qat": Version("0.3.0"), "qbench-lsq": Version("0.1.0")}
    assert requirement_problems(["qbench-qat>=0.3,<0.4", "qbench-lsq>=0.1,<0.2", "ray>=2.9"], ours) == []
    bad = requirement_problems(["qbench", "qbench-qat>=0.3", "qbench-lsq>=0.2,<0.3", "qbench-extra"], ours)
    assert [p.split("'")[1] for p in bad] == ["qbench", "qbench-qat>=0.3", "qbench-lsq>=0.2,<0.3", "qbench-extra"]


def test_the_host_range_follows_the_version() -> None:
    assert qbench._compatible_range("0.3.0") == ">=0.3,<0.4"
    assert qbench._compatible_range("1.2.5") == ">=1.2,<2"


def test_docs_state_the_requirement_plugins_use() -> None:
    """The plugin contract shows the dependency line a plugin writes: the one the scaffold writes."""
    text = (REPO / "docs" / "plugin-contract.md").read_text()
    stated = re.findall(r'dependencies = \["([^"]+)"', text)
    assert stated == [qbench.HOST_REQUIREMENT]
    assert f"`{qbench.HOST_REQUIREMENT}`" in (REPO / "README.md").read_text()
