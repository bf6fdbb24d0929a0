"""The budget rule: over-budget and collapsed rows are flagged, warned about, never ranked, listed
apart when published, reported by compare; the Pareto marks; a plugin that lies about its bits."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from qbench.plugin.catalog import Catalog
from qbench.report.budget import budget_warnings, flag_frame, flag_row
from qbench.report.compare import compare
from qbench.report.leaderboard import publish, render_markdown
from qbench.report.stats import UNRANKED, aggregate
from qbench.testing import tiny_suite
from qbench.train.audit import target_bitops


def row(method: str, bits: str = "W2A2", seed: int = 0, top1: float = 90.0, w: float | None = None,
        a: float | None = None, **extra: object) -> dict:
    wt = 32 if bits == "fp32" else int(bits[1])
    at = 32 if bits == "fp32" else int(bits.split("A")[1])
    r = {"job_key": f"{method}-{bits}-{seed}", "suite": "s", "suite_version": 1, "dataset": "digits",
         "model": "resnet20", "method": method, "method_version": 1, "bits": bits, "seed": seed, "status": "ok",
         "top1": top1, "top5": 100.0, "fp_top1": 95.0, "w_bits_target": wt, "a_bits_target": at,
         "w_bits_measured": wt if w is None else w, "a_bits_measured": at if a is None else a,
         "gbitops": 0.01 * (wt if w is None else w) * (at if a is None else a),
         "size_kb": 10.0 * (wt if w is None else w),
         "first_last": "fp", "dataset_hash": "abc", "plugin": "p", "command": "qbench run x"}
    r.update(extra)
    return r


LAYERS = [  # first (FP by the rule), two body layers at 2 bits declared, last (FP)
    {"name": "conv1", "role": "first", "macs": 100, "w_bits": 32, "a_bits": 32, "w_levels": 0, "a_levels": 0,
     "weight_numel": 10},
    {"name": "b1", "role": "body", "macs": 1000, "w_bits": 2, "a_bits": 2, "w_levels": 4, "a_levels": 4,
     "weight_numel": 100},
    {"name": "b2", "role": "body", "macs": 1000, "w_bits": 2, "a_bits": 2, "w_levels": 3, "a_levels": 4,
     "weight_numel": 100},
    {"name": "fc", "role": "last", "macs": 10, "w_bits": 32, "a_bits": 32, "w_levels": 0, "a_levels": 0,
     "weight_numel": 10},
]


def test_target_bitops_body_at_target_first_last_as_declared() -> None:
    assert target_bitops(LAYERS, 2, 2) == 100 * 32 * 32 + 2 * 1000 * 2 * 2 + 10 * 32 * 32
    assert target_bitops(LAYERS, 2, 32) == 100 * 32 * 32 + 2 * 1000 * 2 * 32 + 10 * 32 * 32  # weight-only


def test_flag_row_within_budget_and_over_budget() -> None:
    ok = flag_row(row("lsq", layers=LAYERS, gbitops=target_bitops(LAYERS, 2, 2) / 1e9), 10)
    assert ok["over_budget"] is False and ok["budget_reason"] == "" and ok["collapsed"] is False
    assert ok["target_gbitops"] == pytest.approx(target_bitops(LAYERS, 2, 2) / 1e9)
    liar = flag_row(row("liar", w=3.0, a=3.0), 10)
    assert liar["over_budget"] is True
    assert "measured W bits 3 > target 2" in liar["budget_reason"]
    assert "measured A bits 3 > target 2" in liar["budget_reason"]
    # a small excess of the mixed-precision average is tolerated, a real one is not
    assert flag_row(row("mp", w=2.04), 10)["over_budget"] is False
    assert flag_row(row("mp", w=2.2), 10)["over_budget"] is True
    # BitOPs above the target's on the same layers, with W/A averages at target (bits moved to big layers)
    heavy = flag_row(row("alloc", gbitops=0.05, target_gbitops=0.04), 10)
    assert heavy["over_budget"] is True and "GBitOPs 0.05 > target 0.04 (+25%)" in heavy["budget_reason"]
    # the reference and unfinished rows are never flagged
    assert flag_row(row("fp32", bits="fp32", top1=11.0), 10)["over_budget"] is False
    assert flag_row(row("lsq", status="failed", w=3.0), 10)["over_budget"] is False


def test_flag_row_collapse_by_levels_and_by_chance() -> None:
    dead = [dict(la, w_levels=1 if la["role"] == "body" else 0) for la in LAYERS]
    r = flag_row(row("dead", layers=dead), 10)
    assert r["collapsed"] is True and "2 of 2 quantized layers keep fewer than 2^(b-1) weight levels" in \
        r["collapse_reason"]
    chance = flag_row(row("guess", top1=14.0), 10)
    assert chance["collapsed"] and "top-1 14.0 near chance (10 + 10)" in chance["collapse_reason"]
    assert not flag_row(row("fine", top1=36.0), 10)["collapsed"]
    assert flag_row(row("guess1000", top1=5.0), 1000)["collapsed"]  # ImageNet chance 0.1 + 10


def test_aggregate_ranks_only_rows_within_budget_and_recomputes_from_old_columns() -> None:
    rows = [row("fp32", "fp32", s, 95.0) for s in (0, 1)]
    rows += [row("lsq", "W2A2", s, 90.0 + s) for s in (0, 1)]
    rows += [row("liar", "W2A2", s, 97.0 + s, w=3.0, a=3.0) for s in (0, 1)]  # best top-1, over budget
    rows += [row("dead", "W2A2", s, 12.0) for s in (0, 1)]  # collapsed
    df = pd.DataFrame(rows)  # no flag columns at all: a CSV from before the rule
    agg = aggregate(df).set_index("method")
    assert agg.loc["lsq", "rank"] == 1
    assert agg.loc["liar", "rank"] == UNRANKED and agg.loc["dead", "rank"] == UNRANKED
    assert agg.loc["liar", "over_budget"] and "measured W bits 3 > target 2" in agg.loc["liar", "flag"]
    assert agg.loc["dead", "collapsed"] and agg.loc["dead", "flag"].startswith("collapsed: seed 0: top-1 12.0")
    assert not agg.loc["lsq", "flag"]
    # the Pareto view places the over-budget entry by its measured cost; a collapsed one never is on it
    assert agg.loc["liar", "pareto_bitops"] and not agg.loc["dead", "pareto_bitops"]
    assert agg.loc["lsq", "pareto_bitops"] and agg.loc["lsq", "pareto_size"]


def test_stored_flags_are_kept_when_columns_alone_do_not_show_them() -> None:
    rows = [row("alloc", over_budget=True, budget_reason="GBitOPs 0.05 > target 0.04 (+25%)"),
            row("lsq", over_budget=False, budget_reason="")]
    # the per-layer verdict stored in a row wins over the columns' approximation of it; chance is recomputed
    rows += [row("fewlevels", bits="W4A4", w=2.9, collapsed=False, collapse_reason=""),
             row("guess", bits="W4A4", top1=12.0, collapsed=False, collapse_reason=""),
             row("oldcsv", bits="W4A4", w=2.9)]
    f = flag_frame(pd.DataFrame(rows)).set_index("method")
    assert f.loc["alloc", "over_budget"] and f.loc["alloc", "budget_reason"].startswith("GBitOPs")
    assert not f.loc["lsq", "over_budget"]
    assert not f.loc["fewlevels", "collapsed"] and f.loc["guess", "collapsed"]
    assert f.loc["oldcsv", "collapse_reason"] == "measured W bits 2.9 far below target 4"


def test_pareto_marks_against_bitops_and_size() -> None:
    rows = [row("cheap", top1=80.0, gbitops=0.01, size_kb=50.0), row("good", top1=90.0, gbitops=0.02, size_kb=20.0),
            row("worse", top1=85.0, gbitops=0.03, size_kb=30.0)]
    agg = aggregate(pd.DataFrame(rows)).set_index("method")
    assert agg["pareto_bitops"].to_dict() == {"good": True, "worse": False, "cheap": True}
    assert agg["pareto_size"].to_dict() == {"good": True, "worse": False, "cheap": False}
    md = render_markdown(pd.DataFrame(rows), "s")
    assert "| Pareto |" in md and "★ BS |" in md and "★ B |" in md


def test_warnings_name_every_flagged_row() -> None:
    lines = budget_warnings([row("lsq"), row("liar", w=3.0, a=3.0), row("dead", top1=11.0),
                             row("broken", status="failed", w=5.0)])
    assert len(lines) == 2
    assert lines[0].startswith("over budget: digits/resnet20/liar/W2A2/seed0 measured W3A3 against W2A2")
    assert "not ranked" in lines[0] and lines[1].startswith("collapsed: digits/resnet20/dead/W2A2/seed0")
    assert budget_warnings([row("lsq")]) == [] and budget_warnings([]) == []


def test_published_markdown_lists_flagged_entries_apart(tmp_path: Path) -> None:
    rows = [row("fp32", "fp32", s, 95.0) for s in (0, 1)] + [row("lsq", "W2A2", s, 90.0 + s) for s in (0, 1)]
    rows += [row("liar", "W2A2", s, 97.0 + s, w=3.0, a=3.0) for s in (0, 1)]
    md = (publish(rows, tmp_path, "s", plot=False) / "leaderboard.md").read_text()
    main, _, apart = md.partition("## Not ranked: over budget, collapsed or not what deploys")
    assert "| 1 | lsq v1 | W2A2 |" in main and "| liar v1" not in main
    assert "| digits / resnet20 | liar v1 | W2A2 → W3A3 | 97.50 ± 0.71 |" in apart
    assert "over budget: seed 0: measured W bits 3 > target 2" in apart


def test_conformance_catches_a_collapse_on_a_short_training(liar_catalog: Catalog) -> None:
    from qbench.testing import MethodConformance
    from qbench.testing.conformance import FAMILIES

    class Dead(MethodConformance):
        method = "dead"
        families = (FAMILIES[0][0],)
        bits = (4,)

    with pytest.raises(AssertionError, match=r"dead on resnet20 at 4 bits collapsed after a short training: "
                                             r"\d+ of \d+ quantized layers keep fewer than 2\^\(b-1\) weight levels"):
        Dead().test_hard_weights_keep_at_most_2_to_the_b_levels(liar_catalog)

    class Liar(MethodConformance):  # more levels than declared: the levels check, not collapse
        method = "liar"
        families = (FAMILIES[0][0],)
        bits = (2,)

    with pytest.raises(AssertionError, match="keeps more levels than it declares"):
        Liar().test_hard_weights_keep_at_most_2_to_the_b_levels(liar_catalog)


# -- the lying plugin, end to end ---------------------------------------------------------------
LIAR_SUITE = tiny_suite(name="liar", bits=("W2A2",), methods=("fp32", "toy", "liar"))


@pytest.fixture
def liar_catalog(catalog: Catalog) -> Catalog:
    import liar_plugin

    catalog.pm.register(liar_plugin, name="liar")
    return Catalog(catalog.pm)


@pytest.fixture(scope="module")
def liar_rows(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """One honest (toy) and one lying row at W2A2, run by the real harness."""
    import liar_plugin
    import toy_plugin

    from qbench.plugin.manager import get_plugin_manager
    from qbench.run.harness import Harness
    from qbench.run.plan import plan_jobs
    from qbench.run.workspace import Workspace

    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(toy_plugin, name="toy")
    pm.register(liar_plugin, name="liar")
    cat = Catalog(pm)
    tmp = tmp_path_factory.mktemp("liar")
    (tmp / "liar.toml").write_text(LIAR_SUITE)
    suite, jobs = plan_jobs(cat, str(tmp / "liar.toml"), None, None, None, None, None)
    rows = Harness(cat, Workspace(tmp / "ws")).run(suite, jobs)
    assert [r["status"] for r in rows] == ["ok"] * 3, [r.get("reason") for r in rows]
    return [flag_row(r, 10) for r in rows]


def test_liar_is_flagged_in_its_row(liar_rows: list[dict]) -> None:
    by = {r["method"]: r for r in liar_rows}
    liar, toy = by["liar"], by["toy"]
    assert liar["levels_ok"] is False and liar["w_bits_measured"] == 3 and liar["a_bits_measured"] == 3
    assert liar["over_budget"] is True and "measured W bits 3 > target 2" in liar["budget_reason"]
    assert liar["gbitops"] > liar["target_gbitops"] and "GBitOPs" in liar["budget_reason"]
    assert toy["over_budget"] is False and toy["gbitops"] <= toy["target_gbitops"]
    assert by["fp32"]["over_budget"] is False


def test_liar_is_warned_about_and_unranked_in_run(liar_rows: list[dict]) -> None:
    lines = budget_warnings(liar_rows)
    liar = [line for line in lines if "/liar/" in line]
    assert len(liar) == 1 and liar[0].startswith("over budget: digits/resnet20/liar/W2A2/seed0 measured W3A3")
    # the honest toy (max-abs grid) does not survive 2 bits after one epoch: it is flagged too, as collapsed
    assert [line.split(":")[0] for line in lines if "/toy/" in line] in ([], ["collapsed"])
    agg = aggregate(pd.DataFrame(liar_rows)).set_index("method")  # what `qbench run` prints
    assert agg.loc["liar", "rank"] == UNRANKED and "over budget" in agg.loc["liar", "flag"]
    assert agg.loc["fp32", "rank"] == 1


def test_liar_is_listed_apart_when_published_and_reported_by_compare(liar_rows: list[dict], tmp_path: Path) -> None:
    honest = [r for r in liar_rows if r["method"] != "liar"]
    d = publish(honest, tmp_path / "lb", "liar", plot=False)
    cmp = compare(pd.DataFrame(liar_rows), d.parent)
    status = dict(zip(cmp.table.method, cmp.table.status))
    assert status["liar"] == "new" and status["fp32"] == "within" and cmp.ok
    liar = [f for f in cmp.flagged if f.startswith("liar")]
    assert len(liar) == 1 and liar[0].startswith("liar W2A2 on digits/resnet20: over budget")
    assert any("liar W2A2 on digits/resnet20: over budget" in n for n in cmp.notes)
    # published with the liar: listed apart, never ranked
    d2 = publish(liar_rows, tmp_path / "lb2", "liar", plot=False)
    md = (d2 / "leaderboard.md").read_text()
    main, _, apart = md.partition("## Not ranked: over budget, collapsed or not what deploys")
    assert "| liar v1" not in main and "| ref | fp32 v1 | fp32 |" in main
    assert "| liar v1 | W2A2 → W3A3 |" in apart


def test_compare_fails_an_entry_newly_over_budget(tmp_path: Path) -> None:
    ref = [row("fp32", "fp32", s, 95.0) for s in (0, 1)] + [row("lsq", "W2A2", s, 90.0 + s) for s in (0, 1)]
    d = publish(ref, tmp_path, "s", plot=False)
    run = pd.DataFrame(ref)
    run.loc[run.method == "lsq", ["w_bits_measured", "a_bits_measured"]] = 3.0  # same top-1, more bits
    cmp = compare(run, d.parent)
    assert not cmp.ok and cmp.regressions.method.tolist() == ["lsq"]
    assert any("lsq W2A2 on digits/resnet20 is over budget" in n and "a regression" in n for n in cmp.notes)
    assert math.isfinite(cmp.table.set_index("method").loc["lsq", "tolerance"])
