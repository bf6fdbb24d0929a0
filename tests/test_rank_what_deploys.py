"""What is ranked is what deploys: a row whose exported model scores apart from qbench's own
evaluation, by more than the model's own float rounding explains, is listed apart, not ranked."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import tomllib

from qbench.deploy.parity import diverged, verdict
from qbench.plugin.catalog import Catalog
from qbench.report.compare import compare
from qbench.report.leaderboard import publish
from qbench.report.stats import UNRANKED, aggregate
from qbench.testing import parse_suite, run_suite, tiny_suite

pytest.importorskip("onnxruntime")

SUITE = tiny_suite(name="hooked", bits=("W4A4",), methods=("fp32", "toy", "hooked"), qat_epochs=1)


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    import hooked_plugin
    import toy_plugin

    from qbench.plugin.manager import get_plugin_manager

    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(toy_plugin, name="toy")
    pm.register(hooked_plugin, name="hooked")
    suite = parse_suite(tomllib.loads(SUITE))
    out = run_suite(suite, ["fp32", "toy", "hooked"], tmp_path_factory.mktemp("hooked"), Catalog(pm))
    assert [r["status"] for r in out] == ["ok"] * 3, [r.get("reason") for r in out]
    return out


def test_the_cheat_is_caught_by_the_deploy_check(rows: list[dict]) -> None:
    by = {r["method"]: r for r in rows}
    hooked, toy = by["hooked"], by["toy"]
    assert hooked["a_bits_measured"] == 4  # the audit watched: it measured the honest grid
    assert hooked["deploy_diverged"] is True and hooked["deploy_ok"] is False, hooked["deploy_reason"]
    assert "more than the model's own rounding sensitivity explains" in hooked["deploy_reason"]
    assert toy["deploy_diverged"] is False


def test_it_is_not_ranked_in_run_compare_and_publish(rows: list[dict], tmp_path: Path) -> None:
    agg = aggregate(pd.DataFrame(rows)).set_index("method")  # what `qbench run` prints
    assert agg.loc["hooked", "rank"] == UNRANKED and "not what deploys" in agg.loc["hooked", "flag"]
    honest = [r for r in rows if r["method"] != "hooked"]
    d = publish(honest, tmp_path / "lb", "hooked", plot=False)
    cmp = compare(pd.DataFrame(rows), d.parent)
    assert any(f.startswith("hooked W4A4 on digits/resnet20: not what deploys") for f in cmp.flagged), cmp.flagged
    md = (publish(rows, tmp_path / "lb2", "hooked", plot=False) / "leaderboard.md").read_text()
    main, _, apart = md.partition("## Not ranked: over budget, collapsed or not what deploys")
    assert "| hooked v1" not in main and "| hooked v1 |" in apart


def _cmp(outliers: int, float64: tuple | None, top1: float = 90.0, deploy: float = 95.0) -> dict:
    return {"top1": top1, "deploy_top1": deploy, "max_diff": 1.0, "tol": 0.01, "outliers": outliers, "flips": 5,
            "n": 1000, "float64": float64}


def test_boundary_flips_the_model_itself_shows_stay_ranked() -> None:
    assert diverged(5.0, _cmp(900, (3, 9, 1000, 0.2))) is True  # 900 outliers: far beyond 2 * 9 + 3
    assert diverged(0.2, _cmp(20, (3, 9, 1000, 0.2))) is False  # explained by the self-check
    assert diverged(0.03, _cmp(900, None)) is False  # top-1 within the tolerance: a benign flag
    assert diverged(0.28, _cmp(1, None)) is False  # one boundary flip of 360 samples: benign
    assert verdict(_cmp(900, (3, 9, 1000, 0.2)))["deploy_diverged"] is True
