"""`qbench compare` places what the gate does not judge: a method the leaderboard lacks, or another
version of one it holds. Its paired gaps per seed, would-be rank, tolerance and what publishing it
needs are printed; it never fails the command.

FIXTURE ROWS, NOT RESULTS: the placed methods below are copies of a published method's rows from
the quick leaderboard shipped in the package, renamed (or given a new version) and with top-1
shifted by a known amount, so every expected number follows from the published rows. They test the
comparison logic only; nothing here is, or may be committed as, a benchmark result.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cli_run import run_cli
from qbench.report.compare import compare
from qbench.report.placement import place
from qbench.report.shipped import resolve_against
from qbench.report.stats import aggregate

SHIFT = 3.0


def quick() -> pd.DataFrame:
    return pd.read_csv(resolve_against("quick") / "results.csv")


def fixture_rows(ref: pd.DataFrame, source: str, name: str, shift: float = SHIFT) -> pd.DataFrame:
    """FIXTURE: ``source``'s published rows under the name ``name``, top-1 shifted by ``shift``."""
    rows = ref[ref.method == source].copy()
    return rows.assign(method=name, top1=rows.top1 + shift, job_key=rows.job_key + "-fixture")




def words(text: str) -> str:
    return " ".join(text.split())


def write(tmp_path: Path, *frames: pd.DataFrame) -> Path:
    csv = tmp_path / "results.csv"
    pd.concat(frames, ignore_index=True).to_csv(csv, index=False)
    return csv


def pair_cells(out: str, model: str, label: str) -> list[str]:
    """The cells of ``label``'s row in the paired-gap table of ``model`` (output as Markdown, as
    the command prints tables to a pipe)."""
    table = out.split(f"digits / {model} / W2A2: paired gap of")[1].split("\n\n")[1]
    return next(ln for ln in table.splitlines() if ln.startswith(f"| {label} |")).split(" | ")


def ranked_in(agg: pd.DataFrame, model: str) -> int:
    table = agg[(agg.model == model) & (agg.bits == "W2A2")]
    return int(table["rank"].map(lambda r: r != "—").sum())


def expected_gaps(ref: pd.DataFrame, mine: pd.DataFrame, other: str, model: str) -> list[str]:
    """Per seed, computed straight from the rows: (top-1 - FP top-1) of ``mine`` minus ``other``'s."""
    def gap(df: pd.DataFrame) -> pd.Series:
        d = df[df.model == model].set_index("seed")
        return d.top1 - d.fp_top1
    return [f"{v:+.2f}" for v in (gap(mine) - gap(ref[ref.method == other])).sort_index()]


def test_a_new_method_is_placed_with_its_rank_and_paired_gaps_and_exits_0(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    ref = quick()
    mine = fixture_rows(ref, "lsq", "fixture-shifted")
    csv = write(tmp_path, ref[ref.method == "fp32"], mine)
    code, out, err = run_cli(capsys, "compare", str(csv), "--against", "quick")
    text = words(out)
    assert code == 0 and "No significant regression" in text, err
    assert "Placement: fixture-shifted v1 (not on the leaderboard; placed, never gated)" in text
    # the rank the leaderboard's own code gives the published rows plus these
    agg = aggregate(pd.concat([ref, mine]))
    for model in ("resnet20", "vit-micro"):
        me = agg[(agg.method == "fixture-shifted") & (agg.model == model)].iloc[0]
        assert f"digits / {model} / W2A2: would rank {me['rank']} of {ranked_in(agg, model)}." in text
        # against its own source the gap is the shift on every seed; against pact, what the rows say
        lsq_version = int(ref[ref.method == "lsq"].method_version.iloc[0])
        assert pair_cells(out, model, f"lsq v{lsq_version}")[3:7] == ["+3.00"] * 4  # three seeds, and their mean
        pact = pair_cells(out, model, f"pact v{int(ref[ref.method == 'pact'].method_version.iloc[0])}")
        assert pact[3:6] == expected_gaps(ref, mine, "pact", model)
    assert "the gate's tolerance once published:" in text and "Complete for quick@v" in text


def test_the_placement_numbers_are_the_paired_tests_of_the_ranks() -> None:
    ref = quick()
    mine = fixture_rows(ref, "lsq", "fixture-shifted")
    run = pd.concat([ref[ref.method == "fp32"], mine], ignore_index=True)
    cmp = compare(run, "quick")
    assert cmp.ok and set(cmp.table[cmp.table.method == "fixture-shifted"].status) == {"new"}
    (p,) = place(cmp, run)
    for t in p.tables:
        lsq = t.pairs.set_index("method").loc["lsq"]
        assert lsq["mean"] == pytest.approx(SHIFT) and lsq["lo"] < SHIFT < lsq["hi"] and lsq["n"] == 3
        assert t.tolerance >= 1.0 and t.tol_df >= 2
        # the rank counts the entries the same tests show better, and follows the mean order
        assert isinstance(t.rank, int) and t.rank >= 1 + int((t.pairs.verdict == "worse").sum())
        assert set(t.pairs.verdict) <= {"better", "worse", "not distinguishable"}


def test_format_md_writes_the_same_view_as_markdown(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    ref = quick()
    csv = write(tmp_path, ref[ref.method == "fp32"], fixture_rows(ref, "lsq", "fixture<b>|x"))
    code, out, _ = run_cli(capsys, "compare", str(csv), "--against", "quick", "--format", "md")
    assert code == 0 and out.startswith("#### compare against quick")
    assert "### Placement: fixture&lt;b&gt;\\|x v1 (not on the leaderboard" in out  # no HTML, no broken table
    assert "would rank **" in out and "| published | rank now | top-1 | seed 0 | seed 1 | seed 2 |" in out
    lsq = [ln for ln in out.splitlines() if ln.startswith("| lsq v")]
    assert len(lsq) == 2 and all("| +3.00 | +3.00 | +3.00 | +3.00 |" in ln for ln in lsq)
    # the published entries the run lacks are one line, not a row each
    assert "| not run |" not in out.split("### Placement")[0]
    assert "Not in this run, so not compared: 24 published entries (" in out
    md = tmp_path / "comment.md"
    code, again, err = run_cli(capsys, "compare", str(csv), "--against", "quick", "--format", "md", "--output", str(md))
    assert code == 0 and again == "" and md.read_text() == out and f"Wrote {md}" in words(err)
    code, _, err = run_cli(capsys, "compare", str(csv), "--against", "quick", "--output", str(md))
    assert code == 2 and "add --format md" in err


def test_what_publishing_needs_is_listed(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    ref = quick()
    partial = fixture_rows(ref, "pact", "fixture-partial")
    partial = partial[(partial.model == "resnet20") & (partial.seed < 2)]
    crashed = fixture_rows(ref, "pact", "fixture-partial")
    crashed = crashed[(crashed.model == "resnet20") & (crashed.seed == 2)].assign(status="crashed")
    weight_only = fixture_rows(ref, "dgms", "fixture-wo")  # W2A32: a weight-only method
    weight_only = weight_only[weight_only.seed == 0]
    csv = write(tmp_path, ref[ref.method == "fp32"], partial, crashed, weight_only)
    code, out, _ = run_cli(capsys, "compare", str(csv), "--against", "quick")
    text = words(out)
    version = int(ref.suite_version.iloc[0])
    assert code == 0
    assert (f"To publish, quick@v{version} also needs: model vit-micro (not run at all); seed 2 of "
            "digits/resnet20/W2A2.") in text
    assert "| digits | resnet20 | W2A2 | 2 | did not finish (crashed) |" in out
    assert "| digits | vit-micro | W2A2 | 0, 1, 2 | not run |" in out
    assert f"To publish, quick@v{version} also needs: seeds 1, 2 of every table." in text  # at W2A32, not W2A2
    assert "| digits | vit-micro | W2A32 | 1, 2 | not run |" in out
    assert f"qbench run --suite quick@v{version} --method fixture-partial" in text


def test_a_new_version_of_a_published_method_is_placed_not_gated(capsys: pytest.CaptureFixture[str],
                                                                 tmp_path: Path) -> None:
    ref = quick()
    lsq = ref[ref.method == "lsq"]
    held = int(lsq.method_version.max())
    newer = lsq.assign(method_version=held + 1, top1=lsq.top1 - 2.0, job_key=lsq.job_key + "-fixture")
    csv = write(tmp_path, ref[ref.method == "fp32"], newer)
    code, out, _ = run_cli(capsys, "compare", str(csv), "--against", "quick")
    text = words(out)
    assert code == 0 and "No significant regression" in text  # 2 points below v1, but not v1: never failed
    assert f"Left out 6 rows of lsq v{held + 1}" in text
    assert f"Placement: lsq v{held + 1} (the leaderboard holds v{held}; placed, never gated)" in text
    # its own published version is among the entries it is paired with, 2 points per seed
    for model in ("resnet20", "vit-micro"):
        assert pair_cells(out, model, f"lsq v{held}")[3:7] == ["-2.00"] * 4
    # ranked as publishing would leave the table: v1 replaced, so one entry fewer than with both
    agg = aggregate(pd.concat([ref[ref.method != "lsq"], newer]))
    me = agg[(agg.method == "lsq") & (agg.model == "resnet20")].iloc[0]
    assert f"digits / resnet20 / W2A2: would rank {me['rank']} of {ranked_in(agg, 'resnet20')}." in text


def test_a_regression_of_the_same_version_still_fails_beside_a_placement(capsys: pytest.CaptureFixture[str],
                                                                          tmp_path: Path) -> None:
    ref = quick()
    same = ref[ref.method.isin(["fp32", "lsq"])].copy()
    same.loc[(same.method == "lsq") & (same.model == "vit-micro"), "top1"] -= 5.0
    csv = write(tmp_path, same, fixture_rows(ref, "pact", "fixture-shifted"))
    code, out, err = run_cli(capsys, "compare", str(csv), "--against", "quick", "--format", "md")
    assert code == 1 and "**Regression:** lsq W2A2 on digits/vit-micro fell below" in words(out)
    assert "### Placement: fixture-shifted v" in out


def test_plugin_names_are_printed_literally_not_as_markup(capsys: pytest.CaptureFixture[str],
                                                         tmp_path: Path) -> None:
    ref = quick()
    rows = fixture_rows(ref, "lsq", "fix[bold]ture[/bold]")
    csv = write(tmp_path, ref[ref.method == "fp32"], rows[rows.seed < 2])  # seed 2 left to run: a command names it
    code, out, _ = run_cli(capsys, "compare", str(csv), "--against", "quick")
    assert code == 0 and "Placement: fix[bold]ture[/bold] v1" in out
    assert "paired gap of fix[bold]ture[/bold] v1 minus" in out and "--method fix[bold]ture[/bold]" in out


def test_a_run_on_other_fp_checkpoints_says_the_pairing_is_weaker() -> None:
    """FIXTURE: seed 0's FP checkpoint 1.5 points better (as after a rerun on another machine), the
    method's top-1 with it: its gap, and so its paired gaps, do not move."""
    ref = quick()
    mine = fixture_rows(ref, "lsq", "fixture-shifted")
    mine.loc[mine.seed == 0, ["top1", "fp_top1"]] += 1.5
    run = pd.concat([ref[ref.method == "fp32"], mine], ignore_index=True)
    (p,) = place(compare(run, "quick"), run)
    assert any("on seed 0 this run's FP checkpoint scores differently from the published one" in n for n in p.notes)
    assert all(t.pairs.set_index("method").loc["lsq", "mean"] == pytest.approx(SHIFT) for t in p.tables)
