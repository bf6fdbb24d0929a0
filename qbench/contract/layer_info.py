"""What the host tells a plugin about one quantizable layer.

Allocators receive these before QAT (which layers, their role, their cost); the surgery in
:mod:`qbench.train.surgery` measures them with one forward pass.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LayerInfo:
    """A quantizable layer: where it is, its role, and what it costs per sample."""

    name: str
    kind: str  # "conv" | "linear"
    role: str  # "first" | "last" | "body"
    weight_numel: int
    out_channels: int
    in_channels: int
    macs: int
