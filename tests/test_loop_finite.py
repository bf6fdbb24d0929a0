"""A NaN or inf loss fails the job as it always did (FloatingPointError naming the epoch and the
step that made it, a ``failed`` row), although the loop now reads its losses only once per
FINITE_CHECK_EVERY steps and at each epoch's end: at most that many steps late, never after the
epoch's checkpoint, and not hidden by an error the diverged model raises first."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from qbench.plugin.catalog import Catalog
from qbench.testing import tiny_digits
from qbench.train.loop import FINITE_CHECK_EVERY, train
from qbench.train.recipe import TrainRecipe


class Memory:
    """An in-memory epoch checkpoint."""

    def __init__(self) -> None:
        self.saved: list[int] = []

    def load(self) -> dict[str, Any] | None:
        return None

    def save(self, state: dict[str, Any]) -> None:
        self.saved.append(state["epoch"])


def run(bad_at: int, value: float, steps_per_epoch: int = 4, epochs: int = 1, then_raise_after: int | None = None,
        checkpoint: Memory | None = None) -> tuple[pytest.ExceptionInfo, list[int]]:
    """Train until the loss at step ``bad_at`` (0-based) is ``value``; the calls made."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    calls: list[int] = []

    def loss_fn(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        calls.append(len(calls))
        if then_raise_after is not None and len(calls) > bad_at + then_raise_after:
            raise ValueError("the diverged model broke a plugin's check")
        loss = nn.functional.cross_entropy(model(x), y)
        return loss * value if len(calls) - 1 == bad_at else loss

    with pytest.raises(FloatingPointError) as err:
        train(model, loss_fn, tiny_digits(n_train=8 * steps_per_epoch), TrainRecipe(epochs=epochs, batch_size=8),
              seed=0, checkpoint=checkpoint)
    return err, calls


@pytest.mark.parametrize("value, shown", [(float("nan"), "nan"), (float("inf"), "inf")])
def test_the_error_names_the_step_that_made_it(value: float, shown: str) -> None:
    err, calls = run(bad_at=FINITE_CHECK_EVERY // 2, value=value, steps_per_epoch=3 * FINITE_CHECK_EVERY)
    assert str(err.value) == f"loss became {shown} at epoch 1, step {FINITE_CHECK_EVERY // 2}"
    assert len(calls) - 1 - FINITE_CHECK_EVERY // 2 < FINITE_CHECK_EVERY, "found more than N steps late"


def test_a_nan_is_found_before_its_epoch_is_checkpointed() -> None:
    ckpt = Memory()
    err, _ = run(bad_at=5, value=float("nan"), steps_per_epoch=4, epochs=3, checkpoint=ckpt)
    assert str(err.value) == "loss became nan at epoch 2, step 5"
    assert ckpt.saved == [1], "the diverged epoch must not be saved"


def test_an_error_after_the_nan_does_not_hide_it() -> None:
    err, _ = run(bad_at=2, value=float("nan"), steps_per_epoch=FINITE_CHECK_EVERY, then_raise_after=2)
    assert str(err.value) == "loss became nan at epoch 1, step 2"
    assert isinstance(err.value.__context__, ValueError)


def test_a_diverging_job_gets_the_failed_row_it_always_got(catalog: Catalog, tiny_suite_path: Path,
                                                           tmp_path: Path) -> None:
    from qbench.contract.method import Method
    from qbench.contract.quant.base import WeightQuantizer
    from qbench.plugin.catalog import Component
    from qbench.run.harness import Harness
    from qbench.run.plan import plan_jobs
    from qbench.run.workspace import Workspace

    class Diverges(WeightQuantizer):
        """Weights turn to NaN from the 6th training forward on (calibration is the first)."""

        def __init__(self, bits: int, layer: object = None) -> None:
            super().__init__(bits)
            self.forwards = 0

        def forward(self, w: torch.Tensor) -> torch.Tensor:
            self.forwards += self.training
            return w * float("nan") if self.forwards > 5 else w

    catalog.quantizers.add("nan-w", Component("nan-w", Diverges, "", "weight"), "test")
    catalog.methods.add("diverges", Method(name="diverges", version=1, weight_quantizer="nan-w"), "test")
    suite, jobs = plan_jobs(catalog, str(tiny_suite_path), ["diverges"], None, None, None, None)
    row = Harness(catalog, Workspace(tmp_path)).run(suite, jobs)[-1]
    assert row["status"] == "failed" and row["reason"] == "FloatingPointError: loss became nan at epoch 1, step 4"
