"""APoT for qbench: additive powers-of-two levels with learnable clipping (Li et al., ICLR 2020)."""
from .levels import apot_levels, apot_terms, project_nearest
from .quantizers import ApotActQuantizer, ApotWeightQuantizer

__all__ = ["ApotActQuantizer", "ApotWeightQuantizer", "apot_levels", "apot_terms", "project_nearest"]
