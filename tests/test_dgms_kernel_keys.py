"""DGMS's kernel moves numbers within float32 rounding, so which soft weight runs is in its job key:
where the kernel loads, the published keys are planned; where it does not, jobs plan, run and say
the torch graph under keys of their own; and a process that cannot load the kernel a job is keyed
with fails it rather than running the torch graph under that key."""
from __future__ import annotations

import json
import tomllib
import warnings
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

from qbench.api import KernelFallbackWarning
from qbench.plugin.catalog import Catalog, get_catalog, reset_catalog
from qbench.report.compare import resolve_against
from qbench.run.harness import Harness
from qbench.run.jobs import Job, expand, select_methods, suite_methods
from qbench.run.plan import plan_jobs
from qbench.run.suite import Suite, parse_suite
from qbench.run.workspace import Workspace
from qbench.testing import fake_cpu, tiny_suite


def _dgms_kernel() -> ModuleType:
    kernel = pytest.importorskip("qbench_dgms.kernel")
    if not kernel.available():
        pytest.skip("the DGMS kernel does not load here")
    return kernel


def _published_dgms_keys() -> set[str]:
    rows = pd.read_csv(resolve_against("quick@v4") / "results.csv")
    return set(rows[rows.method == "dgms"].job_key)


def _fresh_catalog() -> Catalog:
    """Registration decides DGMS's kernel: a new catalog, on the CPU as it is now."""
    reset_catalog()
    return get_catalog()


def _dgms_jobs(cat: Catalog, suite: Suite) -> list[Job]:
    jobs = expand(suite, cat, select_methods(["dgms"], suite_methods(suite, cat)))
    return [j for j in jobs if j.method.name == "dgms"]


def _tiny() -> Suite:
    return parse_suite(tomllib.loads(tiny_suite(methods=("dgms",), bits=("W2A2",))))


def test_where_the_dgms_kernel_loads_its_published_keys_are_planned() -> None:
    _dgms_kernel()
    jobs = [j for j in plan_jobs(_fresh_catalog(), "quick@v4", methods=["dgms"])[1] if j.method.name == "dgms"]
    assert {j.key for j in jobs} == _published_dgms_keys()
    assert {json.loads(j.params_json)["weight"]["kernel"] for j in jobs} == {"c"}


def test_without_its_kernel_dgms_plans_runs_and_says_its_torch_graph(tmp_path: Path) -> None:
    kernel = _dgms_kernel()
    kernel._lib.cache_clear()
    try:
        with fake_cpu("x86-64-v2"), warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            cat = _fresh_catalog()
            quick = [j for j in plan_jobs(cat, "quick@v4", methods=["dgms"])[1] if j.method.name == "dgms"]
            tiny = _dgms_jobs(cat, _tiny())
            rows = Harness(cat, Workspace(tmp_path)).run(_tiny(), tiny)
    finally:
        kernel._lib.cache_clear()
        reset_catalog()
    said = [str(w.message) for w in record if issubclass(w.category, KernelFallbackWarning)]
    assert len(said) == 1 and said[0].startswith("dgms-w kernel not used: this CPU lacks AVX, AVX2"), said
    assert "planned as the weight param kernel='torch'" in said[0]
    assert len(quick) == 6 and not {j.key for j in quick} & _published_dgms_keys()
    for job in quick + tiny:  # the bound params (in the key) and the method the job carries to its worker
        assert json.loads(job.params_json)["weight"]["kernel"] == "torch"
        assert job.method.params["weight"]["kernel"] == "torch"
    (row,) = rows
    assert row["status"] == "ok", row.get("reason")
    assert json.loads(row["params"])["weight"]["kernel"] == "torch" and row["job_key"] == tiny[0].key


def test_a_process_that_cannot_load_the_kernel_a_job_is_keyed_with_fails_naming_the_fix(tmp_path: Path) -> None:
    """Planned where the kernel loads (kernel='c'), run where it does not: a failed row naming the
    fix, never the torch graph's numbers under the kernel's key."""
    kernel = _dgms_kernel()
    cat = _fresh_catalog()
    (job,) = _dgms_jobs(cat, _tiny())
    assert json.loads(job.params_json)["weight"]["kernel"] == "c"
    kernel._lib.cache_clear()
    try:
        with fake_cpu("x86-64-v2"), warnings.catch_warnings():
            warnings.simplefilter("ignore", KernelFallbackWarning)
            row = Harness(cat, Workspace(tmp_path)).compute_row(job)
    finally:
        kernel._lib.cache_clear()
    assert row["status"] == "failed"
    assert "KernelUnavailable: dgms-w kernel='c': this CPU lacks AVX, AVX2" in row["reason"]
    assert "Fix: use the weight param kernel='torch'" in row["reason"]
