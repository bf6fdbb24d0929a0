"""ASQ + POST (Zhou et al., arXiv 2504.17263, 2025) as qbench quantizers and a method.

* :class:`~qbench_asq.asq.ASQActQuantizer` (``asq-a``): activation step ``s * beta(x)`` with a
  per-sample adapter.
* :class:`~qbench_asq.post.POSTWeightQuantizer` (``post-w``): power-of-sqrt(2) weight levels
  from a look-up table, per-output-channel scale.
"""
from .asq import ASQActQuantizer, ASQAdapter, asq_quantize
from .post import POSTWeightQuantizer, post_decode, post_levels

__all__ = ["ASQActQuantizer", "ASQAdapter", "asq_quantize",
           "POSTWeightQuantizer", "post_decode", "post_levels"]
