"""``qbench new-plugin NAME``: generate a method plugin that installs, registers and passes its tests.

The files come from the templates in ``qbench/templates/plugin/`` (shipped as package data),
rendered with :class:`string.Template` (``${name}``, ``${package}``, ...): plain substitution,
nothing in a template is ever evaluated. A path segment containing ``NAME`` is renamed with the
plugin name (``qbench_NAME/`` -> ``qbench_mymethod/``) and the ``.tmpl`` suffix is dropped, so the
templates themselves are never collected by pytest or imported.

The generated package is the layout of docs/plugin-contract.md: ``pyproject.toml`` with the
``qbench`` entry point, ``qbench_NAME/{__init__,plugin}.py`` with a working quantizer pair and the
method NAME (version 1), ``README.md`` listing what to fill in, and ``tests/`` with a property test,
plus the conformance suite in one class where the host's own tests do not run it
(:func:`host_runs_conformance`). The walk-through is docs/writing-a-plugin.md.
"""
from __future__ import annotations

import os
import re
import shutil
import string
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import click

from qbench import HOST_REQUIREMENT
from qbench.errors import QbenchError
from qbench.plugin.manager import DEFAULT_PLUGINS

if TYPE_CHECKING:  # pragma: no cover
    from importlib.abc import Traversable

TEMPLATE_DIR = ("templates", "plugin")
TEMPLATE_SUFFIX = ".tmpl"

#: A plugin name is the method name, the entry point name and the suffix of the package
#: ``qbench_NAME``, so it must be a lowercase Python identifier. Short enough to read in tables.
NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,30}")

#: Names the host already uses for its own plugins (a second plugin by that name cannot load).
RESERVED = frozenset({"qbench", *(m.rsplit(".", 1)[-1] for m in DEFAULT_PLUGINS)})

#: The generated conformance test; also the path of the host's own, relative to a qbench checkout.
CONFORMANCE_TEST = "tests/test_conformance.py"


def host_runs_conformance(parent: Path | str) -> bool:
    """Whether a plugin created in ``parent`` gets the conformance suite from the host's own tests.

    qbench's ``tests/test_conformance.py`` runs :class:`qbench.testing.MethodConformance` on every
    installed method, but it exists only in a qbench checkout (the wheel ships the package alone),
    and the ``pytest11`` plugin :mod:`qbench.testing.plugin` adds fixtures, not tests. Inside a
    checkout (``parent`` is the ``plugins/`` folder beside that file) a copy in the plugin would
    run the suite twice; anywhere else (the plugin's own repository, whose CI runs ``pytest`` on
    the plugin) the plugin's own subclass is the only thing that runs it.
    """
    folder = Path(parent).resolve()
    return folder.name == "plugins" and (folder.parent / CONFORMANCE_TEST).is_file()


def conformance_note(name: str, own_test: bool) -> str:
    """The README's line on conformance: where the suite runs for this plugin, and how to run it."""
    if own_test:
        return (f"- `{CONFORMANCE_TEST}`: the host's conformance suite (`qbench.testing.MethodConformance`) on\n"
                f"  `{name}`. qbench's own tests run it on every installed method, but only in a qbench\n"
                "  checkout: outside one, this class is what runs it, with the plugin's other tests.")
    return (f"- Conformance: qbench's own `{CONFORMANCE_TEST}` runs the host's conformance suite\n"
            f"  (`qbench.testing.MethodConformance`) on every installed method, `{name}` included:\n"
            f"  `python -m pytest {CONFORMANCE_TEST} -q -p no:cacheprovider -k {name}` from the qbench repository.")


def suggest_name(name: str) -> str:
    """The closest valid name: lowercase, separators to ``_``, other characters and prefix dropped."""
    s = re.sub(r"[\s\-.]+", "_", name.strip().lower())
    s = re.sub(r"[^a-z0-9_]", "", s)
    s = re.sub(r"^qbench_?", "", s)
    s = re.sub(r"^[^a-z]+", "", s).strip("_")
    s = re.sub(r"_+", "_", s)[:31]
    if s in RESERVED:
        return f"my_{s}"
    return s or "mymethod"


def validate_name(name: str) -> str:
    """Return ``name`` if it can be a plugin name, else raise a :class:`QbenchError` saying why."""
    if name in RESERVED:
        problem = "qbench itself uses this name"
    elif name.startswith("qbench"):
        problem = "the 'qbench-' / 'qbench_' prefix is added for you"
    elif not NAME_RE.fullmatch(name):
        problem = ("it must start with a lowercase letter and hold only lowercase letters, digits and "
                   "underscores (at most 31 characters), since it becomes the method name, the entry "
                   "point and the package qbench_NAME")
    else:
        return name
    raise QbenchError(f"Invalid plugin name {name!r}: {problem}. Use {suggest_name(name)!r}.")


def class_prefix(name: str) -> str:
    """CamelCase prefix of the generated classes: ``my_method`` -> ``MyMethod``."""
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part)


def template_root() -> Traversable:
    return resources.files("qbench").joinpath(*TEMPLATE_DIR)


def _walk(node: Traversable, rel: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Traversable]]:
    out: list[tuple[tuple[str, ...], Traversable]] = []
    for child in sorted(node.iterdir(), key=lambda c: c.name):
        if child.name == "__pycache__":
            continue
        if child.is_dir():
            out.extend(_walk(child, (*rel, child.name)))
        elif child.name.endswith(TEMPLATE_SUFFIX):
            out.append(((*rel, child.name), child))
    return out


def render_plugin(name: str, dir_hint: str | None = None, conformance_test: bool = True) -> dict[str, str]:
    """Every generated file: relative POSIX path -> text. Pure: writes nothing.

    :param name: a valid plugin name (see :func:`validate_name`).
    :param dir_hint: how the README refers to the plugin folder (default ``plugins/qbench-NAME``).
    :param conformance_test: write ``tests/test_conformance.py`` (False where the host's tests
        already run the suite on the plugin: :func:`host_runs_conformance`).
    """
    validate_name(name)
    dist = f"qbench-{name}"
    mapping = {"name": name, "package": f"qbench_{name}", "dist": dist, "cls": class_prefix(name),
               "dir_hint": dir_hint or f"plugins/{dist}", "host_requirement": HOST_REQUIREMENT,
               "conformance": conformance_note(name, conformance_test)}
    files: dict[str, str] = {}
    for rel, node in _walk(template_root()):
        parts = [p.replace("NAME", name) for p in rel]
        parts[-1] = parts[-1][: -len(TEMPLATE_SUFFIX)]
        try:
            files["/".join(parts)] = string.Template(node.read_text(encoding="utf-8")).substitute(mapping)
        except (KeyError, ValueError) as exc:  # a broken template is a bug of qbench, not of the user
            raise RuntimeError(f"Template {'/'.join(rel)} has a bad placeholder: {exc}") from exc
    if not files:
        raise RuntimeError(f"No plugin templates found in {template_root()}: qbench is installed without "
                           "its package data; reinstall it.")
    if not conformance_test:
        del files[CONFORMANCE_TEST]
    return files


def create_plugin(name: str, parent: Path | str = "plugins", force: bool = False) -> Path:
    """Write ``parent/qbench-NAME`` and return its path.

    :param force: replace an existing folder (it is deleted first, so no stale file survives).
    :raises QbenchError: for an invalid name, or an existing folder without ``force``.
    """
    validate_name(name)
    target = Path(parent) / f"qbench-{name}"
    if target.exists() or target.is_symlink():
        if not force:
            raise QbenchError(f"{target} already exists: choose another name or --dir, or pass --force "
                              "to replace it (its current content is deleted).")
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink()
    files = render_plugin(name, dir_hint=target.as_posix(), conformance_test=not host_runs_conformance(parent))
    for rel, text in files.items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return target


def installed_plugin(name: str) -> str | None:
    """``dist==version`` of an installed distribution whose ``qbench`` entry point is ``name``."""
    from importlib.metadata import distributions

    from qbench.plugin.manager import ENTRY_POINT_GROUP

    for dist in distributions():
        if any(ep.group == ENTRY_POINT_GROUP and ep.name == name for ep in dist.entry_points):
            return f"{dist.metadata['Name']}=={dist.version}"
    return None


@click.command("new-plugin")
@click.argument("name")
@click.option("--dir", "parent", type=click.Path(file_okay=False, path_type=Path), default=Path("plugins"),
              show_default=True, help="Folder in which qbench-NAME is created.")
@click.option("--force", is_flag=True, help="Replace an existing qbench-NAME folder.")
def new_plugin(name: str, parent: Path, force: bool) -> None:
    """Generate a method plugin NAME: package, working quantizers, tests, README."""
    target = create_plugin(name, parent, force)
    click.echo(f"Created {target}/ (method {name!r}, quantizers {name}-w / {name}-a).")
    other = installed_plugin(name)
    if other:
        click.echo(f"Note: a plugin named {name!r} is already installed ({other}); unless this folder replaces it, "
                   "pick another name, since two plugins cannot register one method.", err=True)
    conformance = ""
    if host_runs_conformance(parent):
        host_test = Path(os.path.relpath(Path(parent).resolve().parent / CONFORMANCE_TEST)).as_posix()
        conformance = f"      python -m pytest {host_test} -q -k {name}   (the host runs conformance on it)\n"
    click.echo(f"Next: pip install --no-deps -e {target.as_posix()}\n"
               f"      python -m pytest {target.as_posix()}/tests -q\n"
               f"{conformance}"
               f"      qbench run --suite quick --method {name} --model resnet20 --bits 2 --seeds 1\n"
               "See docs/writing-a-plugin.md.")
