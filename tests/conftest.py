"""Fixtures for the host's tests: a catalog with the default plugins and a toy method only."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from qbench.plugin.catalog import Catalog  # noqa: E402
from qbench.testing.helpers import tiny_suite  # noqa: E402

TINY_SUITE = tiny_suite(methods=("fp32", "toy"))


@pytest.fixture(autouse=True)
def _threads() -> None:
    torch.set_num_threads(1)


@pytest.fixture
def catalog() -> Catalog:
    from toy_plugin import toy_catalog

    return toy_catalog()


@pytest.fixture
def tiny_suite_path(tmp_path: Path) -> Path:
    p = tmp_path / "tiny.toml"
    p.write_text(TINY_SUITE)
    return p
