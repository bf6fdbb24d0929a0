"""``qbench advise``: which QAT method for your model, data and budget, by successive halving.

Every candidate method gets a short QAT on a validation split carved from the training split
(fixed fraction and seed: in the keys and in the report); the better part (1/eta) is kept and
trained longer (eta times the epochs); this repeats until the rung's epochs reach the recipe's,
and the last rung keeps ``finalists`` methods. The finalists are then trained with the full recipe
over every seed of the suite on the full training split, and evaluated on the test split once.

Why a hand-written rung schedule rather than Optuna's SuccessiveHalvingPruner: the pruner decides
inside one running trial, from intermediate values it reports epoch by epoch, whether to stop it;
here every trial must be a qbench job (cached by key, resumable, on any executor, a row with
provenance), so each rung is a separate job whose QAT epochs are part of its key, and the decision
between rungs is a sort of finished rows. A deterministic schedule of a few lines states its cost
before anything trains (checked against ``--budget``) and reruns to the same decisions from the
cached rows: a rerun of the same command runs no job.

A screening trial starts QAT from the FP model trained on the carved training split (seed: the
suite's first), so no screening decision has seen the test split.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from qbench.errors import QbenchError
from qbench.run.jobs import Job, expand, select_methods, suite_methods
from qbench.run.suite import Suite
from qbench.run.user import load_data, with_holdout

if TYPE_CHECKING:
    from qbench.plugin.catalog import Catalog
    from qbench.run.harness import Harness


@dataclass(frozen=True)
class Schedule:
    """The successive-halving plan: rung epochs from ``min_epochs`` times ``eta`` each rung, below
    the recipe's QAT epochs; ``1/eta`` of each rung kept; ``finalists`` after the last rung."""

    min_epochs: int = 1
    eta: int = 2
    finalists: int = 2
    holdout: float = 0.2
    holdout_seed: int = 0

    def rungs(self, full_epochs: int) -> list[int]:
        out, e = [], max(1, self.min_epochs)
        while e < full_epochs:
            out.append(e)
            e *= self.eta
        return out or [full_epochs]

    def survivors(self, n: int, last: bool) -> int:
        return min(n, self.finalists if last else max(self.finalists, math.ceil(n / self.eta)))


@dataclass
class Trial:
    method: str
    epochs: int
    key: str
    top1: float = math.nan
    status: str = "todo"
    reason: str = ""
    qat_s: float = 0.0
    kept: bool = False
    why: str = ""


@dataclass
class Advice:
    """Everything the report shows (plain data: the report layer renders it)."""

    suite: Suite
    methods: list[str]
    rungs: list[list[Trial]] = field(default_factory=list)
    finals: list[dict[str, Any]] = field(default_factory=list)
    steps_per_epoch: dict[str, int] = field(default_factory=dict)
    schedule: Schedule = field(default_factory=Schedule)
    budget: float = 0.5
    command: str = ""


def screen_suite(suite: Suite, schedule: Schedule, epochs: int) -> Suite:
    """The suite of one rung: the carved validation split, the first seed, ``epochs`` of QAT."""
    s = with_holdout(suite, schedule.holdout, schedule.holdout_seed)
    return replace(s, name=f"{suite.name}-screen", seeds=suite.seeds[:1], qat=replace(suite.qat, epochs=epochs))


def candidates(cat: "Catalog", suite: Suite, methods: list[str] | None) -> list[str]:
    """The methods to screen: those given (names or globs), else every installed one; fp32 (the
    reference, not a QAT method) is never screened."""
    chosen = select_methods(methods or ["*"], suite_methods(suite, cat))
    names = [m.name for m in chosen if not m.reference]
    if not names:
        raise QbenchError("advise has no QAT method to screen. Fix: install one (pip install plugins/qbench-lsq) or "
                          "name installed ones with --method.")
    return names


def planned_steps(n: int, schedule: Schedule, suite: Suite, screen_steps: int, full_steps: int
                  ) -> tuple[int, int]:
    """(QAT steps advise spends at most, QAT steps of the full sweep: every method, the full
    recipe, every seed), from the schedule alone."""
    spent, alive, rungs = 0, n, schedule.rungs(suite.qat.epochs)
    for i, e in enumerate(rungs):
        spent += alive * e * screen_steps
        alive = schedule.survivors(alive, i == len(rungs) - 1)
    spent += alive * suite.qat.epochs * full_steps * len(suite.seeds)
    return spent, n * suite.qat.epochs * full_steps * len(suite.seeds)


def steps_per_epoch(harness: "Harness", suite: Suite) -> int:
    return math.ceil(len(harness.data(suite.datasets[0]).train) / suite.qat.batch_size)  # type: ignore[arg-type]


def _rank(trials: list[Trial]) -> list[Trial]:
    return sorted(trials, key=lambda t: (t.status != "ok", -(t.top1 if t.status == "ok" else 0.0), t.method))


def decide(trials: list[Trial], keep: int, rung: int, n_rungs: int) -> None:
    """Mark the ``keep`` best trials kept; each cut one says why (its rank, its top-1 against the
    last kept one, or its failure)."""
    ranked = _rank(trials)
    bar = ranked[min(keep, len(ranked)) - 1]
    for i, t in enumerate(ranked):
        t.kept = i < keep and t.status == "ok"
        if t.kept:
            t.why = f"rank {i + 1} of {len(ranked)}: kept" + (" as a finalist" if rung == n_rungs - 1 else "")
        elif t.status != "ok":
            t.why = f"{t.status}: {t.reason.splitlines()[0][:160] if t.reason else 'no reason recorded'}"
        else:
            how = "below" if t.top1 < bar.top1 else "tied with (ties go to the name first in order)"
            t.why = (f"rank {i + 1} of {len(ranked)}: validation top-1 {t.top1:.2f} {how} {bar.top1:.2f} "
                     f"({bar.method}, the last of {keep} kept)")


def _trial(job: Job, row: dict[str, Any] | None) -> Trial:
    t = Trial(job.method.name, job.suite.qat.epochs, job.key)
    if row is not None:
        t.status, t.reason = row.get("status", "failed"), str(row.get("reason", ""))
        t.top1 = float(row["top1"]) if row.get("status") == "ok" else math.nan
        t.qat_s = float(row.get("qat_s") or 0.0)
    return t


def run_advice(cat: "Catalog", harness: "Harness", suite: Suite, methods: list[str], schedule: Schedule,
               budget: float, command: str, executor: str, options: dict[str, Any], say: Any = print) -> Advice:
    """Screen ``methods`` rung by rung, then train and test the finalists: every trial a cached
    job of ``harness``'s workspace. ``say`` prints a line of progress."""
    screen0 = screen_suite(suite, schedule, 1)
    advice = Advice(suite, methods, schedule=schedule, budget=budget, command=command,
                    steps_per_epoch={"screen": steps_per_epoch(harness, screen0), "full": steps_per_epoch(harness, suite)})
    spent, full = planned_steps(len(methods), schedule, suite, advice.steps_per_epoch["screen"],
                                advice.steps_per_epoch["full"])
    if spent > budget * full:
        raise QbenchError(f"This plan spends up to {spent} QAT steps, {spent / full:.0%} of the full sweep's {full}, "
                          f"over --budget {budget:g}. Fix: fewer --finalists, a larger --eta, fewer --seeds, or a "
                          "larger --budget.")
    say(f"Screening {len(methods)} methods by successive halving on {schedule.holdout:.0%} of the training split "
        f"(seed {schedule.holdout_seed}); rungs of {', '.join(map(str, schedule.rungs(suite.qat.epochs)))} QAT "
        f"epoch(s); at most {spent} QAT steps, {spent / full:.0%} of the full sweep ({full}).")
    alive, rungs = list(methods), schedule.rungs(suite.qat.epochs)
    by_name = suite_methods(suite, cat)
    for i, epochs in enumerate(rungs):
        s = screen_suite(suite, schedule, epochs)
        jobs = expand(s, cat, [by_name[m] for m in alive])
        say(f"Rung {i + 1}/{len(rungs)}: {len(alive)} methods x {epochs} QAT epoch(s) on the validation split")
        harness.run(s, jobs, executor=executor, options=options)
        trials = [_trial(j, harness.ws.read_row(s.name, j.key)) for j in jobs]
        decide(trials, schedule.survivors(len(trials), i == len(rungs) - 1), i, len(rungs))
        advice.rungs.append(trials)
        alive = [t.method for t in _rank(trials) if t.kept]
        say(f"  kept: {', '.join(f'{t.method} ({t.top1:.2f})' for t in _rank(trials) if t.kept) or 'none'}; cut: "
            f"{', '.join(t.method for t in _rank(trials) if not t.kept) or 'none'}")
    if not alive:
        raise QbenchError("Every method failed its screening trial; the report's rows say why (qbench run shows "
                          "the same jobs).")
    final_methods = [by_name["fp32"]] if "fp32" in by_name else []
    jobs = expand(suite, cat, final_methods + [by_name[m] for m in alive])
    say(f"Finalists: {', '.join(alive)}: the full recipe ({suite.qat.epochs} QAT epochs) over {len(suite.seeds)} "
        f"seed(s), tested once on the test split")
    harness.run(suite, jobs, executor=executor, options=options)
    advice.finals = [r for r in (harness.ws.read_row(suite.name, j.key) for j in jobs) if r is not None]
    return advice


def summary(advice: Advice) -> dict[str, Any]:
    """The advice as plain data: finalists (mean top-1, 95 % interval, seeds), the screening curve
    of every method, and the cost against the full sweep."""
    from qbench.report.stats import ci_halfwidth

    finals = []
    by_method: dict[str, list[dict[str, Any]]] = {}
    for r in advice.finals:
        by_method.setdefault(r["method"], []).append(r)
    for method, rows in by_method.items():
        ok = [float(r["top1"]) for r in rows if r.get("status") == "ok"]
        mean = sum(ok) / len(ok) if ok else math.nan
        std = math.sqrt(sum((v - mean) ** 2 for v in ok) / (len(ok) - 1)) if len(ok) > 1 else math.nan
        finals.append({"method": method, "bits": rows[0].get("bits", ""), "top1": mean,
                       "ci95": ci_halfwidth(std, len(ok)), "seeds": len(ok), "of": len(rows),
                       "qat_s": sum(float(r.get("qat_s") or 0.0) for r in rows),
                       "reasons": sorted({str(r.get("reason")) for r in rows if r.get("status") != "ok"})})
    finals.sort(key=lambda f: (f["method"] != "fp32", -(f["top1"] if f["top1"] == f["top1"] else -1)))
    sched, suite = advice.schedule, advice.suite
    curves = {m: [] for m in advice.methods}
    for rung, trials in enumerate(advice.rungs):
        for t in trials:
            curves[t.method].append({"rung": rung + 1, "epochs": t.epochs, "top1": t.top1, "status": t.status,
                                     "kept": t.kept, "why": t.why, "key": t.key})
    spe = advice.steps_per_epoch
    screen_steps = sum(t.epochs * spe["screen"] for trials in advice.rungs for t in trials)
    n_final = len([f for f in finals if f["method"] != "fp32"])
    final_steps = n_final * suite.qat.epochs * spe["full"] * len(suite.seeds)
    full = len(advice.methods) * suite.qat.epochs * spe["full"] * len(suite.seeds)
    return {
        "suite": suite.name, "version": suite.version, "model": suite.models[0].label,
        "dataset": suite.datasets[0].name, "bits": [b.label for b in suite.bits], "seeds": list(suite.seeds),
        "qat_epochs": suite.qat.epochs, "holdout": sched.holdout, "holdout_seed": sched.holdout_seed,
        "eta": sched.eta, "finalists": sched.finalists, "rungs": sched.rungs(suite.qat.epochs),
        "methods": advice.methods, "finals": finals, "curves": curves, "budget": advice.budget,
        "steps": {"screening": screen_steps, "finals": final_steps, "total": screen_steps + final_steps,
                  "full_sweep": full, "share": (screen_steps + final_steps) / full if full else math.nan},
        "seconds": {"screening": sum(t.qat_s for trials in advice.rungs for t in trials),
                    "finals": sum(f["qat_s"] for f in finals)},
        "model_source": suite.models[0].source, "data_source": suite.datasets[0].source,
        "command": advice.command,
    }
