"""What the quantizers learned during QAT: read at its start and end, summarised for the row.

An allocator reports its bits; a quantizer's learned step size or clipping value would otherwise
be invisible, and a reader could not tell a learned alpha that moved from 0.2 to 0.21 and stopped
from one that kept learning. Each quantizer's optional ``learned_state()`` is read once after
calibration (QAT start) and once after the last step (QAT end), checked against the contract
(:func:`qbench.contract.quant.learned.check_learned_state`), and summarised per
``<kind>.<key>`` (``weight.step``, ``activation.alpha``) over the quantizers that report it.

Reading the state never fails a job: a hook that raises or breaks the rules is left out with a
:class:`LearnedStateWarning` (the conformance suite is where a plugin is held to the rules).
Quantizers without the hook, or returning ``{}``, add nothing, so their rows are unchanged.
"""
from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from torch import nn

from qbench.contract.quant.base import Quantizer
from qbench.contract.quant.learned import LearnedState, check_learned_state

#: Quantizer path in the model -> (kind, checked state).
LearnedByQuantizer = dict[str, tuple[str, LearnedState]]

#: The statistics of one ``<kind>.<key>``, in the order the row holds them.
STATS = ("n", "start_mean", "start_min", "start_max", "end_mean", "end_min", "end_max", "mean_abs_change")


class LearnedStateWarning(UserWarning):
    """A quantizer's ``learned_state()`` raised or broke the rules; the row leaves it out."""


def read_learned(model: nn.Module) -> LearnedByQuantizer:
    """Every quantizer of ``model`` that reports a non-empty learned state, by module path."""
    out: LearnedByQuantizer = {}
    with torch.no_grad():
        for path, m in model.named_modules():
            hook = getattr(m, "learned_state", None) if isinstance(m, Quantizer) else None
            if not callable(hook):
                continue
            owner = f"{type(m).__name__} at {path!r}"
            try:
                state = check_learned_state(hook(), owner)
            except Exception as exc:  # noqa: BLE001 - a report never fails the job
                text = str(exc) if owner in str(exc) else f"{owner}.learned_state() raised {type(exc).__name__}: {exc}"
                warnings.warn(f"{text} Its learned state is left out of the row.", LearnedStateWarning, stacklevel=2)
                continue
            if state:
                out[path] = (m.kind or "quantizer", state)
    return out


def _values(v: float | list[float]) -> list[float]:
    return list(v) if isinstance(v, list) else [float(v)]


def _sig(v: float) -> float:
    """7 significant digits: enough to see a 0.2 -> 0.21 move, short enough for a CSV cell."""
    return float(f"{v:.7g}")


def _mean_min_max(values: list[float]) -> tuple[float | None, float | None, float | None]:
    if not values:
        return None, None, None
    return _sig(math.fsum(values) / len(values)), _sig(min(values)), _sig(max(values))


def summarize_learned(start: LearnedByQuantizer, end: LearnedByQuantizer) -> dict[str, dict[str, Any]]:
    """``{"<kind>.<key>": {n, start_mean, start_min, start_max, end_mean, end_min, end_max,
    mean_abs_change}}`` over the quantizers reporting the key at QAT end. Lists count value by
    value; ``mean_abs_change`` is the mean |end - start| over the values of quantizers that
    reported the key at both ends with the same length (None when none did). Empty when no
    quantizer reports anything."""
    names: dict[str, list[tuple[str, str]]] = {}
    for path, (kind, state) in end.items():
        for key in state:
            names.setdefault(f"{kind}.{key}", []).append((path, key))
    out: dict[str, dict[str, Any]] = {}
    for name in sorted(names):
        ends: list[float] = []
        starts: list[float] = []
        changes: list[float] = []
        for path, key in names[name]:
            e = _values(end[path][1][key])
            ends += e
            s_state = start.get(path, ("", {}))[1]
            if key in s_state:
                s = _values(s_state[key])
                starts += s
                if len(s) == len(e):
                    changes += [abs(b - a) for a, b in zip(s, e)]
        s_mean, s_min, s_max = _mean_min_max(starts)
        e_mean, e_min, e_max = _mean_min_max(ends)
        change = _sig(math.fsum(changes) / len(changes)) if changes else None
        out[name] = dict(zip(STATS, (len(names[name]), s_mean, s_min, s_max, e_mean, e_min, e_max, change)))
    return out


def learned_layers(start: LearnedByQuantizer, end: LearnedByQuantizer) -> dict[str, dict[str, Any]]:
    """Per quantizer (module path, in model order): its kind and its state at QAT start and end
    (None where it reported nothing): the detail behind :func:`summarize_learned`."""
    out: dict[str, dict[str, Any]] = {}
    for path in [*end, *(p for p in start if p not in end)]:
        kind = (end.get(path) or start[path])[0]
        out[path] = {"kind": kind, "start": start[path][1] if path in start else None,
                     "end": end[path][1] if path in end else None}
    return out
