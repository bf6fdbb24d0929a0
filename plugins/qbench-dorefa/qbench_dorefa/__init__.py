"""DoReFa-Net quantizers for qbench (Zhou et al., 2016)."""

from qbench.api import lazy_exports

# imported on first use: the entry point (.plugin) loads this package, and `qbench list methods`
# should not import torch for it (docs/plugin-contract.md, "Listing without importing torch")
__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".quantizers": ["DoReFaActQuantizer", "DoReFaWeightQuantizer", "quantize_k"],
})
