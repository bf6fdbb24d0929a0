"""The unquantized reference: the FP checkpoint itself, evaluated as trained."""
from __future__ import annotations

from typing import Callable

from qbench import hookimpl
from qbench.contract.method import Method

FP32 = Method(name="fp32", version=1, reference=True,
              description="Full-precision reference: the shared FP checkpoint, no QAT.")


@hookimpl
def qbench_register_methods(register: Callable[..., None]) -> None:
    register(FP32)
