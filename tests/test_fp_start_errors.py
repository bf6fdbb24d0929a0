"""FP starting points: every wrong file, path or option is refused with the thing, the problem and the fix."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from qbench.errors import QbenchError
from qbench.models import create_model
from qbench.models.pretrained import load_weights
from qbench.plugin.catalog import Catalog
from qbench.run.fpstart import load_fp_file, resolve_fp_files, with_fp_checkpoints
from qbench.run.harness import Harness
from qbench.run.plan import plan_jobs
from qbench.run.suite import parse_suite
from qbench.run.workspace import Workspace
from qbench.testing import tiny_suite

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

RUNNER = Path(__file__).parent / "run_cli_with_toy.py"


def state_of(width: int = 4, num_classes: int = 10, in_chans: int = 1) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return create_model("resnet20", num_classes, in_chans, width=width).state_dict()


def save(path: Path, state: dict[str, torch.Tensor]) -> Path:
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


def load_into_resnet20(path: Path, fmt: str = "safetensors") -> None:
    load_weights(create_model("resnet20", 10, 1, width=4), "resnet20", "resnet20", {"width": 4}, path, fmt, 10, 1)


def suite_with(tmp_path: Path, line: str, **kw: object) -> Path:
    p = tmp_path / "s.toml"
    p.write_text(tiny_suite(**kw).replace('name = "resnet20"\n', f'name = "resnet20"\n{line}\n', 1))  # type: ignore[arg-type]
    return p


def error_of(fn: object, *args: object, **kw: object) -> str:
    with pytest.raises(QbenchError) as exc:
        fn(*args, **kw)  # type: ignore[operator]
    return " ".join(str(exc.value).split())


@pytest.mark.parametrize("change, expected", [
    (lambda s: {**s, "conv1.weight": torch.zeros(8, 1, 3, 3)},
     "'conv1.weight' has shape (8, 1, 3, 3) in the file and (4, 1, 3, 3) in the model"),
    (lambda s: {k: v for k, v in s.items() if k != "bn1.running_var"},
     "'bn1.running_var' is missing from the file (the model has it, shape (4,))"),
    (lambda s: {**s, "extra.weight": torch.zeros(2)}, "'extra.weight' is in the file but not in the model"),
])
def test_keys_or_shapes_that_do_not_fit_name_the_first_mismatch(tmp_path: Path, change: object, expected: str) -> None:
    path = save(tmp_path / "w.safetensors", change(state_of()))  # type: ignore[operator]
    msg = error_of(load_into_resnet20, path)
    assert expected in msg and "does not fit model resnet20 (10 classes, 1 input channels)" in msg
    assert str(path) in msg and "Fix: give the weights of this exact model" in msg


def test_a_head_for_other_classes_is_refused_not_replaced(tmp_path: Path) -> None:
    path = save(tmp_path / "w.safetensors", state_of(num_classes=1000))
    msg = error_of(load_into_resnet20, path)
    assert "'fc.weight' has shape (1000, 16) in the file and (10, 16) in the model" in msg
    assert "qbench does not replace a pretrained head" in msg and "trained on this dataset's classes" in msg


def test_timm_format_errors(tmp_path: Path) -> None:
    import timm

    pth = tmp_path / "r18.pth"
    torch.save(timm.create_model("resnet18", num_classes=1000).state_dict(), pth)
    msg = error_of(load_weights, create_model("resnet18", 10, 1), "resnet18", "resnet18", {}, pth, "timm", 10, 1)
    assert "'conv1.weight' has shape (64, 3, 7, 7) in the file and (64, 1, 7, 7) in the model" in msg
    # qbench's own CIFAR ResNets have no timm pretrained path: the message says which format reads them
    path = save(tmp_path / "w.safetensors", state_of())
    msg = error_of(load_into_resnet20, path, "timm")
    assert "timm could not load" in msg and "fp_checkpoint_format = \"safetensors\"" in msg
    # a torch file holding more than tensors is never unpickled
    torch.save({"state_dict": state_of(), "why": Path("x")}, pth)
    msg = error_of(load_into_resnet20, pth, "timm")
    assert "cannot be read safely" in msg and "weights_only=True" in msg


def test_wrong_formats_are_refused_when_the_run_is_planned(catalog: Catalog, tmp_path: Path) -> None:
    (tmp_path / "junk.safetensors").write_text("not a safetensors file")
    msg = error_of(plan_jobs, catalog, str(suite_with(tmp_path, 'fp_checkpoint = "junk.safetensors"')))
    assert "is not a readable safetensors file" in msg and "junk.safetensors" in msg
    (tmp_path / "w.pth").write_text("not a zip")
    msg = error_of(plan_jobs, catalog, str(suite_with(tmp_path, 'fp_checkpoint = "w.pth"')))
    assert "neither a .safetensors file nor a torch checkpoint" in msg
    msg = error_of(plan_jobs, catalog, str(suite_with(tmp_path, 'fp_checkpoint = "w.pth"\n'
                                                                'fp_checkpoint_format = "safetensors"')))
    assert "format 'safetensors' needs a .safetensors file" in msg


def test_missing_files_and_unset_variables(catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    msg = error_of(plan_jobs, catalog, str(suite_with(tmp_path, 'fp_checkpoint = "nope.safetensors"')))
    assert f"FP checkpoint file '{tmp_path / 'nope.safetensors'}'" in msg and "does not exist" in msg
    assert "--fp-checkpoint resnet20=FILE" in msg
    monkeypatch.delenv("QBENCH_TEST_W", raising=False)
    suite = suite_with(tmp_path, 'fp_checkpoint = "${QBENCH_TEST_W}/w.safetensors"')
    msg = error_of(plan_jobs, catalog, str(suite))
    assert "uses $QBENCH_TEST_W, which is not set" in msg and "export QBENCH_TEST_W=DIR" in msg
    save(tmp_path / "w.safetensors", state_of())
    monkeypatch.setenv("QBENCH_TEST_W", str(tmp_path))
    _, jobs = plan_jobs(catalog, str(suite))
    assert jobs[0].model.fp_file == str(tmp_path / "w.safetensors")


def test_a_file_changed_or_gone_after_planning(catalog: Catalog, tmp_path: Path) -> None:
    path = save(tmp_path / "w.safetensors", state_of())
    _, jobs = plan_jobs(catalog, str(suite_with(tmp_path, f'fp_checkpoint = "{path}"')))
    model = create_model("resnet20", 10, 1, width=4)
    save(path, state_of(num_classes=10) | {"fc.bias": torch.ones(10)})
    assert "changed since the run was planned" in error_of(load_fp_file, model, jobs[0].model, 10, 1)
    path.unlink()
    assert "is gone since the run was planned" in error_of(load_fp_file, model, jobs[0].model, 10, 1)


def test_a_file_that_does_not_fit_fails_its_jobs_with_the_reason(catalog: Catalog, tmp_path: Path) -> None:
    path = save(tmp_path / "w.safetensors", state_of(width=8))
    suite, jobs = plan_jobs(catalog, str(suite_with(tmp_path, f'fp_checkpoint = "{path}"', methods=("fp32", "toy"))))
    rows = Harness(catalog, Workspace(tmp_path / "ws")).run(suite, jobs)
    assert [r["status"] for r in rows] == ["failed", "failed"]
    assert all("QbenchError: FP checkpoint" in r["reason"] and "'conv1.weight'" in r["reason"] for r in rows)
    assert all(r["fp_checkpoint_sha256"] == jobs[0].model.fp_sha256 for r in rows)


def test_suite_entries_are_checked() -> None:
    base = tomllib.loads(tiny_suite())
    for entry, expected in [
        ({"fp_checkpoint": "w.safetensors", "fp": {"lr": 0.1}}, "has both fp (a recipe to train the FP model)"),
        ({"fp_checkpoint": "w.safetensors", "fp_checkpoint_format": "onnx"}, "'onnx' is not a format"),
        ({"fp_checkpoint_format": "timm"}, "fp_checkpoint_format is set without fp_checkpoint"),
        ({"fp_checkpoint": 3}, "fp_checkpoint must be a file path"),
        ({"fp_chekpoint": "w"}, "Did you mean 'fp_checkpoint'"),
    ]:
        raw = {**base, "models": [{"name": "resnet20", **entry}]}
        assert expected in error_of(parse_suite, raw)
    raw = {**base, "models": [{"name": "resnet20", "fp_checkpoint": "w.pth"}]}
    assert parse_suite(raw).models[0].fp_checkpoint_format == "timm"  # a torch file is timm's to read
    assert parse_suite(base).recipe() == parse_suite(tomllib.loads(tiny_suite())).recipe()


def test_command_line_values_name_a_model_of_the_run(tmp_path: Path) -> None:
    path = save(tmp_path / "w.safetensors", state_of())
    two = parse_suite({**tomllib.loads(tiny_suite()), "models": [{"name": "resnet20"},
                                                                   {"name": "resnet20", "alias": "wide"}]})
    msg = error_of(with_fp_checkpoints, two, [str(path)])
    assert "names no model, and this run has 2 (resnet20, wide)" in msg and "MODEL=FILE" in msg
    msg = error_of(with_fp_checkpoints, two, [f"vit={path}"])
    assert "'vit' is not a model of this run (resnet20, wide)" in msg
    suite = resolve_fp_files(with_fp_checkpoints(two, [f"wide={path}"]))
    assert [m.fp_sha256 != "" for m in suite.models] == [False, True]
    res = subprocess.run([sys.executable, str(RUNNER), "run", "--model", "resnet20,vit-micro", "--fp-checkpoint",
                          str(path), "--dry-run", "--workspace", str(tmp_path / "ws")], capture_output=True,
                         text=True, timeout=120, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert res.returncode == 2 and "names no model, and this run has 2" in " ".join(res.stderr.split())
    assert "Traceback" not in res.stderr
