"""Data sets, the normalisation every experiment shares, and splits.

Normalisation (spec 000, §2): every sequence must satisfy x_t ∈ [0, 1] and (1/T) Σ_t x_t = ½.
``normalize`` maps a raw sequence s to x = ½ + (s − mean(s)) / (2 · max_t |s_t − mean(s)|), an
affine map per sequence (and per feature), so it is exactly invertible with the returned
``NormStats``: ``denormalize(x, stats)`` gives back the raw units (dollars, pixel values...) for
figures and errors. The sequence's largest deviation from its mean lands on 0 or 1.

Synthetic signals (``synthetic_signals``), one family per ``--signal``:
- ``sines``: sum of 1–3 sinusoids with random frequency (0.5–4 cycles per sequence), amplitude
  (0.2–1) and phase: smooth, a few numbers describe each sequence (the default).
- ``dip``: i.i.d. U[0, 1] values multiplied by 0.1 over 10 consecutive steps centred at a random
  step between 20 and 30 (for T = 50; the window scales with T): the signal most public
  solutions of this assignment use.
- ``uniform``: i.i.d. U[0, 1] values: nothing to compress, the hardest case.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from errors import UsageError

SIGNALS = ("sines", "dip", "uniform")


class NormStats(NamedTuple):
    center: torch.Tensor  # (N, 1, F) each sequence's (and feature's) mean
    scale: torch.Tensor   # (N, 1, F) 2 · its largest absolute deviation from the mean


def normalize(x: torch.Tensor, stats: NormStats | None = None) -> tuple[torch.Tensor, NormStats]:
    """x: (N, T) or (N, T, F) raw → (normalised, stats). Each sequence is mapped to [0, 1] with
    mean ½ (per feature) using its own statistics, or with ``stats`` when given (e.g. statistics
    known before the window, for causal prediction; the result then need not lie in [0, 1])."""
    squeeze = x.dim() == 2
    x64 = (x.unsqueeze(-1) if squeeze else x).double()      # (N, T, F)
    if stats is None:
        center = x64.mean(dim=1, keepdim=True)               # (N, 1, F)
        scale = 2 * (x64 - center).abs().amax(dim=1, keepdim=True)
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # constant sequence → ½
        stats = NormStats(center, scale)
    out = (0.5 + (x64 - stats.center.double()) / stats.scale.double()).to(x.dtype)
    return (out.squeeze(-1) if squeeze else out), stats


def denormalize(x: torch.Tensor, stats: NormStats) -> torch.Tensor:
    """Inverse of ``normalize``: normalised (N, T) or (N, T, F) → raw units."""
    squeeze = x.dim() == 2
    x3 = x.unsqueeze(-1) if squeeze else x
    out = stats.center.to(x3) + (x3 - 0.5) * stats.scale.to(x3)
    return out.squeeze(-1) if squeeze else out


def take_stats(stats: NormStats, index) -> NormStats:
    """The statistics of a subset of sequences."""
    return NormStats(stats.center[index], stats.scale[index])


def split_indices(n: int, seed: int, fractions=(0.6, 0.2, 0.2)) -> tuple[torch.Tensor, ...]:
    """Seeded, disjoint train/validation/test index sets covering range(n) (60/20/20 default)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_train = int(round(fractions[0] * n))
    n_val = int(round(fractions[1] * n))
    return order[:n_train], order[n_train:n_train + n_val], order[n_train + n_val:]


def as_steps(x: torch.Tensor, input_size: int) -> torch.Tensor:
    """(N, L) → (N, L / m, m): feed m consecutive values per time step (``--input-size``)."""
    length = x.shape[1]
    if length % input_size:
        raise UsageError(f"--input-size {input_size} does not divide the sequence length {length}")
    return x.reshape(x.shape[0], length // input_size, input_size)


def synthetic_signals(kind: str, n_seqs: int = 10_000, seq_len: int = 50, seed: int = 0) -> torch.Tensor:
    """Raw synthetic sequences (n_seqs, seq_len) of the family ``kind`` (see module docstring)."""
    rng = np.random.default_rng(seed)
    t = np.arange(seq_len) / seq_len                          # time in sequence lengths
    if kind == "uniform":
        values = rng.uniform(0.0, 1.0, (n_seqs, seq_len))
    elif kind == "dip":
        values = rng.uniform(0.0, 1.0, (n_seqs, seq_len))
        width = min(10, seq_len)
        lo, hi = int(round(0.4 * seq_len)), int(round(0.6 * seq_len))   # 20 and 30 for T = 50
        centres = rng.integers(lo, hi + 1, n_seqs)
        starts = np.clip(centres - width // 2, 0, seq_len - width)
        steps = np.arange(seq_len)
        in_dip = (steps >= starts[:, None]) & (steps < starts[:, None] + width)
        values = np.where(in_dip, 0.1 * values, values)
    elif kind == "sines":
        n_components = rng.integers(1, 4, n_seqs)             # 1, 2 or 3 sinusoids
        freq = rng.uniform(0.5, 4.0, (n_seqs, 3))
        amp = rng.uniform(0.2, 1.0, (n_seqs, 3)) * (np.arange(3) < n_components[:, None])
        phase = rng.uniform(0.0, 2 * np.pi, (n_seqs, 3))
        values = (amp[:, :, None] * np.sin(2 * np.pi * freq[:, :, None] * t + phase[:, :, None])).sum(1)
    else:
        raise UsageError(f"--signal {kind!r}: expected one of {', '.join(SIGNALS)}")
    return torch.from_numpy(values).float()
