"""DGMS's mixture maths as pure functions: log-joint, soft weight (chunked or not), MAP index.

Component 0 is the zero component: its mean is the constant 0, never a parameter.

All densities are handled in the log domain: ``r = softmax_k(log pi_k + log N(w; mu_k, sigma_k))``
is exactly ``pi_k N_k / sum_j pi_j N_j`` but cannot underflow to 0/0 for weights far from every
component (the official code divides raw densities and adds an epsilon, so such weights get
r = 0 for every k and fall to component 0; here they go to their true MAP component).

Memory: the soft weight needs several K x N intermediates (z, log-joint, r, phi). With
``chunk`` set, :class:`ChunkedSoftWeight` cuts N into blocks of ``chunk`` weights: its forward
fills a preallocated output block by block without autograd, and its backward recomputes one
block at a time under autograd (a per-block checkpoint, written as one autograd Function so that
the only O(N) tensors are the output and the weight gradient, allocated once: no per-block output
tensors to concatenate, which would fragment the heap). Peak memory then grows with K x chunk,
not K x N, and the results are those of the unchunked graph.
"""
from __future__ import annotations

import torch
from torch import Tensor

from qbench.api import tracing

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


class ChunkedSoftWeight(torch.autograd.Function):
    """The soft weight of a flat weight vector, computed and differentiated block by block."""

    @staticmethod
    def forward(ctx, flat: Tensor, mu: Tensor, log_sigma: Tensor, log_pi: Tensor, tau: Tensor,  # type: ignore[override]
                chunk: int) -> Tensor:
        out = torch.empty_like(flat)
        for i in range(0, flat.numel(), chunk):
            out[i:i + chunk] = _soft_block(flat[i:i + chunk], mu, log_sigma, log_pi, tau)
        ctx.save_for_backward(flat, mu, log_sigma, log_pi, tau)
        ctx.chunk = chunk
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        flat, *small = ctx.saved_tensors
        need_w = ctx.needs_input_grad[0]
        grad_w = torch.empty_like(flat) if need_w else None
        leaves = [t.detach().requires_grad_() for t in small]
        grad_small = [torch.zeros_like(t) for t in small]
        for i in range(0, flat.numel(), ctx.chunk):
            wb = flat[i:i + ctx.chunk].detach().requires_grad_(need_w)
            with torch.enable_grad():
                out = _soft_block(wb, *leaves)
                grads = torch.autograd.grad(out, ([wb] if need_w else []) + leaves, grad_out[i:i + ctx.chunk])
            if need_w:
                grad_w[i:i + ctx.chunk] = grads[0]
                grads = grads[1:]
            for acc, g in zip(grad_small, grads):
                acc += g
        return (grad_w, *(g if need else None for g, need in zip(grad_small, ctx.needs_input_grad[1:5])), None)


def soft_weight(w: Tensor, means_nonzero: Tensor, log_sigma: Tensor, pi: Tensor, tau: Tensor,
                chunk: int | None, kernel: str = "torch") -> Tensor:
    """DGMS's training weight, differentiable in w and in every mixture parameter.

    :param w: the latent FP weight (any shape).
    :param means_nonzero: learned means (K-1,) of components 1..K-1.
    :param log_sigma: log standard deviations (K,), component 0 first.
    :param pi: unnormalised mixing weights (K,).
    :param tau: softmax temperature (scalar tensor, > 0).
    :param chunk: weights per block (:class:`ChunkedSoftWeight`); ``None`` builds the ordinary
        autograd graph over all K x N at once. Ignored by the C kernel, which needs no blocks.
    :param kernel: ``"c"``: the compiled one-pass kernel (:mod:`qbench_dgms.kernel`) for a float32
        CPU weight, the torch graph otherwise (e.g. on CUDA); ``"torch"``: always the torch graph.
    """
    mu = full_means(means_nonzero)
    log_pi = log_mixing(pi)
    flat = w.reshape(-1)
    if kernel == "c" and flat.device.type == "cpu" and flat.dtype == torch.float32 and not tracing():
        from .kernel import FusedSoftWeight
        out = FusedSoftWeight.apply(flat, mu, log_sigma, log_pi, tau)
    elif chunk is None:
        out = _soft_block(flat, mu, log_sigma, log_pi, tau)
    else:
        out = ChunkedSoftWeight.apply(flat, mu, log_sigma, log_pi, tau, max(1, int(chunk)))
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

