"""What the deployed model costs on a CPU: its latency beside its FP32 model, memory and file size.

:func:`measure` times two ONNX models, the deployed (quantized) one and the job's FP32 model (its
FP checkpoint exported the same way, :func:`qbench.deploy.fp32_onnx`), in onnxruntime on the CPU,
in one process, interleaved:

1. Primer: a session of each model is created, run once on one sample (``prime``) and dropped, so
   that onnxruntime's process-wide state and the library code its kernels page in (shared by
   every session, and resident once per process) are not charged to whichever model comes first.
2. Each timed session is created (all graph optimisations, ``threads`` intra-op threads, one
   inter-op thread, no spinning between runs: two pools in one process must not spin against
   each other) and run once on the largest batch inside a memory window
   (:mod:`qbench.deploy.memory`): its peak resident addition, i.e. the model's own memory (its
   initializers as optimised, transient copies while loading, the arena for that batch).
   Quantized first, then FP32. A ``load`` run is not timed: it is the largest batch's first
   warm-up run.
3. Per batch size (1, then the eval batch): ``warmup`` untimed runs of each model (the load run
   among them for the largest batch), alternating (FP32, quantized); then timed runs in pairs
   whose order alternates (FP32 then quantized, then quantized then FP32, ...), so neither model
   always runs just after the other's cache traffic and a slow spell (another job, a frequency
   step) lands on both. At least ``min_runs`` and at most ``max_runs`` pairs; no pair starts after
   ``time_cap_s``.
4. Per model and batch: the median and the interquartile range of its timed runs (ms); the speedup
   is FP32 median / quantized median.

The milliseconds belong to the machine (the row's ``machine`` and ``cpu_isa``) and are never
compared across machines; the speedup, taken between two models timed side by side on the same
cores, is what carries over. The defaults keep the cost small (`qbench run --all` has a time
budget): a slow model at the eval batch gets its load run and ``min_runs`` timed runs, no more.
They are a first look, not a benchmark; ``qbench deploy-bench`` times longer on the user's CPU.
:class:`Result` keeps every call it made, in order (:attr:`Result.calls`, written by the wrapper
around each real session run), so a test pins the protocol without asserting any time.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

#: the two models, in the order a warm-up round and an even timed pair run them
MODELS = ("fp32", "quantized")


@dataclass(frozen=True)
class Protocol:
    """How the two models are timed. The defaults are the harness's (short: see the module)."""

    threads: int = 1
    batches: tuple[int, ...] = (1, 256)
    warmup: int = 1
    min_runs: int = 2
    max_runs: int = 25
    time_cap_s: float = 0.25

    def describe(self, runs: dict[int, int]) -> str:
        """One line for the row: what ran (``1 intra-op thread; batch 1: 1 warm-up + 25 timed; ...``)."""
        per = "; ".join(f"batch {b}: {self.warmup} warm-up + {n} timed" for b, n in runs.items())
        return (f"{self.threads} intra-op thread{'s' if self.threads != 1 else ''}; {per} runs per model; "
                "FP32 and quantized alternating, pair order alternating; median, IQR")


@dataclass(frozen=True)
class Call:
    """One session run the protocol made: which model, on how many samples (read from the
    output the session returned), in which phase (``prime``, ``load``, ``warmup``, ``timed``)."""

    model: str
    batch: int
    phase: str


@dataclass
class Result:
    protocol: Protocol
    calls: list[Call] = field(default_factory=list)
    ms: dict[tuple[str, int], list[float]] = field(default_factory=dict)  # (model, batch) -> timed runs
    threads: dict[str, int] = field(default_factory=dict)  # intra-op threads read back from each session
    peak_mb: dict[str, float | None] = field(default_factory=dict)
    onnx_kb: dict[str, float] = field(default_factory=dict)
    ort_version: str = ""
    seconds: float = 0.0

    @property
    def batches(self) -> list[int]:
        return sorted({b for _, b in self.ms})

    def median(self, model: str, batch: int) -> float:
        import numpy as np

        return float(np.median(self.ms[(model, batch)]))

    def iqr(self, model: str, batch: int) -> float:
        import numpy as np

        q1, q3 = np.percentile(self.ms[(model, batch)], [25, 75])
        return float(q3 - q1)

    def speedup(self, batch: int) -> float:
        return self.median("fp32", batch) / self.median("quantized", batch)

    def fields(self) -> dict[str, Any]:
        """The row's latency fields (see :class:`qbench.report.row.Row`): batch 1 and the largest batch."""
        one, big = self.batches[0], self.batches[-1]
        out: dict[str, Any] = {"deploy_latency_threads": self.threads["quantized"], "deploy_latency_batch": big}
        for tag, b in (("", one), ("batch_", big)):
            q, f = self.median("quantized", b), self.median("fp32", b)
            out.update({f"deploy_{tag}latency_ms": _sig(q), f"deploy_fp32_{tag}latency_ms": _sig(f),
                        f"deploy_{tag}latency_iqr_ms": _sig(self.iqr("quantized", b)),
                        f"deploy_fp32_{tag}latency_iqr_ms": _sig(self.iqr("fp32", b)),
                        f"deploy_{tag}speedup": round(f / q, 3)})
        out.update({"deploy_latency_protocol": self.protocol.describe(
                        {b: len(self.ms[("quantized", b)]) for b in self.batches}),
                    "deploy_peak_mb": _round(self.peak_mb.get("quantized")),
                    "deploy_fp32_peak_mb": _round(self.peak_mb.get("fp32")),
                    "deploy_onnx_kb": round(self.onnx_kb["quantized"], 1),
                    "deploy_fp32_onnx_kb": round(self.onnx_kb["fp32"], 1),
                    "deploy_latency_s": round(self.seconds, 3), "onnxruntime_version": self.ort_version})
        return out


def _sig(v: float) -> float:
    return float(f"{v:.4g}")


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 2)


def session(onnx_bytes: bytes, threads: int) -> Any:
    """An onnxruntime CPU session as timed: all graph optimisations, ``threads`` intra-op threads,
    one inter-op thread, no spinning."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = max(1, threads)
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(onnx_bytes, so, providers=["CPUExecutionProvider"])


class _Runner:
    """A real onnxruntime session that appends each run it makes to ``calls`` and times it."""

    def __init__(self, name: str, sess: Any, calls: list[Call]) -> None:
        self.name, self.sess, self.calls = name, sess, calls

    def run(self, x: Any, phase: str) -> float:
        t0 = time.perf_counter()
        out = self.sess.run(None, {"input": x})
        ms = 1000 * (time.perf_counter() - t0)
        self.calls.append(Call(self.name, int(out[0].shape[0]), phase))
        return ms


def measure(quantized: bytes, fp32: bytes, sample: Any, protocol: Protocol | None = None) -> Result:
    """Time ``quantized`` against ``fp32`` (ONNX bytes, input "input") on the first samples of
    ``sample`` (a batch: tensor or array) as the module says. A batch size above the sample's
    length runs on the whole sample."""
    import numpy as np
    import onnxruntime as ort

    from qbench.deploy.memory import peak_window

    p = protocol or Protocol()
    t_start = time.perf_counter()
    x = np.ascontiguousarray(sample.detach().cpu().float().numpy() if hasattr(sample, "detach")
                             else np.asarray(sample, dtype=np.float32))
    batches = sorted({max(1, min(b, len(x))) for b in p.batches})
    res = Result(p, ort_version=ort.__version__,
                 onnx_kb={"quantized": len(quantized) / 1024, "fp32": len(fp32) / 1024})
    runners: dict[str, _Runner] = {}
    for name, blob in (("quantized", quantized), ("fp32", fp32)):  # see the module: the primer
        _Runner(name, session(blob, p.threads), res.calls).run(x[:1], "prime")
    for name, blob in (("quantized", quantized), ("fp32", fp32)):
        with peak_window() as w:
            runners[name] = _Runner(name, session(blob, p.threads), res.calls)
            runners[name].run(x[:batches[-1]], "load")
        res.peak_mb[name] = w.mb
        res.threads[name] = int(runners[name].sess.get_session_options().intra_op_num_threads)
    for b in batches:
        xb = np.ascontiguousarray(x[:b])
        for _ in range(max(0, p.warmup - (b == batches[-1]))):  # the load runs warmed the largest batch up
            for name in MODELS:
                runners[name].run(xb, "warmup")
        times: dict[str, list[float]] = {name: [] for name in MODELS}
        t0 = time.perf_counter()
        for i in range(p.max_runs):
            if i >= p.min_runs and time.perf_counter() - t0 > p.time_cap_s:
                break
            for name in (MODELS if i % 2 == 0 else MODELS[::-1]):
                times[name].append(runners[name].run(xb, "timed"))
        res.ms.update({(name, b): t for name, t in times.items()})
    res.seconds = time.perf_counter() - t_start
    return res
