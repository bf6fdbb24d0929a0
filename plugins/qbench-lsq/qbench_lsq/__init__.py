"""LSQ, Learned Step Size Quantization (Esser et al., ICLR 2020), as a qbench plugin.

:mod:`qbench_lsq.function` holds the quantizer with the paper's gradient rule,
:mod:`qbench_lsq.quantizers` the ``lsq-w`` / ``lsq-a`` quantizer modules and
:mod:`qbench_lsq.plugin` the registrations (quantizers and the methods ``lsq``, ``lsq-pc``).
"""
from .function import lsq_quantize
from .quantizers import LSQActivationQuantizer, LSQWeightQuantizer, lsq_init_step

__all__ = ["LSQActivationQuantizer", "LSQWeightQuantizer", "lsq_init_step", "lsq_quantize"]
