"""The rules for what a quantizer reports through ``learned_state()``, checked in one place.

A quantizer may report what it learned (a step size, a clipping value, a level set) so that a
result row can show how far it moved during QAT. The host reads the report twice per quantizer
(at QAT start and end) and summarises it over layers, so it must be small, plain and finite: a
row is JSON and a CSV cell, and a NaN or a tensor would break both. :func:`check_learned_state`
is the one check, used by the host before it summarises and by the conformance suite.
"""
from __future__ import annotations

import json
import math
import re
from numbers import Real
from typing import Any

from qbench.errors import PluginError

#: A key: lower-case snake case, as the paper's symbol spelled out (``step``, ``alpha``, ``clip_hi``).
KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
#: At most this many keys per quantizer: the row carries a few statistics per key and kind.
MAX_KEYS = 8
#: A list value holds at most this many numbers (a 4-bit level set; a per-channel quantity is
#: reported as its mean, or its min and max, under keys of their own).
MAX_LIST = 16
#: The whole report, as compact JSON, fits in this many bytes.
MAX_JSON_BYTES = 512

#: What ``learned_state()`` returns once checked.
LearnedState = dict[str, float | list[float]]


def _number(v: Any) -> bool:
    return isinstance(v, Real) and not isinstance(v, bool)


def check_learned_state(state: Any, owner: str) -> LearnedState:
    """``state`` as plain floats (and lists of floats), or :class:`PluginError` naming ``owner``
    (the quantizer: its class and place in the model), what is wrong and what to return instead.

    The rules (docs/plugin-contract.md, "What a quantizer learned"): a dict of at most
    :data:`MAX_KEYS` keys matching :data:`KEY_PATTERN`; each value a finite real number or a
    non-empty list of at most :data:`MAX_LIST` of them; at most :data:`MAX_JSON_BYTES` bytes of
    JSON. Tensors are refused: convert with ``float(t)`` or ``t.tolist()`` (under no_grad).
    """
    fix = "return a small dict of finite Python floats, e.g. {\"step\": float(self.step.mean())}"
    if not isinstance(state, dict):
        raise PluginError(f"{owner}.learned_state() returned {type(state).__name__}, not a dict; {fix}.")
    if len(state) > MAX_KEYS:
        raise PluginError(f"{owner}.learned_state() returned {len(state)} keys, more than {MAX_KEYS}; "
                          "report the few quantities a reader compares across methods.")
    out: LearnedState = {}
    for key, value in state.items():
        if not isinstance(key, str) or not KEY_PATTERN.match(key):
            raise PluginError(f"{owner}.learned_state(): key {key!r} is not lower snake case of at most 32 "
                              "characters; name it after the paper's symbol, e.g. 'step', 'alpha', 'clip_hi'.")
        if isinstance(value, (list, tuple)):
            if not value or len(value) > MAX_LIST:
                raise PluginError(f"{owner}.learned_state(): {key!r} is a list of {len(value)} values; a list "
                                  f"holds 1 to {MAX_LIST} numbers (report a per-channel quantity's mean, min "
                                  "and max under keys of their own).")
            items = list(value)
        else:
            items = [value]
        if not all(_number(v) for v in items):
            kinds = sorted({type(v).__name__ for v in items if not _number(v)})
            raise PluginError(f"{owner}.learned_state(): {key!r} holds {', '.join(kinds)}, not real numbers; "
                              f"{fix} (a tensor: float(t) or t.tolist()).")
        floats = [float(v) for v in items]
        if not all(math.isfinite(v) for v in floats):
            raise PluginError(f"{owner}.learned_state(): {key!r} is not finite ({floats}); the quantizer's "
                              "state diverged, or the value is undefined: leave the key out until it is.")
        out[key] = floats if isinstance(value, (list, tuple)) else floats[0]
    size = len(json.dumps(out, separators=(",", ":")))
    if size > MAX_JSON_BYTES:
        raise PluginError(f"{owner}.learned_state() is {size} bytes of JSON, more than {MAX_JSON_BYTES}; "
                          "report fewer or shorter values.")
    return out
