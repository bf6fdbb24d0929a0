"""The DGMS weight quantizer ``dgms-w``.

One Gaussian mixture per layer (per tensor, not per channel), K = 2**bits components:

* component 0 is the zero component: mean fixed at 0 (a constant, not a parameter), so every
  weight assigned to it is exactly 0 (DGMS's built-in pruning);
* learned: the other K-1 means (``means``), all K standard deviations as ``log_sigma``
  (log-parametrised so sigma stays > 0 whatever the optimiser does; the official code stores sigma
  itself), the unnormalised mixing weights ``pi`` (used as |pi_k| / sum_j |pi_j|), and the
  temperature as ``log_tau`` (learnable as in the official code, log-parametrised so it stays
  > 0 under the suite's learning rate; ``learn_tau=False`` freezes it).

Training forward: the soft weight of :func:`qbench_dgms.mixture.soft_weight` (no STE).
Evaluation and the bit audit: :meth:`DGMSWeightQuantizer.hard`, the mean of the MAP component.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from qbench.api import OptimSpec, WeightQuantizer

from .kmeans import kmeans_1d
from .mixture import full_means, map_index, soft_weight


class DGMSWeightQuantizer(WeightQuantizer):
    """Differentiable Gaussian-mixture weight sharing for one layer.

    :param bits: K = 2**bits mixture components (the zero component included).
    :param layer: the layer (unused: the mixture is fitted to the weight in :meth:`init_from`).
    :param tau: initial softmax temperature (paper/official default 0.01).
    :param learn_tau: learn the temperature (official code) or keep it fixed.
    :param sigma_init: ``"kmeans"`` (each cluster's std about its mean, the zero cluster about 0,
        with the n-1 denominator as in the official code) or a float used for every sigma (the
        official "empirical" option, 0.01).
    :param chunk_size: largest number of elements of one K x n responsibility block; the soft weight
        is computed over blocks of n = max(1, chunk_size // K) weights, each under
        ``torch.utils.checkpoint``. Not specified by the paper; qbench uses 2**18.
    :param chunked: ``False`` computes the whole K x N tensor at once (faster, memory-heavy).
    :param kmeans_iters: maximum Lloyd iterations of the init. Not specified; qbench uses 300.
    :param kmeans_tol: Lloyd stops when no centre moves more than ``kmeans_tol * std(w)``.
    :param sigma_floor: smallest initial sigma, relative to the layer's weight std (guards
        single-point clusters). Not specified; qbench uses 1e-3.
    :param mixture_lr_scale: the mixture parameters' (means, log_sigma, pi, log_tau) learning rate
        as a multiple of the recipe's, declared through :meth:`optim_specs` (the host builds their
        optimizer group; the recipe's schedule applies on top). The paper trains at lr 2e-5; method
        ``dgms`` sets 2e-5 / 0.01 (the shipped suites' QAT lr), so the mixture trains at the paper's
        rate while the latent weights follow the suite's recipe. Default 1.0 (the recipe's lr).
    :param kernel: ``"c"`` (default): the soft weight and its gradients from the compiled one-pass
        kernel (``_kernel.c``) on CPU float32 weights, about 7x faster than the torch graph and as
        accurate (float32 per weight, float64 sums of the mixture gradients); ``"torch"``: the
        torch graph (chunked per ``chunk_size``), also used on CUDA whatever this says.
    :param max_bits: components allocated up front (default: ``bits``); a later ``bits`` up to
        this re-fits the mixture in place (see :meth:`init_from`), so parameter shapes never change
        under an optimiser.
    """

    def __init__(self, bits: int, layer: nn.Module | None = None, tau: float = 0.01, learn_tau: bool = True,
                 sigma_init: str | float = "kmeans", chunk_size: int = 2**18, chunked: bool = True,
                 kmeans_iters: int = 300, kmeans_tol: float = 1e-7, sigma_floor: float = 1e-3,
                 mixture_lr_scale: float = 1.0, max_bits: int | None = None, kernel: str = "c") -> None:
        super().__init__(bits)
        if not (sigma_init == "kmeans" or (isinstance(sigma_init, (int, float)) and sigma_init > 0)):
            raise ValueError(f"dgms-w: sigma_init must be 'kmeans' or a positive float, got {sigma_init!r}")
        if tau <= 0:
            raise ValueError(f"dgms-w: tau must be > 0, got {tau}")
        if kernel not in ("c", "torch"):
            raise ValueError(f"dgms-w: kernel must be 'c' or 'torch', got {kernel!r}")
        self.kernel = kernel
        self.max_bits = int(max_bits if max_bits is not None else bits)
        if self.max_bits < self.bits:
            raise ValueError(f"dgms-w: max_bits={self.max_bits} < bits={self.bits}")
        kmax = 2**self.max_bits
        self.means = nn.Parameter(torch.zeros(kmax - 1))
        self.log_sigma = nn.Parameter(torch.zeros(kmax))
        self.pi = nn.Parameter(torch.full((kmax,), 1.0 / kmax))
        self.log_tau = nn.Parameter(torch.tensor(math.log(tau)), requires_grad=learn_tau)
        self.register_buffer("fitted_bits", torch.tensor(0), persistent=True)
        self.sigma_init = sigma_init
        self.chunk_size = int(chunk_size)
        self.chunked = bool(chunked)
        self.kmeans_iters = int(kmeans_iters)
        self.kmeans_tol = float(kmeans_tol)
        self.sigma_floor = float(sigma_floor)
        if not mixture_lr_scale > 0:
            raise ValueError(f"dgms-w: mixture_lr_scale must be > 0, got {mixture_lr_scale}")
        self.mixture_lr_scale = float(mixture_lr_scale)

    # -- the active mixture --------------------------------------------------------------------
    @property
    def num_components(self) -> int:
        return 2**self.bits

    @property
    def tau(self) -> float:
        return float(self.log_tau.detach().exp())

    @tau.setter
    def tau(self, value: float) -> None:
        with torch.no_grad():
            self.log_tau.fill_(math.log(value))

    def components(self) -> tuple[Tensor, Tensor, Tensor]:
        """(learned means (K-1,), log sigmas (K,), raw pi (K,)) of the active K components."""
        k = self.num_components
        if k > 2**self.max_bits:
            raise ValueError(f"dgms-w: bits={self.bits} exceeds max_bits={self.max_bits}; build the quantizer "
                             f"with max_bits >= the largest bit-width an allocator may choose")
        return self.means[:k - 1], self.log_sigma[:k], self.pi[:k]

    def means_table(self) -> Tensor:
        """The K shared values, index 0 = the zero component (exactly 0)."""
        return full_means(self.components()[0].detach())

    def sigmas(self) -> Tensor:
        return self.components()[1].detach().exp()

    def mixing(self) -> Tensor:
        """Normalised mixing weights |pi_k| / sum_j |pi_j|."""
        p = self.components()[2].detach().abs()
        return p / p.sum()

    def _chunk(self) -> int | None:
        return max(1, self.chunk_size // self.num_components) if self.chunked else None

    # -- init ----------------------------------------------------------------------------------
    def init_from(self, w: Tensor) -> None:
        """k-means (K clusters) on the layer's FP weights, from torch's global RNG (job-seeded).

        The centre nearest 0 becomes the zero component (mean forced to 0); pi = cluster fractions;
        sigma per ``sigma_init``. Also the re-init rule when ``bits`` changes later: the mixture
        is re-fitted the same way to the *current* latent weight at the new K, written into the
        first K slots (not specified by the paper; qbench's ``dgms`` uses the fixed allocator, so
        this only matters to methods that compose dgms-w with a learning allocator).
        """
        k = self.num_components
        self.components()  # raises if bits > max_bits
        # on the CPU whatever the weight's device: the init is numpy's Lloyd and torch's CPU RNG
        # (a CUDA weight mixed CUDA and CPU tensors in searchsorted and index_add_), and a GPU job
        # starts from the very centres a CPU job does; copy_ below moves them to the device.
        x = w.detach().flatten().to("cpu", torch.float64)
        centres, labels = kmeans_1d(x, k, self.kmeans_iters, self.kmeans_tol)
        zero = int(torch.argmin(centres.abs()))
        centres[zero] = 0.0
        counts = torch.bincount(labels, minlength=k).to(torch.float64)
        if self.sigma_init == "kmeans":
            sq = torch.zeros(k, dtype=torch.float64).index_add_(0, labels, (x - centres[labels]) ** 2)
            sigma = torch.sqrt(sq / (counts - 1).clamp_min(1))
            std = float(x.std()) if x.numel() > 1 else 0.0
            sigma = sigma.clamp_min(self.sigma_floor * std if std > 0 else 1e-8)
        else:
            sigma = torch.full((k,), float(self.sigma_init), dtype=torch.float64)
        pi = (counts / x.numel()).clamp_min(1e-8)
        order = [zero] + [i for i in range(k) if i != zero]  # zero first, the rest ascending
        with torch.no_grad():
            self.means[:k - 1].copy_(centres[order[1:]])
            self.log_sigma[:k].copy_(sigma[order].log())
            self.pi[:k].copy_(pi[order])
            self.fitted_bits.fill_(self.bits)

    def _sync_bits(self, w: Tensor) -> None:
        if int(self.fitted_bits) != self.bits:
            with torch.no_grad():
                self.init_from(w.detach())

    # -- forward / hard / export ---------------------------------------------------------------
    def forward(self, w: Tensor) -> Tensor:
        """Training: the soft weight sum_{k>=1} phi_k mu_k; eval mode: :meth:`hard`."""
        if not self.training:
            return self.hard(w)
        self._sync_bits(w)
        means, log_sigma, pi = self.components()
        return soft_weight(w, means, log_sigma, pi, self.log_tau.exp(), self._chunk(),
                           self.kernel).to(w.dtype)

    def optim_specs(self) -> dict[str, OptimSpec]:
        """The mixture parameters at ``mixture_lr_scale`` x the recipe's lr, no weight decay (the
        host's default for a method's own parameters; the paper's decay is on the network)."""
        spec = OptimSpec(lr_scale=self.mixture_lr_scale)
        return {name: spec for name in ("means", "log_sigma", "pi", "log_tau")}

    def assign(self, w: Tensor) -> Tensor:
        """Index (into :meth:`means_table`) of each weight's MAP component."""
        means, log_sigma, pi = self.components()
        return map_index(w.detach(), means.detach(), log_sigma.detach(), pi.detach(), self._chunk())

    def hard(self, w: Tensor) -> Tensor:
        """mu_{argmax_k phi_k(w)}: MAP under the mixture (0 when the zero component wins)."""
        with torch.no_grad():
            self._sync_bits(w)
            return self.means_table().to(w.dtype)[self.assign(w)]

    def export(self, w: Tensor) -> dict[str, Tensor]:
        """``codes``: component index per weight (uint8 up to 8 bits), ``lut``: the K means."""
        with torch.no_grad():
            self._sync_bits(w)
            idx = self.assign(w)
            dtype = torch.uint8 if self.num_components <= 256 else torch.int32
            return {"codes": idx.to(dtype), "lut": self.means_table().to(w.dtype)}

    def extra_repr(self) -> str:
        return f"bits={self.bits}, K={self.num_components}, tau={self.tau:.3g}, chunked={self.chunked}"

    def state_summary(self) -> dict[str, Any]:
        """Means, sigmas and mixing weights as lists (for logs and reports)."""
        return {"means": self.means_table().tolist(), "sigmas": self.sigmas().tolist(),
                "pi": self.mixing().tolist(), "tau": self.tau}
