"""The result row: one per job, the unit every leaderboard number comes from.

:class:`Row` is the schema. Each field carries its meaning (``Annotated`` text), from which
docs/result-row.md is generated (``python -m qbench.report.row > docs/result-row.md``; a test keeps
the two in sync). The harness writes rows of this shape, the leaderboard and the gate read them.
Bump :data:`SCHEMA_VERSION` when a field changes meaning or disappears.
"""
from __future__ import annotations

import io
from typing import Annotated, Any, TypedDict, get_type_hints

#: 2: the job's recipe threads and determinism, device, budget and collapse flags (qbench 0.2).
SCHEMA_VERSION = 2

_BITS_RULE = "parameter-weighted mean over quantized layers"


class Row(TypedDict, total=False):
    # -- what ran ----------------------------------------------------------------------------
    schema_version: Annotated[int, "this schema's version (qbench.report.row.SCHEMA_VERSION)"]
    job_key: Annotated[str, "content hash of everything that defines the job (recipe, method and its bound "
                            "parameters, bits, seed, threads, determinism); equal keys give equal rows"]
    fp_key: Annotated[str, "hash of what defines the FP checkpoint the job started from"]
    suite: Annotated[str, "suite name"]
    suite_version: Annotated[int, "suite version; rows of different versions are never compared"]
    suite_sha: Annotated[str, "hash of the suite's frozen recipe"]
    dataset: Annotated[str, "dataset name"]
    dataset_hash: Annotated[str, "fingerprint of the data the job saw"]
    dataset_source: Annotated[str, "where the data came from, and its split"]
    model: Annotated[str, "model label in tables (a suite alias or the timm name)"]
    model_name: Annotated[str, "timm model name"]
    method: Annotated[str, "method name"]
    method_version: Annotated[int, "method version; bumped on any change of behaviour"]
    plugin: Annotated[str, "distribution and version that registered the method"]
    weight_quantizer: Annotated[str, "registered weight quantizer ('' for FP weights)"]
    activation_quantizer: Annotated[str, "registered activation quantizer ('' for FP activations)"]
    allocator: Annotated[str, "registered bit-allocator"]
    wrapper: Annotated[str, "registered training wrapper"]
    params: Annotated[str, "JSON of every part's parameters, bound against its factory, defaults included"]
    bits: Annotated[str, "the suite's bit target, e.g. W4A4 (fp32 for the reference)"]
    w_bits_target: Annotated[int, "target weight bits"]
    a_bits_target: Annotated[int, "target activation bits (32 for weight-only methods)"]
    first_last: Annotated[str, "the suite's first/last-layer rule"]
    attention: Annotated[str, "the suite's attention setting: 'fp' (QK^T and AV run FP, counted at 32 bits in "
                              "gbitops) or 'quantized' (their inputs at the job's A bits; docs/models.md)"]
    seed: Annotated[int, "seed of the FP checkpoint and of QAT"]
    # -- the result --------------------------------------------------------------------------
    status: Annotated[str, "ok / failed / timeout / crashed"]
    reason: Annotated[str, "why a job did not finish ('' when ok)"]
    traceback: Annotated[str, "the failing job's traceback (JSON rows only)"]
    top1: Annotated[float, "top-1 accuracy (%) of the deployed (hard-quantized) model on the full test split"]
    top5: Annotated[float, "top-5 accuracy (%)"]
    fp_top1: Annotated[float, "top-1 of the FP checkpoint the job started from"]
    fp_checkpoint: Annotated[str, "the file of FP weights the model started from, with no FP training (only in "
                                  "rows of a file start: `[[models]] fp_checkpoint` or `--fp-checkpoint`)"]
    fp_checkpoint_sha256: Annotated[str, "sha256 of that file (part of fp_key and job_key)"]
    # -- the audit: measured, not declared ----------------------------------------------------
    w_bits: Annotated[float, f"declared weight bits, {_BITS_RULE}"]
    w_bits_measured: Annotated[float, "measured weight bits: ceil(log2 distinct hard values) per layer (per "
                                      f"channel for per-channel quantizers: the max over channels), {_BITS_RULE}"]
    w_bits_layer_mean: Annotated[float, "declared weight bits, plain (unweighted) mean over quantized layers"]
    a_bits: Annotated[float, "declared activation bits, plain mean over layers with quantized inputs"]
    a_bits_measured: Annotated[float, "measured activation bits: ceil(log2 distinct values per sample), max "
                                      "over a test batch, plain mean over layers"]
    w_sparsity: Annotated[float, "fraction of deployed quantized weights that are exactly 0"]
    levels_ok: Annotated[bool, "every layer keeps at most 2^bits levels (weights and activations)"]
    level_violations: Annotated[str, "the layers that keep more levels than declared"]
    gbitops: Annotated[float, "sum over layers of MACs x measured b_w x measured b_a (32 for an FP side), 1e9"]
    target_gbitops: Annotated[float, "the same sum at the target bits on the same layers (first/last by rule)"]
    size_kb: Annotated[float, "packed size: quantized weights at measured bits, everything else at 32 bits"]
    over_budget: Annotated[bool, "measured W bits, A bits or BitOPs above the target beyond the tolerance: "
                                 "shown, never ranked with rows that kept the budget"]
    budget_reason: Annotated[str, "what exceeded the budget, measured against target"]
    budget_bound: Annotated[str, "which budgeted cost the final allocation (the body layers' declared bits) left no "
                                 "room on: 'bits' (per weight), 'bitops', 'both' or 'none'; a cost binds when one "
                                 "more weight bit on any body layer would exceed it, or less than the over-budget "
                                 "tolerance of it is left ('' for fp32 and unfinished rows)"]
    collapsed: Annotated[bool, "far fewer levels than the budget, or top-1 near chance"]
    collapse_reason: Annotated[str, "why the row counts as collapsed"]
    export_max_abs_diff: Annotated[float, "max |logit difference| between the eval model and a copy holding only "
                                          "its hard weights"]
    # -- deployment: the ONNX export run in onnxruntime (only with the `deploy` extra) ---------------
    deploy_top1: Annotated[float, "top-1 (%) of the exported model.onnx in onnxruntime (CPU) on the full test split"]
    deploy_max_logit_diff: Annotated[float, "max |logit difference| between onnxruntime and qbench's own evaluation "
                                            "on the full test split"]
    deploy_logit_tol: Annotated[float, "the logit tolerance: 1e-3 x the largest |logit| + 1e-5 (the classifier is FP, "
                                       "so there is no output step; see qbench/deploy/parity.py)"]
    deploy_logit_outliers: Annotated[int, "test samples whose logits differ by more than deploy_logit_tol (an "
                                          "activation code flipped on a rounding boundary, or a wrong export)"]
    deploy_ok: Annotated[bool, "the export agrees: top-1 within 0.1 point and at most 1% of the samples beyond "
                               "deploy_logit_tol"]
    deploy_reason: Annotated[str, "why the export diverges (measured gap, differing predictions) or failed"]
    deploy_diverged: Annotated[bool, "deploy top-1 differs by more than 0.1 point and the float64 self-check does not "
                                     "explain the logit gaps: what deploys is not what was evaluated (not ranked)"]
    deploy_integer_kernels: Annotated[bool, "onnxruntime's optimised graph runs integer kernels (QLinearConv, "
                                            "ConvInteger or MatMulInteger)"]
    deploy_scheme: Annotated[str, "how the quantized layers deploy: weight (uniform / lut / float) and activation "
                                  "(uniform / traced / fp32) schemes, and how many run as integer ops"]
    deploy_size_kb: Annotated[float, "bytes of weights.safetensors' tensors: codes packed at their bits, scales, "
                                     "LUTs and the FP rest (compare size_kb)"]
    # -- deployed cost: model.onnx timed beside the job's FP32 model in onnxruntime (CPU, one process) --
    deploy_latency_ms: Annotated[float, "median wall time (ms) of model.onnx at batch 1 in onnxruntime on the CPU, "
                                        "timed interleaved with the FP32 model (qbench/deploy/latency.py); this "
                                        "machine's number (machine, cpu_isa): never compared across machines"]
    deploy_latency_iqr_ms: Annotated[float, "interquartile range (ms) of those timed runs"]
    deploy_fp32_latency_ms: Annotated[float, "median wall time (ms) at batch 1 of the job's FP checkpoint, exported "
                                             "the same way and timed in the same process, runs alternating with the "
                                             "quantized model's"]
    deploy_fp32_latency_iqr_ms: Annotated[float, "interquartile range (ms) of the FP32 model's runs at batch 1"]
    deploy_speedup: Annotated[float, "deploy_fp32_latency_ms / deploy_latency_ms: above 1, the deployed model is "
                                     "faster at batch 1; a ratio of models timed side by side, comparable across "
                                     "machines where the milliseconds are not"]
    deploy_batch_latency_ms: Annotated[float, "median wall time (ms) of model.onnx on deploy_latency_batch samples"]
    deploy_batch_latency_iqr_ms: Annotated[float, "interquartile range (ms) of those runs"]
    deploy_fp32_batch_latency_ms: Annotated[float, "median wall time (ms) of the FP32 model on deploy_latency_batch "
                                                   "samples"]
    deploy_fp32_batch_latency_iqr_ms: Annotated[float, "interquartile range (ms) of those runs"]
    deploy_batch_speedup: Annotated[float, "deploy_fp32_batch_latency_ms / deploy_batch_latency_ms"]
    deploy_latency_batch: Annotated[int, "the eval batch timed: qbench's evaluation batch (256), or the whole test "
                                         "split when smaller"]
    deploy_latency_threads: Annotated[int, "onnxruntime intra-op threads of both timed sessions (the recipe's torch "
                                           "threads: the cores the job was given), read back from the session"]
    deploy_latency_protocol: Annotated[str, "what was timed: threads, warm-up and timed runs per model and batch, "
                                            "the interleaving"]
    deploy_peak_mb: Annotated[float, "peak resident memory (MiB) creating model.onnx's session and running it on "
                                     "deploy_latency_batch samples: the kernel's high-water mark reset before, "
                                     "minus the resident set then (qbench/deploy/memory.py; Linux only)"]
    deploy_fp32_peak_mb: Annotated[float, "the same for the FP32 model"]
    deploy_onnx_kb: Annotated[float, "size of model.onnx (KiB): the file a user ships"]
    deploy_fp32_onnx_kb: Annotated[float, "size of the FP32 model's ONNX file (KiB), exported the same way"]
    deploy_latency_s: Annotated[float, "wall time (s) the cost measurement took, the FP32 export included"]
    onnxruntime_version: Annotated[str, "onnxruntime version that ran the timed sessions"]
    extra: Annotated[dict, "what the allocator reports (e.g. learned bit-widths); JSON text in CSV"]
    learned: Annotated[dict, "what the quantizers learned (their optional learned_state(), docs/plugin-contract.md), "
                             "by '<kind>.<key>' (e.g. 'weight.step', 'activation.alpha'): n (quantizers reporting "
                             "it), start_mean/start_min/start_max after calibration, end_mean/end_min/end_max after "
                             "the last step, mean_abs_change (mean |end - start| per value); absent when no "
                             "quantizer reports; JSON text in CSV"]
    learned_layers: Annotated[dict, "the same per quantizer (module path): kind, start and end state"]
    layers: Annotated[list, "per-layer audit (JSON rows only)"]
    # -- how it ran ----------------------------------------------------------------------------
    wall_s: Annotated[float, "job wall time (s), FP training included when this job trained it"]
    qat_s: Annotated[float, "QAT wall time (s)"]
    qat_passes_per_step: Annotated[float, "forward passes per QAT optimizer step, measured: outermost forward calls of "
                                          "the quantized model and of any teacher (the frozen FP model a KD or BWRF "
                                          "wrapper runs), allocator probes included, divided by the steps "
                                          "(qbench/train/passes.py); 1 for plain training"]
    qat_teacher_passes_per_step: Annotated[float, "the teachers' share of qat_passes_per_step"]
    peak_rss_mb: Annotated[float, "peak resident memory of the process that ran the job (MiB)"]
    torch_threads: Annotated[int, "torch intra-op threads the job ran with (the recipe's; part of the key)"]
    deterministic: Annotated[bool, "torch.use_deterministic_algorithms was on (the recipe's; part of the key)"]
    tf32: Annotated[bool, "TF32 in cuBLAS matmuls and cuDNN convolutions (the recipe's: QAT's, the FP recipe's for "
                          "the FP reference; in the key when true); no effect on a CPU"]
    amp: Annotated[str, "autocast of forward passes in training and evaluation: off, bf16 or fp16 (the recipe's, as "
                        "tf32; in the key unless off)"]
    channels_last: Annotated[bool, "model and image batches in channels-last layout (the recipe's, as tf32; in the "
                                   "key when true)"]
    device: Annotated[str, "device the job ran on: cpu, or cuda:N and the GPU's name"]
    cuda_version: Annotated[str, "CUDA runtime torch was built with ('' on CPU)"]
    cudnn_version: Annotated[str, "cuDNN version ('' on CPU)"]
    executor: Annotated[str, "the executor that ran the job"]
    loader_workers: Annotated[int, "DataLoader worker processes of a file dataset in the job's process (0: batches "
                                   "made in that process, as for in-memory data); augmentation is seeded per "
                                   "sample, so the count never changes a result"]
    resumed_from_epoch: Annotated[int, "0, or the epoch checkpoint a killed job resumed from"]
    command: Annotated[str, "the command line that produced the row"]
    qbench_version: Annotated[str, "qbench version"]
    torch_version: Annotated[str, "torch version and build (results differ slightly across builds)"]
    timm_version: Annotated[str, "timm version"]
    python_version: Annotated[str, "Python version"]
    git_commit: Annotated[str, "qbench checkout commit (+dirty)"]
    machine: Annotated[str, "architecture, OS and processor"]
    cpu_isa: Annotated[str, "instruction set of torch's CPU kernels (ATen; oneDNN's cap): float32 bits differ across them"]
    date: Annotated[str, "UTC time the row was written"]


def fields() -> dict[str, tuple[str, str]]:
    """Field name -> (type name, meaning), in schema order."""
    hints = get_type_hints(Row, include_extras=True)
    return {name: (h.__origin__.__name__, h.__metadata__[0]) for name, h in hints.items()}


#: Columns every leaderboard CSV must hold to be read (the rest are optional).
REQUIRED_COLUMNS = ("suite", "suite_version", "dataset", "model", "method", "method_version", "bits", "seed",
                    "status", "top1", "fp_top1", "w_bits_measured", "a_bits_measured", "gbitops", "size_kb")

#: Columns written first in a CSV, in this order; the rest follow alphabetically.
LEAD_COLUMNS = ("suite", "suite_version", "dataset", "model", "method", "method_version", "bits", "seed",
                "status", "top1", "top5", "fp_top1")

#: Fields kept in JSON rows only (too large or too nested for a CSV cell).
JSON_ONLY = ("layers", "traceback", "learned_layers")

#: Dict fields a CSV holds as one cell of JSON text (sorted keys).
JSON_COLUMNS = ("extra", "learned")


def unknown_fields(row: dict[str, Any]) -> list[str]:
    """Keys of ``row`` the schema does not define (a typo in the harness, or a foreign row)."""
    known = fields()
    return sorted(k for k in row if k not in known)


def render_markdown() -> str:
    """docs/result-row.md: the schema as a table."""
    out = io.StringIO()
    out.write("# The result row\n\n")
    out.write(f"Schema version {SCHEMA_VERSION}. Generated from `qbench/report/row.py` by "
              "`python -m qbench.report.row > docs/result-row.md`; a test keeps this page in sync.\n\n")
    out.write("One row per job: JSON under `<workspace>/<suite>/rows/<job_key>.json`, and a CSV line in "
              "`results.csv` (without the JSON-only fields).\n\n")
    out.write("| field | type | meaning |\n|---|---|---|\n")
    for name, (typ, doc) in fields().items():
        note = " (JSON only)" if name in JSON_ONLY else ""
        out.write(f"| `{name}` | {typ} | {doc}{note} |\n")
    return out.getvalue()


if __name__ == "__main__":
    print(render_markdown(), end="")
