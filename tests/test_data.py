"""The shared normalisation, splits and synthetic signals."""
import pytest
import torch

from data import SIGNALS, as_steps, denormalize, normalize, split_indices, synthetic_signals
from errors import UsageError


@pytest.mark.parametrize("shape", [(50, 30), (20, 40, 3)])
def test_normalisation_unit_range_mean_half_and_inverse(shape):
    raw = torch.randn(*shape) * 37.0 + 120.0
    x, stats = normalize(raw)
    assert x.min() >= -1e-6 and x.max() <= 1 + 1e-6
    assert (x.mean(dim=1) - 0.5).abs().max() < 1e-6
    # each sequence touches 0 or 1: the full range is used
    extreme = torch.maximum(x.amax(1), 1 - x.amin(1))
    assert (extreme - 1).abs().max() < 1e-6
    torch.testing.assert_close(denormalize(x, stats), raw, rtol=1e-5, atol=1e-4)


def test_normalisation_of_a_constant_sequence_is_half():
    x, stats = normalize(torch.full((2, 6), 3.0))
    assert torch.allclose(x, torch.full_like(x, 0.5))
    torch.testing.assert_close(denormalize(x, stats), torch.full((2, 6), 3.0))


def test_given_statistics_are_applied_not_refitted():
    raw = torch.rand(4, 10) * 10
    _, stats = normalize(raw[:, :5])
    x, same = normalize(raw, stats=stats)
    assert same is stats
    torch.testing.assert_close(denormalize(x, stats), raw, rtol=1e-5, atol=1e-5)


def test_splits_are_disjoint_cover_everything_and_are_seeded():
    train, val, test = split_indices(10_000, seed=3)
    assert (len(train), len(val), len(test)) == (6000, 2000, 2000)
    everything = torch.cat([train, val, test])
    assert everything.unique().numel() == 10_000
    again = split_indices(10_000, seed=3)
    assert all(torch.equal(a, b) for a, b in zip((train, val, test), again))
    assert not torch.equal(train, split_indices(10_000, seed=4)[0])


@pytest.mark.parametrize("kind", SIGNALS)
def test_synthetic_signals_are_seeded_and_normalisable(kind):
    raw = synthetic_signals(kind, 200, 50, seed=1)
    assert raw.shape == (200, 50) and torch.isfinite(raw).all()
    assert torch.equal(raw, synthetic_signals(kind, 200, 50, seed=1))
    assert not torch.equal(raw, synthetic_signals(kind, 200, 50, seed=2))
    x, _ = normalize(raw)
    assert (x.mean(1) - 0.5).abs().max() < 1e-6


def test_dip_signal_has_a_ten_step_dip_centred_between_20_and_30():
    raw = synthetic_signals("dip", 500, 50, seed=0)
    # the 10-step window with the lowest mean sits around the dip
    windows = raw.unfold(1, 10, 1).mean(-1)          # (N, 41)
    centres = windows.argmin(1) + 5
    assert centres.min() >= 19 and centres.max() <= 31
    assert raw.min() >= 0 and raw.max() <= 1


def test_as_steps_needs_a_divisor():
    x = torch.arange(20.0).view(2, 10)
    assert as_steps(x, 5).shape == (2, 2, 5)
    assert torch.equal(as_steps(x, 5)[0, 1], torch.arange(5.0, 10.0))
    with pytest.raises(UsageError, match="--input-size 3"):
        as_steps(x, 3)
