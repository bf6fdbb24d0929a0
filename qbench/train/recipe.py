"""A training phase's recipe: what the loop (:mod:`qbench.train.loop`) reads to train.

It lives with the loop that uses it; suites (:mod:`qbench.run.suite`) parse and validate it from
TOML, and ``qbench.run.suite.TrainRecipe`` stays importable from there.
"""
from __future__ import annotations

from dataclasses import dataclass

#: optimizers and learning-rate schedules the loop builds (``build_optimizer``)
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("cosine", "constant")


@dataclass(frozen=True)
class TrainRecipe:
    """One training phase (FP pre-training or QAT fine-tuning)."""

    epochs: int
    batch_size: int = 64
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
