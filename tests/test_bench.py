"""``qbench bench`` (a QAT step's time over an FP32 step's): ratios measured side by side, a baseline
saved and compared."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from qbench.cli import main
from qbench.plugin.catalog import get_catalog
from qbench.run.bench import BenchRow, measure, regressions


def _need_lsq() -> None:
    if "lsq" not in get_catalog().methods.names():
        pytest.skip("needs the lsq plugin (the host-only environment has none)")


def _row(method: str, ratio: float) -> BenchRow:
    return BenchRow(method=method, model="vit-micro", ratio=ratio, passes=1.0, per_pass=ratio, qat_ms=1.0,
                    fp_ms=1.0, prepare_s=0.0, rounds=1)


def test_regressions_compare_ratios_with_the_allowance() -> None:
    baseline = {"rows": [{"method": "a", "model": "vit-micro", "ratio": 1.5}]}
    assert regressions([_row("a", 1.79)], baseline, 0.2) == []
    assert "a on vit-micro" in regressions([_row("a", 1.81)], baseline, 0.2)[0]
    assert regressions([_row("unknown", 9.0)], baseline, 0.2) == []  # not in the baseline: not guarded


def test_measure_counts_passes_and_gives_a_ratio() -> None:
    _need_lsq()
    row = measure("lsq", "vit-micro", get_catalog(), rounds=2, warmup=1)
    assert row.ratio > 0 and row.passes == 1.0 and row.rounds == 2
    assert 0.0 <= row.init_s <= row.prepare_s  # the weight quantizers' init is part of prepare


def test_cli_saves_and_guards_a_baseline(tmp_path: Path) -> None:
    _need_lsq()
    out = tmp_path / "base.json"
    main(["bench", "--method", "lsq", "--model", "vit-micro", "--rounds", "2", "--threads", "1", "--save", str(out)])
    saved = json.loads(out.read_text())
    assert [r["method"] for r in saved["rows"]] == ["lsq"] and saved["threads"] == 1
    saved["rows"][0]["ratio"] = 1e-3  # an impossible baseline: the guard must fail (after its retry)
    out.write_text(json.dumps(saved))
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--method", "lsq", "--model", "vit-micro", "--rounds", "2", "--threads", "1",
              "--against", str(out)])
    assert exc.value.code == 1
