"""``qbench list`` and ``qbench plugins``: what the installed plugins provide.

Both start without torch when the plugins do (docs/plugin-contract.md, "Listing without importing
torch"): ``list KIND`` calls only KIND's registration hook, ``plugins`` calls none unless
``--check``. Every string a plugin supplies is printed verbatim (escaped, never read as markup).
"""
from __future__ import annotations

import click
from rich.markup import escape
from rich.table import Table

from qbench.cli.render import console, err_console
from qbench.plugin.catalog import get_catalog

LIST_KINDS = ("methods", "quantizers", "allocators", "wrappers", "datasets", "models", "suites", "executors")


@click.command("list")
@click.argument("kind", type=click.Choice(LIST_KINDS))
def list_(kind: str) -> None:
    """List what the installed plugins provide.

    Calls only KIND's registration hook. Methods, models and suites need no torch (but a methods
    hook may import what it needs: qbench-dgms loads its compiled kernel to choose its params);
    quantizers, allocators, wrappers, datasets and executors import the classes the plugins
    register (each entry is the class itself, its description and kind read from it).
    """
    cat = get_catalog()
    table = Table(title=kind)
    table.add_column("name")
    table.add_column("plugin")
    table.add_column("details")
    reg = getattr(cat, kind)
    for e in reg.entries():
        obj = e.obj
        if kind == "methods":
            detail = (f"v{obj.version}; W: {obj.weight_quantizer or '-'}, A: {obj.activation_quantizer or '-'}, "
                      f"allocator: {obj.allocator}, wrapper: {obj.wrapper}" if not obj.reference else obj.description)
        elif kind == "quantizers":
            detail = f"{obj.kind}: {obj.description}"
        elif kind == "suites":
            detail = str(obj)
        else:
            detail = obj.description
        table.add_row(escape(e.name), escape(e.plugin), escape(detail))
    console.print(table)
    if kind == "models":
        console.print("Plus any timm model name (timm.list_models()).")


@click.command()
@click.option("--check", is_flag=True,
              help="Also call every registration hook and report the plugins whose hooks fail (this imports "
                   "every plugin's implementations, torch included).")
def plugins(check: bool) -> None:
    """Installed plugins: name, distribution and version, hooks implemented.

    Loads each plugin's entry module (an import failure is reported) but calls no hook: a plugin
    whose registration hook fails is named by --check, and by any command that uses that hook.
    """
    cat = get_catalog()
    report = cat.pm.load_report
    table = Table(title="qbench plugins")
    for col in ("name", "distribution", "hooks"):
        table.add_column(col)
    for name, plugin in sorted(cat.pm.list_name_plugin(), key=lambda t: t[0]):
        hooks = sorted(h.name for h in cat.pm.get_hookcallers(plugin) or [])
        table.add_row(escape(name), escape(report.dists.get(name, "")), ", ".join(hooks))
    console.print(table)
    for name, msg in (cat.errors if check else report.errors).items():
        err_console.print(f"[red]failed[/red] {escape(name)}: {escape(msg)}")
