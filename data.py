"""Data sets, the normalisation every experiment shares, and splits.

Normalisation (spec 000, §2): every sequence must satisfy x_t ∈ [0, 1] and (1/T) Σ_t x_t = ½.
``normalize`` maps a raw sequence s to x = ½ + (s − mean(s)) / (2 · max_t |s_t − mean(s)|), an
affine map per sequence (and per feature), so it is exactly invertible with the returned
``NormStats``: ``denormalize(x, stats)`` gives back the raw units (dollars, pixel values...) for
figures and errors. The sequence's largest deviation from its mean lands on 0 or 1.

Synthetic signals (``synthetic_signals``), one family per ``--signal``:
- ``tones``: sum of 2 sinusoids with random frequency (1–10 cycles per sequence), amplitude
  (0.2–1) and phase: 6 numbers describe a sequence, but as the frequencies vary continuously
  over a wide band the sequences span a 25-dimensional linear subspace (T = 50, all but 10⁻⁶ of
  the variance), so a code of 8 numbers is real compression (the toy default).
- ``sines``: sum of 1–3 sinusoids with random frequency (0.5–4 cycles per sequence), amplitude
  (0.2–1) and phase: smooth, but its low frequencies span only a 12-dimensional linear subspace
  (T = 50), so PCA-12 reproduces it and a larger code compresses nothing.
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

SIGNALS = {     # --signal: what each family is, in a phrase (help text and report)
    "tones": "sums of 2 sinusoids of 1–10 cycles per sequence with random amplitude and phase",
    "sines": "sums of 1–3 sinusoids of 0.5–4 cycles per sequence with random amplitude and phase",
    "dip": "U[0, 1] noise with a 10-step dip to 10 %",
    "uniform": "i.i.d. U[0, 1] values",
}


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
    elif kind == "tones":
        freq = rng.uniform(1.0, 10.0, (n_seqs, 2))
        amp = rng.uniform(0.2, 1.0, (n_seqs, 2))
        phase = rng.uniform(0.0, 2 * np.pi, (n_seqs, 2))
        values = (amp[:, :, None] * np.sin(2 * np.pi * freq[:, :, None] * t + phase[:, :, None])).sum(1)
    elif kind == "sines":
        n_components = rng.integers(1, 4, n_seqs)             # 1, 2 or 3 sinusoids
        freq = rng.uniform(0.5, 4.0, (n_seqs, 3))
        amp = rng.uniform(0.2, 1.0, (n_seqs, 3)) * (np.arange(3) < n_components[:, None])
        phase = rng.uniform(0.0, 2 * np.pi, (n_seqs, 3))
        values = (amp[:, :, None] * np.sin(2 * np.pi * freq[:, :, None] * t + phase[:, :, None])).sum(1)
    else:
        raise UsageError(f"--signal {kind!r}: expected one of {', '.join(SIGNALS)}")
    return torch.from_numpy(values).float()


# ---------------------------------------------------------------------------------------------
# MNIST (spec 000, §2 and §3.2)
#
# The whole set is read once into tensors through torchvision's IDX reader (``.data`` and
# ``.targets``; no per-item PIL transforms, no worker processes). Pixels are uint8 / 255, so
# already in [0, 1]. Validation = a seeded 10 % (6,000) of the 60,000 training images; the
# 10,000 test images are kept for the final numbers only.

MNIST_TRAIN_SIZE = 60_000
MNIST_VAL_FRACTION = 0.1


def load_mnist(data_dir, train: bool = True, download: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST from ``data_dir`` (torchvision layout: <data_dir>/MNIST/raw/*-ubyte) →
    (images (N, 28, 28) float32 in [0, 1], labels (N,) int64). N = 60,000 (train) or 10,000.

    Missing files (and no ``download``) are a one-line UsageError saying where they were looked
    for and how to get them.
    """
    from pathlib import Path

    import torchvision

    root = Path(data_dir)
    raw = root / "MNIST" / "raw"
    try:
        dataset = torchvision.datasets.MNIST(root=str(root), train=train, download=download)
    except RuntimeError as err:
        if "not found" in str(err).lower():
            raise UsageError(f"--data-dir {root}: MNIST files not found in {raw}/ (run once with "
                             f"--download, or point --data-dir / $LSTM_AE_DATA_DIR at a folder "
                             f"holding MNIST/raw/)") from None
        raise UsageError(f"--data-dir {root}: cannot read MNIST from {raw}/ ({err})") from None
    except Exception as err:  # failed download (no network), truncated or corrupt IDX file, ...
        what = "cannot download MNIST" if download else f"cannot read MNIST from {raw}/"
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UsageError(f"--data-dir {root}: {what} ({message})") from None
    images = dataset.data.float().div_(255.0)                  # (N, 28, 28) uint8 → [0, 1]
    labels = dataset.targets.long()                            # (N,)
    return images, labels


def mnist_split(seed: int, train_size: int | None = None,
                n: int = MNIST_TRAIN_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded (train, validation) indices into the n = 60,000 training images.

    Validation is always the same seeded 10 % (6,000 images for a given seed); ``train_size``
    takes a seeded subset of the remaining 90 % (54,000), for quick runs and tests.
    """
    train_idx, val_idx, _ = split_indices(n, seed, (1 - MNIST_VAL_FRACTION, MNIST_VAL_FRACTION, 0.0))
    if train_size is not None:
        if not 0 < train_size <= len(train_idx):
            raise UsageError(f"--train-size {train_size}: must be between 1 and {len(train_idx)} "
                             f"(the training images left after the 10 % validation split)")
        pick = torch.randperm(len(train_idx), generator=torch.Generator().manual_seed(seed + 1))
        train_idx = train_idx[pick[:train_size]]
    return train_idx, val_idx


# ---------------------------------------------------------------------------------------------
# S&P 500 daily prices 2014-2017 (spec 000, §2 and §3.3)
#
# ``load_sp500`` reads the Kaggle CSV (columns symbol,date,open,high,low,close,volume, one row per
# symbol and trading day) into a ``PriceTable``: dollars on a (symbols × trading days × features)
# grid whose calendar is every date in the file, NaN where a symbol has no usable value. Each
# problem is a one-line UsageError naming the file, the column and the lines: file missing or not
# a CSV, a required column missing (symbol, date, each feature), a date that does not parse, an
# empty symbol, a (symbol, date) pair given twice, a price cell that is text, ±Inf or ≤ 0.
#
# Missing cells (the real file has 19 empty open/high/low cells in 11 rows) follow ``missing``:
# - "ffill" (default): an empty cell takes the same symbol's value on its previous row (its
#   previous trading day): causal, never a later value. An empty cell on a symbol's first row has
#   nothing before it, so that day is dropped for the symbol.
# - "drop": the day is dropped for that symbol (no window spans it).
# - "error": the file is refused, naming the lines.
# Symbols with fewer days (listed later, delisted, or with gaps in the file) keep the days they
# have: a window only covers consecutive calendar days on which the symbol has a value, so a
# symbol gives windows only where it has ``lookback + seq_len`` such days in a row (``max_run``).
#
# ``make_windows`` cuts windows of ``seq_len`` consecutive trading days, every ``stride`` days
# from the first possible start, inside a date range [lo, hi) of the calendar, each with the
# ``lookback`` days before it (which may lie before lo: they are the past). Normalisation:
# - reconstruction: ``normalize(windows.raw)``, each window with its own statistics (x ∈ [0, 1],
#   mean ½; spec §2); ``denormalize`` gives dollars back. It uses the whole window, so the value
#   at t depends on later days: fine for reconstruction, a leak for prediction.
# - prediction: ``causal_normalize(windows.raw, windows.history, spread)`` scales the window with
#   statistics of the ``lookback`` days before it (known at its start: their mean price, and
#   ± ``spread`` of it spans [0, 1]), so x_t depends on prices up to day t only.
# Splits: ``symbol_split`` holds out whole symbols and groups the rest into K folds by symbol;
# ``date_cutoff`` puts the last part of the calendar aside as the out-of-time test period.

SP500_FILE = "sp500/SP 500 Stock Prices 2014-2017.csv"
SP500_PRICES = ("open", "high", "low", "close")
SP500_MISSING = ("ffill", "drop", "error")


def _lines(index, limit: int = 5) -> str:
    """File line numbers (header = line 1) of DataFrame rows, at most ``limit`` of them."""
    lines = [str(int(i) + 2) for i in index[:limit]]
    more = f" and {len(index) - limit} more" if len(index) > limit else ""
    return ", ".join(lines) + more


class PriceTable(NamedTuple):
    path: str
    dates: np.ndarray          # (D,) datetime64[ns]: the calendar, every date in the file, sorted
    symbols: list              # (S,) symbols, sorted
    features: tuple            # (F,) price columns, e.g. ("high",)
    values: np.ndarray         # (S, D, F) float64 dollars; NaN: no usable value that day
    filled: int                # cells filled by the "ffill" policy

    def series(self, symbol: str) -> np.ndarray:
        """(D, F) dollars of one symbol on the calendar."""
        return self.values[self.symbols.index(symbol)]


# Kaggle's S&P 500 price files name their columns differently ("symbol", "ticker" or "Name";
# "date" or "Date"; "high" or "High") and order them differently: each role is found by these
# spellings, case-insensitively, unless the user names the column.
SP500_COLUMN_NAMES = {"symbol": ("symbol", "ticker", "name"), "date": ("date",)}


def sp500_columns(header: list[str], path: str, features: tuple[str, ...],
                  symbol_column: str | None = None, date_column: str | None = None) -> dict:
    """Map each role (symbol, date, every feature) to its column in ``header``.

    A role is matched case-insensitively against its usual spellings, or against the column the
    user named (``--symbol-column``, ``--date-column``). No match, or two matches, is one
    UsageError naming the role, the flag that settles it and the columns found."""
    found = ", ".join(map(str, header)) or "none"
    named = {"symbol": symbol_column, "date": date_column}
    columns = {}
    for role in ("symbol", "date", *features):
        choices = (named[role],) if named.get(role) else SP500_COLUMN_NAMES.get(role, (role,))
        matches = [c for c in header if str(c).strip().lower() in {n.lower() for n in choices}]
        flag = f"--{role}-column" if role in named else None
        if not matches:
            how = (f"column {named[role]!r} given by {flag} not found" if named.get(role) else
                   f"no {role} column (looked for {', '.join(repr(n) for n in choices)}, any case"
                   + (f"; name it with {flag}" if flag else "") + ")")
            raise UsageError(f"{path}: {how} (columns found: {found})")
        if len(matches) > 1:
            raise UsageError(f"{path}: {len(matches)} columns could be the {role} column "
                             f"({', '.join(map(repr, matches))})"
                             + (f"; choose one with {flag}" if flag else ""))
        columns[role] = matches[0]
    return columns


def load_sp500(path, features=("high",), missing: str = "ffill",
               flag: str = "--data-file", symbol_column: str | None = None,
               date_column: str | None = None) -> PriceTable:
    """Read and validate the S&P 500 CSV (see the section comment); ``flag`` names the file's
    command-line flag in error messages; columns are found by ``sp500_columns``."""
    import os

    import pandas as pd

    path = str(path)
    features = tuple(features)
    if missing not in SP500_MISSING:
        raise UsageError(f"--missing {missing!r}: expected one of {', '.join(SP500_MISSING)}")
    bad = [f for f in features if f not in SP500_PRICES]
    if bad:
        raise UsageError(f"--feature {bad[0]!r}: expected one of {', '.join(SP500_PRICES)}")
    if not os.path.isfile(path):
        raise UsageError(f"{flag} {path}: no such file")
    try:
        header = list(pd.read_csv(path, nrows=0).columns)
        columns = sp500_columns(header, path, features, symbol_column, date_column)
        frame = pd.read_csv(path, usecols=list(columns.values()),
                            dtype={columns["symbol"]: str, columns["date"]: str},
                            keep_default_na=False,
                            na_values={columns[f]: ["", "NA", "NaN", "nan", "null"]
                                       for f in features})
        frame = frame.rename(columns={column: role for role, column in columns.items()})
    except UsageError:
        raise
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UsageError(f"{path}: not a readable CSV ({message})") from None

    empty = frame.index[frame["symbol"].str.strip() == ""]
    if len(empty):
        raise UsageError(f"{path}: empty symbol in column {columns['symbol']!r} "
                         f"(line {_lines(empty)})")
    dates = pd.to_datetime(frame["date"].str.strip(), format="ISO8601", errors="coerce")
    bad_dates = frame.index[dates.isna()]
    if len(bad_dates):
        raise UsageError(f"{path}: unparsable date {frame['date'][bad_dates[0]]!r} in column "
                         f"{columns['date']!r} (line {_lines(bad_dates)}); expected YYYY-MM-DD")
    frame["date"] = dates
    frame["symbol"] = frame["symbol"].str.strip()
    duplicated = frame.index[frame.duplicated(["symbol", "date"], keep="first")]
    if len(duplicated):
        raise UsageError(f"{path}: symbol and date repeated (line {_lines(duplicated)})")

    empty_cells = pd.Series(False, index=frame.index)
    for column in features:
        values = pd.to_numeric(frame[column], errors="coerce")
        text = frame.index[values.isna() & frame[column].notna()]
        if len(text):
            raise UsageError(f"{path}: column {columns[column]!r} holds text "
                             f"{frame[column][text[0]]!r} "
                             f"(line {_lines(text)})")
        infinite = frame.index[np.isinf(values.to_numpy(dtype=float))]
        if len(infinite):
            raise UsageError(f"{path}: column {columns[column]!r} holds ±Inf "
                             f"(line {_lines(infinite)})")
        not_positive = frame.index[values <= 0]
        if len(not_positive):
            raise UsageError(f"{path}: column {columns[column]!r} holds a price ≤ 0 "
                             f"(line {_lines(not_positive)})")
        frame[column] = values.astype(float)
        empty_cells |= values.isna()
    if missing == "error" and empty_cells.any():
        rows = frame.index[empty_cells]
        raise UsageError(f"{path}: empty cell in column(s) {', '.join(features)} "
                         f"(line {_lines(rows)}); --missing ffill or drop handles them")

    frame = frame.sort_values(["symbol", "date"], kind="stable")
    filled = 0
    if missing == "ffill":
        before = int(frame[list(features)].isna().sum().sum())
        frame[list(features)] = frame.groupby("symbol", sort=False)[list(features)].ffill()
        filled = before - int(frame[list(features)].isna().sum().sum())

    calendar = np.sort(frame["date"].unique()).astype("datetime64[ns]")
    symbols = sorted(frame["symbol"].unique())
    values = np.full((len(symbols), len(calendar), len(features)), np.nan)
    rows = np.searchsorted(symbols, frame["symbol"].to_numpy())
    cols = np.searchsorted(calendar, frame["date"].to_numpy().astype("datetime64[ns]"))
    values[rows, cols] = frame[list(features)].to_numpy(dtype=float)
    values[np.isnan(values).any(-1)] = np.nan                 # a day counts only with every feature
    return PriceTable(path, calendar, symbols, features, values, filled)


def select_symbols(table: PriceTable, symbols, flag: str = "--symbols") -> PriceTable:
    """The table restricted to ``symbols`` (in the order given); an unknown symbol is a
    UsageError suggesting close matches."""
    import difflib

    index = []
    for symbol in symbols:
        if symbol not in table.symbols and symbol.upper() in table.symbols:
            symbol = symbol.upper()
        if symbol not in table.symbols:
            close = difflib.get_close_matches(symbol.upper(), table.symbols, n=3, cutoff=0.5)
            hint = f"; close matches: {', '.join(close)}" if close else ""
            raise UsageError(f"{flag} {symbol}: unknown symbol, not in {table.path}{hint}")
        if table.symbols.index(symbol) not in index:
            index.append(table.symbols.index(symbol))
    return table._replace(symbols=[table.symbols[i] for i in index], values=table.values[index])


def max_run(table: PriceTable) -> np.ndarray:
    """(S,) the longest run of consecutive calendar days on which each symbol has a value."""
    valid = ~np.isnan(table.values).any(-1)                   # (S, D)
    best = np.zeros(len(valid), dtype=int)
    run = np.zeros(len(valid), dtype=int)
    for day in range(valid.shape[1]):
        run = np.where(valid[:, day], run + 1, 0)
        best = np.maximum(best, run)
    return best


class PriceWindows(NamedTuple):
    raw: torch.Tensor       # (N, T, F) float64 dollars: T consecutive trading days
    history: torch.Tensor   # (N, L, F) float64 dollars: the L trading days before each window
    symbol: np.ndarray      # (N,) index into the table's symbols
    start: np.ndarray       # (N,) calendar index of each window's first day


def make_windows(table: PriceTable, seq_len: int, stride: int, lookback: int = 0,
                 lo: int = 0, hi: int | None = None, symbols=None) -> PriceWindows:
    """Windows of ``seq_len`` consecutive trading days lying in calendar days [lo, hi), each with
    its ``lookback`` previous days, for the symbol indices ``symbols`` (default all). Per symbol
    the first window starts at the first day where one fits, the next ``stride`` days later (or at
    the next day where one fits, after a gap)."""
    hi = len(table.dates) if hi is None else hi
    symbols = range(len(table.symbols)) if symbols is None else symbols
    span = lookback + seq_len
    raw, history, owner, starts = [], [], [], []
    for s in symbols:
        valid = ~np.isnan(table.values[s]).any(-1)            # (D,)
        counts = np.concatenate([[0], np.cumsum(valid)])
        first = np.arange(max(lo, lookback), hi - seq_len + 1)  # candidate first days
        fits = first[counts[first + seq_len] - counts[first - lookback] == span]
        chosen, next_start = [], -1
        for day in fits:
            if day >= next_start:
                chosen.append(day)
                next_start = day + stride
        for day in chosen:
            block = table.values[s, day - lookback:day + seq_len]   # (L + T, F)
            history.append(block[:lookback])
            raw.append(block[lookback:])
            owner.append(s)
            starts.append(day)
    n_features = len(table.features)
    if not raw:
        return PriceWindows(torch.zeros(0, seq_len, n_features, dtype=torch.float64),
                            torch.zeros(0, lookback, n_features, dtype=torch.float64),
                            np.zeros(0, dtype=int), np.zeros(0, dtype=int))
    return PriceWindows(torch.from_numpy(np.stack(raw)), torch.from_numpy(np.stack(history)),
                        np.asarray(owner), np.asarray(starts))


def take_windows(windows: PriceWindows, mask) -> PriceWindows:
    """The windows selected by a boolean mask or index array."""
    index = np.flatnonzero(mask) if np.asarray(mask).dtype == bool else np.asarray(mask)
    tensor_index = torch.from_numpy(index).long()
    return PriceWindows(windows.raw[tensor_index], windows.history[tensor_index],
                        windows.symbol[index], windows.start[index])


def causal_normalize(raw: torch.Tensor, history: torch.Tensor,
                     spread: float | None = 0.2) -> tuple[torch.Tensor, NormStats]:
    """Scale windows (N, T, F) with statistics of the days before them (N, L, F), through the
    shared ``normalize`` map, so x_t depends on prices up to day t only (no look-ahead);
    ``denormalize(x, stats)`` gives dollars back.

    centre = the history's mean price; scale = 2 · ``spread`` · centre: a move of ± spread
    (relative to the recent mean) spans [0, 1], and x_{t+1} - x_t ≈ (log-return) / (2 · spread)
    for every stock, whatever its price or volatility. ``spread=None`` takes the history's own
    largest deviation instead (``normalize(history)``), which scales each stock by its recent
    range and so down-weights the volatile ones.
    """
    _, stats = normalize(history)
    if spread is not None:
        stats = NormStats(stats.center, 2 * spread * stats.center.abs())
    return normalize(raw, stats)


def symbol_split(n_symbols: int, folds: int, holdout: float, seed: int):
    """Seeded split of symbol indices: (held-out symbols, list of ``folds`` disjoint groups of the
    others). Held out: round(holdout · n), at least 1 when holdout > 0."""
    order = np.random.default_rng(seed).permutation(n_symbols)
    n_held = max(1, int(round(holdout * n_symbols))) if holdout > 0 else 0
    held, rest = np.sort(order[:n_held]), order[n_held:]
    return held, [np.sort(group) for group in np.array_split(rest, folds)]


def date_cutoff(n_dates: int, test_fraction: float) -> int:
    """Calendar index of the first out-of-time test day: the last ``test_fraction`` of the dates."""
    return n_dates - int(round(test_fraction * n_dates))


# ---------------------------------------------------------------------------------------------
# Palindromes (spec 003, tasks 2 and 3)
#
# A palindrome of length T over the digits 0–9: ⌈T/2⌉ free digits, mirrored (leading zeros
# allowed, as in the spec's PalindromeDataset), so there are 10^⌈T/2⌉ of them: 1,000 for T = 5,
# 10,000 for T = 7 and 8, 10^5 for T = 9 and 10. The first T − 1 digits are the input, one-hot
# (10 values a step), the last digit is the target: equal to the first, so the network must
# carry one digit across T − 2 steps. Every set is drawn from its own seeded generator:
# training batches from (seed, T, epoch), validation and test sets from T alone (the same sets
# for every seed and model), so the training stream never shares a generator with them; for
# short T the space is so small that training draws most of it anyway (the test set then
# overlaps the training data: ``expected_seen_fraction``).

PALINDROME_DIGITS = 10
_PALINDROME_STREAMS = {"train": 0, "val": 1, "test": 2}


def palindrome_count(length: int) -> int:
    """How many distinct palindromes of ``length`` digits exist: 10^⌈T/2⌉."""
    return PALINDROME_DIGITS ** ((length + 1) // 2)


def palindromes(n: int, length: int, generator: torch.Generator) -> torch.Tensor:
    """n random palindromes of ``length`` digits: (n, T) int64, row[t] == row[T − 1 − t]."""
    left = torch.randint(0, PALINDROME_DIGITS, (n, (length + 1) // 2), generator=generator)
    return torch.cat([left, left[:, :length // 2].flip(1)], dim=1)


def palindrome_generator(stream: str, length: int, seed: int = 0, epoch: int = 0) -> torch.Generator:
    """The seeded generator of one stream ("train", "val" or "test"); validation and test do not
    depend on ``seed`` or ``epoch``."""
    key = [_PALINDROME_STREAMS[stream], length] + ([seed, epoch] if stream == "train" else [])
    state = np.random.SeedSequence(key).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def palindrome_examples(digits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Palindromes (N, T) → (inputs (N, T − 1, 10) one-hot float, targets (N,) the last digit)."""
    inputs = torch.nn.functional.one_hot(digits[:, :-1], PALINDROME_DIGITS).float()
    return inputs, digits[:, -1].clone()


def palindrome_set(stream: str, n: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed validation or test set of ``length``: (inputs, targets) as ``palindrome_examples``."""
    return palindrome_examples(palindromes(n, length, palindrome_generator(stream, length)))


def palindrome_batches(length: int, batch_size: int, steps: int, seed: int, epoch: int):
    """``steps`` fresh training batches of epoch ``epoch``: a pure function of its arguments."""
    generator = palindrome_generator("train", length, seed, epoch)
    for _ in range(steps):
        yield palindrome_examples(palindromes(batch_size, length, generator))


def expected_seen_fraction(length: int, samples_drawn: int) -> float:
    """Expected fraction of a test set's palindromes that also occurred among ``samples_drawn``
    uniform training draws: 1 − (1 − 1/M)^N with M = ``palindrome_count``."""
    m = palindrome_count(length)
    return float(-np.expm1(samples_drawn * np.log1p(-1.0 / m)))
