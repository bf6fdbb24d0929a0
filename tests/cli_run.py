"""Run ``qbench`` in this process, as a user's shell would, and keep its exit status and output."""
from __future__ import annotations

import pytest

from qbench.cli import main


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``qbench ARGS``: a usage or user error exits like the shell's."""
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err
