"""The harness keeps each job's trained model, rows carry onnxruntime parity when the deploy extra
is installed (and nothing changes without it), and ``qbench export`` writes the deployables."""
from __future__ import annotations

import json
from pathlib import Path

import export_plugin
import pytest
import torch

from qbench.testing import tiny_suite

TINY_SUITE = tiny_suite(methods=("fp32", "toy"))  # the suite tests/conftest.py uses
from qbench.plugin.catalog import Catalog
from qbench.plugin.manager import get_plugin_manager
from qbench.run.harness import Harness
from qbench.run.plan import plan_jobs
from qbench.run.workspace import Workspace

DEPLOY_FIELDS = {"deploy_top1", "deploy_max_logit_diff", "deploy_logit_tol", "deploy_logit_outliers", "deploy_ok",
                 "deploy_reason", "deploy_integer_kernels", "deploy_scheme", "deploy_size_kb"}


@pytest.fixture
def xcatalog() -> Catalog:
    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(export_plugin, name="xp")
    return Catalog(pm)


def run(catalog: Catalog, tmp_path: Path, methods: list[str]) -> tuple[Workspace, dict[str, dict]]:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_SUITE)
    suite, jobs = plan_jobs(catalog, str(path), ["fp32", *methods], None, None, None, None)
    ws = Workspace(tmp_path / "ws")
    rows = Harness(catalog, ws).run(suite, jobs)
    assert all(r["status"] == "ok" for r in rows), [r.get("reason") for r in rows]
    return ws, {r["method"]: r for r in rows}


def test_rows_carry_parity_models_are_kept_and_export_writes_them(xcatalog: Catalog, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("onnxruntime")
    from qbench.cli import main
    from qbench.deploy.store import rebuild
    from qbench.train.loop import evaluate

    ws, rows = run(xcatalog, tmp_path, ["xu", "xwonly"])
    assert not DEPLOY_FIELDS & set(rows["fp32"])
    xu, wonly = rows["xu"], rows["xwonly"]
    for r in (xu, wonly):
        assert DEPLOY_FIELDS <= set(r), DEPLOY_FIELDS - set(r)
        assert abs(r["deploy_top1"] - r["top1"]) <= 0.1 and r["deploy_ok"], r["deploy_reason"]
    assert xu["deploy_size_kb"] == pytest.approx(xu["size_kb"], rel=0.02)
    # a per-channel LUT the quantizer never held (computed on the fly) ships on top of the audit's size
    assert wonly["deploy_size_kb"] > wonly["size_kb"]
    assert xu["deploy_integer_kernels"] and "integer ops x" in xu["deploy_scheme"]
    assert not wonly["deploy_integer_kernels"] and "W lut" in wonly["deploy_scheme"]
    # the trained model is kept and rebuilds to the row's top-1
    key = xu["job_key"]
    assert (ws.root / "models" / f"{key}.safetensors").exists()
    meta = json.loads((ws.root / "models" / f"{key}.json").read_text())
    assert meta["method"] == "xu" and meta["bits"] == "W4A4" and all(v == [4, 4] for v in meta["plan"].values())
    model, _ = rebuild(ws.root, key, xcatalog)
    data = xcatalog.datasets.get("digits").factory(None)
    assert evaluate(model, data)["top1"] == pytest.approx(xu["top1"])
    # qbench export, selected by filters, with this catalog
    monkeypatch.setattr("qbench.plugin.catalog.get_catalog", lambda *a, **k: xcatalog)
    out = tmp_path / "out"
    main(["export", "--suite", "tiny", "--method", "xu", "--workspace", str(ws.root), "-o", str(out)])
    assert {p.name for p in out.iterdir()} == {"model.onnx", "weights.safetensors", "manifest.json"}
    man = json.loads((out / "manifest.json").read_text())
    assert man["job_key"] == key and man["parity"]["deploy_ok"] and man["onnxruntime_integer_ops"]
    assert all(layer["integer_op"] for layer in man["layers"])
    import onnxruntime as ort

    sess = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    x = torch.from_numpy(data.test.tensors[0][:8].numpy())
    with torch.no_grad():
        ref = model(x).numpy()
    assert abs(sess.run(None, {"input": x.numpy()})[0] - ref).max() < 1e-3 * abs(ref).max() + 1e-5


def test_without_the_deploy_extra_rows_have_no_deploy_fields(xcatalog: Catalog, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("qbench.deploy.available", lambda: False)
    ws, rows = run(xcatalog, tmp_path, ["xu"])
    assert not DEPLOY_FIELDS & set(rows["xu"])
    assert (ws.root / "models" / f"{rows['xu']['job_key']}.safetensors").exists()
