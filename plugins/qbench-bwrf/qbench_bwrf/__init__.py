"""BWRF for qbench: train a low-precision network together with mixed-precision networks made
by swapping its blocks into the frozen full-precision counterpart (Yu et al., arXiv 2412.15846).
"""

from qbench.api import lazy_exports

# imported on first use: the entry point (.plugin) loads this package, and `qbench list methods`
# should not import torch for it (docs/plugin-contract.md, "Listing without importing torch")
__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".blocks": ["find_blocks"],
    ".wrapper": ["BWRFWrapper"],
})
