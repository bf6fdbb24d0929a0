"""The budget rule: a row that used more than its bit target, or that collapsed, is flagged and
never ranked with the rows that kept the budget.

**Over budget** (``over_budget``, ``budget_reason``): an ``ok`` row whose measured cost exceeds
its target, any of

* parameter-weighted measured W bits (``w_bits_measured``) > ``w_bits_target`` + :data:`BITS_TOL`;
* measured A bits (``a_bits_measured``) > ``a_bits_target`` + :data:`BITS_TOL`;
* measured BitOPs (``gbitops``) > ``target_gbitops`` x (1 + :data:`BITOPS_RTOL`), where
  ``target_gbitops`` is the same sum over the same layers at the target bits (body layers at the
  job's target, first/last layers at the suite's rule: :func:`qbench.train.audit.target_bitops`).
  ``gbitops`` includes the FP work a quantizer runs at inference (its ``inference_macs``, at
  32 x 32 bits: ASQ's adapter MLPs) and the target allows none, so that work counts against it.

**Collapsed** (``collapsed``, ``collapse_reason``): an ``ok`` row that kept far fewer levels than
its budget, or whose top-1 is near chance:

* most quantized layers keep fewer than 2^(b-1) levels, b the layer's declared bits (weights, or
  activations), when the row carries its per-layer audit; from columns alone (old CSVs):
  measured W (or A) bits more than 1 bit below the target;
* top-1 < 100 / num_classes + :data:`CHANCE_MARGIN` points.

**Which cost bound** (``budget_bound``): from the final allocation (the body layers' declared
bits in the row's per-layer audit), whether bits per weight, BitOPs, both or none left no room for
one more weight bit on any body layer, or left less than the tolerances above
(:meth:`qbench.contract.budget.Budget.bound`, against the budget the allocator was given:
:meth:`~qbench.contract.budget.Budget.from_target`).

The reference (``bits == "fp32"``) and rows that did not finish are never flagged. The harness
calls :func:`flag_row` on each finished row; :func:`flag_frame` recomputes the flags from a CSV's
columns (so leaderboards written before the flags existed are judged by the same rule), and
:func:`budget_warnings` gives the lines ``qbench run`` prints.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

import pandas as pd

from qbench.contract.bits import BitTarget, LayerBits
from qbench.contract.budget import Budget
from qbench.contract.layer_info import LayerInfo

#: Measured average bits may exceed the target by this much (rounding of a mixed-precision allocation).
BITS_TOL = 0.05
#: Measured BitOPs may exceed the target's BitOPs on the same layers by this fraction.
BITOPS_RTOL = 0.01
#: Top-1 below chance (100 / classes) plus this many points is a collapse.
CHANCE_MARGIN = 10.0
#: Deployed top-1 (onnxruntime) may differ from qbench's own by this many points before the row's
#: export counts as diverging (qbench.deploy.parity; the leaderboard reads old rows by it).
DEPLOY_TOP1_TOL = 0.1
#: Classes of the datasets qbench ships, for CSVs (a row does not record its class count).
KNOWN_CLASSES = {"digits": 10, "fashion-mnist": 10, "fmnist": 10, "mnist": 10, "cifar10": 10, "cifar-10": 10,
                 "cifar100": 100, "cifar-100": 100, "imagenet": 1000}
FP_BITS = 32


def _num(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.nan
    return f


def _is_reference(row: dict[str, Any]) -> bool:
    return str(row.get("bits", "")) == "fp32"


def chance_top1(num_classes: int | None) -> float:
    """Top-1 (%) of a uniform guess."""
    return 100.0 / num_classes if num_classes else math.nan


def budget_reasons(row: dict[str, Any]) -> list[str]:
    """What exceeded the target, from a row's columns (empty when within budget)."""
    if row.get("status") != "ok" or _is_reference(row):
        return []
    out = []
    for side, measured, target in (("W", "w_bits_measured", "w_bits_target"),
                                   ("A", "a_bits_measured", "a_bits_target")):
        m, t = _num(row.get(measured)), _num(row.get(target))
        if not (math.isnan(m) or math.isnan(t)) and t < FP_BITS and m > t + BITS_TOL:
            out.append(f"measured {side} bits {m:.3g} > target {t:.0f}")
    g, tg = _num(row.get("gbitops")), _num(row.get("target_gbitops"))
    if not (math.isnan(g) or math.isnan(tg)) and tg > 0 and g > tg * (1 + BITOPS_RTOL):
        out.append(f"GBitOPs {g:.4g} > target {tg:.4g} (+{100 * (g / tg - 1):.0f}%)")
    return out


def _layer_collapse(layers: list[dict[str, Any]]) -> list[str]:
    out = []
    for side, levels, bits in (("weight", "w_levels", "w_bits"), ("activation", "a_levels", "a_bits")):
        q = [la for la in layers if la.get(levels) and int(la.get(bits, FP_BITS)) < FP_BITS]
        few = [la for la in q if int(la[levels]) < 2 ** (int(la[bits]) - 1)]
        if q and len(few) * 2 > len(q):
            out.append(f"{len(few)} of {len(q)} quantized layers keep fewer than 2^(b-1) {side} levels "
                       f"(e.g. {few[0]['name']}: {few[0][levels]} at {few[0][bits]} bits)")
    return out


def collapse_reasons(row: dict[str, Any], num_classes: int | None = None, levels: bool = True) -> list[str]:
    """Why a row counts as collapsed (empty when it did not). Uses the per-layer audit when the
    row has one, else the measured average bits (``levels=False``: the chance rule only)."""
    if row.get("status") != "ok" or _is_reference(row):
        return []
    out = []
    layers = row.get("layers")
    if not levels:
        pass
    elif isinstance(layers, list) and layers:
        out += _layer_collapse(layers)
    else:
        for side, measured, target in (("W", "w_bits_measured", "w_bits_target"),
                                       ("A", "a_bits_measured", "a_bits_target")):
            m, t = _num(row.get(measured)), _num(row.get(target))
            if not (math.isnan(m) or math.isnan(t)) and t < FP_BITS and m < t - 1:
                out.append(f"measured {side} bits {m:.3g} far below target {t:.0f}")
    top1, chance = _num(row.get("top1")), chance_top1(num_classes)
    if not (math.isnan(top1) or math.isnan(chance)) and top1 < chance + CHANCE_MARGIN:
        out.append(f"top-1 {top1:.1f} near chance ({chance:.3g} + {CHANCE_MARGIN:g})")
    return out


def fill_target_gbitops(row: dict[str, Any]) -> None:
    """Set ``target_gbitops`` from the row's per-layer audit when the harness did not."""
    if not math.isnan(_num(row.get("target_gbitops"))) or not isinstance(row.get("layers"), list):
        return
    from qbench.train.audit import target_bitops

    w, a = _num(row.get("w_bits_target")), _num(row.get("a_bits_target"))
    if row["layers"] and not (math.isnan(w) or math.isnan(a)):
        row["target_gbitops"] = target_bitops(row["layers"], int(w), int(a)) / 1e9


def budget_bound(row: dict[str, Any]) -> str:
    """Which budgeted cost the row's final allocation left no room on ("bits", "bitops", "both",
    "none"), from its per-layer audit; '' for the reference, rows that did not finish and rows
    without an audit."""
    layers = row.get("layers")
    w, a = _num(row.get("w_bits_target")), _num(row.get("a_bits_target"))
    if row.get("status") != "ok" or _is_reference(row) or not isinstance(layers, list) or math.isnan(w + a):
        return ""
    body = [la for la in layers if la.get("role") == "body"]
    infos = [LayerInfo(la["name"], str(la.get("kind", "")), "body", int(la["weight_numel"]), 0, 0, int(la["macs"]))
             for la in body]
    plan = {la["name"]: LayerBits(int(la["w_bits"]), int(la["a_bits"])) for la in body}
    budget = Budget.from_target(infos, BitTarget(int(w), int(a)))
    return budget.bound(infos, plan, bits_tol=BITS_TOL, bitops_rtol=BITOPS_RTOL) if body else ""


def flag_row(row: dict[str, Any], num_classes: int) -> dict[str, Any]:
    """Fill a finished row's ``target_gbitops``, ``over_budget``/``budget_reason``,
    ``collapsed``/``collapse_reason`` and ``budget_bound`` in place; returns the row. Called by the
    harness once per job, on every status (rows that did not finish get False / '')."""
    fill_target_gbitops(row)
    row["budget_bound"] = budget_bound(row)
    over, collapsed = budget_reasons(row), collapse_reasons(row, num_classes)
    row["over_budget"], row["budget_reason"] = bool(over), "; ".join(over)
    row["collapsed"], row["collapse_reason"] = bool(collapsed), "; ".join(collapsed)
    return row


def _truthy(v: Any) -> bool:
    if isinstance(v, str):
        return v.strip().lower() in ("true", "1", "yes")
    try:
        return bool(v) and not (isinstance(v, float) and math.isnan(v))
    except (TypeError, ValueError):
        return False


def _classes(dataset: Any, num_classes: int | dict[str, int] | None) -> int | None:
    if isinstance(num_classes, int):
        return num_classes
    if isinstance(num_classes, dict) and dataset in num_classes:
        return num_classes[dataset]
    return KNOWN_CLASSES.get(str(dataset).lower())


def flag_frame(df: pd.DataFrame, num_classes: int | dict[str, int] | None = None) -> pd.DataFrame:
    """A copy of ``df`` whose flag columns hold the rule recomputed from its columns, OR-ed with
    the flags stored in the rows (those may use the per-layer audit the CSV does not keep; where a
    row stores ``collapsed``, its levels verdict is kept and only the chance rule is recomputed).
    ``num_classes``: one count, a dataset -> count mapping, or None (:data:`KNOWN_CLASSES`)."""
    out = df.copy()
    over, over_why, col, col_why = [], [], [], []
    for r in out.to_dict("records"):
        b = budget_reasons(r)
        # a stored flag came from the per-layer audit, which the columns only approximate
        stored = not math.isnan(_num(r.get("collapsed"))) or isinstance(r.get("collapsed"), str)
        c = collapse_reasons({k: v for k, v in r.items() if k != "layers"}, _classes(r.get("dataset"), num_classes),
                             levels=not stored)
        if _truthy(r.get("over_budget")) and isinstance(r.get("budget_reason"), str) and r["budget_reason"]:
            b = list(dict.fromkeys([r["budget_reason"]] + [x for x in b if x not in r["budget_reason"]]))
        elif _truthy(r.get("over_budget")) and not b:
            b = ["flagged over budget by the harness"]
        if _truthy(r.get("collapsed")) and isinstance(r.get("collapse_reason"), str) and r["collapse_reason"]:
            c = list(dict.fromkeys([r["collapse_reason"]] + [x for x in c if x not in r["collapse_reason"]]))
        elif _truthy(r.get("collapsed")) and not c:
            c = ["flagged collapsed by the harness"]
        over.append(bool(b))
        over_why.append("; ".join(b))
        col.append(bool(c))
        col_why.append("; ".join(c))
    out["over_budget"], out["budget_reason"] = over, over_why
    out["collapsed"], out["collapse_reason"] = col, col_why
    return out


def _label(r: dict[str, Any]) -> str:
    return f"{r.get('dataset')}/{r.get('model')}/{r.get('method')}/{r.get('bits')}/seed{r.get('seed')}"


def budget_warnings(rows: Iterable[dict[str, Any]], num_classes: int | dict[str, int] | None = None) -> list[str]:
    """One line per flagged row (over budget or collapsed), for ``qbench run`` to print: the row's
    stored flags, or the rule recomputed from its columns when it has none."""
    rows = list(rows)
    if not rows:
        return []
    flagged = flag_frame(pd.DataFrame([{k: v for k, v in r.items() if k not in ("layers", "traceback")}
                                       for r in rows]), num_classes)
    out = []
    for r in flagged.to_dict("records"):
        if r["over_budget"]:
            out.append(f"over budget: {_label(r)} measured W{_num(r.get('w_bits_measured')):.3g}"
                       f"A{_num(r.get('a_bits_measured')):.3g} against {r.get('bits')}: {r['budget_reason']}. "
                       "Shown with its measured bits, not ranked among rows that kept the budget.")
        if r["collapsed"]:
            out.append(f"collapsed: {_label(r)} (top-1 {_num(r.get('top1')):.2f}): {r['collapse_reason']}. "
                       "Not ranked.")
    return out
