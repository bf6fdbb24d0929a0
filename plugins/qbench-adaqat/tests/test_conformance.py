"""The host's conformance suite on `adaqat`: forward/backward on several timm families, gradients
reach the quantizers, measured levels within 2^b, exact export, state-dict round trip, seeding."""
from qbench.testing import MethodConformance


class TestAdaqatConformance(MethodConformance):
    method = "adaqat"
