"""DoReFa-Net quantizers for qbench (Zhou et al., 2016)."""
from .quantizers import DoReFaActQuantizer, DoReFaWeightQuantizer, quantize_k

__all__ = ["DoReFaActQuantizer", "DoReFaWeightQuantizer", "quantize_k"]
