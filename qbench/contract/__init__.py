"""What plugins implement: quantizers, bit-allocators, training wrappers, methods and bits.

The bottom of the host's layers (docs/architecture.md): it imports nothing else of qbench but
:mod:`qbench.errors`, so a contract never depends on how it is run. Plugin authors reach it through
:mod:`qbench.api`.
"""
