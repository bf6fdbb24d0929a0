"""A user's own code, written for tests and the worked example of ``qbench advise``.

:data:`MODELS_SOURCE` is a module as a user would write it: a small CNN factory that takes the
number of classes and input channels (qbench passes them when a factory accepts them), and a few
broken factories, one per mistake ``--model`` names in one line. :func:`write_user_module` puts it
where a command finds it (the working directory is on the import path).
"""
from __future__ import annotations

import sys
from pathlib import Path

MODELS_SOURCE = '''"""My models: what I would pass as --model mymodels:tiny_cnn."""
from torch import nn


def tiny_cnn(num_classes: int = 10, in_chans: int = 3, width: int = 8) -> nn.Module:
    """Two 3x3 convolutions with batch norm, global pooling and a linear classifier."""
    return nn.Sequential(
        nn.Conv2d(in_chans, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, padding=1, stride=2), nn.BatchNorm2d(2 * width), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, num_classes))


def ten_classes() -> nn.Module:
    """Ignores the data's classes: always 10 outputs."""
    return nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.LazyLinear(10))


def with_lstm(num_classes: int = 10, in_chans: int = 3) -> nn.Module:
    model = tiny_cnn(num_classes, in_chans)
    model.add_module("rnn", nn.LSTM(num_classes, num_classes))
    return model


def not_a_model() -> int:
    return 3
'''


def write_user_module(directory: Path | str, name: str = "mymodels", source: str = MODELS_SOURCE) -> Path:
    """Write ``source`` as ``directory/name.py`` and forget any module of that name already imported
    (a test that rewrites it imports the new code). Returns the file."""
    path = Path(directory) / f"{name}.py"
    path.write_text(source)
    sys.modules.pop(name, None)
    return path
