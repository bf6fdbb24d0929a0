"""The harness end to end on a tiny suite: FP once, QAT, audit, rows, skip on rerun."""
from __future__ import annotations

from pathlib import Path

import pytest

from qbench.plugin.catalog import Catalog
from qbench.run.harness import Harness
from qbench.run.plan import plan_jobs
from qbench.run.workspace import Workspace

REQUIRED = {"suite", "suite_version", "dataset", "dataset_hash", "model", "method", "method_version", "bits",
            "w_bits_target", "a_bits_target", "w_bits", "w_bits_measured", "a_bits", "a_bits_measured", "gbitops",
            "size_kb", "top1", "top5", "fp_top1", "export_max_abs_diff", "seed", "wall_s", "peak_rss_mb", "status",
            "qbench_version", "torch_version", "timm_version", "git_commit", "machine", "date", "plugin", "job_key"}


def test_tiny_suite_runs_and_rerun_skips(catalog: Catalog, tiny_suite_path: Path, tmp_path: Path) -> None:
    suite, jobs = plan_jobs(catalog, str(tiny_suite_path), None, None, None, None, None)
    assert [j.method.name for j in jobs] == ["fp32", "toy"]
    ws = Workspace(tmp_path / "ws")
    rows = Harness(catalog, ws).run(suite, jobs)
    assert len(rows) == 2 and all(r["status"] == "ok" for r in rows), [r.get("reason") for r in rows]
    for r in rows:
        assert REQUIRED <= set(r), REQUIRED - set(r)
    fp, toy = rows
    # the FP checkpoint is trained once and shared: one file, same FP top-1 in both rows
    assert len(list((tmp_path / "ws" / "fp").glob("*.safetensors"))) == 1
    assert fp["top1"] == toy["fp_top1"]
    assert fp["bits"] == "fp32" and fp["w_bits_measured"] == 32
    assert toy["bits"] == "W4A4" and toy["levels_ok"]
    assert toy["w_bits_measured"] <= 4 and toy["a_bits_measured"] <= 4
    assert toy["export_max_abs_diff"] < 1e-4
    assert toy["gbitops"] < fp["gbitops"]
    assert toy["top1"] > 30  # digits: well above chance (10 %) even after a 2-epoch FP model
    # a rerun skips both jobs: rows untouched
    before = {p.name: p.stat().st_mtime_ns for p in ws.rows_dir("tiny").glob("*.json")}
    ran: list[str] = []
    h = Harness(catalog, ws)
    orig = h.run_job
    h.run_job = lambda job: ran.append(job.key) or orig(job)  # type: ignore[method-assign]
    h.run(suite, jobs)
    assert ran == []
    assert before == {p.name: p.stat().st_mtime_ns for p in ws.rows_dir("tiny").glob("*.json")}
    csv = (tmp_path / "ws" / "tiny" / "results.csv").read_text().splitlines()
    assert len(csv) == 3


def test_weight_only_method_reports_a32(catalog: Catalog, tiny_suite_path: Path, tmp_path: Path) -> None:
    suite, jobs = plan_jobs(catalog, str(tiny_suite_path), ["toy-wonly"], None, None, None, None)
    row = Harness(catalog, Workspace(tmp_path)).run(suite, jobs)[-1]
    assert row["method"] == "toy-wonly" and row["status"] == "ok"
    assert row["bits"] == "W4A32" and row["a_bits_target"] == 32 and row["a_bits_measured"] == 32


def test_failing_job_becomes_a_row_and_the_run_goes_on(catalog: Catalog, tiny_suite_path: Path, tmp_path: Path
                                                       ) -> None:
    from qbench.contract.method import Method
    from qbench.contract.quant.base import WeightQuantizer
    from qbench.plugin.catalog import Component

    class Boom(WeightQuantizer):
        def __init__(self, bits: int, layer: object = None) -> None:
            super().__init__(bits)

        def forward(self, w):  # a plugin bug that shows only once training runs
            raise RuntimeError("boom in forward")

    catalog.quantizers.add("boom-w", Component("boom-w", Boom, "", "weight"), "test")
    catalog.methods.add("broken", Method(name="broken", version=1, weight_quantizer="boom-w"), "test")
    suite, jobs = plan_jobs(catalog, str(tiny_suite_path), ["broken", "toy"], None, None, None, None)
    rows = Harness(catalog, Workspace(tmp_path)).run(suite, jobs)
    by = {r["method"]: r for r in rows}
    assert by["broken"]["status"] == "failed" and "boom in forward" in by["broken"]["reason"]
    assert by["toy"]["status"] == "ok"


def test_a_typo_in_a_method_parameter_fails_at_plan_time(catalog: Catalog, tiny_suite_path: Path) -> None:
    """Bound against the factory's signature when jobs are planned: one line naming the method,
    the part, the key, the likely fix and the accepted keys, before anything trains."""
    import pytest

    from qbench.contract.method import Method
    from qbench.errors import QbenchError

    catalog.methods.add("typo", Method(name="typo", version=1, weight_quantizer="toy-w",
                                       params={"weight": {"extra_level": 1}}), "test")
    with pytest.raises(QbenchError) as err:
        plan_jobs(catalog, str(tiny_suite_path), ["typo"], None, None, None, None)
    assert str(err.value) == ("Method 'typo', part 'weight' (toy-w): unknown parameter 'extra_level'. "
                              "Did you mean 'extra_levels'? Accepted: extra_levels.")


def test_a_typo_in_a_suite_file_composition_fails_at_plan_time(catalog: Catalog, tmp_path: Path) -> None:
    import pytest

    from qbench.testing import tiny_suite
    TINY_SUITE = tiny_suite(methods=("fp32", "toy"))  # the suite tests/conftest.py uses
    from qbench.errors import QbenchError

    suite = tmp_path / "typo.toml"
    suite.write_text(TINY_SUITE.replace('methods = ["fp32", "toy"]', 'methods = ["toy-x"]')
                     + '\n[compose.toy-x]\nbase = "toy"\nparams = { weight = { extra_levls = 1 } }\n')
    with pytest.raises(QbenchError, match="Method 'toy-x', part 'weight' \\(toy-w\\): unknown parameter 'extra_levls'"):
        plan_jobs(catalog, str(suite), None, None, None, None, None)


def test_bound_defaults_are_part_of_the_job_key(catalog: Catalog, tiny_suite_path: Path) -> None:
    """Spelling out a default gives the same job; changing it gives a new one."""
    from qbench.contract.method import Method

    toy = catalog.methods.get("toy")
    _, base = plan_jobs(catalog, str(tiny_suite_path), ["toy"], None, None, None, None)
    for name, params, same in (("toy-explicit", {"weight": {"extra_levels": 0}}, True),
                               ("toy-more", {"weight": {"extra_levels": 1}}, False)):
        catalog.methods.add(name, toy.compose(name, params=params), "test")
        _, jobs = plan_jobs(catalog, str(tiny_suite_path), [name], None, None, None, None)
        assert jobs[-1].params_json == base[-1].params_json if same else jobs[-1].params_json != base[-1].params_json
        assert isinstance(toy, Method)


def test_atomic_write_keeps_the_old_file_on_failure_and_respects_the_umask(tmp_path, monkeypatch) -> None:
    import os

    from qbench import atomic as ws_mod

    target = tmp_path / "rows" / "k.json"
    ws_mod.atomic_write_text(target, "old")
    mask = os.umask(0o022)
    try:
        ws_mod.atomic_write_text(target, "new")
        assert target.read_text() == "new" and (target.stat().st_mode & 0o777) == 0o644
    finally:
        os.umask(mask)

    def fail(*_args, **_kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ws_mod.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        ws_mod.atomic_write_text(target, "half")
    assert target.read_text() == "new"
    assert [p.name for p in target.parent.iterdir()] == ["k.json"]  # no temporary left behind


def test_an_error_outside_a_job_reaches_on_suite_error_and_is_raised(catalog: Catalog, tiny_suite_path: Path,
                                                                    tmp_path: Path) -> None:
    """An executor that breaks (or Ctrl-C) stops the run: loggers hear of it through
    qbench_on_suite_error, the error propagates, and the progress display is closed (finally)."""
    import pytest

    from qbench import hookimpl
    from qbench.plugin.catalog import Component

    heard: list[str] = []

    class Listener:
        @hookimpl
        def qbench_on_suite_error(self, suite, error) -> None:
            heard.append(f"{suite.name}: {error}")

    class Broken:
        def run(self, jobs, harness):
            raise RuntimeError("the cluster went away")
            yield  # pragma: no cover

    catalog.pm.register(Listener(), name="listener")
    catalog.executors.add("broken", Component("broken", Broken), "test")
    suite, jobs = plan_jobs(catalog, str(tiny_suite_path), ["toy"], None, None, None, None)
    with pytest.raises(RuntimeError, match="the cluster went away"):
        Harness(catalog, Workspace(tmp_path)).run(suite, jobs, executor="broken")
    assert heard == ["tiny: the cluster went away"]
