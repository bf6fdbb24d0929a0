"""``qbench list`` and ``qbench plugins``: what the installed plugins provide."""
from __future__ import annotations

import click
from rich.table import Table

from qbench.cli.render import console, err_console
from qbench.plugin.catalog import get_catalog

LIST_KINDS = ("methods", "quantizers", "allocators", "wrappers", "datasets", "models", "suites", "executors")


@click.command("list")
@click.argument("kind", type=click.Choice(LIST_KINDS))
def list_(kind: str) -> None:
    """List what the installed plugins provide."""
    cat = get_catalog()
    table = Table(title=kind)
    table.add_column("name")
    table.add_column("plugin")
    table.add_column("details")
    reg = {"methods": cat.methods, "quantizers": cat.quantizers, "allocators": cat.allocators,
           "wrappers": cat.wrappers, "datasets": cat.datasets, "models": cat.models, "suites": cat.suites,
           "executors": cat.executors}[kind]
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
        table.add_row(e.name, e.plugin, detail)
    console.print(table)
    if kind == "models":
        console.print("Plus any timm model name (timm.list_models()).")


@click.command()
def plugins() -> None:
    """Installed plugins: name, distribution and version, hooks implemented."""
    cat = get_catalog()
    report = cat.pm.load_report
    table = Table(title="qbench plugins")
    for col in ("name", "distribution", "hooks"):
        table.add_column(col)
    for name, plugin in sorted(cat.pm.list_name_plugin(), key=lambda t: t[0]):
        hooks = sorted(h.name for h in cat.pm.get_hookcallers(plugin) or [])
        table.add_row(name, report.dists.get(name, ""), ", ".join(hooks))
    console.print(table)
    for name, msg in {**report.errors, **cat.errors}.items():
        err_console.print(f"[red]failed[/red] {name}: {msg}")
