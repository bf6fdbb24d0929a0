"""The host's conformance suite on ``adq`` (resnet20 and a micro ViT on digits): sensitivity
allocation, codebook weights, N2UQ activations and KD through the real harness path; gradients,
audited levels <= 2^b, exact export, state dict (codebooks of any size) through
``torch.load(weights_only=True)``, a seed fixes the result."""
from qbench.testing import MethodConformance


class TestAdqConformance(MethodConformance):
    method = "adq"
