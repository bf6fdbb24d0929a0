"""DGMS for qbench: Differentiable Gaussian Mixture weight Sharing (Dong et al., ICML 2022).

Weights only: each quantized layer carries a K = 2**bits component Gaussian mixture, one component
pinned at 0. Training uses a temperature-softmax over the mixture responsibilities (no STE);
evaluation uses the MAP component's mean.
"""
from .kmeans import kmeans_1d, kmeans_pp_seeds
from .mixture import map_index, soft_weight
from .quantizer import DGMSWeightQuantizer

__all__ = ["DGMSWeightQuantizer", "kmeans_1d", "kmeans_pp_seeds", "map_index", "soft_weight"]
