"""The BWRF training wrapper: LP model + mixed-precision (MP) models built on the frozen FP model.

An MP model is the FP model's own forward in which some blocks are replaced by the matching
low-precision (LP) blocks. Each block position of the FP model holds a small ``_Slot`` during a
step; the slot asks the wrapper which block (FP or LP) runs there for the MP model being
computed. So the stem, the glue between block lists (e.g. ConvNeXt downsampling) and the head of
every MP model are the frozen FP ones, as in the paper's title ("block replacement on the
full-precision counterpart"), and the FP model keeps running in eval mode, so its BN statistics
never move. LP blocks run in whatever mode the host put the LP model in (training mode during
QAT). Only the LP model is evaluated and deployed.

Sharing (``share_prefix``): a block's output depends only on which blocks (FP or LP) ran before
it, because stem and glue are frozen and deterministic. Within one step, outputs are memoised by
that prefix: in the progressive reading LP blocks 1..i are computed once and reused by every MP
model; in the single reading the FP prefix comes from the teacher pass. Losses and gradients
equal the unshared computation (the tests check it); only stochastic layers inside LP blocks
(drop-path) share their noise across MP models.
"""
from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from qbench.api import QbenchError, TrainingWrapper, frozen_bn_stats, kd_loss

from .blocks import find_blocks, model_label

READINGS = ("progressive", "single")
REDUCTIONS = ("sum", "mean")

#: An MP model: for each block position, True when the LP block runs there.
Config = tuple[bool, ...]


def mp_configs(n: int, reading: str) -> list[Config]:
    """The MP models of one reading for ``n`` blocks.

    progressive: M_i = Q_1..Q_i, F_{i+1}..F_n for i = 1..n-1 (M_n would be the LP blocks alone).
    single:      M_i = F_1..F_{i-1}, Q_i, F_{i+1}..F_n for i = 1..n.
    """
    if reading == "progressive":
        return [tuple(k < i for k in range(n)) for i in range(1, n)]
    if reading == "single":
        return [tuple(k == i for k in range(n)) for i in range(n)]
    raise QbenchError(f"BWRF reading {reading!r} is unknown; use one of {', '.join(READINGS)}.")


class _Slot(nn.Module):
    """Sits at a block position of the FP model during a step and runs the block the wrapper picks."""

    def __init__(self, owner: "BWRFWrapper", index: int) -> None:
        super().__init__()
        self._owner = owner  # not an nn.Module: a plain attribute, so no parameters are registered
        self.index = index

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self._owner._run_block(self.index, args, kwargs)


def _parent(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    parent_name, _, child = name.rpartition(".")
    return (model.get_submodule(parent_name) if parent_name else model), child


@contextmanager
def _swapped(model: nn.Module, replacements: dict[str, nn.Module]) -> Iterator[None]:
    """Temporarily put ``replacements`` at the given module names of ``model``; always restored."""
    originals: list[tuple[nn.Module, str, nn.Module]] = []
    try:
        for name, new in replacements.items():
            parent, child = _parent(model, name)
            originals.append((parent, child, getattr(parent, child)))
            setattr(parent, child, new)
        yield
    finally:
        for parent, child, old in reversed(originals):
            setattr(parent, child, old)


class BWRFWrapper(TrainingWrapper):
    """Block-wise replacement on the full-precision counterpart (Yu et al., arXiv 2412.15846).

    Loss = w_ce_lp CE(LP) + w_kd_fp_lp KD(FP -> LP)
         + R_i [ w_ce_mp CE(M_i) + w_kd_fp_mp KD(FP -> M_i) + w_kd_mp_lp KD(M_i -> LP) ],
    R = mean (default) or sum over the MP models of the step, KD = T^2 KL(teacher || student) of
    logits at temperature T (``kd_loss``); teachers are detached (FP is frozen, an MP teacher
    must not be pulled towards the LP student). The paper gives no form or weights for the
    distillation: not specified by the paper; qbench uses these terms, all weights 1, T = 4.

    :param reading: "progressive" (M_i = Q_1..Q_i F_{i+1}..F_n) or "single" (M_i = only Q_i
        replaced). Not specified by the paper; qbench uses "progressive" by default.
    :param granularity: "block" (residual / transformer block) or "stage". Not specified by the
        paper; qbench uses "block".
    :param num_mp: MP models per step. ``None``: all of them (n-1 progressive, n single); an int
        k: a fresh uniform random subset of k MP models each step (cost ~ k extra passes).
    :param mp_reduction: "mean" or "sum" of the MP terms. Not specified by the paper; qbench uses
        "mean": the sum multiplies the MP gradient by the number of MP models (n-1), which wrecked
        the quick suite's ViT (W4A4 top-1 64.7 with sum, 81.1 with mean; LSQ alone 83.3).
    :param mp_bn_update: whether BN layers inside LP blocks update their running statistics
        during MP forwards. Not specified by the paper; qbench uses False, so the deployed LP
        model's statistics come from LP forwards only (LP blocks still normalise with batch
        statistics in MP paths, as in training mode).
    :param share_prefix: memoise block outputs by prefix within a step (same losses, fewer passes).
    :param seed: seed of the MP-subset sampler; ``None`` uses ``torch.initial_seed()`` at setup.
    """

    def __init__(self, reading: str = "progressive", granularity: str = "block", num_mp: int | None = None,
                 temperature: float = 1.0, w_ce_lp: float = 1.0, w_kd_fp_lp: float = 1.0, w_ce_mp: float = 1.0,
                 w_kd_fp_mp: float = 1.0, w_kd_mp_lp: float = 1.0, mp_reduction: str = "mean",
                 mp_bn_update: bool = False, share_prefix: bool = True, seed: int | None = None) -> None:
        mp_configs(2, reading)  # validates the name
        if mp_reduction not in REDUCTIONS:
            raise QbenchError(f"BWRF mp_reduction {mp_reduction!r} is unknown; use one of {', '.join(REDUCTIONS)}.")
        if num_mp is not None and (not isinstance(num_mp, int) or num_mp < 1):
            raise QbenchError(f"BWRF num_mp must be a positive integer or None (all), got {num_mp!r}.")
        if temperature <= 0:
            raise QbenchError(f"BWRF temperature must be > 0, got {temperature!r}.")
        weights = dict(w_ce_lp=w_ce_lp, w_kd_fp_lp=w_kd_fp_lp, w_ce_mp=w_ce_mp, w_kd_fp_mp=w_kd_fp_mp,
                       w_kd_mp_lp=w_kd_mp_lp)
        bad = {k: v for k, v in weights.items() if v < 0}
        if bad:
            raise QbenchError(f"BWRF loss weights must be >= 0, got {bad}.")
        self.reading, self.granularity, self.num_mp = reading, granularity, num_mp
        self.temperature = float(temperature)
        self.weights = {k: float(v) for k, v in weights.items()}
        self.mp_reduction, self.mp_bn_update, self.share_prefix = mp_reduction, mp_bn_update, share_prefix
        self.seed = seed
        self._config: Config | None = None
        self._memo: dict[Config, Any] | None = None
        #: the MP models of the last step (for logging and tests)
        self.last_configs: list[Config] = []

    # -- setup ---------------------------------------------------------------------------------
    def setup(self, qmodel: nn.Module, fp_model: nn.Module) -> None:
        """Find the blocks, freeze the FP model, pair every FP block with its LP twin."""
        super().setup(qmodel, fp_model)
        fp_model.eval()
        fp_model.requires_grad_(False)
        self.block_names = find_blocks(fp_model, self.granularity)
        self._f_blocks = [fp_model.get_submodule(n) for n in self.block_names]
        try:
            self._q_blocks = [qmodel.get_submodule(n) for n in self.block_names]
        except AttributeError as exc:
            raise QbenchError(f"BWRF: the quantized model {model_label(qmodel)} lacks a block of the FP model "
                              f"({exc}); both must share module names.") from None
        self._q_container = nn.ModuleList(self._q_blocks)  # a view for frozen_bn_stats, not a new model
        self.configs = mp_configs(len(self.block_names), self.reading)
        self._rng = random.Random(torch.initial_seed() if self.seed is None else self.seed)
        self._slots = {n: _Slot(self, i) for i, n in enumerate(self.block_names)}

    # -- MP forwards ---------------------------------------------------------------------------
    def _run_block(self, index: int, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        cfg = self._config
        assert cfg is not None, "a BWRF slot ran outside a BWRF forward"
        block = self._q_blocks[index] if cfg[index] else self._f_blocks[index]
        if self._memo is None:
            return block(*args, **kwargs)
        key = cfg[: index + 1]
        if key not in self._memo:
            self._memo[key] = block(*args, **kwargs)
        return self._memo[key]

    @contextmanager
    def _mp_session(self) -> Iterator[None]:
        """FP model in eval mode with slots at its block positions, and a fresh memo."""
        self.fp_model.eval()  # before the swap: LP blocks keep their own mode
        self._memo = {} if self.share_prefix else None
        try:
            with _swapped(self.fp_model, self._slots):
                yield
        finally:
            self._memo, self._config = None, None

    def _forward(self, x: Tensor, config: Config) -> Tensor:
        self._config = config
        if config and any(config) and not self.mp_bn_update:
            with frozen_bn_stats(self._q_container):
                return self.fp_model(x)
        return self.fp_model(x)

    def mp_logits(self, x: Tensor, config: Sequence[bool]) -> Tensor:
        """Logits of one MP model (True = LP block at that position), computed on its own."""
        config = tuple(bool(c) for c in config)
        if len(config) != len(self.block_names):
            raise QbenchError(f"BWRF: a configuration needs {len(self.block_names)} entries, got {len(config)}.")
        with self._mp_session():
            return self._forward(x, config)

    def _select(self) -> list[Config]:
        if self.num_mp is None or self.num_mp >= len(self.configs):
            return list(self.configs)
        picked = sorted(self._rng.sample(range(len(self.configs)), self.num_mp))
        return [self.configs[i] for i in picked]

    # -- the step ------------------------------------------------------------------------------
    def loss(self, qmodel: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        w, t = self.weights, self.temperature
        lp = qmodel(x)
        configs = self._select()
        self.last_configs = configs
        with self._mp_session():
            with torch.no_grad():
                fp = self._forward(x, (False,) * len(self.block_names))
            mps = [self._forward(x, c) for c in configs]
        total = w["w_ce_lp"] * F.cross_entropy(lp, y)
        if w["w_kd_fp_lp"]:
            total = total + w["w_kd_fp_lp"] * kd_loss(lp, fp, t)
        terms = []
        for m in mps:
            term = w["w_ce_mp"] * F.cross_entropy(m, y)
            if w["w_kd_fp_mp"]:
                term = term + w["w_kd_fp_mp"] * kd_loss(m, fp, t)
            if w["w_kd_mp_lp"]:
                term = term + w["w_kd_mp_lp"] * kd_loss(lp, m.detach(), t)
            terms.append(term)
        if terms:
            mp = torch.stack(terms).sum()
            total = total + (mp / len(terms) if self.mp_reduction == "mean" else mp)
        return total

    def eval_model(self, qmodel: nn.Module) -> nn.Module:
        """Only the pure low-precision model is evaluated and deployed."""
        return qmodel
