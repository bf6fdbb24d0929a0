"""``asq-w``: the weight quantizer the ``asq`` method pairs with ASQ activations, chosen by bits.

The paper evaluates its POST weights at 3 and 4 bits and gives no POST result at 2 bits; its
formula there, ``{0, +-1, +-r^-1}``, is 5 levels that a 2-bit code cannot hold, and the 4 that
qbench keeps (``{-1, 0, r^-1, 1}``) put about 72 % of Gaussian weights on 0. The authors' public
implementation pairs ASQ activations with uniform LSQ weights, one learned step per output
channel, by default. So ``scheme="paper"`` (the default) builds POST (:class:`POSTWeightQuantizer`)
for a layer that starts at 3 bits or more, and the host's ``lsq-w`` (per output channel) below:
at 2 bits, as the authors' code pairs them. ``scheme="post"`` builds POST at every bit-width (what
method v2 did), ``scheme="lsq"`` LSQ at every bit-width (the authors' default pairing).

``lsq-w`` comes from the qbench-lsq plugin, looked up by its registered name in the host's
registry (:func:`qbench.api.registered_quantizer`): a plugin imports no other plugin. The scheme
follows the bits a layer starts at; an allocator that changes bits later keeps the quantizer.
"""
from __future__ import annotations

from torch import nn

from qbench.api import QbenchError, WeightQuantizer, registered_quantizer

from .post import POSTWeightQuantizer

SCHEMES = ("paper", "post", "lsq")
#: The fewest bits at which ``scheme="paper"`` builds POST weights (the paper's POST results: 3, 4 bits).
POST_MIN_BITS = 3
#: The registered name of the uniform weight quantizer used below :data:`POST_MIN_BITS`.
LSQ_WEIGHTS = "lsq-w"


def uses_post(bits: int, scheme: str = "paper") -> bool:
    """Whether ``scheme`` quantizes a layer starting at ``bits`` with POST (else LSQ)."""
    if scheme not in SCHEMES:
        raise QbenchError(f"asq-w: scheme must be one of {', '.join(SCHEMES)}, got {scheme!r}.")
    return scheme == "post" or (scheme == "paper" and int(bits) >= POST_MIN_BITS)


def asq_weight_quantizer(bits: int, layer: nn.Module, scheme: str = "paper", drop: str = "negative",
                         init_quantile: float = 0.99, grad_scale: bool = True,
                         lsq_per_channel: bool = True) -> WeightQuantizer:
    """POST or LSQ weights for one layer (see the module docstring).

    :param scheme: "paper" (POST from 3 bits, LSQ below), "post" (always POST), "lsq" (always LSQ).
    :param drop, init_quantile, grad_scale: POST's parameters (:class:`POSTWeightQuantizer`).
    :param lsq_per_channel: LSQ's step per output channel (the authors' implementation) or per
        tensor (the LSQ paper).
    """
    if uses_post(bits, scheme):
        return POSTWeightQuantizer(bits, layer, drop=drop, init_quantile=init_quantile, grad_scale=grad_scale)
    return registered_quantizer(LSQ_WEIGHTS, kind="weight")(bits=bits, layer=layer, per_channel=lsq_per_channel)


asq_weight_quantizer.kind = "weight"  # type: ignore[attr-defined]
