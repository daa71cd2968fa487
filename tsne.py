"""t-SNE in PyTorch (van der Maaten & Hinton 2008, "Visualizing Data using t-SNE", JMLR 9;
spec 004 task 3), batched over the whole pairwise matrix: no Python loop over points.

Neighbour probabilities in the data space (``joint_probabilities``):
    p_{j|i} = exp(−β_i ‖x_i − x_j‖²) / Σ_{k≠i} exp(−β_i ‖x_i − x_k‖²),   β_i = 1 / (2 σ_i²)
    p_ij = (p_{j|i} + p_{i|j}) / (2N)            (symmetric, sums to 1, p_ii = 0)
with one fixed σ for every point (the spec's ``--sigma``) or a per-point σ_i found so that the
perplexity exp(H(P_i)) of each row equals ``perplexity`` (the standard method; all rows at once,
a block of rows at a time, by safeguarded Newton steps inside a bisection bracket). Distances
and P are computed in float64 (the entropy of a row of 10,000 terms, and differences of large
squared norms, lose digits in float32); P is then cast to the map's dtype.

Map-space similarities: q_ij = w_ij / Z with w_ij = (1 + ‖y_i − y_j‖²)⁻¹ (Student t, one degree
of freedom), Z = Σ_{k≠l} w_kl. The cost is written without a log of q or of p:
    KL(P‖Q) = Σ p log p + A + log Z,   A = Σ_ij p_ij log(1 + ‖y_i − y_j‖²)
(Σ p log p is a constant, with 0 log 0 = 0), so no log 0 or division by 0 can occur.
Early exaggeration (α > 1 for the first iterations) minimises α·A + log Z, whose gradient is
4 Σ_j (α p_ij − q_ij) w_ij (y_i − y_j), the paper's exaggerated gradient.

Three ways to get the gradient, the same numbers (tests check each against finite differences):
- ``kl_terms``: A and log Z from the whole N × N matrix, differentiated by autograd (the spec's
  ``loss.backward()``); memory and time grow with N² passes over full matrices.
- ``KLTerms`` (``kl_terms_fused``): the same A and log Z with the analytic gradient computed in
  one eager pass over row blocks that fit in cache, each pair computed once (the matrices are
  symmetric; four thin matrix products per block), but about ten PyTorch kernels per block.
- ``CompiledKL`` (the default): the analytic gradient's row sums over all pairs and A over each
  unordered pair once (``circulant_half``), written as whole-matrix expressions that
  torch.compile turns into two fused loop nests, nothing N × N stored. Where this machine cannot
  compile, it says so and the fused pass runs instead.

``embed`` runs the iterations: plain gradient descent (``optimizer="sgd"``, y ← y − lr ∇; with
``momentum`` > 0 heavy-ball momentum) or Adam, from y ~ N(0, I) as the spec initialises.
"""
from __future__ import annotations

import functools
import math
import sys
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
# torch.compile: one fused loop nest over the pairs where the machine can compile

@functools.cache
def _compiled(fn: Callable) -> Callable:
    """``fn`` compiled by torch.compile (TorchInductor writes one C++/OpenMP loop nest, vectorised
    for whatever instruction set it finds, for all the elementwise work and the row sums over
    the pairs: no N × N temporaries). Shapes are dynamic, so one compilation serves every N."""
    return torch.compile(fn, dynamic=True)


def run_compiled(fn: Callable, *args):
    """``fn(*args)`` through its compiled version, or None where this machine cannot compile it
    (no C++ compiler, an unsupported device: TorchInductor raises); the caller then runs an
    eager equivalent. Said once per function on stderr."""
    try:
        return _compiled(fn)(*args)
    except Exception as error:                      # noqa: BLE001 — any compiler failure
        _warn_once(fn.__name__, f"{type(error).__name__}: {str(error).splitlines()[0][:200]}")
        return None


@functools.cache
def _warn_once(name: str, why: str) -> None:
    print(f"tsne: torch.compile unavailable for {name} ({why}); running it eagerly",
          file=sys.stderr, flush=True)


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


def _row_moments(excess: torch.Tensor, beta: torch.Tensor):
    """For each row: s = Σ_{j≠i} e_ij, Σ_j e_ij x_ij and Σ_j e_ij x_ij², e_ij = exp(−β_i x_ij),
    x = ``excess`` (B, N), 0 on the diagonal, whose term e = 1, x e = 0 is taken out of s."""
    e = torch.exp(excess * -beta[:, None])                         # (B, N)
    return e.sum(1) - 1, (e * excess).sum(1), (e * excess.square()).sum(1)


def calibrate_betas(excess: torch.Tensor, perplexity: float, tol: float = 1e-5,
                    max_steps: int = 100) -> torch.Tensor:
    """Per-row β_i = 1/(2σ_i²) with exp(H(P_i)) = perplexity (|H − log perplexity| < tol nats),
    for every row of ``excess`` (see ``_row_entropy``) at once, by Newton's method on u = log β
    inside a bisection bracket. With p_j ∝ exp(−β x_j), H = log s + β E[x] and
    dH/du = −β² Var[x], so a step costs one pass over the row (``_row_moments``, compiled where
    possible). Steps are capped at one unit of u (H is flat far from the root, where a full
    Newton step overshoots); a step that would leave the bracket (e^±25 around 1 / the row's
    mean excess distance at first, shrinking with every evaluation) bisects it; a row that has
    converged stays where it is. 7 passes for 1,000 MNIST images at perplexity 30, where
    bisection alone took 27."""
    target = math.log(perplexity)
    u = -torch.log(excess.mean(dim=1).clamp_min(1e-12))
    lo, hi = u - 25, u + 25
    for _ in range(max_steps):
        beta = u.exp()
        moments = run_compiled(_row_moments, excess, beta)
        s, sx, sxx = moments if moments is not None else _row_moments(excess, beta)
        mean = sx / s
        gap = torch.log(s) + beta * mean - target                 # H − log perplexity
        if gap.abs().max() < tol:
            break
        too_flat = gap > 0                                         # β too small: raise it
        lo = torch.where(too_flat, u, lo)
        hi = torch.where(too_flat, hi, u)
        slope = beta.square() * (sxx / s - mean.square()).clamp_min(0)     # −dH/du
        newton = u + (gap / slope.clamp_min(1e-300)).clamp(-1, 1)
        inside = (slope > 0) & (newton > lo) & (newton < hi)
        step = torch.where(inside, newton, (lo + hi) / 2)
        u = torch.where(gap.abs() < tol, u, step)
    return u.exp()


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
            beta = calibrate_betas(excess, perplexity)
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


def _pair_sums(P: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """The row sums the gradient needs, over the whole (N, N) matrix of pairs (compiled: one
    loop nest, nothing N × N stored): (7, N) = Σ_j w_ij, Σ_j p_ij w_ij [1, y_j0, y_j1],
    Σ_j w_ij² [1, y_j0, y_j1], with w = 1 / (1 + d²) (the diagonal's w_ii = 1 included)."""
    y0, y1 = Y[:, 0], Y[:, 1]
    d2 = (y0[:, None] - y0[None, :]).square() + (y1[:, None] - y1[None, :]).square()   # (N, N)
    w = 1.0 / (1.0 + d2)
    pw, w2 = P * w, w * w
    return torch.stack([w.sum(1), pw.sum(1), (pw * y0).sum(1), (pw * y1).sum(1),
                        w2.sum(1), (w2 * y0).sum(1), (w2 * y1).sum(1)])


def _half_attraction(P_half: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """A = Σ_ij p_ij log(1 + d_ij²) from each unordered pair once (``circulant_half``): row i
    meets y_{(i+k) mod N}, k = 1 … K, read as a strided view of [Y; Y] (compiled: one loop
    nest; half the logarithms of the full matrix, which dominate its cost)."""
    n, k = P_half.shape
    doubled = torch.cat([Y, Y])                                     # (2N, 2)
    partner0 = doubled[:, 0].as_strided((n, k), (1, 1), 1)          # (N, K): y_{(i+k) mod N, 0}
    partner1 = doubled[:, 1].as_strided((n, k), (1, 1), 1)
    d2 = (Y[:, 0:1] - partner0).square() + (Y[:, 1:2] - partner1).square()
    return (P_half * torch.log(1 + d2)).sum(1).sum()


def circulant_half(P: torch.Tensor) -> torch.Tensor:
    """(N, K), K = ⌊N/2⌋: P_half[i, k − 1] = c_k p_{i, (i+k) mod N}, which holds each unordered
    pair of a symmetric P once; c_k = 2, except c = 1 for k = N/2 when N is even (that pair
    appears twice, from both ends). So Σ P_half f = Σ_ij p_ij f_ij for any symmetric f."""
    n = len(P)
    k = n // 2
    partner = (torch.arange(n, device=P.device)[:, None]
               + torch.arange(1, k + 1, device=P.device)[None, :]) % n
    half = 2 * P.gather(1, partner)
    if n % 2 == 0 and k > 0:
        half[:, -1] /= 2
    return half.contiguous()


def _kl_pass(P: torch.Tensor, P_half: torch.Tensor, Y: torch.Tensor, need_attraction: bool):
    """∂A/∂y, ∂log Z/∂y, A (NaN unless ``need_attraction``) and log Z in one compiled call:
        ∂A/∂y_i = 4 (Σ_j p_ij w_ij) y_i − 4 Σ_j p_ij w_ij y_j,
        ∂log Z/∂y_i = −(4/Z) ((Σ_j w_ij²) y_i − Σ_j w_ij² y_j),   Z = Σ_ij w_ij − N."""
    sums = _pair_sums(P, Y)                                          # (7, N)
    z = sums[0].sum() - Y.shape[0]                                   # the diagonal's w_ii = 1
    grad_a = 4 * (sums[1, :, None] * Y - sums[2:4].T)
    grad_log_z = -4 * (sums[4, :, None] * Y - sums[5:7].T) / z
    attraction = (_half_attraction(P_half, Y) if need_attraction
                  else torch.full((), math.nan, dtype=Y.dtype, device=Y.device))
    return grad_a, grad_log_z, attraction, torch.log(z)


class CompiledKL:
    """A, log Z and the gradient of α A + log Z for a fixed P by the compiled ``_kl_pass``, with
    no autograd graph (the caller hands the gradient to its optimiser).
    ``CompiledKL.build(P, Y)`` compiles the pass (with and without the value of A) on P and a
    first map Y (the compile time is ``compile_seconds``) and returns None where this machine
    cannot compile (``run_compiled``), so the caller falls back to the fused pass."""

    def __init__(self, P: torch.Tensor, P_half: torch.Tensor, compile_seconds: float):
        self.P, self.P_half, self.compile_seconds = P, P_half, compile_seconds

    @classmethod
    def build(cls, P: torch.Tensor, Y: torch.Tensor) -> "CompiledKL | None":
        started = time.perf_counter()
        P = P.contiguous()
        P_half = circulant_half(P)
        with torch.no_grad():                       # the grad mode the iterations call it in
            if any(run_compiled(_kl_pass, P, P_half, Y.detach(), need) is None
                   for need in (True, False)):
                return None
        return cls(P, P_half, time.perf_counter() - started)

    def __call__(self, Y: torch.Tensor, need_attraction: bool = True, alpha: float = 1.0):
        """(A (NaN unless ``need_attraction``), log Z, ∂(α A + log Z)/∂Y (N, 2))."""
        with torch.no_grad():
            grad_a, grad_log_z, attraction, log_z = _compiled(_kl_pass)(
                self.P, self.P_half, Y.detach(), need_attraction)
            return attraction, log_z, grad_log_z.add_(grad_a, alpha=alpha)


GRADIENTS = ("compiled", "fused", "autograd")


# ---------------------------------------------------------------------------------------------
# the iterations

@dataclass
class Embedding:
    Y: torch.Tensor                          # (N, 2) final map points
    kl: list[tuple[int, float]]              # (iteration, KL(P‖Q) in nats) every record_every
    seconds: float                           # time in the iterations (P not included)
    iterations: int
    settings: dict = field(default_factory=dict)
    compile_seconds: float = 0.0             # torch.compile before the iterations ("compiled")


def embed(P: torch.Tensor, *, iterations: int, optimizer: str = "sgd", lr: float = 10.0,
          momentum: float = 0.0, exaggeration: float = 1.0, exaggeration_iters: int = 0,
          seed: int = 0, dtype: torch.dtype = torch.float32, gradient: str = "compiled",
          record_every: int = 10, init: torch.Tensor | None = None,
          callback: Callable[[int, float | None], None] | None = None) -> Embedding:
    """Minimise KL(P‖Q) over 2-D map points from y ~ N(0, I) (seeded), or from ``init`` (N, 2).

    ``optimizer`` "sgd": y ← y − lr ∇ (plain gradient descent, the spec's update), with
    heavy-ball ``momentum`` when > 0 (torch.optim.SGD); "adam": torch.optim.Adam(lr).
    ``exaggeration`` α multiplies P in the attraction for the first ``exaggeration_iters``
    iterations. ``gradient``: "compiled" (``CompiledKL``; where this machine cannot compile,
    the fused pass, and ``settings["gradient"]`` says "fused"), "fused" (``KLTerms``) or
    "autograd" (``kl_terms``). ``kl`` records the true KL (α = 1) of the points before iteration
    0, record_every, 2·record_every, … and after the last update (computing the KL's value costs
    a log over the pairs; the gradient does not need it)."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if gradient not in GRADIENTS:
        raise ValueError(f"gradient must be one of {GRADIENTS}, got {gradient!r}")
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
    compiled = CompiledKL.build(Pd, Y) if gradient == "compiled" else None
    if gradient == "compiled" and compiled is None:
        gradient = "fused"

    def terms(points, record, alpha):
        """(A, log Z, the gradient of α A + log Z, or None where backward() computes it)."""
        if compiled is not None:
            return compiled(points, record, alpha)
        if gradient == "autograd":
            return *kl_terms(Pd, points), None
        return *kl_terms_fused(Pd, points, need_attraction=record), None

    started = time.perf_counter()
    for it in range(iterations + 1):
        record = it % record_every == 0 or it == iterations
        alpha = exaggeration if it < exaggeration_iters else 1.0
        if it == iterations:                       # the final points: value only
            with torch.no_grad():
                attraction, log_z, grad = terms(Y.detach(), True, alpha)
        else:
            attraction, log_z, grad = terms(Y, record, alpha)
        kl = constant + attraction.item() + log_z.item() if record else None
        if record:
            if not math.isfinite(kl):
                raise FloatingPointError(f"t-SNE cost became {kl} at iteration {it}; "
                                         f"use a lower lr")
            history.append((it, kl))
        if it == iterations:
            break
        opt.zero_grad(set_to_none=True)
        if grad is not None:
            Y.grad = grad
        else:
            ((alpha * attraction if alpha != 1.0 else attraction) + log_z).backward()
        opt.step()
        if callback is not None:
            callback(it + 1, kl)
    seconds = time.perf_counter() - started
    return Embedding(Y.detach(), history, seconds, iterations,
                     dict(optimizer=optimizer, lr=lr, momentum=momentum, exaggeration=exaggeration,
                          exaggeration_iters=exaggeration_iters, seed=seed, gradient=gradient,
                          dtype=str(dtype).replace("torch.", ""), record_every=record_every),
                     compiled.compile_seconds if compiled is not None else 0.0)


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
