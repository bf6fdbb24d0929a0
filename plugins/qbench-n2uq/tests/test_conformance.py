"""The host's conformance suite on ``n2uq`` (resnet20 and a micro ViT on digits): training through
the real harness path, gradients reach t0 / widths / scale, audited levels <= 2^b, exact export,
state dict through ``torch.load(weights_only=True)``, a seed fixes the result."""
from qbench.testing import MethodConformance


class TestN2uqConformance(MethodConformance):
    method = "n2uq"
