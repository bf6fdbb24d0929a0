"""N2UQ for qbench: non-uniform input thresholds, uniform output levels (Liu et al., CVPR 2022)."""
from .function import n2uq_levels, segment_boundaries
from .quantizers import N2UQActivationQuantizer

__all__ = ["N2UQActivationQuantizer", "n2uq_levels", "segment_boundaries"]
