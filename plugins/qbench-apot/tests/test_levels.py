"""APoT level sets: sums of powers of two, as documented, computed here independently."""
from __future__ import annotations

import itertools
from fractions import Fraction as F

import pytest
import torch
from qbench_apot.levels import apot_levels, apot_levels_exact, project_nearest

# The additive terms written out by hand (the README's table): each term picks 0 or one power.
DOCUMENTED_TERMS = {
    1: [[F(1, 2)]],
    2: [[F(1, 2), F(1, 4), F(1, 8)]],
    3: [[F(1, 2), F(1, 4), F(1, 16)], [F(1, 8)]],
    4: [[F(1, 2), F(1, 8), F(1, 32)], [F(1, 4), F(1, 16), F(1, 64)]],
}
# The normalised sets stated in the README and the levels docstring.
DOCUMENTED_SETS = {
    1: [F(0), F(1)],
    2: [F(0), F(1, 4), F(1, 2), F(1)],
    3: [F(0), F(1, 10), F(1, 5), F(3, 10), F(2, 5), F(3, 5), F(4, 5), F(1)],
    4: [F(0), F(1, 48), F(1, 24), F(1, 16), F(1, 12), F(1, 8), F(1, 6), F(3, 16), F(1, 4),
        F(1, 3), F(3, 8), F(1, 2), F(2, 3), F(11, 16), F(3, 4), F(1)],
}


def _enumerate(terms: list[list[F]]) -> list[F]:
    sums = {sum(choice) for choice in itertools.product(*[[F(0)] + t for t in terms])}
    top = max(sums)
    return sorted(s / top for s in sums)


@pytest.mark.parametrize("magnitude_bits", [1, 2, 3, 4])
def test_level_set_equals_enumerated_sums(magnitude_bits: int) -> None:
    enumerated = _enumerate(DOCUMENTED_TERMS[magnitude_bits])
    assert enumerated == DOCUMENTED_SETS[magnitude_bits]
    assert list(apot_levels_exact(magnitude_bits)) == enumerated
    assert len(enumerated) == 2**magnitude_bits


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_weight_and_activation_sets_for_b(bits: int) -> None:
    """b-bit activations: Q(1, b); b-bit weights: +-Q(1, b - 1), at most 2^b values."""
    act = apot_levels(bits)
    assert torch.allclose(act, torch.tensor([float(v) for v in DOCUMENTED_SETS[bits]]))
    w = apot_levels(bits - 1, signed=True)
    mags = [float(v) for v in DOCUMENTED_SETS[bits - 1]]
    assert torch.allclose(w, torch.tensor(sorted({-m for m in mags} | set(mags))))
    assert w.numel() == 2**bits - 1 <= 2**bits
    assert torch.equal(w, -w.flip(0))  # symmetric about 0


@pytest.mark.parametrize("magnitude_bits", [1, 2, 3, 4, 5, 6, 8])
def test_every_level_is_a_short_sum_of_powers_of_two(magnitude_bits: int) -> None:
    """Beyond the documented b: 2^B distinct levels, each (before normalising) a sum of at most
    ceil(B / 2) distinct powers of two."""
    levels = apot_levels_exact(magnitude_bits)
    assert len(levels) == 2**magnitude_bits
    terms = (magnitude_bits + 1) // 2
    # Undo the normalisation: the unnormalised maximum is the sum of every term's largest power.
    m = magnitude_bits // 2
    top = sum(F(1, 2 ** (j + 1)) for j in range(m)) + (F(1, 2 ** (2 * m + 1)) if magnitude_bits % 2 else 0)
    for v in levels:
        raw = v * top
        assert raw.denominator & (raw.denominator - 1) == 0  # dyadic
        ones = bin(raw.numerator).count("1")  # distinct powers of two in a dyadic number
        assert ones <= terms


def test_projection_picks_the_nearest_level() -> None:
    torch.manual_seed(0)
    levels = apot_levels(3)
    u = torch.rand(1000)
    brute = levels[(u[:, None] - levels[None, :]).abs().argmin(1)]
    assert torch.equal(project_nearest(u, levels), brute)
