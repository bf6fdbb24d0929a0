"""DGMS for qbench: Differentiable Gaussian Mixture weight Sharing (Dong et al., ICML 2022).

Weights only: each quantized layer carries a K = 2**bits component Gaussian mixture, one component
pinned at 0. Training uses a temperature-softmax over the mixture responsibilities (no STE);
evaluation uses the MAP component's mean.
"""

from qbench.api import lazy_exports

# imported on first use: the entry point (.plugin) loads this package, and `qbench list methods`
# should not import torch for it (docs/plugin-contract.md, "Listing without importing torch")
__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".kmeans": ["kmeans_1d", "kmeans_pp_seeds"],
    ".mixture": ["map_index", "soft_weight"],
    ".quantizer": ["DGMSWeightQuantizer"],
})
