"""The quantizer contract.

A quantizer is an ``nn.Module`` with an integer ``bits`` that can change at any time (a learning
bit-allocator such as AdaQAT sets it during training), saved in the state dict.

* :class:`WeightQuantizer` maps a layer's FP weight to the weight used in the forward pass
  (fake-quantized, or soft as in DGMS) and, through :meth:`WeightQuantizer.hard`, to the
  deployed hard-quantized weight that the bit audit counts and evaluation uses.
* :class:`ActivationQuantizer` maps a layer's input.

Both get a data-dependent initialisation (``init_from``) once, before training: weights from
the FP checkpoint, activations from the first calibration batch.
"""
from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from qbench.contract.optim import OptimSpec


class Quantizer(nn.Module):
    """Base class: ``bits`` plus one-time, data-dependent initialisation.

    :param bits: the bit-width this quantizer starts at (an allocator may change it later).
    """

    kind: ClassVar[str] = ""

    def __init__(self, bits: int) -> None:
        super().__init__()
        self.bits = int(bits)
        # A buffer, so a restored state dict does not re-run the data-dependent init.
        self.register_buffer("initialized", torch.tensor(False), persistent=True)

    @property
    def bits(self) -> int:
        return self._bits

    @bits.setter
    def bits(self, value: int) -> None:
        value = int(value)
        if value < 1:
            raise ValueError(f"{type(self).__name__}: bits must be >= 1, got {value}")
        self._bits = value

    def get_extra_state(self) -> dict[str, Any]:
        return {"bits": self._bits}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.bits = state["bits"]

    def device_flag(self, name: str) -> bool:
        """The boolean buffer ``name``, read from the device until it is true and then remembered in
        Python: a quantizer asks such flags at every forward, and reading a CUDA buffer waits for the
        GPU (a host sync per layer per step). A flag never goes back to false except through a
        loaded state dict, which is read afresh."""
        seen: set[str] = self.__dict__.setdefault("_flags_seen", set())
        if name in seen:
            return True
        if bool(getattr(self, name)):
            seen.add(name)
            return True
        return False

    def set_device_flag(self, name: str) -> None:
        """Set the boolean buffer ``name`` true, and remember it without reading it back."""
        getattr(self, name).fill_(True)
        self.__dict__.setdefault("_flags_seen", set()).add(name)

    @property
    def is_initialized(self) -> bool:
        """Whether :meth:`init_from` ran (the ``initialized`` buffer, see :meth:`device_flag`)."""
        return self.device_flag("initialized")

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        self.__dict__["_flags_seen"] = set()
        super()._load_from_state_dict(*args, **kwargs)

    def initialize(self, t: Tensor) -> None:
        """Run :meth:`init_from` once; later calls do nothing."""
        if not self.is_initialized:
            with torch.no_grad():
                self.init_from(t.detach())
            self.set_device_flag("initialized")

    def init_from(self, t: Tensor) -> None:
        """Data-dependent initialisation (e.g. LSQ's step size from mean |t|). Default: none."""

    def optim_specs(self) -> dict[str, OptimSpec]:
        """Optimizer settings for this quantizer's parameters, by name in ``named_parameters()``,
        as the method's paper gives them (e.g. ``{"alpha": OptimSpec(weight_decay=5e-4)}``).
        Parameters not named get the recipe's lr and no decay. Take the values from the
        quantizer's own arguments, so they are in the job key."""
        return {}

    def learned_state(self) -> dict[str, float | list[float]]:
        """What this quantizer has learned, for the result row: e.g. ``{"step": 0.031}``,
        ``{"alpha": 0.21}`` or ``{"clip_lo": -1.2, "clip_hi": 0.9}``. The host reads it at QAT start
        and end and reports, per key, how far it moved (the row's ``learned`` field), so a reader
        sees a learned clip that stayed at its init. Optional: the default ``{}`` reports nothing
        and leaves the row as it was. Keys are lower snake case named after the paper's symbol;
        values finite Python floats in the units of the quantized tensor, or short lists of them
        (at most 8 keys, 16 numbers a list, 512 bytes of JSON: docs/plugin-contract.md,
        :mod:`qbench.contract.quant.learned`). Called under no_grad; read values, change nothing."""
        return {}

    def inference_macs(self, input_shape: tuple[int, ...]) -> int:
        """Floating-point multiply-accumulates this quantizer itself runs at inference, per sample,
        for a layer input of ``input_shape`` (one sample: the batch dimension removed, e.g.
        ``(C, H, W)`` or ``(tokens, C)``): e.g. ASQ's adapter MLP, which computes each sample's
        step. The bit audit adds them to the row's BitOPs at 32 x 32 bits, against the budget
        (the target allows no FP compute beyond the layers'), so a method cannot hide work in
        its quantizers. Count multiplications (a Linear(i, o) is i x o); additions, pooling and
        the elementwise rescale every quantizer does are not counted, as they are not for the
        network's own layers. Optional: the default 0 is right for any quantizer whose deployed
        form is a fixed grid (a weight quantizer's hard weight is computed once, not per input).
        A non-negative Python int; read only, change nothing (docs/plugin-contract.md)."""
        return 0

    def extra_repr(self) -> str:
        return f"bits={self.bits}"


class WeightQuantizer(Quantizer):
    """Quantizes one layer's weight tensor.

    Subclasses implement :meth:`forward` (what training sees). Override :meth:`hard` when the
    training forward is not already the deployed weight (soft weights, stochastic rounding).
    """

    kind: ClassVar[str] = "weight"
    #: True when the levels are per output channel; the audit then counts levels per channel.
    per_channel: bool = False

    def forward(self, w: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def hard(self, w: Tensor) -> Tensor:
        """The deployed, hard-quantized weight. Evaluation and the bit audit use this."""
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                return self.forward(w)
        finally:
            self.train(was_training)

    def export(self, w: Tensor) -> dict[str, Tensor]:
        """A deployable form of the weight. Default: the hard weight; override with codes + scale/LUT."""
        return {"weight": self.hard(w)}


class ActivationQuantizer(Quantizer):
    """Quantizes the input of one layer. The audit counts distinct output values per sample.

    Inputs may be signed (a ViT's linear layers after LayerNorm, the image when the first layer is
    quantized): ``signed=None`` decides it once, from the first calibration batch (``x.min() < 0``),
    before :meth:`init_from` runs; ``True`` / ``False`` force it. The decision is saved in the state
    dict. Subclasses read ``self.signed`` (e.g. through :func:`qbench.contract.quant.ste.int_range`).

    :param bits: the starting bit-width.
    :param signed: force the signed (True) or unsigned (False) range; None decides from data.
    """

    kind: ClassVar[str] = "activation"

    def __init__(self, bits: int, signed: bool | None = None) -> None:
        super().__init__(bits)
        self.signed_param = signed
        self.signed: bool = bool(signed)

    def initialize(self, t: Tensor) -> None:
        if not self.is_initialized and self.signed_param is None:
            self.signed = bool(t.min() < 0)
        super().initialize(t)

    def get_extra_state(self) -> dict[str, Any]:
        return {**super().get_extra_state(), "signed": self.signed}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        super().set_extra_state(state)
        self.signed = bool(state.get("signed", self.signed))

    def forward(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"bits={self.bits}, signed={self.signed}"
