"""ADQ for qbench: adaptive distribution-aware quantization (Jia et al., arXiv 2510.19760)."""
from .allocator import ADQSensitivityAllocator
from .codebook import init_codebook, nearest, quantile_probs
from .quantizers import ADQWeightQuantizer

__all__ = ["ADQSensitivityAllocator", "ADQWeightQuantizer", "init_codebook", "nearest", "quantile_probs"]
