"""Tests here use tiny tensors: one torch thread each (see qbench.testing.threads)."""
from qbench.testing import one_torch_thread  # noqa: F401
