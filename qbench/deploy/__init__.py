"""Deploy what was trained: keep each job's model, export it to ONNX, check it in onnxruntime.

* :func:`keep_and_check` is the harness's hook: it keeps the job's trained model in the workspace
  (:mod:`qbench.deploy.store`) and, when the ``deploy`` extra (onnx, onnxruntime) is installed,
  exports it and adds the parity fields to the row; without the extra the fields are absent.
  Then what the deployed model costs: it is timed in onnxruntime beside the job's FP32 model
  (:func:`fp32_onnx`), with its memory and file size (:mod:`~.latency`).
* :func:`export_model` builds the three deployables (:mod:`~.analyze`, :mod:`~.graph`,
  :mod:`~.pack`); :func:`write` puts them in a directory: model.onnx, weights.safetensors,
  manifest.json.
"""
from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from qbench.atomic import atomic_write_bytes, atomic_write_text
from qbench.data.bundle import DataBundle, first_batch, iterate_batches

PROBE_BATCH = 256


def available() -> bool:
    """True when the ``deploy`` extra (onnx, onnxruntime) is installed."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class Exported:
    plans: list[Any]
    onnx: bytes
    tensors: dict[str, Tensor]
    manifest: dict[str, Any]
    integer_ops: dict[str, int]
    session: Any

    @property
    def packed_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors.values())


def export_model(model: nn.Module, probe: Tensor, info: dict[str, Any] | None = None,
                 threads: int | None = None) -> Exported:
    """Export a trained quantized model (any device; exported from a CPU copy). ``probe``: a test
    batch the activation quantizers are probed on; ``threads``: onnxruntime's (default torch's)."""
    from qbench.deploy.analyze import plan_model
    from qbench.deploy.graph import OPSET, deploy_model, to_onnx
    from qbench.deploy.pack import manifest, packed_tensors
    from qbench.deploy.parity import integer_ops, session

    cpu = copy.deepcopy(model).cpu().eval()
    probe = probe.cpu()
    plans = plan_model(cpu, probe)
    blob = to_onnx(deploy_model(cpu, plans), probe[:2])
    tensors = packed_tensors(cpu, plans)
    sess, ops = session(blob, threads or torch.get_num_threads())
    ints = integer_ops(ops)
    n_int = sum(p.integer for p in plans)
    head = {**(info or {}), "format": "qbench-deploy/1", "onnx_opset": OPSET, "input": "input", "output": "logits",
            "integer_layers": n_int, "quantized_layers": len(plans), "onnxruntime_integer_ops": ints,
            "packed_kb": sum(t.numel() * t.element_size() for t in tensors.values()) / 1024}
    return Exported(plans, blob, tensors, manifest(plans, cpu, head), ints, sess)


def write(exp: Exported, out_dir: Path | str) -> Path:
    """model.onnx, weights.safetensors and manifest.json in ``out_dir``."""
    from safetensors.torch import save

    from qbench.deploy.pack import dumps

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "model.onnx", exp.onnx)
    atomic_write_bytes(out / "weights.safetensors", save(exp.tensors, metadata={"format": "qbench-deploy/1"}))
    atomic_write_text(out / "manifest.json", dumps(exp.manifest))
    return out


def scheme_summary(plans: list[Any]) -> str:
    """e.g. ``W uniform x18, A uniform x18, integer x18``."""
    def count(items: list[str]) -> str:
        return ", ".join(f"{k} x{items.count(k)}" for k in sorted(set(items)))
    w = count([p.weight.scheme if p.weight is not None else "fp32" for p in plans])
    a = count([p.act.scheme if p.act.scheme != "none" else "fp32" for p in plans])
    return f"W {w}; A {a}; integer ops x{sum(p.integer for p in plans)}"


def parity_fields(exp: Exported, model: nn.Module, data: DataBundle, top1: float | None = None) -> dict[str, Any]:
    """The row's deploy_* fields: onnxruntime against qbench on the full test split."""
    from qbench.deploy.parity import OUTLIER_FRACTION, compare, float64_self_check, verdict

    device = next(model.parameters()).device
    cmp = compare(model, exp.session, iterate_batches(data.test, PROBE_BATCH, shuffle=False, device=device))
    if cmp["outliers"] > OUTLIER_FRACTION * cmp["n"]:  # a flag: measure the model's own float rounding
        cmp["float64"] = float64_self_check(model, iterate_batches(data.test, PROBE_BATCH, shuffle=False,
                                                                   device=device), cmp["tol"])
    out = verdict(cmp, top1)
    out.update({"deploy_integer_kernels": bool(exp.integer_ops), "deploy_scheme": scheme_summary(exp.plans),
                "deploy_size_kb": round(exp.packed_bytes / 1024, 4)})
    exp.manifest["parity"] = {**out, "qbench_top1": cmp["top1"], "test_samples": cmp["n"],
                              "prediction_flips": cmp["flips"]}
    return out


#: FP32 model.onnx bytes by FP key: the jobs of one FP checkpoint in a process export it once
_FP_ONNX: dict[str, bytes] = {}
_FP_ONNX_KEPT = 8


def fp32_onnx(model: nn.Module, probe: Tensor, key: str | None = None) -> bytes:
    """An FP model (the job's FP checkpoint) exported as the quantized one is (:func:`export_model`'s
    graph with no quantized layer): the reference the deployed model is timed against."""
    from qbench.deploy.graph import deploy_model, to_onnx

    if key is not None and key in _FP_ONNX:
        return _FP_ONNX[key]
    blob = to_onnx(deploy_model(copy.deepcopy(model).cpu().eval(), []), probe[:2].cpu())
    if key is not None:
        while len(_FP_ONNX) >= _FP_ONNX_KEPT:
            _FP_ONNX.pop(next(iter(_FP_ONNX)))
        _FP_ONNX[key] = blob
    return blob


def latency_fields(exp: Exported, fp_model: nn.Module, probe: Tensor, threads: int,
                   fp_key: str | None = None, protocol: Any = None) -> dict[str, Any]:
    """The row's deployed-cost fields: ``exp`` timed against ``fp_model`` on ``probe`` (see
    :mod:`qbench.deploy.latency`), the FP32 export included in ``deploy_latency_s``."""
    import time

    from qbench.deploy.latency import Protocol, measure

    t0 = time.perf_counter()
    fp = fp32_onnx(fp_model, probe, fp_key)
    res = measure(exp.onnx, fp, probe, protocol or Protocol(threads=threads, batches=(1, PROBE_BATCH)))
    res.seconds = time.perf_counter() - t0
    return res.fields()


def keep_and_check(root: Path | str, job: Any, model: nn.Module, data: DataBundle,
                   metrics: dict[str, Any], fp_model: nn.Module | None = None) -> dict[str, Any]:
    """The harness's hook after a job's evaluation: keep the model; the deploy fields when the
    extra is installed, and with ``fp_model`` (the job's FP checkpoint) the deployed cost, timed
    at the recipe's threads. Never fails the job: a failed export is a flagged row, a failed
    timing a row without the cost fields."""
    from qbench.deploy.store import save_trained

    try:
        save_trained(root, job, model, data.num_classes, data.in_chans)
    except Exception as exc:  # a full disk must not lose the row
        warnings.warn(f"qbench: could not keep the trained model of {job.label}: {exc}", stacklevel=2)
    if not available():
        return {}
    try:
        from qbench.deploy.parity import session_threads

        probe = first_batch(data.test, PROBE_BATCH)[0]
        exp = export_model(model, probe, {"job_key": job.key},
                           threads=session_threads(next(model.parameters()).device))
        out = parity_fields(exp, model, data, metrics.get("top1"))
    except Exception as exc:
        return {"deploy_ok": False, "deploy_reason": f"export failed: {type(exc).__name__}: {str(exc)[:300]}"}
    if fp_model is not None:
        try:
            out.update(latency_fields(exp, fp_model, probe, job.suite.threads, job.fp_key))
        except Exception as exc:  # the parity fields stand; the cost is left unmeasured
            warnings.warn(f"qbench: could not time the deployed model of {job.label}: {type(exc).__name__}: {exc}",
                          stacklevel=2)
    return out
