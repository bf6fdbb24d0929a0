"""A training phase's recipe: what the loop (:mod:`qbench.train.loop`) reads to train.

It lives with the loop that uses it; suites (:mod:`qbench.run.suite`) parse and validate it from
TOML, and ``qbench.run.suite.TrainRecipe`` stays importable from there.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from qbench.errors import QbenchError

#: optimizers and learning-rate schedules the loop builds (``build_optimizer``)
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("cosine", "constant")
#: autocast settings (``TrainRecipe.amp``): off (float32), bfloat16 (CPU and GPU), float16 (GPU only,
#: with a gradient scaler: float16's range is too small for unscaled gradients)
AMP = ("off", "bf16", "fp16")

#: Fields added after suites were published. At their default they are left out of the job keys
#: and the suite hash (:meth:`TrainRecipe.hashed`), so a suite that does not set them keeps the
#: keys its rows were published under; set, they are hashed like any other field.
KEYED_WHEN_SET = ("tf32", "amp", "channels_last")


@dataclass(frozen=True)
class TrainRecipe:
    """One training phase (FP pre-training or QAT fine-tuning).

    The last three fields say how a GPU computes the phase (and its evaluation); each changes the
    numbers, so each is part of the job key once it differs from its default:

    * ``tf32``: TensorFloat-32 in cuBLAS matmuls and cuDNN convolutions
      (``torch.backends.cuda.matmul.allow_tf32``, ``torch.backends.cudnn.allow_tf32``). Off by
      default, although cuDNN's own default is on: TF32 rounds inputs to 10 mantissa bits, so GPU
      logits would no longer match onnxruntime's float32 ones in the deploy parity check. No
      effect on a CPU.
    * ``amp``: autocast of the forward passes (loss and evaluation) to ``bf16`` or ``fp16``
      (:data:`AMP`); ``fp16`` needs a GPU and trains with a gradient scaler.
    * ``channels_last``: the model and its image batches in NHWC memory layout (faster
      convolutions on tensor cores).
    """

    epochs: int
    batch_size: int = 64
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    tf32: bool = False
    amp: str = "off"
    channels_last: bool = False

    def hashed(self) -> dict[str, Any]:
        """The recipe as job keys and the suite hash see it: every field, except those of
        :data:`KEYED_WHEN_SET` still at their defaults."""
        defaults = {f.name: f.default for f in fields(self)}
        return {k: v for k, v in self.__dict__.items() if not (k in KEYED_WHEN_SET and v == defaults[k])}

    def precision(self) -> dict[str, Any]:
        """The precision fields, as a row records them."""
        return {"tf32": self.tf32, "amp": self.amp, "channels_last": self.channels_last}


def check_amp(amp: str, device_type: str, where: str = "the recipe") -> None:
    """Refuse what cannot run: float16 autocast off a GPU (its gradient scaler is CUDA's, and a
    CPU's float16 kernels are few and slow; bfloat16 is the CPU's half precision)."""
    if amp == "fp16" and device_type != "cuda":
        raise QbenchError(f"{where}: amp = 'fp16' needs a CUDA device, and this run is on {device_type}. "
                          "Use amp = 'bf16' (which runs on a CPU too), or run with --device cuda.")
