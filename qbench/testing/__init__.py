"""qbench.testing: a pytest plugin (entry point ``pytest11``) and the conformance suite for plugin authors."""
from .conformance import MethodConformance

__all__ = ["MethodConformance"]
