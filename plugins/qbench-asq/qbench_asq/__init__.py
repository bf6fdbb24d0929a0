"""ASQ + POST (Zhou et al., arXiv 2504.17263, 2025) as qbench quantizers and a method.

* :class:`~qbench_asq.asq.ASQActQuantizer` (``asq-a``): activation step ``s * beta(x)`` with a
  per-sample adapter.
* :class:`~qbench_asq.post.POSTWeightQuantizer` (``post-w``): power-of-sqrt(2) weight levels
  from a look-up table, per-output-channel scale.
"""

from qbench.api import lazy_exports

# imported on first use: the entry point (.plugin) loads this package, and `qbench list methods`
# should not import torch for it (docs/plugin-contract.md, "Listing without importing torch")
__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".asq": ["ASQActQuantizer", "ASQAdapter", "asq_quantize"],
    ".post": ["POSTWeightQuantizer", "post_decode", "post_levels"],
})
