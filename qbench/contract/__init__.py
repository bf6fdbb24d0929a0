"""What plugins implement: quantizers, bit-allocators, training wrappers, methods and bits.

Layer 1 of 4, the bottom: it imports nothing else of qbench but :mod:`qbench.errors`. Plugin
authors reach it through :mod:`qbench.api`.
"""
