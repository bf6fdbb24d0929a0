"""PACT activation quantizer for qbench (Choi et al., 2018)."""
from .quantizers import PACTActQuantizer, PACTFunction, pact_quantize

__all__ = ["PACTActQuantizer", "PACTFunction", "pact_quantize"]
