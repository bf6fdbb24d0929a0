"""The deployed cost of a finished job, measured again on this machine (``qbench deploy-bench``).

A row's own latency fields were measured where the job ran, briefly, beside training; a user who
wants the numbers on their own CPU rebuilds the job's trained model from the workspace
(:func:`qbench.deploy.store.rebuild`), loads its FP checkpoint, exports both as the harness does
and times them with a longer :class:`~qbench.deploy.latency.Protocol`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from qbench.errors import QbenchError


def fp_model(ws: Any, meta: dict[str, Any], fp_key: str) -> Any:
    """The job's FP checkpoint (CPU, eval), built from the kept model's recipe."""
    from qbench.models import create_model

    model = create_model(meta["model_name"], meta["num_classes"], meta["in_chans"], **meta["model_kwargs"])
    if ws.load_fp(fp_key, model) is None:
        raise QbenchError(f"No FP checkpoint {fp_key} under {ws.root / 'fp'}: the speedup needs the job's FP model. "
                          "Rerun the suite into this workspace (the FP checkpoint is trained once and kept).")
    return model.eval()


def bench_row(ws: Any, catalog: Any, row: dict[str, Any], protocol: Any, data_dir: Path | None = None,
              fp_cache: dict[str, bytes] | None = None) -> tuple[Any, Any]:
    """Time one finished quantized job's model.onnx against its FP32 model: (:class:`Result`,
    :class:`~qbench.deploy.Exported`). ``fp_cache`` keeps FP32 exports across the jobs of one FP key."""
    from qbench import deploy
    from qbench.data.bundle import first_batch
    from qbench.deploy.latency import measure
    from qbench.deploy.store import rebuild

    qmodel, meta = rebuild(ws.root, row["job_key"], catalog)
    options = dict(meta.get("dataset_options", {}))
    where = options.pop("data_dir", None) or data_dir
    data = catalog.datasets.get(meta["dataset"]).factory(Path(where) if where else None, **options)
    probe = first_batch(data.test, max(deploy.PROBE_BATCH, *protocol.batches))[0]
    exp = deploy.export_model(qmodel, probe[:deploy.PROBE_BATCH], {"job_key": row["job_key"]}, threads=protocol.threads)
    cache = fp_cache if fp_cache is not None else {}
    if row["fp_key"] not in cache:
        cache[row["fp_key"]] = deploy.fp32_onnx(fp_model(ws, meta, row["fp_key"]), probe)
    return measure(exp.onnx, cache[row["fp_key"]], probe, protocol), exp
