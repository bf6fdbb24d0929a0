"""The coverage registry: the identity property on every model, methods on every model, the doc."""
from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import torch

from qbench.models import create_model
from qbench.models.coverage import MATRIX_HEADING, REGISTRY, XFAILS, get, registry_markdown, xfail_reason
from qbench.plugin.catalog import get_catalog
from qbench.train.coverage import STAGES, build, identity_check, inputs, method_check

ROOT = Path(__file__).resolve().parent.parent
NAMES = [m.name for m in REGISTRY]
FAMILIES_REQUIRED = ("ResNet", "ResNetV2", "MobileNetV2", "MobileNetV3", "EfficientNet", "EfficientNet (tf_)",
                     "ConvNeXt", "RegNet", "DenseNet", "ViT", "DeiT", "Swin", "MLP-Mixer", "GhostNet", "RepVGG",
                     "MobileViT", "LeViT", "PoolFormer", "EfficientFormer", "FastViT", "Inception", "HRNet", "DLA")


def test_the_registry_covers_20_architectures_across_the_families() -> None:
    assert len(set(NAMES)) == len(NAMES) >= 20
    families = {m.family for m in REGISTRY}
    missing = [f for f in FAMILIES_REQUIRED if not any(fam.startswith(f) for fam in families)]
    assert not missing


def test_every_xfail_names_a_registry_model_and_gives_its_reason() -> None:
    for (model, method), reason in XFAILS.items():
        assert model == "*" or model in NAMES
        assert method and reason.strip() and len(reason) > 15
        assert xfail_reason(model, method) == reason


@pytest.mark.parametrize("name", NAMES)
def test_identity_quantizers_give_the_fp_output_bit_for_bit(name: str) -> None:
    """The core property: every Conv2d/Linear quantized with identity quantizers, own forwards kept."""
    assert identity_check(get(name)) == 0.0


@pytest.mark.parametrize("name", ["vit_tiny_patch16_224", "swin_tiny_patch4_window7_224", "levit_128s",
                                  "mobilevit_xxs", "efficientformerv2_s0"])
def test_identity_holds_with_quantized_attention(name: str) -> None:
    assert identity_check(get(name), attention="quantized") < 1e-4


def test_levit_deep_copies_after_an_eval_forward() -> None:
    model = build(get("levit_128s")).eval()
    model(inputs(get("levit_128s")))  # fills the attention-bias cache, outside no_grad
    copy.deepcopy(model)
    again = create_model("efficientformerv2_s0", 10, 3, img_size=64).eval()
    again(torch.randn(1, 3, 64, 64))
    copy.deepcopy(again)


@pytest.mark.parametrize("name", ["tf_efficientnet_b0", "resnetv2_50x1_bit", "levit_128s"])
def test_models_with_conv2dsame_stdconv_or_a_bias_cache_run_with_lsq(name: str) -> None:
    """tf_efficientnet (Conv2dSame), resnetv2 (StdConv2d), levit (bias cache) through lsq."""
    catalog = get_catalog()
    if "lsq" not in catalog.methods:
        pytest.skip("qbench-lsq is not installed")
    res = method_check(get(name), "lsq", catalog)
    assert all(res[s] == "ok" for s in STAGES), res


@pytest.mark.parametrize("name", NAMES)
def test_the_toy_method_runs_on_every_model(name: str, catalog) -> None:
    res = method_check(get(name), "toy", catalog)
    assert all(res[s] == "ok" for s in STAGES), res


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("QBENCH_ZOO_CHECK") != "1",
                    reason="about an hour on 2 cores: set QBENCH_ZOO_CHECK=1 (or run `qbench models --check`)")
@pytest.mark.parametrize("name", NAMES)
def test_every_installed_method_on_every_model(name: str) -> None:
    catalog = get_catalog()
    failures = {}
    for entry in catalog.methods.entries():
        if entry.obj.reference:
            continue
        res = method_check(get(name), entry.name, catalog)
        passed = all(res[s] == "ok" for s in STAGES)
        reason = xfail_reason(name, entry.name)
        if passed == bool(reason):
            failures[entry.name] = reason and "passes although listed as xfail" or res
    assert not failures


def test_docs_models_md_is_generated_from_the_registry() -> None:
    doc = (ROOT / "docs" / "models.md").read_text()
    top, heading, matrix = doc.partition(MATRIX_HEADING)
    assert top == registry_markdown() + "\n", "regenerate: qbench models --check --doc docs/models.md"
    assert heading, "docs/models.md has no measured matrix"
    first_table = matrix.split("\n## ")[0]
    rows = [line.split("|")[1].strip().strip("`") for line in first_table.splitlines() if line.startswith("| `")]
    assert rows == NAMES, "the matrix is not of the current registry: qbench models --check --doc docs/models.md"


def test_qbench_models_lists_and_checks(capsys) -> None:
    from qbench.cli import main

    main(["models"])
    assert "resnetv2_50x1_bit" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["models", "--check", "--model", "resnet_typo"])
    assert exc.value.code == 2
    if "lsq" in get_catalog().methods:
        main(["models", "--check", "--method", "lsq", "--model", "resnet20"])
        assert "| `resnet20` | exact | ok |" in capsys.readouterr().out


def test_the_zoo_suite_plans_and_every_model_builds_for_its_data() -> None:
    """Dry run only: the zoo leaderboard is not run in the tests (it trains 7 models x every method)."""
    import subprocess
    import sys

    from qbench.run.suite import load_suite

    suite = load_suite(str(ROOT / "qbench" / "suites" / "zoo.toml"), {})
    assert len(suite.models) >= 6 and suite.seeds == (0,) and suite.attention == "fp"
    assert set(suite.methods) == {"fp32", "lsq", "adq", "bwrf", "adaqat", "dgms", "asq"}  # zoo.toml's list
    for m in suite.models:
        model = create_model(m.name, 10, 1, **m.kwargs).eval()
        with torch.no_grad():
            assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10), m.label
    res = subprocess.run([sys.executable, str(Path(__file__).parent / "run_cli_with_toy.py"), "run", "--suite",
                          "zoo", "--method", "fp32,toy", "--dry-run", "--workspace", "/nonexistent/ws"], capture_output=True, text=True,
                         timeout=120, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr
    assert "Suite zoo v1" in res.stdout and "plan (dry run)" in res.stdout


def test_the_check_runs_models_in_worker_processes_and_keeps_the_registry_order(tmp_path: Path) -> None:
    """`--jobs 2`: two spawned workers; the table keeps the registry's order whatever ends first."""
    import subprocess
    import sys

    if "lsq" not in get_catalog().methods:
        pytest.skip("qbench-lsq is not installed")
    doc = tmp_path / "models.md"
    picked = ["resnet20", "regnetx_002", "resnet18"]  # not in registry order
    res = subprocess.run([sys.executable, "-m", "qbench.cli", "models", "--check", "--method", "lsq", "--model",
                          ",".join(picked), "--jobs", "2", "--doc", str(doc)], capture_output=True, text=True,
                         timeout=900, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr
    assert "[3/3, " in res.stderr  # progress names how far the check is
    matrix = doc.read_text().partition(MATRIX_HEADING)[2]
    rows = [line.split("|")[1].strip().strip("`") for line in matrix.splitlines() if line.startswith("| `")]
    assert rows == [n for n in NAMES if n in picked]
    assert all(line.endswith("| exact | ok |") for line in matrix.splitlines() if line.startswith("| `"))
