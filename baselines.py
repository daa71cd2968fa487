"""Baselines every autoencoder is compared with: PCA with the same code size.

PCA is the best *linear* autoencoder (Baldi & Hornik 1989, "Neural networks and principal
component analysis"): with k components fitted on the training split, no linear encoder-decoder
pair with a k-number code reconstructs the training data with a lower squared error. An
autoencoder with a k-number code that does not beat PCA-k on the test set has learned nothing a
linear map could not.

- ``pca_fit(x, k)``: mean and the top-k principal directions of x (N, D), in float64: from the
  eigenvectors of the D × D scatter matrix when N ≥ D, else from an SVD of the centred data.
- ``pca_encode`` / ``pca_decode`` / ``pca_reconstruct``: x → k numbers → x̂ = mean + codes · V.
- ``pca_reconstruction_mse(pca, x)``: mean over images and values of (x − x̂)², the units of a
  reconstruction MSE (e.g. pixel values in [0, 1]).
- ``pca_baseline(train, test, code_size)``: the one call every script makes: PCA with the model's
  code size, fitted on the training split, its test MSE (and, through ``units``, the same
  reconstruction scored in the data's original units), as a dict for metrics.json.
- ``linear_rank(x)``: how many principal components reproduce x to within a relative tolerance:
  a code at least this large compresses nothing a linear map cannot reproduce.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch


class PCA(NamedTuple):
    mean: torch.Tensor          # (D,) training mean
    components: torch.Tensor    # (k, D) orthonormal rows, largest variance first
    explained_variance: torch.Tensor   # (k,) variance along each component (training data)


def pca_fit(x: torch.Tensor, k: int) -> PCA:
    """Top-k principal components of x (N, ...) flattened to (N, D); float64 SVD."""
    x64 = x.flatten(1).double()
    n, d = x64.shape
    if not 1 <= k <= min(n, d):
        raise ValueError(f"k must be between 1 and min(N, D) = {min(n, d)}, got {k}")
    mean = x64.mean(0)
    centred = x64 - mean
    if n >= d:      # many samples: eigenvectors of the D × D scatter matrix, much faster than an SVD
        variance, vectors = torch.linalg.eigh(centred.T @ centred / max(n - 1, 1))  # ascending
        return PCA(mean, vectors.T.flip(0)[:k], variance.flip(0)[:k].clamp_min(0))
    _, s, vh = torch.linalg.svd(centred, full_matrices=False)       # vh: (N, D)
    return PCA(mean, vh[:k], s[:k].square() / max(n - 1, 1))


def pca_encode(pca: PCA, x: torch.Tensor) -> torch.Tensor:
    """x (N, ...) → codes (N, k), float64."""
    return (x.flatten(1).double() - pca.mean) @ pca.components.T


def pca_decode(pca: PCA, codes: torch.Tensor) -> torch.Tensor:
    """codes (N, k) → reconstructions (N, D), float64."""
    return pca.mean + codes.double() @ pca.components


def pca_reconstruct(pca: PCA, x: torch.Tensor) -> torch.Tensor:
    """x (N, ...) → its rank-k reconstruction, same shape and dtype as x."""
    return pca_decode(pca, pca_encode(pca, x)).to(x.dtype).view_as(x)


def pca_reconstruction_mse(pca: PCA, x: torch.Tensor, batch: int = 4096) -> float:
    """Mean squared error of the rank-k reconstruction over every value of x (N, ...)."""
    total, count = 0.0, 0
    for chunk in x.flatten(1).split(batch):
        x64 = chunk.double()
        total += (pca_decode(pca, pca_encode(pca, x64)) - x64).square().sum().item()
        count += x64.numel()
    return total / count


EXACT_FRACTION = 1e-8   # a PCA error below this share of the test variance is float round-off


def pca_baseline(train: torch.Tensor, test: torch.Tensor, code_size: int,
                 units: dict[str, Callable[[torch.Tensor], float]] | None = None) -> dict:
    """PCA-k fitted on ``train`` (N, ...) and scored on ``test`` (M, ...), both in the
    normalisation the model sees; k = ``code_size``, capped at min(N, D) (a larger k is exact).

    ``units`` maps a name to a function scoring the test reconstruction (same shape as ``test``)
    in other units, e.g. ``{"original": ...}`` → key ``test_mse_original``.
    Returns {"code_size", "components", "test_mse", "exact", "test_mse_<name>"...}.
    """
    return pca_baselines(train, test, [code_size], units)[code_size]


def pca_baselines(train: torch.Tensor, test: torch.Tensor, code_sizes,
                  units: dict[str, Callable[[torch.Tensor], float]] | None = None) -> dict:
    """``pca_baseline`` for several code sizes from one decomposition: {k: result}. The top-k
    components of the largest fit are the PCA-k fit of every smaller k."""
    flat = train.flatten(1)
    largest = pca_fit(flat, min(max(code_sizes), *flat.shape))
    test_variance = (test.flatten(1).double() - largest.mean.double()).square().mean().item()
    results = {}
    for k in code_sizes:
        components = min(k, len(largest.components))
        pca = PCA(largest.mean, largest.components[:components],
                  largest.explained_variance[:components])
        mse = pca_reconstruction_mse(pca, test)
        # "exact": the error is round-off (k reaches the data's linear rank), so a ratio to it
        # means nothing and a log-scale plot cannot show it
        result = {"code_size": k, "components": components, "test_mse": mse,
                  "exact": mse <= EXACT_FRACTION * test_variance}
        if units:
            recon = pca_reconstruct(pca, test)
            result.update({f"test_mse_{name}": score(recon) for name, score in units.items()})
        results[k] = result
    return results


def linear_rank(x: torch.Tensor, tolerance: float = 1e-6) -> int:
    """Smallest k whose PCA keeps all but ``tolerance`` of the variance of x (N, ...)."""
    flat = x.flatten(1).double()
    s = torch.linalg.svdvals(flat - flat.mean(0))
    kept = s.square().cumsum(0) / s.square().sum().clamp_min(1e-300)
    return int((kept < 1 - tolerance).sum().item()) + 1
