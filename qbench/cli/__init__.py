"""The ``qbench`` command line: thin commands over the library (parse, call, render).

Every user error (unknown name, bad value, missing file) exits with status 2 and one message
saying what is wrong and how to fix it: never a traceback.

Importing this package, ``qbench --help`` and every command's ``--help`` import neither torch nor
timm, onnx or onnxruntime (tests/test_cli_startup.py): each command imports what it runs inside
its function, so a command that prints a few lines starts in a fraction of a second.
"""
from __future__ import annotations

import sys

import click
from rich.markup import escape

from qbench import __version__
from qbench.cli.advise import advise
from qbench.cli.bench import bench
from qbench.cli.deploy_bench import deploy_bench
from qbench.cli.export import export
from qbench.cli.info import list_, plugins
from qbench.cli.models import models
from qbench.cli.render import err_console
from qbench.cli.report import compare, leaderboard, publish
from qbench.cli.run import run
from qbench.errors import QbenchError
from qbench.plugin.scaffold import new_plugin


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="qbench")
def cli() -> None:
    """qbench: compare quantization-aware-training methods on one frozen recipe."""


for _command in (run, advise, list_, plugins, leaderboard, publish, compare, new_plugin, export, models, bench,
                 deploy_bench):
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="qbench", standalone_mode=False)
    except QbenchError as exc:
        err_console.print(f"[bold red]Error:[/bold red] {escape(str(exc))}", highlight=False)
        sys.exit(2)
    except click.exceptions.Abort:
        err_console.print("Aborted: finished jobs are kept; rerun the same command to resume.")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("Interrupted: finished jobs are kept; rerun the same command to resume.")
        sys.exit(130)
