"""LSQ, Learned Step Size Quantization (Esser et al., ICLR 2020), as a qbench plugin.

:mod:`qbench_lsq.function` holds the quantizer with the paper's gradient rule,
:mod:`qbench_lsq.quantizers` the ``lsq-w`` / ``lsq-a`` quantizer modules and
:mod:`qbench_lsq.plugin` the registrations (quantizers and the methods ``lsq``, ``lsq-pc``).
"""

from qbench.api import lazy_exports

# imported on first use: the entry point (.plugin) loads this package, and `qbench list methods`
# should not import torch for it (docs/plugin-contract.md, "Listing without importing torch")
__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".function": ["lsq_quantize"],
    ".quantizers": ["LSQActivationQuantizer", "LSQWeightQuantizer", "lsq_init_step"],
})
