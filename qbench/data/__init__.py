"""Datasets: a :class:`DataBundle` per dataset, and fast batching for in-memory ones."""
from qbench.data.bundle import DataBundle, iterate_batches, tensor_fingerprint

__all__ = ["DataBundle", "iterate_batches", "tensor_fingerprint"]
