"""The suites shipped with qbench: quick, fmnist, cifar10, imagenet."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from qbench import hookimpl

SUITES_DIR = Path(__file__).resolve().parent.parent / "suites"


@hookimpl
def qbench_register_suites(register: Callable[..., None]) -> None:
    for path in sorted(SUITES_DIR.glob("*.toml")):
        register(path.stem, path)
