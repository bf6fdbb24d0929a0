"""DGMS's mixture maths as pure functions: log-joint, soft weight (chunked or not), MAP index.

Component 0 is the zero component: its mean is the constant 0, never a parameter.

All densities are handled in the log domain: ``r = softmax_k(log pi_k + log N(w; mu_k, sigma_k))``
is exactly ``pi_k N_k / sum_j pi_j N_j`` but cannot underflow to 0/0 for weights far from every
component (the official code divides raw densities and adds an epsilon, so such weights get
r = 0 for every k and fall to component 0; here they go to their true MAP component).

Memory: the soft weight needs several K x N intermediates (z, log-joint, r, phi). With
``chunk`` set, N is cut into blocks of ``chunk`` weights and every block runs under
``torch.utils.checkpoint``: the forward keeps only the block's inputs, and the backward recomputes
one block's intermediates at a time, so peak memory grows with K x chunk, not K x N.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

#: Smallest |pi_k| used inside the log, so a mixing weight that reaches 0 gives log(1e-12), not -inf
#: (an -inf log-joint would make the gradient 0 * inf = NaN).
PI_FLOOR = 1e-12


def full_means(means_nonzero: Tensor) -> Tensor:
    """The means table (K,): a constant 0 for the zero component, then the learned means."""
    return torch.cat([means_nonzero.new_zeros(1), means_nonzero])


def log_mixing(pi: Tensor) -> Tensor:
    """log of the normalised mixing weights |pi_k| / sum_j |pi_j| (DGMS's normalisation)."""
    a = pi.abs().clamp_min(PI_FLOOR)
    return torch.log(a) - torch.log(a.sum())


def log_joint(w: Tensor, mu: Tensor, log_sigma: Tensor, log_pi: Tensor) -> Tensor:
    """log(pi_k N(w; mu_k, sigma_k)) up to the constant -log(sqrt(2 pi)); shape (K, n)."""
    z = (w.unsqueeze(0) - mu.unsqueeze(1)) * torch.exp(-log_sigma).unsqueeze(1)
    return (log_pi - log_sigma).unsqueeze(1) - 0.5 * z * z


def _soft_block(w: Tensor, mu: Tensor, log_sigma: Tensor, log_pi: Tensor, tau: Tensor) -> Tensor:
    """w~ = sum_{k>=1} phi_k mu_k with phi = softmax_k(r_k / tau), r = responsibilities."""
    r = torch.softmax(log_joint(w, mu, log_sigma, log_pi), dim=0)
    phi = torch.softmax(r / tau, dim=0)
    return mu[1:] @ phi[1:]  # the zero component contributes phi_0 * 0


def soft_weight(w: Tensor, means_nonzero: Tensor, log_sigma: Tensor, pi: Tensor, tau: Tensor,
                chunk: int | None) -> Tensor:
    """DGMS's training weight, differentiable in w and in every mixture parameter.

    :param w: the latent FP weight (any shape).
    :param means_nonzero: learned means (K-1,) of components 1..K-1.
    :param log_sigma: log standard deviations (K,), component 0 first.
    :param pi: unnormalised mixing weights (K,).
    :param tau: softmax temperature (scalar tensor, > 0).
    :param chunk: weights per checkpointed block; ``None`` computes all K x N at once.
    """
    mu = full_means(means_nonzero)
    log_pi = log_mixing(pi)
    flat = w.reshape(-1)
    if chunk is None or flat.numel() <= chunk:
        out = _soft_block(flat, mu, log_sigma, log_pi, tau) if chunk is None else \
            checkpoint(_soft_block, flat, mu, log_sigma, log_pi, tau, use_reentrant=False)
    else:
        parts = [checkpoint(_soft_block, flat[i:i + chunk], mu, log_sigma, log_pi, tau, use_reentrant=False)
                 for i in range(0, flat.numel(), chunk)]
        out = torch.cat(parts)
    return out.view_as(w)


@torch.no_grad()
def map_index(w: Tensor, means_nonzero: Tensor, log_sigma: Tensor, pi: Tensor,
              chunk: int | None) -> Tensor:
    """argmax_k phi_k(w) for every weight (int64, shape of ``w``): the MAP mixture component.

    phi = softmax(r / tau) and r = softmax(log-joint) are both monotone in the log-joint, so the
    argmax is taken on the log-joint directly: same answer, independent of tau, and free of the
    ties a saturated softmax would create. Not the nearest mean: a wide or heavy component can
    win over a nearer narrow one.
    """
    mu = full_means(means_nonzero)
    log_pi = log_mixing(pi)
    flat = w.reshape(-1)
    step = flat.numel() if chunk is None else max(1, chunk)
    idx = [torch.argmax(log_joint(flat[i:i + step], mu, log_sigma, log_pi), dim=0)
           for i in range(0, flat.numel(), step)]
    return torch.cat(idx).view(w.shape)

