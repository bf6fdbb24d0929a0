"""BWRF around another method's quantizers from a suite file alone: the shipped
suites/bwrf-combos.toml composes ``bwrf-asq`` (no code), and one of its jobs runs end to end."""
from __future__ import annotations

from pathlib import Path

import pytest
import tomllib

from qbench.testing import get_catalog, parse_suite, run_suite, suite_method

SUITE_FILE = Path(__file__).resolve().parents[1] / "suites" / "bwrf-combos.toml"


def test_shipped_suite_file_composes_bwrf_around_asq_and_a_job_runs(tmp_path: Path) -> None:
    pytest.importorskip("qbench_asq", reason="bwrf-asq uses the asq-a / post-w quantizers of qbench-asq")
    cat = get_catalog()
    raw = tomllib.loads(SUITE_FILE.read_text())
    combo, asq = suite_method(parse_suite(raw, str(SUITE_FILE)), "bwrf-asq", cat), cat.methods.get("asq")
    assert (combo.weight_quantizer, combo.activation_quantizer, combo.wrapper) == ("post-w", "asq-a", "bwrf")
    # POST at every bit-width, with the asq method's POST parameters (asq v3 pairs its activations with
    # LSQ weights at 2 bits through asq-w, whose scheme and lsq_per_channel post-w does not take)
    post_params = {k: v for k, v in asq.part_params("weight").items() if k not in ("scheme", "lsq_per_channel")}
    assert combo.part_params("weight") == post_params
    assert combo.part_params("activation") == asq.part_params("activation")
    assert combo.part_params("wrapper") == cat.methods.get("bwrf").part_params("wrapper")
    # the same file, shrunk to one short job so the test stays small: the composition is untouched
    raw.update(seeds=[0], bits=["W4A4"], models=[{"name": "resnet20", "kwargs": {"width": 4}}])
    raw["fp"]["epochs"], raw["qat"]["epochs"] = 2, 1
    suite = parse_suite(raw, str(SUITE_FILE))
    rows = run_suite(suite, ["bwrf-asq"], tmp_path, cat)
    assert [r["method"] for r in rows] == ["bwrf-asq"]
    row = rows[0]
    assert row["status"] == "ok", row.get("reason")
    assert (row["weight_quantizer"], row["activation_quantizer"], row["wrapper"]) == ("post-w", "asq-a", "bwrf")
    assert row["levels_ok"] and row["w_bits_measured"] <= 4 and row["a_bits_measured"] <= 4
    assert row["top1"] > 20  # digits, 10 classes: trained, not chance
