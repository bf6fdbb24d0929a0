"""FP starting points: a model starts from a file of FP weights (no FP epochs), keyed by its hash."""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

from qbench import hookimpl
from qbench.data.digits import load_digits
from qbench.models import create_model
from qbench.plugin.catalog import Catalog
from qbench.run.harness import Harness
from qbench.run.plan import plan_jobs
from qbench.run.workspace import Workspace
from qbench.testing import tiny_suite, write_image_folder
from qbench.train.loop import evaluate

RUNNER = Path(__file__).parent / "run_cli_with_toy.py"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def with_start(toml: str, line: str) -> str:
    """The suite's TOML with ``line`` added to its (only) model entry."""
    return toml.replace('name = "resnet20"\n', f'name = "resnet20"\n{line}\n', 1)


class EpochLog:
    """A lifecycle-hook plugin recording the phase of every finished epoch."""

    def __init__(self) -> None:
        self.phases: list[str] = []

    @hookimpl
    def qbench_after_epoch_completed(self, job: Any, phase: str, epoch: int, metrics: dict[str, Any]) -> None:
        self.phases.append(phase)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """A real FP checkpoint: the tiny suite's, trained for 2 epochs (its file and its FP32 top-1)."""
    from toy_plugin import toy_catalog

    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("trained")
    suite = tmp / "tiny.toml"
    suite.write_text(tiny_suite(methods=("fp32",)))
    cat = toy_catalog()
    _, jobs = plan_jobs(cat, str(suite))
    rows = Harness(cat, Workspace(tmp / "ws")).run(jobs[0].suite, jobs)
    assert rows[0]["status"] == "ok" and "fp_checkpoint" not in rows[0]
    return Workspace(tmp / "ws").fp_path(jobs[0].fp_key), rows[0]["top1"]


def test_a_suite_starts_from_a_saved_checkpoint_with_no_fp_epochs(trained: tuple[Path, float], catalog: Catalog,
                                                                    tmp_path: Path) -> None:
    ckpt, trained_top1 = trained
    start = tmp_path / "start.safetensors"
    shutil.copy(ckpt, start)
    suite_file = tmp_path / "from-file.toml"  # a relative path is found beside the suite file
    suite_file.write_text(with_start(tiny_suite(methods=("fp32", "toy")), 'fp_checkpoint = "start.safetensors"'))
    suite, jobs = plan_jobs(catalog, str(suite_file))
    fp_cfg = jobs[0].fp_config()
    assert fp_cfg["fp_checkpoint"] == {"sha256": sha256(start), "format": "safetensors"}
    assert "fp" not in fp_cfg and "seed" not in fp_cfg  # the file defines the FP model, not a recipe
    assert len({j.fp_key for j in jobs}) == 1

    log = EpochLog()
    catalog.pm.register(log, name="epoch-log")
    rows = {r["method"]: r for r in Harness(catalog, Workspace(tmp_path / "ws")).run(suite, jobs)}
    assert log.phases and set(log.phases) == {"qat"}  # QAT trained; no FP epoch ran
    fp_row, toy_row = rows["fp32"], rows["toy"]
    assert fp_row["status"] == toy_row["status"] == "ok", (fp_row.get("reason"), toy_row.get("reason"))
    # the FP row evaluates the file: the trained run's number, and evaluating the file here
    model = create_model("resnet20", 10, 1, width=4)
    model.load_state_dict(load_file(str(start)))
    assert fp_row["top1"] == trained_top1 == evaluate(model, load_digits())["top1"] > 50
    assert fp_row["fp_checkpoint"] == str(start.resolve()) and fp_row["fp_checkpoint_sha256"] == sha256(start)
    assert toy_row["fp_top1"] == fp_row["top1"] and toy_row["fp_key"] == fp_row["fp_key"] == jobs[0].fp_key
    meta = json.loads(Workspace(tmp_path / "ws").fp_path(jobs[0].fp_key).with_suffix(".json").read_text())
    assert meta["fp_epochs"] == 0 and meta["fp_checkpoint_sha256"] == sha256(start)

    # another file (one weight changed) is another FP checkpoint and other QAT jobs
    state = load_file(str(start))
    state["fc.bias"] = state["fc.bias"] + 1e-3
    save_file(state, str(start))
    _, changed = plan_jobs(catalog, str(suite_file))
    assert changed[0].fp_config()["fp_checkpoint"]["sha256"] == sha256(start)
    assert {j.fp_key for j in changed}.isdisjoint(j.fp_key for j in jobs)
    assert {j.key for j in changed}.isdisjoint(j.key for j in jobs)


def test_seeds_share_the_file_start_and_keep_their_own_jobs(trained: tuple[Path, float], catalog: Catalog,
                                                            tmp_path: Path) -> None:
    suite_file = tmp_path / "s.toml"
    suite_file.write_text(with_start(tiny_suite(methods=("fp32", "toy"), seeds=(0, 1)),
                                     f'fp_checkpoint = "{trained[0]}"'))
    _, jobs = plan_jobs(catalog, str(suite_file))
    assert len({j.fp_key for j in jobs}) == 1 and len({j.key for j in jobs}) == len(jobs) == 4
    # without a file the same suite trains per seed, with the keys it always had
    plain = tmp_path / "plain.toml"
    plain.write_text(tiny_suite(methods=("fp32", "toy"), seeds=(0, 1)))
    _, trained_jobs = plan_jobs(catalog, str(plain))
    assert len({j.fp_key for j in trained_jobs}) == 2
    assert all(set(j.fp_config()) == {"dataset", "model", "seed", "fp", "runtime"} for j in trained_jobs)
    assert all("seed" not in j.config() and "fp_checkpoint" not in j.suite.recipe()["models"][0]
               for j in trained_jobs)


def test_a_file_is_hashed_once_per_path_size_and_mtime(tmp_path: Path) -> None:
    """What "once per run, not once per job" rests on: the hash is kept for the file's path, size
    and mtime, so planning many jobs (and loading in this process) reads the file once."""
    import os

    from qbench.run.fpstart import file_sha256

    path = tmp_path / "w.bin"
    path.write_bytes(bytes(range(256)) * 4096)
    first, st = file_sha256(path), path.stat()
    assert first == sha256(path)
    data = bytearray(path.read_bytes())
    data[-1] ^= 1  # same size; the mtime put back: the kept hash is used, the file not read
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert file_sha256(path) == first != sha256(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # a new mtime: hashed again
    assert file_sha256(path) == sha256(path) != first


def test_a_timm_torch_file_given_on_the_command_line(catalog: Catalog, tmp_path: Path) -> None:
    """A torch .pth (read with weights_only=True) through timm's pretrained path, for a timm model."""
    import timm

    torch.manual_seed(3)
    src = timm.create_model("resnet18", num_classes=10, in_chans=1)
    pth = tmp_path / "resnet18.pth"
    torch.save({"state_dict": src.state_dict()}, pth)  # timm's reader unwraps a "state_dict" entry
    suite_file = tmp_path / "s.toml"
    suite_file.write_text(tiny_suite(methods=("fp32",), width=None).replace("resnet20", "resnet18"))
    suite, jobs = plan_jobs(catalog, str(suite_file), fp_checkpoints=[str(pth)])
    assert jobs[0].model.fp_checkpoint_format == "timm" and jobs[0].model.fp_sha256 == sha256(pth)
    [row] = Harness(catalog, Workspace(tmp_path / "ws")).run(suite, jobs)
    assert row["status"] == "ok", row.get("reason")
    assert row["top1"] == evaluate(src, load_digits())["top1"] and row["fp_checkpoint_sha256"] == sha256(pth)


def qbench(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(RUNNER), *args], capture_output=True, text=True, timeout=600,
                          env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", **(env or {})})


def test_the_imagenet_suite_starts_from_timm_pretrained_resnet18(tmp_path: Path) -> None:
    import timm

    data = write_image_folder(tmp_path / "imagenet", size=32)  # 4 classes
    weights = tmp_path / "weights"
    weights.mkdir()
    src = timm.create_model("resnet18", num_classes=4)
    with torch.no_grad():  # a head that always says "eel": top-1 25 %, never a random model's by chance
        src.fc.weight.zero_()
        src.fc.bias.copy_(torch.tensor([0.0, 0.0, 5.0, 0.0]))
    file = weights / "resnet18.tv_in1k.safetensors"
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(file))
    env = {"QBENCH_WEIGHTS": str(weights)}
    common = ("--suite", "imagenet", "--data-dir", str(data), "--workspace", str(tmp_path / "ws"))

    res = qbench("run", *common, "--dry-run", env=env)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "Suite imagenet v2" in out and "FP checkpoints (dry run)" in out
    assert f"file {file} (timm, sha256 {sha256(file)}): 0 FP epochs" in out

    res = qbench("run", *common, "--dry-run")  # where the file is must be said
    assert res.returncode == 2 and "QBENCH_WEIGHTS" in res.stderr and "imagenet.toml" in res.stderr
    assert "Traceback" not in res.stderr

    other = tmp_path / "other.safetensors"
    save_file({k: v.contiguous() * 2 for k, v in src.state_dict().items()}, str(other))
    res = qbench("run", *common, "--dry-run", "--fp-checkpoint", f"resnet18={other}")
    assert res.returncode == 0, res.stderr
    assert f"file {other} (timm, sha256 {sha256(other)}): 0 FP epochs" in res.stdout

    res = qbench("run", *common, "--method", "fp32", "--workers", "1", "--no-progress", env=env)
    assert res.returncode == 0, res.stderr
    [row] = Workspace(tmp_path / "ws").rows("imagenet")
    assert row["status"] == "ok" and row["top1"] == row["fp_top1"] == 25.0
    assert row["fp_checkpoint"] == str(file) and row["fp_checkpoint_sha256"] == sha256(file)
    assert row["fp_key"] in out and row["job_key"] in out  # the run did what the dry run planned

