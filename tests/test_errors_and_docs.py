"""Every error the house review listed says the thing, the problem and the fix; generated docs stay in sync."""
from __future__ import annotations

from pathlib import Path

import pytest

from qbench.errors import QbenchError, UnknownNameError

ROOT = Path(__file__).resolve().parent.parent


def test_unknown_model_puts_close_matches_first_and_counts_the_rest() -> None:
    from qbench.models import check_model_name

    with pytest.raises(UnknownNameError) as err:
        check_model_name("vit_tiny")
    msg = str(err.value)
    assert msg.startswith("Unknown model 'vit_tiny'. Did you mean 'vit_tiny_patch16_224'")
    assert "models are available." in msg and "Available:" not in msg  # no wall of 1,300 names
    with pytest.raises(UnknownNameError, match="Did you mean .*'resnet20'"):
        check_model_name("resnet2O")


def test_a_disabled_plugin_is_named_when_its_parts_are_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    from qbench.plugin.catalog import Catalog
    from qbench.plugin.manager import get_plugin_manager

    monkeypatch.setenv("QBENCH_DISABLED_PLUGINS", "wrappers")
    cat = Catalog(get_plugin_manager(load_entrypoints=False))
    with pytest.raises(UnknownNameError) as err:
        cat.wrappers.get("kd")
    assert "disabled by QBENCH_DISABLED_PLUGINS and may provide it: wrappers (qbench (default))" in str(err.value)
    assert "unset or edit that variable" in str(err.value)


@pytest.mark.parametrize("content, problem", [
    ("name,score\nlsq,3\n", "is not a qbench results table: it lacks the columns"),
    ("", "is empty"),
    ("\x00\x01garbage", "is not a qbench results table"),
    ("a,b\n\"unclosed,1\n", "cannot be parsed as CSV"),
])
def test_a_foreign_or_corrupt_leaderboard_csv_is_a_clear_error(tmp_path: Path, content: str, problem: str) -> None:
    from qbench.report.leaderboard import load_rows_csv

    path = tmp_path / "results.csv"
    path.write_text(content)
    with pytest.raises(QbenchError) as err:
        load_rows_csv(path)
    assert str(path) in str(err.value) and problem in str(err.value)


def test_result_row_doc_is_generated_from_the_schema() -> None:
    from qbench.report.row import render_markdown

    doc = ROOT / "docs" / "result-row.md"
    assert doc.read_text() == render_markdown(), "regenerate: python -m qbench.report.row > docs/result-row.md"


def test_harness_rows_use_only_schema_fields(catalog, tiny_suite_path: Path, tmp_path: Path) -> None:
    from qbench.report.row import fields, unknown_fields
    from qbench.run.harness import Harness
    from qbench.run.plan import plan_jobs
    from qbench.run.workspace import Workspace

    suite, jobs = plan_jobs(catalog, str(tiny_suite_path), ["toy"], None, None, None, None)
    rows = Harness(catalog, Workspace(tmp_path)).run(suite, jobs)
    for row in rows:
        assert unknown_fields(row) == [], unknown_fields(row)
        assert {"job_key", "top1", "w_bits_measured", "over_budget", "torch_threads", "device"} <= set(row)
    assert "w_bits_layer_mean" in fields()


def test_docs_say_how_to_disable_plugins_and_install_them_the_same_way() -> None:
    readme = (ROOT / "README.md").read_text()
    contract = (ROOT / "docs" / "plugin-contract.md").read_text()
    tutorial = (ROOT / "docs" / "writing-a-plugin.md").read_text()
    assert "QBENCH_DISABLED_PLUGINS=" in readme
    assert "pip install -e plugins/qbench-NAME" in contract and "pip install -e plugins/qbench-mymethod" in tutorial
    assert "--no-deps" not in tutorial
    # the export() schema is written down
    assert "### `export()`" in contract and '"codes"' in contract and "\"lut\"" in contract


def test_publish_without_matplotlib_skips_only_the_plot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from qbench.report import leaderboard

    rows = [{"job_key": f"k{s}", "suite": "s", "suite_version": 1, "dataset": "digits", "model": "m",
             "method": "fp32", "method_version": 1, "bits": "fp32", "seed": s, "status": "ok", "top1": 90.0 + s,
             "fp_top1": 90.0 + s, "w_bits_measured": 32.0, "a_bits_measured": 32.0, "gbitops": 1.0, "size_kb": 1.0,
             "w_bits_target": 32, "a_bits_target": 32} for s in range(2)]
    monkeypatch.setattr(leaderboard, "plotting_available", lambda: False)
    d = leaderboard.publish(rows, tmp_path, "s")
    assert (d / "leaderboard.md").exists() and (d / "results.csv").exists() and not (d / "pareto.png").exists()
