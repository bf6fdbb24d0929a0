"""BWRF for qbench: train a low-precision network together with mixed-precision networks made
by swapping its blocks into the frozen full-precision counterpart (Yu et al., arXiv 2412.15846).
"""
from .blocks import find_blocks
from .wrapper import BWRFWrapper

__all__ = ["BWRFWrapper", "find_blocks"]
