"""N2UQ for qbench: non-uniform input thresholds, uniform output levels (Liu et al., CVPR 2022)."""

from qbench.api import lazy_exports

# imported on first use: the entry point (.plugin) loads this package, and `qbench list methods`
# should not import torch for it (docs/plugin-contract.md, "Listing without importing torch")
__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".function": ["n2uq_levels", "segment_boundaries"],
    ".quantizers": ["N2UQActivationQuantizer"],
})
