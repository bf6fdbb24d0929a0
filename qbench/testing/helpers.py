"""Host pieces a plugin's own tests and benchmark scripts may use, re-exported in one place.

Like :mod:`qbench.api` for plugin code, this is the only door plugin tests take into the host:
build a model, load the embedded data, build a method's quantized model through the host's
own path, train, and run a suite's jobs end to end into a workspace.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from qbench.data.bundle import DataBundle
from qbench.data.digits import load_digits
from qbench.models import create_model
from qbench.plugin.catalog import Catalog, get_catalog, reset_catalog
from qbench.plugin.manager import get_plugin_manager
from qbench.run.harness import Harness
from qbench.run.plan import plan_jobs
from qbench.run.suite import Suite, TrainRecipe, parse_suite
from qbench.run.workspace import Workspace
from qbench.testing.file_datasets import file_suite, write_cifar10, write_image_folder
from qbench.train.audit import audit_model, export_parity, summarize
from qbench.train.loop import evaluate, train
from qbench.train.qat import QatResult, frozen_copy, prepare, run_qat


def tiny_suite(name: str = "tiny", methods: tuple[str, ...] = ("fp32",), bits: tuple[str, ...] = ("W4A4",),
               seeds: tuple[int, ...] = (0,), width: int | None = 4, fp_epochs: int = 2, qat_epochs: int = 1) -> str:
    """The TOML of a suite small enough for a test: digits, resnet20 (``width`` channels; None for
    the default), a short FP training and QAT. Real data and the real harness, in seconds."""
    q = ", ".join(f'"{v}"' for v in (*methods,))
    b = ", ".join(f'"{v}"' for v in bits)
    kwargs = f"kwargs = {{ width = {width} }}\n" if width is not None else ""
    return (f'name = "{name}"\nversion = 1\nseeds = [{", ".join(map(str, seeds))}]\nbits = [{b}]\n'
            f'first_last = "fp"\nmethods = [{q}]\n\n[[datasets]]\nname = "digits"\n\n'
            f'[[models]]\nname = "resnet20"\n{kwargs}\n[fp]\nepochs = {fp_epochs}\nlr = 0.05\n\n'
            f"[qat]\nepochs = {qat_epochs}\nlr = 0.01\n")


def run_suite(suite: Suite, methods: list[str], workspace: Path, catalog: Catalog | None = None
              ) -> list[dict[str, Any]]:
    """Plan ``methods`` on ``suite`` (its compositions included) and run the jobs into
    ``workspace`` with the local executor; the rows, as ``qbench run`` writes them."""
    from qbench.run.harness import Harness
    from qbench.run.jobs import expand, select_methods, suite_methods
    from qbench.run.workspace import Workspace

    cat = catalog or get_catalog()
    available = suite_methods(suite, cat)
    jobs = expand(suite, cat, select_methods(methods, available))
    return Harness(cat, Workspace(workspace)).run(suite, jobs)


#: row fields that say when, where and how fast a job ran, not what it computed: they differ
#: between two runs of the same job (the executor and the loader workers are provenance; the
#: deployed model's timings and memory are measurements of the machine at that moment)
VOLATILE_ROW_FIELDS = frozenset({"wall_s", "qat_s", "peak_rss_mb", "date", "command", "executor", "loader_workers",
                                 "traceback", "deploy_latency_ms", "deploy_latency_iqr_ms", "deploy_fp32_latency_ms",
                                 "deploy_fp32_latency_iqr_ms", "deploy_speedup", "deploy_batch_latency_ms",
                                 "deploy_batch_latency_iqr_ms", "deploy_fp32_batch_latency_ms",
                                 "deploy_fp32_batch_latency_iqr_ms", "deploy_batch_speedup", "deploy_latency_protocol",
                                 "deploy_peak_mb", "deploy_fp32_peak_mb", "deploy_latency_s"})


def comparable(row: dict[str, Any]) -> dict[str, Any]:
    """A row without its :data:`VOLATILE_ROW_FIELDS`: what two runs of one job must agree on."""
    return {k: v for k, v in row.items() if k not in VOLATILE_ROW_FIELDS}


def sibling_module(test_file: str, name: str) -> ModuleType:
    """Import ``<name>.py`` from the folder of ``test_file`` (e.g. a frozen copy of old code that a
    test pins new code against): pytest runs with ``--import-mode=importlib``, so a tests folder is
    not on ``sys.path``. Imported once, under ``name``."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(test_file).with_name(f"{name}.py"))
        if spec is None or spec.loader is None:
            raise ImportError(f"no {name}.py next to {test_file}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def suite_method(suite: Suite, name: str, catalog: Catalog | None = None) -> Any:
    """A method as the suite sees it: registered, or composed by the suite file."""
    from qbench.run.jobs import suite_methods

    return suite_methods(suite, catalog or get_catalog())[name]


__all__ = [
    "DataBundle", "load_digits", "create_model", "Catalog", "get_catalog", "reset_catalog", "get_plugin_manager",
    "Suite", "TrainRecipe", "parse_suite", "audit_model", "export_parity", "summarize", "evaluate", "train",
    "QatResult", "frozen_copy", "prepare", "run_qat", "run_suite", "sibling_module", "suite_method", "tiny_suite",
    "Harness", "plan_jobs", "Workspace", "VOLATILE_ROW_FIELDS", "comparable",
    "write_cifar10", "write_image_folder", "file_suite",
]
