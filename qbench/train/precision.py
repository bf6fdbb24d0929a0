"""How a phase computes on its device: TF32, autocast, memory layout and the gradient scaler.

The recipe's precision fields (:class:`~qbench.train.recipe.TrainRecipe`: ``tf32``, ``amp``,
``channels_last``) are applied here, for the loop and evaluation alike, so a model is trained and
scored the same way. At their defaults nothing changes on a CPU: TF32 flags only reach CUDA
kernels, autocast is off, and the layout stays contiguous.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from qbench.train.recipe import TrainRecipe, check_amp

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def set_tf32(enabled: bool) -> None:
    """cuBLAS matmuls and cuDNN convolutions in TF32 or in full float32. Harmless on a CPU: the
    flags only reach CUDA kernels. Both are set, because their defaults differ (matmul off, cuDNN
    on): leaving cuDNN's on makes GPU convolutions round their inputs to 10 mantissa bits."""
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


@contextlib.contextmanager
def tf32(enabled: bool) -> Iterator[None]:
    """:func:`set_tf32` for a block; the flags are restored after it."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    set_tf32(enabled)
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _device_type(device: torch.device | str | None) -> str:
    return torch.device(device).type if device is not None else "cpu"


def autocast(recipe: TrainRecipe, device: torch.device | str | None) -> contextlib.AbstractContextManager:
    """The recipe's autocast on ``device`` (nothing when ``amp`` is off)."""
    if recipe.amp == "off":
        return contextlib.nullcontext()
    kind = _device_type(device)
    check_amp(recipe.amp, kind)
    return torch.autocast(kind, dtype=DTYPES[recipe.amp])


@contextlib.contextmanager
def computing(recipe: TrainRecipe, device: torch.device | str | None) -> Iterator[None]:
    """A block (a training phase, an evaluation) computed as ``recipe`` says: its TF32 setting,
    checked autocast (the forward passes enter :func:`autocast` themselves)."""
    if recipe.amp != "off":
        check_amp(recipe.amp, _device_type(device))
    with tf32(recipe.tf32):
        yield


def grad_scaler(recipe: TrainRecipe) -> torch.amp.GradScaler | None:
    """float16 gradients underflow without loss scaling; bfloat16 has float32's range and needs none."""
    return torch.amp.GradScaler("cuda") if recipe.amp == "fp16" else None


def model_layout(model: nn.Module, recipe: TrainRecipe) -> None:
    """Put the model's 4-D parameters and buffers in channels-last layout when the recipe asks."""
    if recipe.channels_last:
        model.to(memory_format=torch.channels_last)


def batch_layout(x: Tensor, recipe: TrainRecipe) -> Tensor:
    """An image batch in the recipe's layout (other inputs as they are)."""
    if recipe.channels_last and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x
