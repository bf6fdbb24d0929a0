"""Statistics over seeds, ranks with ties, versioned publishing, diffs, plots and the CI compare gate."""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats as st

from qbench.errors import QbenchError
from qbench.report.compare import compare, tolerance
from qbench.report.leaderboard import publish, render, render_markdown
from qbench.report.plot import pareto_front
from qbench.report.stats import aggregate, ci_halfwidth


def rows(spec: dict[tuple[str, str], list[float]], version: int = 1) -> list[dict]:
    """Result rows for (method, bits) -> top-1 per seed, the fields the leaderboard reads."""
    out = []
    for (method, bits), accs in spec.items():
        for seed, acc in enumerate(accs):
            w = 32 if bits == "fp32" else int(bits[1])
            out.append({"job_key": f"{method}-{bits}-{seed}-{version}", "suite": "s", "suite_version": version,
                        "dataset": "digits", "model": "resnet20", "method": method, "method_version": 1,
                        "bits": bits, "seed": seed, "status": "ok", "top1": acc, "top5": 100.0, "fp_top1": 95.0,
                        "w_bits_measured": w, "a_bits_measured": w, "gbitops": 0.01 * w * w, "size_kb": 10.0 * w,
                        "first_last": "fp", "dataset_hash": "abc", "plugin": "p", "command": "qbench run x"})
    return out


def test_mean_std_and_ci() -> None:
    agg = aggregate(pd.DataFrame(rows({("a", "W4A4"): [90.0, 92.0, 94.0], ("b", "W4A4"): [80.0]})))
    a = agg[agg.method == "a"].iloc[0]
    assert a.n == 3 and a.top1 == pytest.approx(92.0) and a.top1_std == pytest.approx(2.0)
    assert a.ci95 == pytest.approx(st.t.ppf(0.975, 2) * 2.0 / math.sqrt(3))
    b = agg[agg.method == "b"].iloc[0]
    assert b.n == 1 and math.isnan(b.top1_std) and math.isnan(b.ci95)  # one seed: spread unknown


def test_two_seeds_ci_uses_t_with_one_dof() -> None:
    assert ci_halfwidth(1.0, 2) == pytest.approx(12.7062 / math.sqrt(2), rel=1e-4)


def test_ranks_tie_where_a_paired_test_cannot_tell_entries_apart() -> None:
    agg = aggregate(pd.DataFrame(rows({("a", "W4A4"): [90, 91], ("b", "W4A4"): [89, 91], ("c", "W4A4"): [50, 51],
                                       ("fp32", "fp32"): [95, 95]})))
    r = dict(zip(agg.method, agg["rank"]))
    assert r["a"] == r["b"] == 1 and r["c"] == 3
    assert agg.iloc[0].method == "fp32"  # the reference on top


def test_refuses_to_mix_suite_versions(tmp_path: Path) -> None:
    mixed = rows({("a", "W4A4"): [90.0]}, 1) + rows({("a", "W4A4"): [91.0]}, 2)
    with pytest.raises(QbenchError, match="mix suite versions"):
        render_markdown(pd.DataFrame(mixed), "s")
    with pytest.raises(QbenchError, match="mix suite versions"):
        publish(mixed, tmp_path, "s")


def test_publish_keeps_old_versions_and_writes_diffs(tmp_path: Path) -> None:
    # v1: intervals overlap (both rank 1); v2: b is clearly above a (a drops to rank 2)
    v1 = publish(rows({("a", "W4A4"): [90.0, 92.0], ("b", "W4A4"): [80.0, 81.0]}, 1), tmp_path, "s", plot=False)
    v2 = publish(rows({("a", "W4A4"): [70.0, 71.0], ("b", "W4A4"): [85.0, 86.0]}, 2), tmp_path, "s", plot=False)
    assert (v1 / "results.csv").exists() and (v2 / "results.csv").exists()
    d = pd.read_csv(v2 / "diff.csv").set_index("method")
    assert d.loc["a", "top1_diff"] == pytest.approx(-20.5) and d.loc["a", "rank_diff"] == 1
    assert d.loc["b", "rank_diff"] == -1 and d.loc["a", "against"] == "v1"
    meta = (v2 / "meta.json").read_text()
    assert '"schema_version": 1' in meta and '"suite_version": 2' in meta and "digits: abc" in meta


def test_table_and_plot_regenerate_from_csv(tmp_path: Path) -> None:
    d = publish(rows({("fp32", "fp32"): [95, 95], ("a", "W4A4"): [90.0, 92.0], ("b", "W2A2"): [60.0, 61.0]}),
                tmp_path, "s", plot=True)
    md = (d / "leaderboard.md").read_text()
    assert "| 1 | a v1 | W4A4 | 91.00 ± 1.41 |" in md and "| ref | fp32 v1 | fp32 | 95.00 ± 0.00 |" in md
    (d / "leaderboard.md").write_text("stale")
    (d / "pareto.png").unlink()
    assert render(d, "s", plot=True) == md
    assert (d / "leaderboard.md").read_text() == md
    assert (d / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pareto_front() -> None:
    # cost, accuracy: (1, 50) and (4, 90) are optimal, (4, 80) is dominated by (4, 90), (8, 85) by (4, 90)
    assert pareto_front([1, 4, 4, 8], [50, 90, 80, 85]) == [True, True, False, False]


def test_tolerance_never_uses_t_at_one_degree_of_freedom_and_has_a_floor() -> None:
    assert tolerance(math.nan, 0, 1, 1, 1.0) == 1.0
    assert tolerance(2.0, 12, 2, 2, 0.5) == pytest.approx(st.t.ppf(0.975, 12) * 2.0)
    assert tolerance(2.0, 1, 2, 2, 0.5) == pytest.approx(st.t.ppf(0.975, 2) * 2.0)  # t at 2 dof, never 12.7
    assert tolerance(0.01, 20, 3, 3, 1.0) == 1.0


def _committed(tmp_path: Path) -> Path:
    publish(rows({("fp32", "fp32"): [95.0, 95.0, 95.0], ("lsq", "W4A4"): [90.0, 91.0, 92.0],
                  ("pact", "W4A4"): [85.0, 85.5, 86.0]}), tmp_path / "lb", "s", plot=False)
    return tmp_path / "lb" / "s"


def test_compare_against_itself_passes(tmp_path: Path) -> None:
    against = _committed(tmp_path)
    cmp = compare(pd.read_csv(against / "v1" / "results.csv"), against)
    assert cmp.ok and set(cmp.table.status) == {"within"}


def test_compare_flags_a_real_regression_and_names_it(tmp_path: Path) -> None:
    against = _committed(tmp_path)
    run = pd.read_csv(against / "v1" / "results.csv")
    tol = compare(run, against).table.set_index("method").loc["lsq", "tolerance"]
    assert 1.0 < tol < 5.0
    run.loc[run.method == "lsq", "top1"] -= tol + 0.5
    cmp = compare(run, against)
    assert not cmp.ok and cmp.regressions.method.tolist() == ["lsq"]
    run2 = pd.read_csv(against / "v1" / "results.csv")
    run2.loc[run2.method == "lsq", "top1"] -= tol - 0.5  # within tolerance
    run2.loc[run2.method == "pact", "top1"] += 10  # improvements are reported, not failed
    cmp2 = compare(run2, against)
    assert cmp2.ok and dict(zip(cmp2.table.method, cmp2.table.status))["pact"] == "improved"


def test_compare_refuses_another_suite_version(tmp_path: Path) -> None:
    against = _committed(tmp_path)
    with pytest.raises(QbenchError, match="No committed leaderboard for suite 's' v2"):
        compare(pd.DataFrame(rows({("lsq", "W4A4"): [90.0]}, version=2)), against)


def test_compare_cli_exit_codes(tmp_path: Path) -> None:
    against = _committed(tmp_path)
    run = pd.read_csv(against / "v1" / "results.csv")
    run.loc[run.method == "pact", "top1"] -= 20
    bad = tmp_path / "bad.csv"
    run.to_csv(bad, index=False)
    exe = [sys.executable, "-m", "qbench.cli"]
    ok = subprocess.run([*exe, "compare", str(against / "v1" / "results.csv"), "--against", str(against)],
                        capture_output=True, text=True, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert ok.returncode == 0, ok.stderr
    res = subprocess.run([*exe, "compare", str(bad), "--against", str(against)], capture_output=True, text=True,
                         env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert res.returncode == 1 and "pact W4A4" in res.stderr and "regression" in res.stdout


def test_weight_zeros_column_is_the_mean_sparsity_and_na_where_unmeasured(tmp_path: Path) -> None:
    spec = rows({("fp32", "fp32"): [95, 95], ("a", "W2A2"): [90.0, 92.0], ("old", "W2A2"): [80.0, 81.0]})
    for r in spec:
        if r["method"] == "a":
            r["w_sparsity"] = 0.25 if r["seed"] == 0 else 0.35
        elif r["method"] == "fp32":
            r["w_sparsity"] = None  # nothing quantized
    # "old" rows predate the measurement: no w_sparsity key at all
    md = (publish(spec, tmp_path, "s", plot=False) / "leaderboard.md").read_text()
    line = {l.split("|")[2].strip(): l for l in md.splitlines() if l.startswith("| ")}
    assert "| 30.0% |" in line["a v1"]
    assert "| n/a |" in line["old v1"] and "| n/a |" in line["fp32 v1"]


def test_compare_notes_a_different_torch_thread_count(tmp_path: Path) -> None:
    ref = rows({("fp32", "fp32"): [95.0, 95.0], ("lsq", "W4A4"): [90.0, 91.0]})
    for r in ref:
        r["machine"] = "x86_64 Linux 2 threads (x86_64)"  # rows from before the torch_threads column
    against = publish(ref, tmp_path, "s", plot=False).parent
    same = pd.DataFrame(rows({("lsq", "W4A4"): [90.5, 90.5]})).assign(torch_threads=2)
    assert compare(same, against).notes == []
    other = pd.DataFrame(rows({("lsq", "W4A4"): [90.5, 90.5]})).assign(torch_threads=1)
    cmp = compare(other, against)
    assert cmp.ok and len(cmp.notes) == 1  # a note, not a failure: the numbers decide
    assert "[2] torch threads" in cmp.notes[0] and "--threads 2" in cmp.notes[0]


def test_bits_cell_shows_where_a_method_ended_when_it_left_the_target(tmp_path: Path) -> None:
    spec = rows({("fp32", "fp32"): [95, 95], ("fixed", "W2A2"): [80.0, 81.0], ("learned", "W2A2"): [85.0, 86.0]})
    for r in spec:
        if r["method"] == "learned":
            r["w_bits_measured"], r["a_bits_measured"] = 4.0, 3.0
    md = (publish(spec, tmp_path, "s", plot=False) / "leaderboard.md").read_text()
    assert "| learned v1 | W2A2 → W4A3 |" in md
    assert "| fixed v1 | W2A2 |" in md and "| fp32 v1 | fp32 |" in md
