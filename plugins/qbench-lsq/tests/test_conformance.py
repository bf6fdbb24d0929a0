"""The host's conformance suite on ``lsq`` and ``lsq-pc`` (resnet20 and a micro ViT on digits):
training through the real harness path, gradients reach the steps, audited levels <= 2^b,
exact export, state dict through ``torch.load(weights_only=True)``, a seed fixes the result."""
from qbench.testing import MethodConformance


class TestLsqConformance(MethodConformance):
    method = "lsq"


class TestLsqPerChannelConformance(MethodConformance):
    method = "lsq-pc"
