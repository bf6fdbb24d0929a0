"""pytest-benchmark suite: each installed method's QAT step time over the FP32 step, the training
cost a method adds (the CI step-time guard fails when a ratio grows).

Run (not part of the test suite; ``testpaths`` is ``tests``)::

    OMP_NUM_THREADS=2 python -m pytest benchmarks -p no:cacheprovider --benchmark-json=out.json

Each case measures interleaved FP32/QAT rounds with :func:`qbench.run.bench.measure` (median of
the per-round ratios) and fails when the ratio exceeds ``baseline.json``'s by more than 20 %,
after one re-measurement with twice the rounds (a burst of load on a shared machine). The ratio,
passes per step and per-pass ratio go into the benchmark's ``extra_info``; the timed function is
the whole measurement, so pytest-benchmark's seconds are informative only: ratios are compared.
``QBENCH_BENCH_ROUNDS`` (default 10) sets the rounds; ``QBENCH_BENCH_THREADS`` (default 2) the
torch threads.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from qbench.plugin.catalog import get_catalog
from qbench.run.bench import MODELS, BenchRow, bench_methods, measure, regressions

def _baseline() -> dict:
    """The baseline recorded on this CPU vendor, else baseline.json (as scripts/bench-guard.sh picks)."""
    here = Path(__file__).parent
    vendor = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                   if ln.startswith("vendor_id")), "") if Path("/proc/cpuinfo").exists() else ""
    own = here / f"baseline-{vendor}.json"
    return json.loads((own if vendor and own.exists() else here / "baseline.json").read_text())


BASELINE = _baseline()
MAX_REGRESSION = 0.2
ROUNDS = int(os.environ.get("QBENCH_BENCH_ROUNDS", "10"))
THREADS = int(os.environ.get("QBENCH_BENCH_THREADS", "2"))
CASES = [(m, model) for model in sorted(MODELS) for m in bench_methods(get_catalog())]


@pytest.mark.parametrize("method,model", CASES, ids=[f"{m}-{model}" for m, model in CASES])
def test_step_ratio(benchmark, method: str, model: str) -> None:  # type: ignore[no-untyped-def]
    torch.set_num_threads(THREADS)
    rows: list[BenchRow] = []
    benchmark.pedantic(lambda: rows.append(measure(method, model, get_catalog(), rounds=ROUNDS)),
                       rounds=1, iterations=1)
    row = rows[0]
    if regressions([row], BASELINE, MAX_REGRESSION):  # one retry, twice the rounds
        row = measure(method, model, get_catalog(), rounds=2 * ROUNDS)
    benchmark.extra_info.update(row.as_dict())
    bad = regressions([row], BASELINE, MAX_REGRESSION)
    assert not bad, bad[0]
