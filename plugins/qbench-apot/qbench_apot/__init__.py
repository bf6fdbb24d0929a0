"""APoT for qbench: additive powers-of-two levels with learnable clipping (Li et al., ICLR 2020)."""

from qbench.api import lazy_exports

# imported on first use: the entry point (.plugin) loads this package, and `qbench list methods`
# should not import torch for it (docs/plugin-contract.md, "Listing without importing torch")
__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".levels": ["apot_levels", "apot_terms", "project_nearest"],
    ".quantizers": ["ApotActQuantizer", "ApotWeightQuantizer"],
})
