"""A QAT method is data: parts (quantizers, allocator, wrapper), hyperparameters and a version."""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from qbench.errors import QbenchError

#: The hyperparameter sections a method may carry, one per part.
PARAM_SECTIONS = ("weight", "activation", "allocator", "wrapper")


@dataclass(frozen=True)
class Method:
    """A named recipe composing the parts of a QAT method.

    :param name: what users type (``qbench run --method NAME``).
    :param version: an integer bumped on any change of behaviour; it is part of the job hash, so
        a new version never reuses an old result.
    :param weight_quantizer: registered weight quantizer name, or ``None`` for FP weights.
    :param activation_quantizer: registered activation quantizer name, or ``None`` (A32).
    :param allocator: registered bit-allocator name.
    :param wrapper: registered training-wrapper name.
    :param params: hyperparameters per part: ``{"weight": {...}, "activation": {...},
        "allocator": {...}, "wrapper": {...}}``.
    :param reference: the unquantized reference (fp32): no QAT, the FP checkpoint is evaluated.
    :param paper: citation of the paper the method implements.
    """

    name: str
    version: int
    weight_quantizer: str | None = None
    activation_quantizer: str | None = None
    allocator: str = "fixed"
    wrapper: str = "plain"
    params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    description: str = ""
    reference: bool = False
    paper: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.version, int) or self.version < 1:
            raise QbenchError(f"Method {self.name!r}: version must be a positive integer, got {self.version!r}.")
        unknown = set(self.params) - set(PARAM_SECTIONS)
        if unknown:
            raise QbenchError(f"Method {self.name!r}: unknown params section(s) {sorted(unknown)}; "
                              f"use {', '.join(PARAM_SECTIONS)}.")
        if not self.reference and self.weight_quantizer is None and self.activation_quantizer is None:
            raise QbenchError(f"Method {self.name!r} quantizes nothing: give a weight and/or activation "
                              "quantizer, or mark it reference=True.")

    def part_params(self, section: str) -> dict[str, Any]:
        return dict(self.params.get(section, {}))

    def config(self) -> dict[str, Any]:
        """Everything that defines the method's behaviour (hashed into job keys)."""
        d = dataclasses.asdict(self)
        d.pop("description")
        d.pop("paper")
        d["params"] = {k: dict(v) for k, v in self.params.items()}
        return json.loads(json.dumps(d, sort_keys=True, default=str))

    def compose(self, name: str, **changes: Any) -> "Method":
        """A new method from this one with some parts replaced (e.g. BWRF around ASQ's quantizers)."""
        params = {k: dict(v) for k, v in self.params.items()}
        for section, values in (changes.pop("params", None) or {}).items():
            params.setdefault(section, {}).update(values)
        return dataclasses.replace(self, name=name, params=params, **changes)

    @property
    def weight_only(self) -> bool:
        return self.activation_quantizer is None
