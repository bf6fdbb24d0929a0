"""Announce the CIFAR-style ResNets qbench registers into timm."""
from __future__ import annotations

from typing import Callable

from qbench import hookimpl
from qbench.models.cifar_resnet import CIFAR_MODELS


@hookimpl
def qbench_register_models(register: Callable[..., None]) -> None:
    for name, fn in CIFAR_MODELS.items():
        register(name, description=(fn.__doc__ or "").strip())
