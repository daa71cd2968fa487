"""Baselines every autoencoder is compared with: PCA with the same code size.

PCA is the best *linear* autoencoder (Baldi & Hornik 1989, "Neural networks and principal
component analysis"): with k components fitted on the training split, no linear encoder-decoder
pair with a k-number code reconstructs the training data with a lower squared error. An
autoencoder with a k-number code that does not beat PCA-k on the test set has learned nothing a
linear map could not.

- ``pca_fit(x, k)``: mean and the top-k principal directions of x (N, D), from an SVD of the
  centred data in float64.
- ``pca_encode`` / ``pca_decode`` / ``pca_reconstruct``: x → k numbers → x̂ = mean + codes · V.
- ``pca_reconstruction_mse(pca, x)``: mean over images and values of (x − x̂)², the units of a
  reconstruction MSE (e.g. pixel values in [0, 1]).
"""
from __future__ import annotations

from typing import NamedTuple

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
    _, s, vh = torch.linalg.svd(x64 - mean, full_matrices=False)    # vh: (min(N, D), D)
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
