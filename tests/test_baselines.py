"""baselines.py: PCA of the same code size, checked by hand and on data of known rank."""
from __future__ import annotations

import pytest
import torch

from baselines import (linear_rank, pca_baseline, pca_baselines, pca_fit, pca_reconstruct,
                       pca_reconstruction_mse)


def test_pca_by_hand_on_a_tiny_matrix():
    # points on the line y = x plus ±1 across it: mean (1, 1), first direction (1, 1)/√2
    x = torch.tensor([[0.0, 0.0], [2.0, 2.0], [0.0, 2.0], [2.0, 0.0]])
    pca = pca_fit(x, 1)
    assert torch.allclose(pca.mean, torch.tensor([1.0, 1.0], dtype=torch.float64))
    # the centred points are (−1,−1), (1,1), (−1,1), (1,−1): equal variance along both
    # diagonals, so check the reconstruction rather than a tie-broken direction
    direction = pca.components[0]
    assert torch.isclose(direction.norm(), torch.tensor(1.0, dtype=torch.float64))
    # each point keeps its projection on the direction; the squared error is what is left:
    # per point |c|² − (c·v)², |c|² = 2, summed over 4 points and divided by 8 values
    centred = (x - 1).double()
    left = (centred.square().sum(1) - (centred @ direction).square()).sum() / 8
    assert pca_reconstruction_mse(pca, x) == pytest.approx(left.item())
    # Σ c cᵀ = 4 I, so any unit v keeps Σ (c·v)² = 4 of the total Σ |c|² = 8
    assert pca_reconstruction_mse(pca, x) == pytest.approx(4 / 8)
    assert pca.explained_variance[0].item() == pytest.approx(4 / 3)  # 4 / (N − 1)


def test_pca_direction_and_error_by_hand():
    # points along (3, 4)/5 only (mean 0): one component reconstructs them exactly
    x = torch.tensor([[3.0, 4.0], [-3.0, -4.0], [6.0, 8.0], [-6.0, -8.0]])
    pca = pca_fit(x, 1)
    assert torch.allclose(pca.components[0].abs(), torch.tensor([0.6, 0.8], dtype=torch.float64))
    assert pca_reconstruction_mse(pca, x) == pytest.approx(0.0, abs=1e-20)
    assert pca.explained_variance[0].item() == pytest.approx((25 + 25 + 100 + 100) / 3)


def test_pca_exact_on_data_of_known_rank():
    g = torch.Generator().manual_seed(0)
    basis = torch.randn(3, 50, generator=g)
    x = torch.randn(200, 3, generator=g) @ basis + torch.randn(50, generator=g)   # rank 3 + mean
    assert pca_reconstruction_mse(pca_fit(x, 3), x) < 1e-10
    assert pca_reconstruction_mse(pca_fit(x, 2), x) > 1e-3
    # more components never reconstruct worse, and a held-out point of the same subspace is exact
    errors = [pca_reconstruction_mse(pca_fit(x, k), x) for k in (1, 2, 3, 4)]
    assert errors == sorted(errors, reverse=True)
    new = torch.randn(5, 3, generator=g) @ basis + x.mean(0)
    assert torch.allclose(pca_reconstruct(pca_fit(x, 3), new), new, atol=1e-4)


def test_pca_rejects_bad_k():
    with pytest.raises(ValueError, match="k must be"):
        pca_fit(torch.rand(5, 3), 4)


def test_scatter_matrix_and_svd_branches_agree():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(40, 6, generator=g) @ torch.diag(torch.tensor([5.0, 4, 3, 2, 1, 0.5]))
    tall = pca_fit(x, 3)                        # N ≥ D: eigenvectors of the scatter matrix
    wide = pca_fit(x[:5], 3)                    # N < D: SVD
    assert torch.allclose(tall.explained_variance,
                          torch.linalg.svdvals(x.double() - x.double().mean(0))[:3].square() / 39)
    for pca, data in ((tall, x), (wide, x[:5])):
        projector = pca.components.T @ pca.components
        centred = data.double() - pca.mean
        by_svd = torch.linalg.svd(centred, full_matrices=False).Vh[:3]
        assert torch.allclose(projector, by_svd.T @ by_svd, atol=1e-8)


def test_pca_baseline_caps_the_code_at_the_data_and_scores_other_units():
    g = torch.Generator().manual_seed(2)
    basis = torch.randn(2, 8, generator=g)
    train, test = (torch.randn(n, 2, generator=g) @ basis for n in (30, 10))
    lossy = pca_baseline(train, test, 1)
    assert lossy["test_mse"] > 1e-3 and not lossy["exact"]
    exact = pca_baseline(train, test, 2, units={"doubled": lambda r: ((2 * r - 2 * test) ** 2).mean().item()})
    assert exact["components"] == 2 and exact["test_mse"] < 1e-12 and exact["test_mse_doubled"] < 1e-10
    assert exact["exact"]
    capped = pca_baseline(train, test, 50)      # 50 numbers for 8 values: PCA-8, exact
    assert capped == {"code_size": 50, "components": 8, "test_mse": pytest.approx(0, abs=1e-12),
                      "exact": True}
    several = pca_baselines(train, test, [1, 2, 50])
    assert several[1]["test_mse"] == pytest.approx(pca_baseline(train, test, 1)["test_mse"])


def test_linear_rank_of_data_of_known_rank():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(100, 4, generator=g) @ torch.randn(4, 30, generator=g) + 7.0
    assert linear_rank(x) == 4
    assert linear_rank(torch.randn(100, 30, generator=g)) == 30
