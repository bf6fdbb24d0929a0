"""AdaQAT for qbench: bit-widths learned by finite differences during QAT (Gernigon et al., 2024)."""

from qbench.api import lazy_exports

# imported on first use: the entry point (.plugin) loads this package, and `qbench list methods`
# should not import torch for it (docs/plugin-contract.md, "Listing without importing torch")
__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".allocator": ["AdaQATAllocator", "BitPair", "BitWidth", "ceil_bits"],
})
