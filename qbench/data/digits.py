"""scikit-learn's digits: the embedded default dataset (1797 8x8 images, shipped with sklearn).

The split is fixed (stratified, 20 % test, random_state 0) so every machine sees the same data.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import TensorDataset

from qbench.data.bundle import DataBundle, tensor_fingerprint


def load_digits(data_dir: Path | None = None, test_size: float = 0.2, split_seed: int = 0) -> DataBundle:
    """Digits as 1x8x8 float images, standardised with the training split's mean and std."""
    from sklearn.datasets import load_digits as sk_load
    from sklearn.model_selection import train_test_split

    d = sk_load()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(d.target, dtype=torch.int64)
    idx_train, idx_test = train_test_split(range(len(y)), test_size=test_size, stratify=d.target,
                                           random_state=split_seed)
    xtr, ytr = x[idx_train], y[idx_train]
    xte, yte = x[idx_test], y[idx_test]
    mean, std = xtr.mean(), xtr.std()
    xtr, xte = (xtr - mean) / std, (xte - mean) / std
    return DataBundle(
        name="digits", train=TensorDataset(xtr, ytr), test=TensorDataset(xte, yte), num_classes=10,
        in_chans=1, image_size=(8, 8), fingerprint=tensor_fingerprint(xtr, ytr, xte, yte),
        source="sklearn.datasets.load_digits (split: stratified, test_size=%s, seed=%d)" % (test_size, split_seed))
