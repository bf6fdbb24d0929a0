"""Tests here use tiny tensors: one torch thread each (see qbench.testing.threads)."""
from qbench.testing.threads import one_torch_thread  # noqa: F401
