"""Where a job's wall time goes outside the training steps (data, audit, export, I/O): the part a faster kernel cannot shrink.

Runs a subset of a suite's jobs in-process (local executor, a fresh temporary workspace) with
timers around each phase of :meth:`qbench.run.harness.Harness._execute` and around every training
step, then prints, per job: wall time, the sum of its QAT steps, and the rest by phase. The FP
checkpoint is trained on the first job of each (dataset, model, seed) and reported separately.

    python scripts/harness_profile.py [--suite quick] [--methods lsq,pact] [--bits W4A4] [--seeds 0]
"""
from __future__ import annotations

import argparse
import collections
import functools
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import qbench.run.harness as harness_mod
import qbench.train.loop as loop_mod
import qbench.train.qat as qat_mod
from qbench.contract.bits import BitTarget
from qbench.plugin.catalog import get_catalog
from qbench.run.harness import Harness
from qbench.run.jobs import expand, select_methods, suite_methods
from qbench.run.suite import load_suite
from qbench.run.workspace import Workspace
from qbench.train.resume import Checkpointer

TIMES: dict[str, float] = collections.defaultdict(float)
#: Timers inside a phase above (printed indented, not added to the sum).
NESTED = ("keep_and_check: ",)


def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            TIMES[name] += time.perf_counter() - t0
    return wrapper


def instrument() -> None:
    """Timers on the phases (patched where the harness and run_qat look them up)."""
    for name in ("evaluate", "audit_model", "export_parity", "keep_and_check", "summarize"):
        setattr(harness_mod, name, timed(name, getattr(harness_mod, name)))
    qat_mod.prepare = timed("prepare (allocate, init, calibrate)", qat_mod.prepare)
    qat_mod.frozen_copy = timed("frozen FP copy", qat_mod.frozen_copy)
    Harness.data = timed("data", Harness.data)
    Harness.fp_model = timed("FP checkpoint (load or train)", Harness.fp_model)
    Checkpointer.save = timed("epoch checkpoints", Checkpointer.save)
    Harness.write_row = timed("write row + CSV", Harness.write_row)
    import qbench.deploy as deploy
    import qbench.deploy.graph as graph
    import qbench.deploy.parity as parity
    import qbench.deploy.store as store
    store.save_trained = timed("keep_and_check: save model", store.save_trained)
    deploy.export_model = timed("keep_and_check: export_model", deploy.export_model)
    graph.to_onnx = timed("keep_and_check: torch.onnx export", graph.to_onnx)
    parity.session = timed("keep_and_check: onnxruntime session", parity.session)
    deploy.parity_fields = timed("keep_and_check: parity on the test split", deploy.parity_fields)
    original_train = loop_mod.train

    def train(model: Any, loss_fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        def step_loss(x: Any, y: Any) -> Any:  # the forward; backward and step are timed below
            return loss_fn(x, y)
        t0 = time.perf_counter()
        out = original_train(model, timed("steps: forward (loss)", step_loss), *args, **kwargs)
        TIMES["train() total"] += time.perf_counter() - t0
        return out
    qat_mod.train = train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="quick")
    ap.add_argument("--methods", default="lsq,pact,apot,dgms")
    ap.add_argument("--bits", default="W4A4")
    ap.add_argument("--seeds", default="0")
    args = ap.parse_args()
    instrument()
    cat = get_catalog()
    suite = load_suite(args.suite, {n: cat.suites.get(n) for n in cat.suites})
    suite = suite.narrowed(bits=(BitTarget.parse(args.bits),), seeds=tuple(int(s) for s in args.seeds.split(",")))
    methods = select_methods(args.methods.split(","), suite_methods(suite, cat))
    jobs = expand(suite, cat, methods)
    with tempfile.TemporaryDirectory() as ws:
        h = Harness(cat, Workspace(Path(ws)))
        for job in jobs:
            TIMES.clear()
            t0 = time.perf_counter()
            row = h.run_job(job)
            wall = time.perf_counter() - t0
            fp = TIMES.pop("FP checkpoint (load or train)", 0.0)
            train_total = TIMES.pop("train() total", 0.0)
            fwd = TIMES.pop("steps: forward (loss)", 0.0)
            ckpt = TIMES.get("epoch checkpoints", 0.0)
            steps = train_total - ckpt  # forward + backward + optimizer + after_step
            print(f"\n{job.label}: status {row.get('status')}, wall {wall:.1f}s "
                  f"(FP checkpoint {fp:.1f}s excluded below)")
            print(f"  QAT steps (sum)                      {steps:7.2f}s  (forward {fwd:.2f}s)")
            for name, t in sorted(TIMES.items(), key=lambda kv: -kv[1]):
                if not name.startswith(NESTED):
                    print(f"  {name:36s} {t:7.2f}s")
                    for sub, ts in sorted(TIMES.items(), key=lambda kv: -kv[1]):
                        if sub.startswith(name + ": "):
                            print(f"    {sub[len(name) + 2:]:34s} {ts:7.2f}s")
            rest = wall - fp - steps - sum(t for n, t in TIMES.items() if not n.startswith(NESTED))
            print(f"  {'other (untimed)':36s} {rest:7.2f}s")
            print(f"  wall without FP / steps: {(wall - fp) / max(steps, 1e-9):.2f}")


if __name__ == "__main__":
    main()
