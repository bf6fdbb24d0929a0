"""The host's conformance suite on the ``dgms`` method (resnet20 and a micro ViT on digits):
training through the real harness path, gradients, audited levels, export, state dict, seed."""
from qbench.testing import MethodConformance


class TestDgmsConformance(MethodConformance):
    method = "dgms"
