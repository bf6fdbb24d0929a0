"""The user's own code: ``pkg.module:factory`` references to a model or a dataset factory.

A user brings a model (a callable returning an ``nn.Module``) or data (a callable returning
``(train, val, test)`` datasets) without writing a plugin. What names such code in a job key is
its *source*: the factory's qualified name and the sha256 of its module's source file, so an edited
model or dataset is new jobs and never reuses a row computed with the old code (the name alone
would). Code outside the module file (a helper module it imports) is not hashed: the report says so.

The working directory is put on ``sys.path`` (as ``python -m`` and uvicorn do) so that a module
beside the user's command is found; worker processes inherit that path.

Every mistake is one line naming the fix: no such module, no such attribute, not callable, a
factory that returns no ``nn.Module``, a layer qbench cannot quantize.
"""
from __future__ import annotations

import hashlib
import importlib
import inspect
import os
import sys
from pathlib import Path
from typing import Any, Callable

from torch import nn

from qbench.errors import QbenchError

#: layers with weights that qbench's surgery does not quantize (only Conv2d and Linear are), each
#: with why: left in FP, the model would be reported at W/A bits while part of it computes in FP
UNQUANTIZABLE: tuple[tuple[type[nn.Module], str], ...] = (
    (nn.MultiheadAttention, "it computes its projections with F.multi_head_attention_forward from raw weight "
                            "tensors, not through Linear layers; write the attention with nn.Linear projections"),
    (nn.RNNBase, "recurrent cells (RNN, LSTM, GRU) multiply raw weight tensors inside a fused kernel"),
    (nn.Conv1d, "only Conv2d and Linear are quantized; express it as a Conv2d with a 1-wide kernel"),
    (nn.Conv3d, "only Conv2d and Linear are quantized"),
    (nn.ConvTranspose1d, "transposed convolutions are not quantized (only Conv2d and Linear)"),
    (nn.ConvTranspose2d, "transposed convolutions are not quantized (only Conv2d and Linear); upsample and "
                         "use a Conv2d"),
    (nn.ConvTranspose3d, "transposed convolutions are not quantized (only Conv2d and Linear)"),
    (nn.Bilinear, "only Conv2d and Linear are quantized"),
)


def is_ref(spec: str) -> bool:
    """``pkg.module:attr`` (timm names and dataset names never hold a colon; a Windows drive does
    not count)."""
    mod, sep, attr = spec.partition(":")
    return bool(sep) and bool(attr) and len(mod) > 1 and "/" not in spec and "\\" not in spec


def _cwd_on_path() -> None:
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)


def load_ref(spec: str, what: str) -> Callable[..., Any]:
    """The callable ``spec`` names; ``what`` ("--model", "--data") starts each error."""
    if not is_ref(spec):
        raise QbenchError(f"{what} {spec!r} is not a reference to your code; write it as pkg.module:factory.")
    mod_name, _, attr = spec.partition(":")
    _cwd_on_path()
    try:
        module = importlib.import_module(mod_name)
    except ModuleNotFoundError as exc:
        if exc.name and (mod_name == exc.name or mod_name.startswith(exc.name + ".")):
            raise QbenchError(f"{what} {spec!r}: no module named {exc.name!r} on the Python path. Fix: run from the "
                              f"directory holding {mod_name.replace('.', '/')}.py, or add it to PYTHONPATH.") from None
        raise QbenchError(f"{what} {spec!r}: module {mod_name!r} imports {exc.name!r}, which is not installed. "
                          f"Fix: pip install it.") from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = sorted(n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n)))
            raise QbenchError(f"{what} {spec!r}: module {mod_name!r} has no attribute {attr!r}. Fix: name one of its "
                              f"callables: {', '.join(names) or '(none)'}.")
        obj = getattr(obj, part)
    if not callable(obj):
        raise QbenchError(f"{what} {spec!r}: {attr!r} is a {type(obj).__name__}, not a callable. Fix: name a "
                          f"function or class that builds it.")
    return obj


def source_sha(spec: str, what: str) -> str:
    """16 hex digits of sha256 over the factory's qualified name and its module's source file."""
    fn = load_ref(spec, what)
    module = sys.modules[spec.partition(":")[0]]
    try:
        path = inspect.getsourcefile(module) or module.__file__
    except TypeError:  # a built-in module has no file: only its name is hashed
        path = None
    h = hashlib.sha256(f"{spec}\0{getattr(fn, '__qualname__', '')}\0".encode())
    if path and Path(path).is_file():
        h.update(Path(path).read_bytes())
    return h.hexdigest()[:16]


def call_factory(fn: Callable[..., Any], offered: dict[str, Any], kwargs: dict[str, Any]) -> Any:
    """Call ``fn`` with ``kwargs`` plus those ``offered`` arguments its signature accepts
    (``num_classes``, ``in_chans``): a factory may take them or fix them itself."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    extra = {k: v for k, v in offered.items() if (takes_all or k in params) and k not in kwargs}
    return fn(**kwargs, **extra)


def build_user_model(spec: str, num_classes: int, in_chans: int, **kwargs: Any) -> nn.Module:
    """The user's model for a dataset of ``num_classes`` classes and ``in_chans`` channels."""
    fn = load_ref(spec, "--model")
    try:
        model = call_factory(fn, {"num_classes": num_classes, "in_chans": in_chans}, kwargs)
    except TypeError as exc:
        raise QbenchError(f"--model {spec!r}: calling it failed: {exc}. Fix: give it defaults for every argument "
                          "(qbench passes num_classes and in_chans when it takes them).") from None
    if not isinstance(model, nn.Module):
        raise QbenchError(f"--model {spec!r} returned a {type(model).__name__}, not a torch nn.Module. Fix: return "
                          "the model itself (an instance), not its class or its state_dict.")
    return model


def unquantizable_layers(model: nn.Module) -> list[tuple[str, str, str]]:
    """(layer name, type, why) of each layer with weights that qbench would leave in FP."""
    found = []
    skip: set[str] = set()
    for name, m in model.named_modules():
        if any(name.startswith(s + ".") for s in skip):
            continue  # an nn.MultiheadAttention's own out_proj is reported with it
        for kind, why in UNQUANTIZABLE:
            if isinstance(m, kind):
                found.append((name or "(the model)", type(m).__name__, why))
                skip.add(name)
                break
    return found


def check_quantizable(model: nn.Module, spec: str) -> None:
    """Raise, naming the first layer qbench cannot quantize and why."""
    bad = unquantizable_layers(model)
    if bad:
        name, kind, why = bad[0]
        more = f" ({len(bad) - 1} more such layer(s))" if len(bad) > 1 else ""
        raise QbenchError(f"--model {spec!r}: layer {name!r} ({kind}) cannot be quantized by qbench: {why}{more}. "
                          "Fix: build the model from Conv2d and Linear layers (`qbench models --check` shows "
                          "what qbench covers).")
