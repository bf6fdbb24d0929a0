"""Bind a method part's parameters against its factory's signature, at plan time.

A typo in a suite file (``per_chanel = true``) must fail before any training, with one line
naming the method, the part, the key and the keys the factory accepts; and a default a plugin
changes must change the job key. Both follow from binding every part's parameters against the
factory's own signature and hashing the result, defaults included.
"""
from __future__ import annotations

import difflib
import inspect
import json
from collections.abc import Callable, Mapping
from typing import Any

from qbench.errors import QbenchError

#: Arguments the host passes itself, per part: never in a method's params.
HOST_ARGS: dict[str, tuple[str, ...]] = {
    "weight": ("bits", "layer"), "activation": ("bits", "layer"), "allocator": (), "wrapper": (),
}


def _jsonable(value: Any) -> Any:
    """Defaults go into job keys: keep JSON types, write anything else as its repr."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        return repr(value)


def bind_params(factory: Callable[..., Any], params: Mapping[str, Any], *, method: str, part: str,
                component: str) -> dict[str, Any]:
    """The factory's keyword parameters with ``params`` applied: every default made explicit.

    :param factory: the registered quantizer / allocator / wrapper factory.
    :param params: the method's params for this part (from the plugin or a suite file).
    :param method: the method's name, for the message.
    :param part: "weight", "activation", "allocator" or "wrapper".
    :param component: the registered name of the part (e.g. "lsq-w"), for the message.
    :raises QbenchError: on a key the factory does not accept, or a missing required one.
    """
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):  # a builtin or C factory: nothing to check against
        return {k: _jsonable(v) for k, v in params.items()}
    host = HOST_ARGS.get(part, ())
    accepted = {n: p for n, p in sig.parameters.items()
                if n not in host and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    open_ended = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    for key in params:
        if key in host:
            raise QbenchError(f"Method {method!r}, part {part!r} ({component}): parameter {key!r} is set by the "
                              "host for every method; remove it from the method's params.")
        if key not in accepted and not open_ended:
            close = difflib.get_close_matches(key, list(accepted), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise QbenchError(f"Method {method!r}, part {part!r} ({component}): unknown parameter {key!r}.{hint} "
                              f"Accepted: {', '.join(accepted) or '(none)'}.")
    bound: dict[str, Any] = {}
    for name, p in accepted.items():
        if name in params:
            bound[name] = _jsonable(params[name])
        elif p.default is not p.empty:
            bound[name] = _jsonable(p.default)
        else:
            raise QbenchError(f"Method {method!r}, part {part!r} ({component}): required parameter {name!r} "
                              "has no value; set it in the method's params.")
    for key in params:  # keys an open-ended (**kwargs) factory takes without naming them
        bound.setdefault(key, _jsonable(params[key]))
    return bound
