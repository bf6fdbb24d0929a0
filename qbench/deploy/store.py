"""Each job's trained quantized model, kept in the workspace, and rebuilt from it.

    <workspace>/models/<job key>.safetensors   the trained model's state dict (quantizers included)
    <workspace>/models/<job key>.json          what rebuilds it: job key, suite, dataset, model and
                                               its kwargs, the method (quantizer names and their
                                               parameters) and the bits plan (layer -> [w, a])

Rebuilding: the timm model, then each planned layer quantized with the method's registered
quantizers at its planned bits (no allocator, no calibration), then the state dict, strictly.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from qbench.atomic import atomic_write_bytes, atomic_write_text
from qbench.contract.bits import LayerBits
from qbench.contract.quant.layers import quant_layers
from qbench.errors import QbenchError
from qbench.models import create_model
from qbench.train.surgery import quantize_model


def model_dir(root: Path | str) -> Path:
    return Path(root) / "models"


def bits_plan(model: nn.Module) -> dict[str, list[int | None]]:
    """Layer -> [weight bits, activation bits] of a quantized model (None: that side is FP)."""
    return {n: [m.wq.bits if m.wq is not None else None, m.aq.bits if m.aq is not None else None]
            for n, m in quant_layers(model)}


def save_trained(root: Path | str, job: Any, model: nn.Module, num_classes: int, in_chans: int) -> Path:
    """Write the job's trained model and its rebuild recipe; returns the safetensors path."""
    from safetensors.torch import save

    m = job.method
    meta = {
        "job_key": job.key, "suite": job.suite.name, "dataset": job.dataset.name,
        "dataset_options": dict(job.dataset.options), "seed": job.seed,
        "model": job.model.label, "model_name": job.model.name, "model_kwargs": dict(job.model.kwargs),
        "num_classes": num_classes, "in_chans": in_chans, "bits": job.bits.label,
        "method": m.name, "method_version": m.version, "weight_quantizer": m.weight_quantizer,
        "activation_quantizer": m.activation_quantizer, "weight_params": m.part_params("weight"),
        "activation_params": m.part_params("activation"), "plan": bits_plan(model),
    }
    state = {k: v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items() if torch.is_tensor(v)}
    extra = {k: v for k, v in model.state_dict().items() if not torch.is_tensor(v)}  # quantizers' extra state
    meta["extra_state"] = extra
    path = model_dir(root) / f"{job.key}.safetensors"
    atomic_write_text(path.with_suffix(".json"), json.dumps(meta, indent=1, default=str))
    atomic_write_bytes(path, save(state))
    return path


def load_meta(root: Path | str, key: str) -> dict[str, Any]:
    path = model_dir(root) / f"{key}.json"
    if not path.exists():
        raise QbenchError(f"No trained model for job {key} under {model_dir(root)}: rows written before models were "
                          "kept have none; rerun the job (delete its row) to keep it.")
    return json.loads(path.read_text())


def rebuild(root: Path | str, key: str, catalog: Any) -> tuple[nn.Module, dict[str, Any]]:
    """The trained model of job ``key`` (eval mode, CPU) and its meta."""
    from safetensors.torch import load_file

    meta = load_meta(root, key)
    state = load_file(str(model_dir(root) / f"{key}.safetensors"))
    state.update(meta.get("extra_state", {}))
    model = create_model(meta["model_name"], meta["num_classes"], meta["in_chans"], **meta["model_kwargs"])
    # the layers' trained weights first: a quantizer's constructor may read its layer
    model.load_state_dict({k: v for k, v in state.items() if k in model.state_dict()}, strict=False)

    def factory(name: str | None, params: dict[str, Any]):  # noqa: ANN202
        if not name:
            return None
        entry = catalog.quantizers.get(name)
        return lambda bits, layer: entry.factory(bits=bits, layer=layer, **params)

    plan = {n: LayerBits(*wa) for n, wa in meta["plan"].items()}
    quantize_model(model, plan, factory(meta["weight_quantizer"], meta["weight_params"]),
                   factory(meta["activation_quantizer"], meta["activation_params"]))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise QbenchError(f"The trained model of job {key} does not load into its rebuilt structure "
                          f"({str(exc).splitlines()[0]}); was the method's plugin changed since?") from None
    return model.eval(), meta
