"""FP weights from a file: the state a run's FP model starts from instead of FP training.

Two formats, named by what reads them:

* ``safetensors``: the model's own ``state_dict`` in a safetensors file (what qbench's workspace
  keeps under ``fp/``, or any ``save_file(model.state_dict())``), loaded strictly by qbench.
* ``timm``: a pretrained file as timm publishes it (``model.safetensors`` of a ``timm/<model>.<tag>``
  repository, or a torch ``.pth``/``.bin``), loaded through timm's own pretrained path
  (``create_model(pretrained=True, pretrained_cfg_overlay=dict(file=...))``), so the model's
  checkpoint filter applies. Every other weight source is blanked in the overlay and
  ``HF_HUB_OFFLINE`` is set while it loads: the file is the only place weights can come from.

Either way loading is safe (safetensors, or ``torch.load(weights_only=True)``: nothing is
unpickled but tensors) and strict: every key and shape must match the model built for the
dataset's classes and channels. A file whose classifier has other classes is refused rather than
given a fresh head: a new head would need FP training, which a file start does not run.
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from qbench.errors import QbenchError
from qbench.models import create_model


def check_readable(path: Path, fmt: str) -> None:
    """Fail early (when the run is planned) on a file its format cannot read: a safetensors
    file's header is parsed (cheap, no tensor is read); a torch file must be a torch zip archive."""
    import zipfile

    if str(path).endswith(".safetensors"):
        from safetensors import safe_open

        try:
            with safe_open(str(path), "pt") as f:
                f.keys()
        except Exception as exc:  # SafetensorError, or OSError for unreadable bytes
            raise QbenchError(f"FP checkpoint {str(path)!r} is not a readable safetensors file "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). "
                              "Fix: give the file as downloaded or saved with safetensors' save_file.") from None
    elif fmt == "safetensors":
        raise QbenchError(f"FP checkpoint {str(path)!r}: format 'safetensors' needs a .safetensors file. "
                          "Fix: for a torch .pth/.bin use fp_checkpoint_format = \"timm\".")
    elif not zipfile.is_zipfile(path):
        raise QbenchError(f"FP checkpoint {str(path)!r} is neither a .safetensors file nor a torch checkpoint "
                          "(torch.save's zip format). Fix: give a .safetensors file or a torch .pth/.bin.")


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as exc:
        raise QbenchError(f"FP checkpoint {str(path)!r} cannot be read as safetensors ({type(exc).__name__}: "
                          f"{exc}). Fix: give a file saved with safetensors' save_file.") from None


def raw_state(path: Path, fmt: str) -> dict[str, torch.Tensor]:
    """The file's tensors as its format reads them (timm's reader: EMA/``state_dict`` entries
    unwrapped, ``module.`` prefixes dropped; torch files with ``weights_only=True``)."""
    if fmt == "safetensors":
        return _read_safetensors(path)
    from timm.models import load_state_dict

    try:
        return load_state_dict(str(path), weights_only=True)
    except Exception as exc:  # weights_only refuses pickled objects; a broken file fails to unzip
        raise QbenchError(f"FP checkpoint {str(path)!r} cannot be read safely ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''}). qbench reads torch files with "
                          "weights_only=True only. Fix: save the model's state_dict (tensors only), preferably "
                          "with safetensors.") from None


def first_mismatch(state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]) -> tuple[str, str] | None:
    """The first key (in the model's order, then the file's) that the file and the model disagree
    on, and how; ``None`` when every key and shape matches."""
    for key, want in expected.items():
        if key not in state:
            return key, f"{key!r} is missing from the file (the model has it, shape {tuple(want.shape)})"
        if tuple(state[key].shape) != tuple(want.shape):
            return key, (f"{key!r} has shape {tuple(state[key].shape)} in the file and {tuple(want.shape)} "
                         "in the model")
    for key in state:
        if key not in expected:
            return key, f"{key!r} is in the file but not in the model"
    return None


def _classifier(model: nn.Module) -> tuple[str, ...]:
    cfg = getattr(model, "pretrained_cfg", None) or {}
    names = cfg.get("classifier") or ()
    return (names,) if isinstance(names, str) else tuple(names)


def mismatch_error(path: Path, fmt: str, label: str, model: nn.Module, key: str, how: str,
                   num_classes: int, in_chans: int) -> QbenchError:
    """The error for a file that does not fit: the file, the model, the first mismatch, the fix."""
    what = f"FP checkpoint {str(path)!r} ({fmt}) does not fit model {label} ({num_classes} classes, {in_chans} " \
           f"input channels): {how}."
    if any(key == c or key.startswith(c + ".") for c in _classifier(model)):
        fix = (f"The file's classifier is for other classes than the dataset's {num_classes}: qbench does not "
               "replace a pretrained head (a new head needs FP training, which a file start skips). Fix: use a "
               "checkpoint trained on this dataset's classes, or drop fp_checkpoint so the suite trains the FP model.")
    else:
        fix = ("Fix: give the weights of this exact model (the suite's timm name and kwargs, the dataset's input "
               "channels), e.g. saved from its state_dict" + (", or set fp_checkpoint_format = \"timm\" if it is "
                                                             "timm's pretrained file" if fmt == "safetensors" else "")
               + ".")
    return QbenchError(f"{what} {fix}")


@contextmanager
def _offline() -> Iterator[None]:
    """HF_HUB_OFFLINE=1 while timm loads, restored afterwards."""
    before = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = before


def _through_timm(name: str, path: Path, num_classes: int, in_chans: int, kwargs: dict[str, Any]) -> nn.Module:
    """timm's pretrained path on ``path`` only. The overlay declares the dataset's classes and
    channels as the file's, so timm neither drops a classifier nor adapts the first conv: a file
    that does not fit fails its strict load instead of loading half."""
    import timm
    from timm.models import get_pretrained_cfg

    default = get_pretrained_cfg(name)
    size = tuple(default.input_size[1:]) if default is not None and default.input_size else (224, 224)
    overlay = dict(file=str(path), url="", hf_hub_id="", hf_hub_filename="", source="", state_dict=None,
                   num_classes=num_classes, label_offset=0, input_size=(in_chans, *size))
    with _offline():
        model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay, num_classes=num_classes,
                                  in_chans=in_chans, **kwargs)
    return model


def load_weights(model: nn.Module, name: str, label: str, kwargs: dict[str, Any], path: Path, fmt: str,
                 num_classes: int, in_chans: int) -> None:
    """Load the file into ``model`` (built by :func:`qbench.models.create_model` for the dataset)
    strictly, or raise a :class:`QbenchError` naming the file, the model, the first mismatching
    key and the fix."""
    if not path.is_file():
        raise QbenchError(f"FP checkpoint {str(path)!r} of model {label} does not exist (or is not a file). "
                          "Fix the path, or put the file there.")
    expected = model.state_dict()
    if fmt == "safetensors":
        state = _read_safetensors(path)
    else:
        try:
            state = _through_timm(name, path, num_classes, in_chans, kwargs).state_dict()
        except QbenchError:
            raise
        except (RuntimeError, KeyError, ValueError, FileNotFoundError) as exc:
            state = raw_state(path, fmt)  # read again, only to name the first mismatch
            found = first_mismatch(state, expected)
            if found:
                raise mismatch_error(path, fmt, label, model, *found, num_classes, in_chans) from None
            raise QbenchError(f"timm could not load FP checkpoint {str(path)!r} into model {label}: "
                              f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}. Fix: give a "
                              "file of this model, or use fp_checkpoint_format = \"safetensors\" for a state_dict "
                              "saved by qbench.") from None
    found = first_mismatch(state, expected)
    if found:
        raise mismatch_error(path, fmt, label, model, *found, num_classes, in_chans)
    model.load_state_dict(state, strict=True)


__all__ = ["check_readable", "create_model", "first_mismatch", "load_weights", "raw_state"]
