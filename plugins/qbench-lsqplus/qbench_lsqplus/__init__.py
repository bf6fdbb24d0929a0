"""LSQ+ for qbench: asymmetric learnable scale + offset (Bhalgat et al., 2020)."""
from .quantizers import LsqPlusActQuantizer, LsqPlusWeightQuantizer

__all__ = ["LsqPlusActQuantizer", "LsqPlusWeightQuantizer"]
