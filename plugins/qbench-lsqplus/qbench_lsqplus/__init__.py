"""LSQ+ for qbench: asymmetric learnable scale + offset (Bhalgat et al., 2020)."""

from qbench.api import lazy_exports

# imported on first use: the entry point (.plugin) loads this package, and `qbench list methods`
# should not import torch for it (docs/plugin-contract.md, "Listing without importing torch")
__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".quantizers": ["LsqPlusActQuantizer", "LsqPlusWeightQuantizer"],
})
