"""Your model and your data without a plugin: --model pkg.module:factory and --data DIR|pkg.module:fn."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from qbench.errors import QbenchError
from qbench.plugin.catalog import Catalog
from qbench.run.plan import plan_jobs
from qbench.run.user import check_custom, load_data
from qbench.testing import tiny_suite
from qbench.testing.file_datasets import write_image_folder
from qbench.testing.user_code import write_user_module

DATA_SOURCE = '''
import torch
from torch.utils.data import TensorDataset


def splits():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(60, 1, 6, 6, generator=g), torch.arange(60) % 3
    return TensorDataset(x[:40], y[:40]), None, TensorDataset(x[40:], y[40:])
'''


@pytest.fixture
def user_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory holding the user's module and a 4-class image folder."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    write_user_module(tmp_path)
    (tmp_path / "mydata.py").write_text(DATA_SOURCE)
    sys.modules.pop("mydata", None)
    write_image_folder(tmp_path / "imgs", train_per_class=6, val_per_class=2, size=12)
    yield tmp_path
    for name in ("mymodels", "mydata"):
        sys.modules.pop(name, None)


@pytest.fixture
def suite_file(tmp_path: Path) -> str:
    p = tmp_path / "tiny.toml"
    p.write_text(tiny_suite(methods=("fp32", "toy")))
    return str(p)


def _plan(catalog: Catalog, suite: str, model: str, data: str | None = "imgs", **kw: object) -> tuple:
    s, jobs = plan_jobs(catalog, suite, ["toy"], [model], data=data, **kw)
    check_custom(catalog, s, Path("ws/cache"))
    return s, jobs


@pytest.mark.parametrize("model, message", [
    ("nomodule:fn", "no module named 'nomodule' on the Python path. Fix: run from the directory"),
    ("mymodels:nope", "module 'mymodels' has no attribute 'nope'. Fix: name one of its callables: not_a_model, "
                      "ten_classes, tiny_cnn, with_lstm"),
    ("mymodels:not_a_model", "returned a int, not a torch nn.Module. Fix: return the model itself"),
    ("mymodels:ten_classes", "outputs shape (2, 10), but the data has 4 classes. Fix: make its last layer output 4"),
    ("mymodels:with_lstm", "layer 'rnn' (LSTM) cannot be quantized by qbench: recurrent cells"),
])
def test_bad_models_are_one_line_naming_the_fix(catalog: Catalog, user_dir: Path, suite_file: str, model: str,
                                                message: str) -> None:
    with pytest.raises(QbenchError) as err:
        _plan(catalog, suite_file, model)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_bad_data_names_the_fix(catalog: Catalog, user_dir: Path, suite_file: str) -> None:
    with pytest.raises(QbenchError, match="neither a directory nor a reference"):
        _plan(catalog, suite_file, "mymodels:tiny_cnn", "nowhere")
    shutil.rmtree(user_dir / "imgs" / "val")
    with pytest.raises(QbenchError, match=r"no val/ or test/ folder beside train/\. Fix"):
        _plan(catalog, suite_file, "mymodels:tiny_cnn")
    with pytest.raises(QbenchError, match="not both"):
        plan_jobs(catalog, suite_file, ["toy"], datasets=["digits"], data="imgs")


def test_the_key_holds_the_model_source_and_the_folder_fingerprint(catalog: Catalog, user_dir: Path,
                                                                   suite_file: str) -> None:
    suite, jobs = _plan(catalog, suite_file, "mymodels:tiny_cnn")
    assert suite.name == "tiny-custom" and [j.method.name for j in jobs] == ["fp32", "toy"]
    key = jobs[1].key
    assert _plan(catalog, suite_file, "mymodels:tiny_cnn")[1][1].key == key  # nothing changed: the same job
    # the module edited (even below the factory): other jobs
    write_user_module(user_dir, source=(user_dir / "mymodels.py").read_text() + "\n# edited\n")
    edited = _plan(catalog, suite_file, "mymodels:tiny_cnn")[1][1].key
    assert edited != key
    # the folder moved: the same jobs (its fingerprint, not its path, is in the key); a file added: other jobs
    shutil.move(str(user_dir / "imgs"), str(user_dir / "moved"))
    assert _plan(catalog, suite_file, "mymodels:tiny_cnn", "moved")[1][1].key == edited
    shutil.copy(next((user_dir / "moved/train/cat").iterdir()), user_dir / "moved/train/cat/extra.JPEG")
    assert _plan(catalog, suite_file, "mymodels:tiny_cnn", "moved")[1][1].key != edited


def test_a_dataset_factory_is_keyed_by_its_source(catalog: Catalog, user_dir: Path, suite_file: str) -> None:
    suite, jobs = _plan(catalog, suite_file, "mymodels:tiny_cnn", "mydata:splits")
    assert suite.datasets[0].options == {"factory": "mydata:splits"} and suite.datasets[0].source
    bundle = load_data(catalog, suite.datasets[0], None, user_dir / "cache")
    assert (bundle.num_classes, bundle.in_chans, len(bundle.train), len(bundle.test)) == (3, 1, 40, 20)
    (user_dir / "mydata.py").write_text(DATA_SOURCE.replace("manual_seed(0)", "manual_seed(1)"))
    sys.modules.pop("mydata", None)
    assert _plan(catalog, suite_file, "mymodels:tiny_cnn", "mydata:splits")[1][1].key != jobs[1].key


def test_a_folder_and_a_timm_model_run_end_to_end(catalog: Catalog, user_dir: Path, suite_file: str) -> None:
    from qbench.run.harness import Harness
    from qbench.run.workspace import Workspace

    suite, jobs = _plan(catalog, suite_file, "mymodels:tiny_cnn")
    rows = Harness(catalog, Workspace(user_dir / "ws")).run(suite, jobs)
    assert [r["status"] for r in rows] == ["ok", "ok"], rows
    assert rows[1]["model"] == "mymodels:tiny_cnn" and rows[1]["dataset"] == "folder"
    assert rows[1]["dataset_hash"] == suite.datasets[0].source  # the fingerprint in the key is the data's

