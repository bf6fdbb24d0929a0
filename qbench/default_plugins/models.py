"""Announce the CIFAR-style ResNets qbench registers into timm."""
from __future__ import annotations

from typing import Callable

from qbench import hookimpl

#: name -> description of the models :mod:`qbench.models.cifar_resnet` registers into timm (when
#: :mod:`qbench.models` is imported, as building any model does). Written here rather than read
#: from that module, which imports timm: ``qbench list models`` should not take seconds. A test
#: holds the two to the same names and first docstring lines.
CIFAR_MODELS = {
    "resnet20": "CIFAR-style ResNet-20 (0.27 M parameters), the usual QAT model on small images.",
    "resnet32": "CIFAR-style ResNet-32.",
    "resnet56": "CIFAR-style ResNet-56.",
}


@hookimpl
def qbench_register_models(register: Callable[..., None]) -> None:
    for name, description in CIFAR_MODELS.items():
        register(name, description=description)
