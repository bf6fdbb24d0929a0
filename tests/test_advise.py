"""qbench advise: successive halving over QAT methods on your model and data, every trial a cached job."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from qbench.cli import main
from qbench.plugin.catalog import get_catalog
from qbench.run.advise import Schedule, candidates, planned_steps, run_advice, summary
from qbench.run.harness import Harness
from qbench.run.plan import plan_jobs
from qbench.run.workspace import Workspace
from qbench.testing.file_datasets import write_image_folder
from qbench.testing.user_code import write_user_module

DOC = Path(__file__).resolve().parent.parent / "docs" / "advise.md"


def _recipe(path: Path, fp_epochs: int, qat_epochs: int, seeds: int, bits: str = "W4A4") -> str:
    path.write_text(f'name = "small"\nversion = 1\nseeds = {list(range(seeds))}\nbits = ["{bits}"]\n'
                    f'[[datasets]]\nname = "digits"\n[[models]]\nname = "resnet20"\n'
                    f'[fp]\nepochs = {fp_epochs}\nbatch_size = 64\nlr = 0.05\nmomentum = 0.9\nschedule = "cosine"\n'
                    f'[qat]\nepochs = {qat_epochs}\nbatch_size = 128\nlr = 0.01\nmomentum = 0.9\nschedule = "cosine"\n')
    return str(path)


@pytest.fixture
def user_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    write_user_module(tmp_path)
    yield tmp_path
    sys.modules.pop("mymodels", None)


def test_the_schedule_and_its_cost_are_known_before_training() -> None:
    s = Schedule(min_epochs=1, eta=2, finalists=2)
    assert s.rungs(4) == [1, 2] and s.rungs(8) == [1, 2, 4] and s.rungs(1) == [1]
    assert [s.survivors(8, False), s.survivors(4, True), s.survivors(3, False)] == [4, 2, 2]


def test_advise_on_a_folder_writes_the_report_and_a_rerun_runs_no_job(user_dir: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """The worked example of docs/advise.md: its module and its generated folder, on 2 cores."""
    write_image_folder(user_dir / "imgs", train_per_class=20, val_per_class=6, size=12)
    suite = _recipe(user_dir / "small.toml", 3, 2, 2)
    args = ["advise", "--model", "mymodels:tiny_cnn", "--data", "imgs", "--bits", "W4A4", "--method",
            "lsq,pact,dorefa", "--finalists", "1", "--budget", "1", "--suite", suite, "--workspace", "ws", "--workers", "1",
            "--no-progress"]
    main(args)
    first = capsys.readouterr().out
    assert "Rung 1/1: 3 methods x 1 QAT epoch(s)" in first and len(re.findall(r" job \d+/\d+ ok ", first)) == 3 + 4
    md = (user_dir / "ws/small-custom/advice/advice.md").read_text()
    page = (user_dir / "ws/small-custom/advice/advice.html").read_text()
    assert md.startswith("# Advice: mymodels:tiny_cnn on folder at W4A4") and "**Use " in md
    assert "20% of each training class, seed 0" in md and "qbench advise --model mymodels:tiny_cnn" in md
    assert "<svg" in page and "id=finals" in page
    main(args)  # the same command again: every trial is a finished job
    again = capsys.readouterr().out
    assert " job " not in again and "Use " in again
    assert (user_dir / "ws/small-custom/advice/advice.md").read_text() == md


def test_the_budget_is_checked_before_anything_trains(user_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = _recipe(user_dir / "small.toml", 1, 4, 2)
    with pytest.raises(SystemExit):
        main(["advise", "--model", "mymodels:tiny_cnn", "--method", "lsq,pact,dorefa,apot", "--suite", suite,
              "--workspace", "ws", "--workers", "1", "--budget", "0.3", "--no-progress"])
    assert re.search(r"over --budget 0\.3\. Fix: fewer --finalists", capsys.readouterr().err)
    assert not (user_dir / "ws/small-custom").exists()  # nothing trained


def test_successive_halving_spends_under_half_and_keeps_the_full_sweeps_best(user_dir: Path) -> None:
    """Quick's digits data, eight methods, eight QAT epochs, two seeds: the full sweep against advise."""
    cat = get_catalog()
    methods = ["lsq", "lsqplus", "pact", "dorefa", "apot", "n2uq", "asq", "dgms"]
    suite_file = _recipe(user_dir / "small.toml", 8, 8, 2, bits="W2A2")
    suite, jobs = plan_jobs(cat, suite_file, methods, ["mymodels:tiny_cnn"])
    harness = Harness(cat, Workspace(user_dir / "ws"))
    rows = harness.run(suite, jobs)
    assert all(r["status"] == "ok" for r in rows), [r["reason"] for r in rows if r["status"] != "ok"]
    mean = {m: sum(r["top1"] for r in rows if r["method"] == m) / 2 for m in methods}
    best = max(mean, key=mean.get)
    schedule = Schedule(min_epochs=2, eta=2, finalists=2)
    names = candidates(cat, suite, methods)
    advice = run_advice(cat, harness, suite, names, schedule, 0.5, "qbench advise ...", "local", {})
    s = summary(advice)
    finalists = [f["method"] for f in s["finals"] if f["method"] != "fp32"]
    # The full sweep's exact best is not always kept here: with a tiny CNN on digits at W2A2 the
    # eight methods' full-sweep means lie within about 3 points, and one seed on a 287-image
    # validation split does not order them (a slow starter such as DGMS is last at 1 epoch and
    # best at 4). What successive halving must keep is a method as good as the best within that
    # noise: a finalist whose full-sweep mean is within 2 points of the best's.
    assert max(mean[f] for f in finalists) >= mean[best] - 2.0, (mean, finalists)
    assert s["steps"]["total"] < 0.5 * s["steps"]["full_sweep"], s["steps"]
    assert s["steps"]["total"] <= planned_steps(len(names), schedule, suite, advice.steps_per_epoch["screen"],
                                                advice.steps_per_epoch["full"])[0]
    assert "mymodels:tiny_cnn" in DOC.read_text()
