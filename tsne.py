"""t-SNE in PyTorch (van der Maaten & Hinton 2008, "Visualizing Data using t-SNE", JMLR 9;
spec 004 task 3), batched over the whole pairwise matrix: no Python loop over points.

Neighbour probabilities in the data space (``joint_probabilities``):
    p_{j|i} = exp(−β_i ‖x_i − x_j‖²) / Σ_{k≠i} exp(−β_i ‖x_i − x_k‖²),   β_i = 1 / (2 σ_i²)
    p_ij = (p_{j|i} + p_{i|j}) / (2N)            (symmetric, sums to 1, p_ii = 0)
with one fixed σ for every point (the spec's ``--sigma``) or a per-point σ_i found by bisection
so that the perplexity exp(H(P_i)) of each row equals ``perplexity`` (the standard method; all
rows bisected at once, a block of rows at a time). Distances and P are computed in float64 (the
entropy of a row of 10,000 terms, and differences of large squared norms, lose digits in
float32); P is then cast to the map's dtype.

Map-space similarities: q_ij = w_ij / Z with w_ij = (1 + ‖y_i − y_j‖²)⁻¹ (Student t, one degree
of freedom), Z = Σ_{k≠l} w_kl. The cost is written without a log of q or of p:
    KL(P‖Q) = Σ p log p + A + log Z,   A = Σ_ij p_ij log(1 + ‖y_i − y_j‖²)
(Σ p log p is a constant, with 0 log 0 = 0), so no log 0 or division by 0 can occur.
Early exaggeration (α > 1 for the first iterations) minimises α·A + log Z, whose gradient is
4 Σ_j (α p_ij − q_ij) w_ij (y_i − y_j), the paper's exaggerated gradient.

Two ways to get the gradient, the same numbers (tests check both against finite differences):
- ``kl_terms``: A and log Z from the whole N × N matrix, differentiated by autograd (the spec's
  ``loss.backward()``); memory and time grow with N² passes over full matrices.
- ``KLTerms`` (``kl_terms_fused``): the same A and log Z with the analytic gradient computed in
  the same pass over row blocks that fit in cache, each pair computed once (the matrices are
  symmetric; four thin matrix products per block); the default for speed.

``embed`` runs the iterations: plain gradient descent (``optimizer="sgd"``, y ← y − lr ∇; with
``momentum`` > 0 heavy-ball momentum) or Adam, from y ~ N(0, I) as the spec initialises.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

OPTIMIZERS = ("sgd", "adam")
BLOCK_VALUES = 250_000   # values per row block of the fused pass (1 MB in float32)


def block_rows(n: int) -> int:
    """Rows per block for N points: about BLOCK_VALUES values, between 64 and 256 rows (measured
    on one thread, the symmetric pass: 10,000 points 176 ms an iteration with 25-row blocks,
    126 ms with 64, 200 ms with 512; 1,000 points with the KL value 2.6–2.9 ms with 250-row
    blocks, 4.2 ms with 512)."""
    return max(64, min(256, BLOCK_VALUES // max(n, 1)))


def squared_distances(x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """‖x_i − y_j‖² for x (N, D), y (M, D) (default y = x) → (N, M), clamped at 0 (rounding)."""
    y = x if y is None else y
    d2 = (x * x).sum(1, keepdim=True) + (y * y).sum(1) - 2 * x @ y.T
    return d2.clamp_min_(0)


# ---------------------------------------------------------------------------------------------
# P: neighbour probabilities in the data space

def _row_entropy(excess: torch.Tensor, beta: torch.Tensor, diagonal) -> tuple[torch.Tensor,
                                                                             torch.Tensor]:
    """Unnormalised rows e_ij = exp(−β_i (d_ij − min_k d_ik)) and their entropies in nats.

    ``excess``: (B, N) squared distances minus each row's smallest off-diagonal one (≥ 0, so
    exp never overflows and the nearest neighbour's term is exactly 1: the sum is ≥ 1, no
    division by 0), 0 on the diagonal, whose term ``diagonal`` (an index) is then zeroed.
    With s_i = Σ_j e_ij, p_{j|i} = e_ij / s_i and H_i = log s_i + β_i Σ_j e_ij excess_ij / s_i
    (the row minimum cancels out of the entropy)."""
    e = torch.exp(excess * -beta[:, None])                         # (B, N)
    e[diagonal] = 0
    s = e.sum(1)                                                   # (B,) ≥ 1
    entropy = torch.log(s) + beta * (e * excess).sum(1) / s
    return e, s, entropy


def calibrate_betas(excess: torch.Tensor, diagonal, perplexity: float, tol: float = 1e-5,
                    max_steps: int = 100) -> torch.Tensor:
    """Per-row β_i = 1/(2σ_i²) with exp(H(P_i)) = perplexity (|H − log perplexity| < tol nats),
    by bisection on log β for every row of ``excess`` (see ``_row_entropy``) at once. The
    bracket spans e^±25 around 1 / (the row's mean excess distance)."""
    target = math.log(perplexity)
    centre = -torch.log(excess.mean(dim=1).clamp_min(1e-12))
    lo, hi = centre - 25, centre + 25
    for _ in range(max_steps):
        mid = (lo + hi) / 2
        _, _, entropy = _row_entropy(excess, mid.exp(), diagonal)
        too_flat = entropy > target                                # β too small: raise it
        lo = torch.where(too_flat, mid, lo)
        hi = torch.where(too_flat, hi, mid)
        if (entropy - target).abs().max() < tol:
            break
    return ((lo + hi) / 2).exp()


@dataclass
class Affinities:
    P: torch.Tensor              # (N, N) symmetric, sums to 1, zero diagonal (float64)
    sigma: torch.Tensor          # (N,) the σ_i used for each row
    perplexity: torch.Tensor     # (N,) exp(H(P_{·|i})) achieved per row
    seconds: float


def joint_probabilities(x: torch.Tensor, *, sigma: float | None = None,
                        perplexity: float | None = None, block: int = 1024) -> Affinities:
    """P for data x (N, D): fixed ``sigma`` for every point, or per-point σ_i calibrated to
    ``perplexity`` (exactly one of the two). Float64 throughout; rows in blocks of ``block``."""
    if (sigma is None) == (perplexity is None):
        raise ValueError("give exactly one of sigma and perplexity")
    started = time.perf_counter()
    x64 = x.flatten(1).double()
    n = len(x64)
    conditional = torch.empty(n, n, dtype=torch.float64, device=x.device)
    betas = torch.empty(n, dtype=torch.float64, device=x.device)
    entropies = torch.empty_like(betas)
    for start in range(0, n, block):
        rows = slice(start, min(n, start + block))
        b = rows.stop - rows.start
        diagonal = (torch.arange(b), torch.arange(rows.start, rows.stop))
        d2 = squared_distances(x64[rows], x64)                     # (B, N)
        d2[diagonal] = math.inf
        excess = d2 - d2.amin(dim=1, keepdim=True)                 # (B, N) ≥ 0
        excess[diagonal] = 0
        if sigma is not None:
            beta = torch.full((b,), 1 / (2 * sigma ** 2), dtype=torch.float64, device=x.device)
        else:
            beta = calibrate_betas(excess, diagonal, perplexity)
        e, s, entropies[rows] = _row_entropy(excess, beta, diagonal)
        conditional[rows] = e / s[:, None]
        betas[rows] = beta
    P = (conditional + conditional.T) / (2 * n)
    return Affinities(P, (0.5 / betas).sqrt(), entropies.exp(), time.perf_counter() - started)


def entropy_constant(P: torch.Tensor) -> float:
    """Σ p log p (0 log 0 = 0), the constant part of KL(P‖Q), in float64."""
    return torch.special.xlogy(P.double(), P.double()).sum().item()


# ---------------------------------------------------------------------------------------------
# KL(P‖Q) = Σ p log p + A + log Z, and its gradient

def kl_terms(P: torch.Tensor, Y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(A, log Z) from the full (N, N) matrices; differentiable by autograd.

    A = Σ_ij p_ij log(1 + ‖y_i − y_j‖²), Z = Σ_{i≠j} (1 + ‖y_i − y_j‖²)⁻¹."""
    diff = Y[:, None, :] - Y[None, :, :]                           # (N, N, 2), exact 0 on i = j
    d2 = diff.square().sum(-1)                                     # (N, N)
    attraction = (P * torch.log1p(d2)).sum()
    z = torch.reciprocal(1 + d2).sum() - len(Y)                    # w_ii = 1 exactly, removed
    return attraction, torch.log(z)


class KLTerms(torch.autograd.Function):
    """(A, log Z) and their analytic gradients, in one pass over blocks of rows:
        ∂A/∂y_i     = 4 Σ_j p_ij w_ij (y_i − y_j)
        ∂log Z/∂y_i = −(4/Z) Σ_j w_ij² (y_i − y_j)
    (P symmetric; the diagonal adds nothing because y_i − y_i = 0). Both matrices are symmetric,
    so each pair is computed once: row block [s, e) meets the columns [s, N) only; the square
    [s, e) × [s, e) holds its pairs in both orders, the rectangle [s, e) × [e, N) holds pairs
    whose mirror images no other block computes, so the rectangle counts twice in the sums and
    gives its column sums to the rows [e, N). Σ_j m_ij (y_i − y_j) is (Σ_j m_ij) y_i −
    Σ_j m_ij y_j: row sums come from one product [Yᵀ; 1] m_blockᵀ (3 × B), column sums from
    [Y_blockᵀ; 1] m_block (3 × M), which this CPU build runs several times faster than
    m_block @ Y. The value of A needs a log of every pair; with ``need_attraction`` False it is
    skipped and returned NaN (the gradient is unaffected)."""

    @staticmethod
    def forward(ctx, P, Y, block: int | None = None, need_attraction: bool = True):
        n = len(Y)
        block = block or block_rows(n)
        Yd = Y.detach()
        sq = (Yd * Yd).sum(1)                                      # (N,)
        y1t = torch.cat([Yd.T, Yd.new_ones(1, n)]).contiguous()    # (3, N): [y_·0; y_·1; 1]
        attraction = Yd.new_zeros(()) if need_attraction else Yd.new_tensor(math.nan)
        z = Yd.new_zeros(())
        grad_a = torch.zeros_like(Yd)
        grad_r = torch.zeros_like(Yd)

        def accumulate(grad, m, start, stop):
            """Rows [start, stop) get Σ over columns [start, N) of m (B, N − start); rows
            [stop, N) get the rectangle's column sums."""
            rows = torch.mm(y1t[:, start:], m.T)                   # (3, B)
            grad[start:stop] += rows[2, :, None] * Yd[start:stop] - rows[:2].T
            cols = torch.mm(y1t[:, start:stop], m[:, stop - start:])   # (3, N − stop)
            grad[stop:] += cols[2, :, None] * Yd[stop:] - cols[:2].T

        def twice_rectangle(m, b):
            """Σ over the block's pairs in the whole matrix: square once, rectangle twice."""
            return 2 * m.sum() - m[:, :b].sum()

        for start in range(0, n, block):
            stop = min(n, start + block)
            yb, pb = Yd[start:stop], P[start:stop, start:]         # (B, 2), (B, N − start)
            w = (sq[start:stop, None] + sq[None, start:]).addmm_(yb, Yd[start:].T, alpha=-2)
            w.clamp_min_(0).add_(1).reciprocal_()                  # w = 1 / (1 + d²)
            z += twice_rectangle(w, stop - start)
            if need_attraction:
                attraction -= twice_rectangle(pb * torch.log(w), stop - start)
            accumulate(grad_a, pb * w, start, stop)
            accumulate(grad_r, w.square_(), start, stop)
        z -= n                                                     # the diagonal's w_ii = 1
        ctx.save_for_backward(4 * grad_a, -4 * grad_r / z)
        return attraction, torch.log(z)

    @staticmethod
    def backward(ctx, grad_attraction, grad_log_z):
        grad_a, grad_log_z_y = ctx.saved_tensors
        return None, grad_attraction * grad_a + grad_log_z * grad_log_z_y, None, None


def kl_terms_fused(P: torch.Tensor, Y: torch.Tensor, block: int | None = None,
                   need_attraction: bool = True):
    """Same values and gradients as ``kl_terms``, without N × N autograd buffers."""
    return KLTerms.apply(P, Y, block, need_attraction)


GRADIENTS: dict[str, Callable] = {"fused": kl_terms_fused, "autograd": kl_terms}


# ---------------------------------------------------------------------------------------------
# the iterations

@dataclass
class Embedding:
    Y: torch.Tensor                          # (N, 2) final map points
    kl: list[tuple[int, float]]              # (iteration, KL(P‖Q) in nats) every record_every
    seconds: float                           # time in the iterations (P not included)
    iterations: int
    settings: dict = field(default_factory=dict)


def embed(P: torch.Tensor, *, iterations: int, optimizer: str = "sgd", lr: float = 10.0,
          momentum: float = 0.0, exaggeration: float = 1.0, exaggeration_iters: int = 0,
          seed: int = 0, dtype: torch.dtype = torch.float32, gradient: str = "fused",
          record_every: int = 10, init: torch.Tensor | None = None,
          callback: Callable[[int, float | None], None] | None = None) -> Embedding:
    """Minimise KL(P‖Q) over 2-D map points from y ~ N(0, I) (seeded), or from ``init`` (N, 2).

    ``optimizer`` "sgd": y ← y − lr ∇ (plain gradient descent, the spec's update), with
    heavy-ball ``momentum`` when > 0 (torch.optim.SGD); "adam": torch.optim.Adam(lr).
    ``exaggeration`` α multiplies P in the attraction for the first ``exaggeration_iters``
    iterations. ``kl`` records the true KL (α = 1) of the points before iteration 0,
    record_every, 2·record_every, … and after the last update (computing the KL's value costs a
    log over the whole matrix; the gradient does not need it)."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    device = P.device
    Pd = P.to(dtype)
    constant = entropy_constant(P)
    generator = torch.Generator().manual_seed(seed)
    if init is None:
        init = torch.randn(len(P), 2, generator=generator, dtype=dtype)
    Y = init.to(device=device, dtype=dtype).clone().requires_grad_()
    if optimizer == "sgd":
        opt = torch.optim.SGD([Y], lr=lr, momentum=momentum)
    else:
        opt = torch.optim.Adam([Y], lr=lr)
    history: list[tuple[int, float]] = []

    def terms(points, record):
        if gradient == "autograd":
            return kl_terms(Pd, points)
        return kl_terms_fused(Pd, points, need_attraction=record)

    started = time.perf_counter()
    for it in range(iterations + 1):
        record = it % record_every == 0 or it == iterations
        if it == iterations:                       # the final points: value only
            with torch.no_grad():
                attraction, log_z = terms(Y.detach(), True)
        else:
            attraction, log_z = terms(Y, record)
        kl = constant + attraction.item() + log_z.item() if record else None
        if record:
            if not math.isfinite(kl):
                raise FloatingPointError(f"t-SNE cost became {kl} at iteration {it}; "
                                         f"use a lower lr")
            history.append((it, kl))
        if it == iterations:
            break
        alpha = exaggeration if it < exaggeration_iters else 1.0
        objective = (alpha * attraction if alpha != 1.0 else attraction) + log_z
        opt.zero_grad(set_to_none=True)
        objective.backward()
        opt.step()
        if callback is not None:
            callback(it + 1, kl)
    seconds = time.perf_counter() - started
    return Embedding(Y.detach(), history, seconds, iterations,
                     dict(optimizer=optimizer, lr=lr, momentum=momentum, exaggeration=exaggeration,
                          exaggeration_iters=exaggeration_iters, seed=seed, gradient=gradient,
                          dtype=str(dtype).replace("torch.", ""), record_every=record_every))


# ---------------------------------------------------------------------------------------------
# quality of a map

def knn_accuracy(points: torch.Tensor, labels: torch.Tensor, k: int = 10) -> float:
    """Leave-one-out k-nearest-neighbour accuracy: each point's label predicted by the majority
    of its k nearest other points (ties to the smallest label)."""
    d2 = squared_distances(points.double())
    d2.fill_diagonal_(math.inf)
    neighbours = d2.topk(k, dim=1, largest=False).indices           # (N, k)
    votes = torch.nn.functional.one_hot(labels[neighbours], int(labels.max()) + 1).sum(1)
    return (votes.argmax(1) == labels).double().mean().item()
