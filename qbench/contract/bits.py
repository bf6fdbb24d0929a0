"""Bit targets ("W4A4") and per-layer bit plans."""
from __future__ import annotations

import re
from dataclasses import dataclass

from qbench.errors import QbenchError

_TARGET = re.compile(r"^\s*(?:w\s*(\d+)\s*a\s*(\d+)|(\d+))\s*$", re.IGNORECASE)


@dataclass(frozen=True, order=True)
class BitTarget:
    """The suite's bit target for a job: weight bits and activation bits (32 = not quantized)."""

    w: int
    a: int

    @classmethod
    def parse(cls, text: str | int) -> "BitTarget":
        """Parse ``"W4A4"``, ``"w2a8"`` or ``4`` (meaning W4A4)."""
        m = _TARGET.match(str(text))
        if not m:
            raise QbenchError(f"Invalid bit target {text!r}: write W<bits>A<bits> (e.g. W4A4) or a "
                              "single integer for equal weight and activation bits (e.g. 4).")
        w, a = (int(m.group(1)), int(m.group(2))) if m.group(3) is None else (int(m.group(3)),) * 2
        for what, b in (("weight", w), ("activation", a)):
            if not 1 <= b <= 32:
                raise QbenchError(f"Invalid bit target {text!r}: {what} bits must be between 1 and 32, got {b}.")
        return cls(w, a)

    @property
    def label(self) -> str:
        return f"W{self.w}A{self.a}"

    def __str__(self) -> str:
        return self.label


@dataclass(frozen=True)
class LayerBits:
    """Bits for one layer; ``None`` keeps that side in floating point."""

    w: int | None
    a: int | None


#: first/last-layer rules a suite can choose: keep them FP, or quantize them at 8 bits (W8A8).
FIRST_LAST_RULES = ("fp", "8bit")


def first_last_bits(rule: str) -> LayerBits:
    if rule == "fp":
        return LayerBits(None, None)
    if rule == "8bit":
        return LayerBits(8, 8)
    raise QbenchError(f"Unknown first/last-layer rule {rule!r}. Use one of: {', '.join(FIRST_LAST_RULES)}.")
