"""The CIFAR-10 suites: the papers' ResNet-20 recipe (cifar10) and the short GPU track
(cifar10-fast), their augmentation, and their plans on a CIFAR-10 made here in the official
python format."""
from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from qbench.report.papers import load_papers
from qbench.run.suite import load_suite

SUITES = Path(__file__).parents[1] / "qbench" / "suites"


def write_tiny_cifar10(root: Path, n: int = 10) -> Path:
    """``root/cifar-10-batches-py`` with data_batch_1..5, test_batch and batches.meta pickles of
    ``n`` random 32x32 images each: what torchvision's loader reads, in a few kilobytes."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "wb") as f:
            pickle.dump({"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                         "labels": (np.arange(n) % 10).tolist()}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, f)
    return root


def test_cifar10_follows_the_apot_recipe_and_names_its_papers() -> None:
    s = load_suite(str(SUITES / "cifar10.toml"), {})
    assert s.version == 2 and [b.label for b in s.bits] == ["W4A4", "W3A3", "W2A2"] and s.seeds == (0, 1, 2)
    assert s.first_last == "8bit" and [m.name for m in s.models] == ["resnet20"]
    # APoT Appendix C.2: 200 epochs, batch 128, SGD momentum 0.9, lr 0.04, weight decay 1e-4
    q = s.qat
    assert (q.epochs, q.batch_size, q.optimizer, q.lr, q.momentum, q.weight_decay) == (200, 128, "sgd", 0.04, 0.9, 1e-4)
    f = s.fp
    assert (f.epochs, f.batch_size, f.lr, f.weight_decay) == (200, 128, 0.1, 5e-4)
    assert s.datasets[0].name == "cifar10" and s.datasets[0].options == {"augment": True}
    assert load_papers(SUITES / s.papers)
    text = (SUITES / "cifar10.toml").read_text()
    for source in ("Appendix C.2", "Table 2", "train_res20.sh", "RandomCrop(32, padding=4)"):
        assert source in text, f"the suite file no longer names its source {source!r}"


def test_the_fast_track_is_the_same_setting_trained_for_less() -> None:
    full = load_suite(str(SUITES / "cifar10.toml"), {})
    fast = load_suite(str(SUITES / "cifar10-fast.toml"), {})
    assert fast.name == "cifar10-fast" and fast.papers == full.papers
    assert (fast.first_last, fast.models, fast.datasets) == (full.first_last, full.models, full.datasets)
    assert fast.qat.epochs < full.qat.epochs and fast.fp.epochs < full.fp.epochs
    for phase in ("fp", "qat"):  # linear lr scaling with the batch, from the full recipe
        a, b = getattr(full, phase), getattr(fast, phase)
        assert b.lr / b.batch_size == pytest.approx(a.lr / a.batch_size)
    assert "ESTIMATE" in (SUITES / "cifar10-fast.toml").read_text()  # the GPU time is not a measurement


@pytest.mark.parametrize("augment", [True, False])
def test_the_suites_augmentation_option_reaches_the_loader(tmp_path: Path, augment: bool) -> None:
    import torchvision.transforms as T

    from qbench.plugin.catalog import get_catalog

    options = dict(load_suite(str(SUITES / "cifar10.toml"), {}).datasets[0].options)
    options = {**options, "verify_checksums": False} if augment else {"augment": False, "verify_checksums": False}
    factory = get_catalog().datasets.get("cifar10").factory  # as the harness calls it, with the entry's options
    b = factory(write_tiny_cifar10(tmp_path), **options)
    train = [type(t) for t in b.train.transform.transforms]
    assert (T.RandomCrop in train and T.RandomHorizontalFlip in train) is augment
    if augment:
        crop = next(t for t in b.train.transform.transforms if isinstance(t, T.RandomCrop))
        assert crop.size == (32, 32) and crop.padding == 4  # the papers' 4-pixel padding
    assert not {T.RandomCrop, T.RandomHorizontalFlip} & {type(t) for t in b.test.transform.transforms}


@pytest.mark.parametrize("suite, version", [("cifar10-fast", 1), ("cifar10", 2)])
def test_the_suite_plans_on_a_cifar10_directory(tmp_path: Path, suite: str, version: int) -> None:
    data = write_tiny_cifar10(tmp_path / "data")
    res = subprocess.run([sys.executable, "-m", "qbench.cli", "run", "--suite", suite, "--dry-run", "--data-dir",
                          str(data), "--workspace", str(tmp_path / "ws")], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    assert f"Suite {suite} v{version}" in res.stdout and "plan (dry run)" in res.stdout
    assert "cifar10/resnet20/fp32/fp32/seed0" in res.stdout


def test_a_composition_of_a_method_not_installed_is_left_out_not_an_error(catalog: Any) -> None:
    """cifar10 composes dgms (its own mixture lr); where the dgms plugin is absent (the toy catalog
    here) the suite still plans, and naming the composition is an unknown method."""
    from qbench.errors import UnknownNameError
    from qbench.run.jobs import select_methods, suite_methods

    suite = load_suite(str(SUITES / "cifar10.toml"), {})
    assert "dgms" in suite.compose and "dgms" not in catalog.methods
    methods = suite_methods(suite, catalog)
    assert "dgms" not in methods and "fp32" in methods
    with pytest.raises(UnknownNameError):
        select_methods(["dgms"], methods)
