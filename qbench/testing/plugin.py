"""pytest fixtures for qbench plugin authors (loaded through the ``pytest11`` entry point).

* ``qbench_plugin_manager``: a fresh plugin manager with the default plugins and the installed ones.
* ``qbench_catalog``: the catalog built from it.
"""
from __future__ import annotations

import os

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist every worker shares the machine's cores: one torch thread each avoids
    oversubscription, which on a 2-core machine makes small-model tests ~50x slower."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)


@pytest.fixture
def qbench_plugin_manager():
    from qbench.plugin.manager import get_plugin_manager

    return get_plugin_manager(load_entrypoints=True)


@pytest.fixture
def qbench_catalog(qbench_plugin_manager):
    from qbench.plugin.catalog import Catalog

    return Catalog(qbench_plugin_manager)
