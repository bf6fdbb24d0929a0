"""AdaQAT for qbench: bit-widths learned by finite differences during QAT (Gernigon et al., 2024)."""
from .allocator import AdaQATAllocator, BitPair, BitWidth, ceil_bits

__all__ = ["AdaQATAllocator", "BitPair", "BitWidth", "ceil_bits"]
