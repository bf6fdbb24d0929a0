"""APoT level sets: every level is a sum of powers of two (Li, Dong, Wang, ICLR 2020).

The paper's set for B magnitude bits, base bit-width k = 2 and n = B / k additive terms::

    Q(1, B) = gamma * { p_0 + ... + p_{n-1} },  p_i in {0, 2^-i, 2^-(i+n), 2^-(i+2n)}

(each term picks one of 2^k = 4 values, so the set has 4^n = 2^B levels, all distinct because
every power of two belongs to one term only); gamma rescales so that the largest level is 1.
For odd B the authors' released level sets use floor(B/2) two-bit terms plus one one-bit term
{0, 2^-(B)} (exponents below). qbench follows that, and extends the same rule to any B.

Exponents e (the term holds 2^-e), for m = floor(B / 2):

* B even: two-bit term j = 0..m-1 holds e = j+1, j+1+m, j+1+2m;
* B odd:  two-bit term j holds e = j+1, j+1+m, j+2+2m, and the one-bit term holds e = 2m+1.

Normalised sets (``apot_levels(B)``), exact:

* B = 1: {0, 1}
* B = 2: {0, 1/4, 1/2, 1}                                    (terms {2^-1, 2^-2, 2^-3})
* B = 3: {0, 1/10, 1/5, 3/10, 2/5, 3/5, 4/5, 1}              ({2^-1, 2^-2, 2^-4} + {2^-3})
* B = 4: {0, 1/48, 1/24, 1/16, 1/12, 1/8, 1/6, 3/16, 1/4, 1/3, 3/8, 1/2, 2/3, 11/16, 3/4, 1}
                                                             ({2^-1, 2^-3, 2^-5} + {2^-2, 2^-4, 2^-6})

A b-bit activation (unsigned) uses B = b. A b-bit weight is signed: one sign bit and B = b - 1
magnitude bits, levels +-Q(1, b - 1): 2 * 2^(b-1) - 1 = 2^b - 1 distinct values (0 is shared by
both signs), so b bits always hold them. For b = 2 this is the ternary {-1, 0, 1}, which is also
what the authors use for 2-bit weights.
"""
from __future__ import annotations

from fractions import Fraction
from functools import lru_cache

import torch
from torch import Tensor

# The projection onto a level set is the host's (shared with POST, ADQ and DGMS); re-exported here.
from qbench.api import project_nearest, project_ste

__all__ = ["apot_levels", "apot_levels_exact", "apot_terms", "project_nearest", "project_ste"]


def apot_terms(magnitude_bits: int) -> list[list[int]]:
    """The additive terms for B magnitude bits, each as the exponents e of its values 2^-e.

    Every term also holds 0. Two-bit terms hold three powers, the one-bit term (odd B) one.
    """
    b = int(magnitude_bits)
    if b < 1:
        raise ValueError(f"APoT needs at least 1 magnitude bit, got {b}")
    m = b // 2
    if b % 2 == 0:
        return [[j + 1, j + 1 + m, j + 1 + 2 * m] for j in range(m)]
    terms = [[j + 1, j + 1 + m, j + 2 + 2 * m] for j in range(m)]
    terms.append([2 * m + 1])
    return terms


@lru_cache(maxsize=None)
def apot_levels_exact(magnitude_bits: int) -> tuple[Fraction, ...]:
    """Q(1, B) as exact fractions, sorted ascending, largest = 1."""
    sums = {Fraction(0)}
    for term in apot_terms(magnitude_bits):
        choices = [Fraction(0)] + [Fraction(1, 2**e) for e in term]
        sums = {s + c for s in sums for c in choices}
    top = max(sums)
    return tuple(sorted(s / top for s in sums))


def apot_levels(magnitude_bits: int, signed: bool = False, device: torch.device | None = None,
                dtype: torch.dtype = torch.float32) -> Tensor:
    """Normalised levels in [0, 1] (unsigned) or [-1, 1] (signed: +-levels, 0 once), sorted."""
    mags = [float(v) for v in apot_levels_exact(magnitude_bits)]
    values = sorted({-v for v in mags} | set(mags)) if signed else mags
    return torch.tensor(values, device=device, dtype=dtype)
