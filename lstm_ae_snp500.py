"""LSTM autoencoder on S&P 500 daily prices 2014-2017: reconstruction and next-day prediction
(spec 000, §2 and §3.3).

Reads the Kaggle CSV (``--data-file``, default under ``--data-dir``; see ``data.py`` for the
checks, the handling of empty cells and of symbols with fewer days), one series per symbol of the
daily ``--feature`` (default the high), cut into windows of ``--seq-len`` consecutive trading days.

Splits. The last ``--test-frac`` of the calendar is the out-of-time test period, held out of
every fold; ``--holdout-symbols`` of the symbols never appear in training (nor do symbols without
a single window in the training period). The other symbols form ``--folds`` random folds grouped
by symbol: fold k validates on its symbols and trains on the others' (training period only).

1. ``amzn_googl.png``: the daily high of AMZN and GOOGL.
2. Reconstruction with cross-validation: each window normalised with its own statistics (x ∈
   [0, 1], mean ½), one ``LSTMAutoencoder`` per fold (``folds/fold<k>/``), the best by validation
   MSE is evaluated on the test period: ``cv.csv``, ``reconstructions.png`` (three held-out
   stocks, dollars), beside the "window's own mean" baseline.
3. Prediction: the same autoencoder plus a ``PredictorHead`` on the encoder states h_t, trained
   on the chosen fold's split (``predictor/``) with loss = reconstruction MSE + ``--pred-weight`` ×
   prediction MSE. The per-window normalisation would leak the future (its mean is fixed at ½),
   so here each window is scaled with statistics known at its start (``data.causal_normalize``:
   centre = mean price of the ``--lookback`` days before it, ± ``--spread`` of that spans
   [0, 1]), and the head predicts the scaled return: ỹ_t = x_t + head(h_t), the head starting
   at zero, i.e. at persistence. ỹ_t depends on prices up to day t only (tested).
   ``losses.png``, ``prediction.png``; compared in dollars with persistence (ỹ_t = x_t) and a
   pooled linear AR(``--ar-order``) on log-returns fitted on the predictor's training symbols
   over the training period, on the same windows and days.
4. ``metrics.json``: every number above, per fold, and the full configuration. It is written
   last: a run that stopped early leaves no metrics.json.

    python lstm_ae_snp500.py --data-dir ../shared/data --threads 1
    python lstm_ae_snp500.py --data-dir ../shared/data --symbols AMZN GOOGL AAPL MSFT IBM ORCL \\
        --folds 2 --epochs 2 --out-dir /tmp/snp_quick
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import NamedTuple

import matplotlib
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from baselines import pca_baseline
from cli import (Parser, common_parser, non_negative_float, positive_float, positive_int, run,
                 setup_runtime)
from data import (SP500_FILE, SP500_MISSING, SP500_PRICES, PriceWindows, causal_normalize,
                  date_cutoff, denormalize, load_sp500, make_windows, max_run, normalize,
                  select_symbols, symbol_split, take_windows)
from errors import UsageError
from hardware import machine_info
from models import AutoencoderWithHead, LSTMAutoencoder, PredictorHead, count_parameters
from outputs import prepare_out_dir, write_csv, write_json
from plotting import COLORS, STYLE, figure, plot_histories, plot_panels, save_figure
from training import CHECKPOINT, TrainSettings, evaluate, fit

TASK = "snp500"
DATA_ENV = "LSTM_AE_DATA_DIR"


def fraction(text: str) -> float:
    """A number in [0, 1) (argparse type)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return value


def parse_args(argv=None):
    common = common_parser(TASK, input_size=1, hidden_size=64, epochs=16, lr=1e-2, grad_clip=1.0,
                           batch_size=64, grid=False)
    parser = Parser(description=__doc__.split("\n\n")[0], parents=[common])
    for action in parser._actions:   # the model reads one value per --feature per day
        if action.dest == "input_size":
            action.default = None
            action.help = ("values per time step: must equal the number of --feature columns "
                           "(default: that number)")
    data = parser.add_argument_group("data")
    data.add_argument("--data-dir", default=os.environ.get(DATA_ENV, "data"),
                      help=f"folder holding {SP500_FILE} (default: ${DATA_ENV}, else data/)")
    data.add_argument("--data-file", default=None,
                      help=f"the S&P 500 CSV (default: <data-dir>/{SP500_FILE})")
    data.add_argument("--feature", nargs="+", choices=SP500_PRICES, default=["high"],
                      help="price column(s) modelled, matched in any case (High, high); several "
                           "give input size > 1 (default high)")
    data.add_argument("--symbol-column", default=None, metavar="NAME",
                      help="the CSV's column of stock symbols (default: the one column named "
                           "symbol, ticker or Name, in any case)")
    data.add_argument("--date-column", default=None, metavar="NAME",
                      help="the CSV's column of dates, YYYY-MM-DD (default: the one column named "
                           "date, in any case)")
    data.add_argument("--symbols", nargs="+", default=None, metavar="SYMBOL",
                      help="use only these symbols (default: every symbol with at least one "
                           "window; the others are skipped with a note)")
    data.add_argument("--missing", choices=SP500_MISSING, default="ffill",
                      help="empty price cells: ffill (previous trading day's value), drop (the "
                           "day is skipped for that symbol) or error (default ffill)")
    data.add_argument("--seq-len", type=positive_int, default=50,
                      help="trading days per window (default 50, about ten weeks)")
    data.add_argument("--stride", type=positive_int, default=40,
                      help="days between the starts of training windows; validation and test "
                           "windows always use seq-len - 1, so each day after the first is "
                           "predicted once (default 40)")
    data.add_argument("--lookback", type=positive_int, default=50,
                      help="days before each window whose statistics scale it for prediction "
                           "(causal scaling); windows start this many days into a series "
                           "(default 50)")
    data.add_argument("--test-frac", type=fraction, default=0.2,
                      help="last fraction of the calendar held out as the out-of-time test "
                           "period (default 0.2)")
    data.add_argument("--holdout-symbols", type=fraction, default=0.1,
                      help="fraction of symbols never trained on (default 0.1)")
    data.add_argument("--folds", type=int, default=5,
                      help="cross-validation folds, grouped by symbol (default 5)")
    task = parser.add_argument_group("S&P 500 tasks")
    task.add_argument("--output", choices=("sigmoid", "linear"), default="sigmoid",
                      help="reconstruction model's decoder output (data in [0, 1]: sigmoid, "
                           "the assignment). The predictor's is always linear: causally scaled "
                           "windows leave [0, 1] (default sigmoid)")
    task.add_argument("--pred-weight", type=non_negative_float, default=100.0,
                      help="weight of the prediction MSE in the predictor's loss: a day's move "
                           "is small beside a window's shape, so the default lets it matter "
                           "(default 100)")
    task.add_argument("--spread", type=positive_float, default=0.02,
                      help="causal scaling for prediction: a move of ± this fraction of the "
                           "mean price of the --lookback days spans [0, 1] (default 0.02)")
    task.add_argument("--pred-epochs", type=positive_int, default=10,
                      help="epochs of the predictor (default 10)")
    task.add_argument("--ar-order", type=positive_int, default=5,
                      help="order of the pooled linear AR baseline on log-returns (default 5)")
    task.add_argument("--pred-lr", type=positive_float, default=None,
                      help="peak learning rate of the predictor (default: --lr)")
    return parser.parse_args(argv)


# ---------------------------------------------------------------------------------------------
# losses (batch = (x,), x: (B, T, F) normalised windows)

def reconstruction_step(model, batch):
    """MSE between each window and its reconstruction (normalised units)."""
    (x,) = batch
    return F.mse_loss(model(x).recon, x), {}


def next_step(model, x):
    """ỹ_t = x_t + head(h_t) for t = 1..T: (AEOutput, ỹ (B, T, F)). The head reads the forward
    encoder's h_t, a function of x_1..x_t, and predicts the scaled return x_{t+1} - x_t."""
    out, step = model(x)
    return out, x + step


def make_prediction_step(pred_weight: float):
    def prediction_step(model, batch):
        """Reconstruction MSE + pred_weight × MSE(ỹ_t, x_{t+1}), t = 1..T-1 (scaled units)."""
        (x,) = batch
        out, y = next_step(model, x)
        recon = F.mse_loss(out.recon, x)
        pred = F.mse_loss(y[:, :-1], x[:, 1:])
        persistence = F.mse_loss(x[:, :-1], x[:, 1:])
        return recon + pred_weight * pred, {"recon": recon.item(), "pred": pred.item(),
                                            "persistence": persistence.item()}
    return prediction_step


@torch.no_grad()
def run_model(model, x: torch.Tensor, device, batch_size: int = 1024):
    """Eval-mode forward pass in chunks: (reconstruction (N, T, F), ỹ (N, T, F) or None)."""
    model.eval()
    recons, preds = [], []
    for chunk in x.split(batch_size):
        chunk = chunk.to(device)
        if isinstance(model, AutoencoderWithHead):
            out, y = next_step(model, chunk)
            preds.append(y.cpu())
        else:
            out = model(chunk)
        recons.append(out.recon.cpu())
    return torch.cat(recons), (torch.cat(preds) if preds else None)


def predict_next_dollars(model, windows, device, spread: float) -> torch.Tensor:
    """The whole prediction pipeline, raw prices → next-day prices: causal scaling with the
    lookback days, the model, the inverse scaling. (N, T - 1, F) dollars; [:, t] predicts
    windows.raw[:, t + 1] from prices up to day t."""
    x, stats = causal_normalize(windows.raw, windows.history, spread)
    _, y = run_model(model, x.float(), device)
    return denormalize(y.double(), stats)[:, :-1]


# ---------------------------------------------------------------------------------------------
# the linear baseline: pooled AR(p) on log-returns

def fit_ar(values: np.ndarray, order: int) -> np.ndarray:
    """Least squares r_{d+1} = c + Σ_i a_i r_{d+1-i} pooled over series (S, D) of prices (NaN
    where absent): returns [c, a_1..a_p]."""
    r = np.diff(np.log(values), axis=1)                       # (S, D-1)
    lagged = np.stack([r[:, order - i - 1:r.shape[1] - i - 1] for i in range(order)], -1)
    target = r[:, order:]                                     # (S, D-1-p)
    design = np.concatenate([np.ones(target.shape + (1,)), lagged], -1).reshape(-1, order + 1)
    target = target.reshape(-1)
    ok = np.isfinite(design).all(1) & np.isfinite(target)
    if ok.sum() <= order + 1:
        raise UsageError(f"--ar-order {order}: too few training days to fit the linear baseline")
    return np.linalg.lstsq(design[ok], target[ok], rcond=None)[0]


def ar_predict(windows, coef: np.ndarray) -> torch.Tensor:
    """Next-day prices (N, T - 1, F) from the AR on each window's past (lookback + window)."""
    order = len(coef) - 1
    prices = torch.cat([windows.history, windows.raw], 1).numpy()     # (N, L + T, F)
    r = np.diff(np.log(prices), axis=1)                                # (N, L + T - 1, F)
    L, T = windows.history.shape[1], windows.raw.shape[1]
    pred = np.empty((len(prices), T - 1, prices.shape[2]))
    for t in range(T - 1):                     # predict window day t + 1 (prices index L + t + 1)
        last = L + t - 1                       # r[last] = log p[L + t] / p[L + t - 1]
        lags = r[:, last - order + 1:last + 1][:, ::-1]                # (N, p, F): r_t, r_{t-1}..
        step = coef[0] + np.einsum("npf,p->nf", lags, coef[1:])
        pred[:, t] = prices[:, L + t] * np.exp(step)
    return torch.from_numpy(pred)


# ---------------------------------------------------------------------------------------------
# helpers

def check_inputs(args, table):
    """Flag checks that need the data; everything is checked before any output is written."""
    n_dates = len(table.dates)
    if args.seq_len + args.lookback > n_dates:
        raise UsageError(f"--seq-len {args.seq_len}: longer than the series ({table.path} has "
                         f"{n_dates} trading days; a window needs --lookback {args.lookback} + "
                         f"--seq-len {args.seq_len})")
    cutoff = date_cutoff(n_dates, args.test_frac)
    if n_dates - cutoff < args.seq_len:
        raise UsageError(f"--test-frac {args.test_frac:g}: the test period ({n_dates - cutoff} "
                         f"trading days) is shorter than --seq-len {args.seq_len}")
    if cutoff < args.lookback + args.seq_len:
        raise UsageError(f"--test-frac {args.test_frac:g}: the training period ({cutoff} trading "
                         f"days) cannot hold --lookback {args.lookback} + --seq-len {args.seq_len}")
    return cutoff


class Splits(NamedTuple):
    train: PriceWindows   # training period, every --stride days, every symbol (folds pick)
    val: PriceWindows     # training period, every seq-len - 1 days, every symbol (folds pick)
    test: PriceWindows    # test period, every seq-len - 1 days, every symbol
    held: np.ndarray      # symbol indices never trained on
    folds: list           # K disjoint arrays of symbol indices
    cutoff: int           # calendar index of the first test day


def make_splits(table, args, cutoff: int) -> Splits:
    """Windows of the training and test periods; held-out symbols (a seeded --holdout-symbols
    fraction, plus every symbol without a window in the training period) and --folds random
    groups of the other symbols."""
    train = make_windows(table, args.seq_len, args.stride, args.lookback, 0, cutoff)
    val = make_windows(table, args.seq_len, args.seq_len - 1, args.lookback, 0, cutoff)
    test = make_windows(table, args.seq_len, args.seq_len - 1, args.lookback, cutoff)
    if len(test.raw) == 0:
        raise UsageError(f"--test-frac {args.test_frac:g}: no symbol has a whole window in the "
                         f"test period")
    trainable = np.unique(train.symbol)
    held, _ = symbol_split(len(trainable), 1, args.holdout_symbols, args.seed)
    held = np.union1d(trainable[held], np.setdiff1d(np.arange(len(table.symbols)), trainable))
    cv_symbols = np.setdiff1d(trainable, held)
    if args.folds > len(cv_symbols):
        raise UsageError(f"--folds {args.folds}: more folds than the {len(cv_symbols)} symbol(s) "
                         f"left for cross-validation (after --holdout-symbols "
                         f"{args.holdout_symbols:g} and symbols without a training window)")
    _, groups = symbol_split(len(cv_symbols), args.folds, 0.0, args.seed)
    return Splits(train, val, test, held, [cv_symbols[g] for g in groups], cutoff)


def fold_windows(splits: Splits, k: int):
    """(training windows, validation windows) of fold k (0-based): validation = fold k's symbols,
    training = every other symbol that is not held out; both in the training period only."""
    fold = splits.folds[k]
    train = take_windows(splits.train, ~np.isin(splits.train.symbol, np.union1d(fold, splits.held)))
    val = take_windows(splits.val, np.isin(splits.val.symbol, fold))
    return train, val


def dates_of(table, windows, index: int, days=slice(None)) -> np.ndarray:
    T = windows.raw.shape[1]
    return table.dates[windows.start[index] + np.arange(T)][days]


def stitch(windows, index: np.ndarray, series: torch.Tensor, table, first_day: int = 0):
    """Concatenate one symbol's consecutive windows (stride seq_len - 1: one shared day) into a
    dated series; ``series`` (N, T', F) per-window values starting at window day ``first_day``.
    Returns (dates, values (days, F))."""
    dates, values, last = [], [], None
    for i in index[np.argsort(windows.start[index])]:
        d = dates_of(table, windows, i)[first_day:first_day + series.shape[1]]
        v = series[i].numpy()
        keep = d > last if last is not None else np.ones(len(d), bool)
        dates.append(d[keep])
        values.append(v[keep])
        last = d[-1]
    return np.concatenate(dates), np.concatenate(values)


def mse(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a.double() - b.double()) ** 2).mean())


def plot_losses(history, path, title: str) -> None:
    """Two panels: the training loss (reconstruction + weighted prediction) and the prediction
    MSE, train and validation, vs epoch; persistence as a reference on the second."""
    epochs = [row["epoch"] for row in history]
    fig, axes = figure(1, 2, width=12.0, row_height=4.3)
    with matplotlib.rc_context(STYLE):
        for ax, key, name in zip(axes, ("loss", "pred"), ("training loss (recon + w·pred)",
                                                          "prediction MSE")):
            for split, dash, label in (("train", "-", "train"), ("val", "--", "validation")):
                ax.plot(epochs, [row[f"{split}_{key}"] for row in history], dash, color=COLORS[0]
                        if split == "train" else COLORS[1], label=label)
            if key == "pred":
                for split, label, color in (("train", "persistence (train)", COLORS[0]),
                                            ("val", "persistence (validation)", COLORS[1])):
                    ax.axhline(history[-1][f"{split}_persistence"], color=color, linestyle=":",
                               linewidth=1.3, label=label)
            ax.set_xlabel("epoch")
            ax.set_ylabel("loss" if key == "loss" else "MSE (scaled units)")
            ax.set_title(name[0].upper() + name[1:] + " vs epoch")
            ax.legend(framealpha=0.85)
        fig.suptitle(title)
    save_figure(fig, path)


def prediction_scores(pred, persistence, linear, ar1, actual) -> dict:
    """MSEs in dollars of (N, T-1, F) next-day predictions, and the ratios the report quotes."""
    scores = {"targets": int(actual[..., 0].numel()),
              "lstm_mse_dollars": mse(pred, actual),
              "persistence_mse_dollars": mse(persistence, actual),
              "linear_mse_dollars": mse(linear, actual),
              "linear_ar1_mse_dollars": mse(ar1, actual)}
    p = scores["persistence_mse_dollars"]
    scores.update({"lstm_vs_persistence": scores["lstm_mse_dollars"] / p,
                   "linear_vs_persistence": scores["linear_mse_dollars"] / p,
                   "linear_ar1_vs_persistence": scores["linear_ar1_mse_dollars"] / p,
                   "lstm_vs_linear": scores["lstm_mse_dollars"] / scores["linear_mse_dollars"]})
    # the same ratio with every day's error relative to the last known price (no stock dominates)
    rel = lambda y: float((((y - actual) / persistence) ** 2).mean())   # noqa: E731
    scores["lstm_vs_persistence_relative_errors"] = rel(pred) / rel(persistence)
    scores["linear_vs_persistence_relative_errors"] = rel(linear) / rel(persistence)
    return scores


# ---------------------------------------------------------------------------------------------

def main(argv=None):
    args = parse_args(argv)
    started = time.time()
    device = setup_runtime(args)
    features = tuple(dict.fromkeys(args.feature))
    n_features = len(features)
    if args.input_size is not None and args.input_size != n_features:
        raise UsageError(f"--input-size {args.input_size}: the model reads one value per "
                         f"--feature per day, so it must be {n_features} here")
    for flag, values in (("--hidden-size", args.hidden_size), ("--lr", args.lr),
                         ("--grad-clip", args.grad_clip)):
        if len(values) > 1:
            raise UsageError(f"{flag}: one value here (this script runs cross-validation, not a "
                             f"grid search)")
    if args.folds < 2:
        raise UsageError(f"--folds {args.folds}: cross-validation needs at least 2 folds")
    if args.seq_len < 2:
        raise UsageError(f"--seq-len {args.seq_len}: a window needs at least 2 days (a next day "
                         f"to predict)")
    if args.lookback < max(2, args.ar_order):
        raise UsageError(f"--lookback {args.lookback}: must be at least 2 and at least "
                         f"--ar-order {args.ar_order} (the baseline reads that many past returns)")

    # data: load and check everything before writing anything
    path = args.data_file or os.path.join(args.data_dir, SP500_FILE)
    if not args.data_file and not os.path.isfile(path):
        raise UsageError(f"--data-dir {args.data_dir}: no {SP500_FILE} there (point --data-dir "
                         f"or ${DATA_ENV} at the folder holding sp500/, or give --data-file)")
    full = load_sp500(path, features, missing=args.missing,
                      flag="--data-file" if args.data_file else "--data-dir",
                      symbol_column=args.symbol_column, date_column=args.date_column)
    table = select_symbols(full, args.symbols) if args.symbols else full
    cutoff = check_inputs(args, table)
    runs = max_run(table)
    short = [s for s, n in zip(table.symbols, runs) if n < args.lookback + args.seq_len]
    if short and args.symbols:
        s = short[0]
        raise UsageError(f"--symbols {s}: only {runs[table.symbols.index(s)]} consecutive trading "
                         f"days in {path}, fewer than one window needs (--lookback "
                         f"{args.lookback} + --seq-len {args.seq_len})")
    if short:
        table = select_symbols(table, [s for s in table.symbols if s not in short])

    # splits: symbols (held out + K folds) and dates (training period | test period)
    splits = make_splits(table, args, cutoff)
    test, held, folds = splits.test, splits.held, splits.folds

    if short:
        print(f"note: {len(short)} symbol(s) with fewer than {args.lookback + args.seq_len} "
              f"consecutive trading days skipped: {', '.join(short)}", file=sys.stderr)
    out_dir = prepare_out_dir(args.out_dir)
    for stale in ("metrics.json", "cv.csv"):        # an unfinished run must not look finished
        if (out_dir / stale).exists():
            (out_dir / stale).unlink()
    settings = TrainSettings.from_args(args)
    data_config = dict(file=os.path.abspath(path), features=list(features), symbols=args.symbols,
                       missing=args.missing, seq_len=args.seq_len, stride=args.stride,
                       lookback=args.lookback, test_frac=args.test_frac,
                       holdout_symbols=args.holdout_symbols, folds=args.folds, seed=args.seed)
    print(f"{len(table.symbols)} symbols, {len(table.dates)} trading days "
          f"({str(table.dates[0])[:10]} to {str(table.dates[-1])[:10]}); test period from "
          f"{str(table.dates[cutoff])[:10]}; {len(held)} held-out symbols, {args.folds} folds of "
          f"{', '.join(str(len(f)) for f in folds)} symbols", file=sys.stderr)

    # 1. AMZN and GOOGL
    shown = [s for s in ("AMZN", "GOOGL") if s in full.symbols]
    column = "high" if "high" in features else features[0]
    if shown:
        plot_panels([{"title": s, "x": full.dates,
                      "lines": [("", full.series(s)[:, features.index(column)], None)]}
                     for s in shown], out_dir / "amzn_googl.png",
                    title=f"Daily {column} of {' and '.join(shown)}", xlabel="date",
                    ylabel=f"daily {column} ($)")
    else:
        print("note: neither AMZN nor GOOGL is in the file; amzn_googl.png not drawn",
              file=sys.stderr)

    # 2. reconstruction: per-window normalisation, one model per fold, best by validation MSE
    def build_ae(output):
        return LSTMAutoencoder(n_features, args.hidden_size[0], args.num_layers,
                               decoder=args.decoder, reverse=args.reverse,
                               bidirectional=args.bidirectional, output=output,
                               teacher_forcing=args.teacher_forcing, init=args.init,
                               code_size=args.code_size)

    def recon_inputs(windows):
        return normalize(windows.raw)[0].float()                         # (N, T, F)

    cv_rows, fold_models, fold_histories = [], [], {}
    for k, fold in enumerate(folds, 1):
        train_w, val_w = fold_windows(splits, k - 1)
        torch.manual_seed(args.seed + k)
        model = build_ae(args.output)
        run_dir = out_dir / "folds" / f"fold{k}"
        run_dir.mkdir(parents=True, exist_ok=True)
        result = fit(model, reconstruction_step, [recon_inputs(train_w)], [recon_inputs(val_w)],
                     settings, run_dir=run_dir, device=device, seed=args.seed + k,
                     identity=dict(task=TASK, part="reconstruction", fold=k, data=data_config,
                                   model=model.config, settings=vars(settings).copy()),
                     resume=args.resume and (run_dir / CHECKPOINT).exists(),
                     desc=f"fold {k}/{args.folds}")
        recon, _ = run_model(model, recon_inputs(val_w), device)
        val_dollars = mse(denormalize(recon.double(), normalize(val_w.raw)[1]), val_w.raw)
        cv_rows.append({"fold": k, "val_symbols": len(fold), "train_windows": len(train_w.raw),
                        "val_windows": len(val_w.raw), "best_epoch": result.best_epoch,
                        "epochs_run": len(result.history), "val_mse": result.best_val_loss,
                        "val_mse_dollars": val_dollars,
                        "seconds_per_epoch": float(np.mean([r["seconds"] for r in result.history])),
                        "seconds": round(result.seconds, 2)})
        fold_models.append(model)
        fold_histories[f"fold {k}"] = result.history
        if result.interrupted:
            break
    best = min(range(len(cv_rows)), key=lambda i: cv_rows[i]["val_mse"])
    model = fold_models[best]
    write_csv(out_dir / "cv.csv", pd.DataFrame(cv_rows))
    plot_histories(fold_histories, out_dir / "cv_loss.png", logy=True,
                   title="Reconstruction loss per cross-validation fold",
                   ylabel="MSE (normalised units)")

    held_test = np.isin(test.symbol, held)
    x_test, test_stats = normalize(test.raw)
    recon_test, _ = run_model(model, x_test.float(), device)
    recon_dollars = denormalize(recon_test.double(), test_stats)
    mean_dollars = test.raw.mean(1, keepdim=True).expand_as(test.raw)
    # PCA with the model's code size, fitted on the chosen fold's training windows (normalised)
    pca_train, _ = fold_windows(splits, best)
    held_mask = torch.from_numpy(held_test)
    pca_units = {"dollars": lambda r: mse(denormalize(r.double(), test_stats), test.raw)}
    if held_test.any():
        pca_units["held_out_symbols"] = lambda r: mse(r[held_mask], x_test[held_mask])
        pca_units["held_out_symbols_dollars"] = lambda r: mse(
            denormalize(r.double(), test_stats)[held_mask], test.raw[held_mask])
    pca = pca_baseline(recon_inputs(pca_train), x_test.float(), model.z_size, units=pca_units)

    def recon_scores(mask):
        m = torch.from_numpy(mask)
        s = {"windows": int(mask.sum()),
             "mse": mse(recon_test[m], x_test[m]),
             "mse_dollars": mse(recon_dollars[m], test.raw[m]),
             "mean_baseline_mse": mse(torch.full_like(x_test[m], 0.5), x_test[m]),
             "mean_baseline_mse_dollars": mse(mean_dollars[m], test.raw[m])}
        s["relative_mse"] = s["mse"] / s["mean_baseline_mse"]
        s["relative_mse_dollars"] = s["mse_dollars"] / s["mean_baseline_mse_dollars"]
        return s

    all_test = np.ones(len(test.raw), bool)
    reconstruction = {"chosen_fold": best + 1, "folds": cv_rows,
                      "test": recon_scores(all_test), "z_size": model.z_size, "pca": pca,
                      "test_held_out_symbols": recon_scores(held_test) if held_test.any() else None,
                      "parameters": count_parameters(model), "model": model.config}

    # three test stocks (held-out symbols when there are some), over the whole test period
    pool = held if held_test.any() else np.unique(test.symbol)
    pool = np.random.default_rng(args.seed).permutation(pool)
    coverage = np.array([(test.symbol == s).sum() for s in pool])
    pick = pool[np.argsort(-coverage, kind="stable")][:3]          # most test windows first
    panels = []
    for s in pick:
        index = np.flatnonzero(test.symbol == s)
        d, original = stitch(test, index, test.raw, table)
        _, rec = stitch(test, index, recon_dollars, table)
        err = mse(torch.from_numpy(rec), torch.from_numpy(original))
        where = "held-out symbol, " if s in held else ""
        for f, name in enumerate(features):
            panels.append({"title": f"{table.symbols[s]} ({name}; {where}MSE {err:.3g} \\$²)",
                           "x": d, "lines": [("original", original[:, f], {"color": "black"}),
                                             ("reconstruction", rec[:, f],
                                              {"color": "C1", "linestyle": "--"})]})
    plot_panels(panels, out_dir / "reconstructions.png",
                title=f"Reconstructions over the test period (windows of {args.seq_len} days, "
                      f"fold {best + 1} model)", xlabel="date", ylabel="price ($)")

    # 3. prediction: causal scaling, AE + predictor head on the encoder, chosen fold's split
    fold = folds[best]
    train_w, val_w = fold_windows(splits, best)
    torch.manual_seed(args.seed)
    ae = build_ae("linear")
    head = PredictorHead(ae.hidden_size, n_features)
    torch.nn.init.zeros_(head.linear.weight)        # start from persistence: ỹ_t = x_t
    torch.nn.init.zeros_(head.linear.bias)
    predictor = AutoencoderWithHead(ae, head, source="encoder")
    pred_settings = TrainSettings.from_args(args, epochs=args.pred_epochs,
                                            lr=args.pred_lr or args.lr[0])
    run_dir = out_dir / "predictor"
    run_dir.mkdir(parents=True, exist_ok=True)
    step = make_prediction_step(args.pred_weight)
    def pred_inputs(windows):
        return causal_normalize(windows.raw, windows.history, args.spread)[0].float()

    pred_fit = fit(predictor, step, [pred_inputs(train_w)], [pred_inputs(val_w)], pred_settings,
                   run_dir=run_dir, device=device, seed=args.seed,
                   identity=dict(task=TASK, part="prediction", fold=best + 1, data=data_config,
                                 model=ae.config, pred_weight=args.pred_weight,
                                 spread=args.spread,
                                 settings=vars(pred_settings).copy()),
                   resume=args.resume and (run_dir / CHECKPOINT).exists(), desc="predictor")
    plot_losses(pred_fit.history, out_dir / "losses.png",
                title=f"Predictor (fold {best + 1} split): loss = reconstruction + "
                      f"{args.pred_weight:g} × prediction")

    coef = fit_ar(table.values[np.setdiff1d(np.arange(len(table.symbols)),
                                            np.union1d(fold, held)), :cutoff, :].transpose(0, 2, 1)
                  .reshape(-1, cutoff), args.ar_order)
    coef1 = fit_ar(table.values[np.setdiff1d(np.arange(len(table.symbols)),
                                             np.union1d(fold, held)), :cutoff, :].transpose(0, 2, 1)
                   .reshape(-1, cutoff), 1)

    def pred_scores(windows, mask=None):
        w = windows if mask is None else take_windows(windows, mask)
        pred = predict_next_dollars(predictor, w, device, args.spread)
        scores = prediction_scores(pred, w.raw[:, :-1], ar_predict(w, coef), ar_predict(w, coef1),
                                   w.raw[:, 1:])
        scores["windows"] = len(w.raw)
        return scores, pred

    test_scores, test_pred = pred_scores(test)
    x_causal = pred_inputs(test)
    test_eval = evaluate(predictor, step, [x_causal.to(device)])
    test_scores.update({"lstm_mse": test_eval["pred"], "persistence_mse": test_eval["persistence"],
                        "recon_mse": test_eval["recon"],
                        "recon_mean_baseline_mse": mse(x_causal.mean(1, keepdim=True)
                                                       .expand_as(x_causal), x_causal)})
    test_scores["recon_relative_mse"] = (test_scores["recon_mse"]
                                         / test_scores["recon_mean_baseline_mse"])
    prediction = {
        "fold": best + 1, "best_epoch": pred_fit.best_epoch, "epochs_run": len(pred_fit.history),
        "best_val_loss": pred_fit.best_val_loss,
        "validation": pred_scores(val_w)[0],
        "test": test_scores,
        "test_held_out_symbols": pred_scores(test, held_test)[0] if held_test.any() else None,
        "linear_baseline": {"order": args.ar_order, "coefficients": coef.tolist(),
                            "ar1_coefficients": coef1.tolist(),
                            "fitted_on": "log-returns of the training symbols (the predictor's) "
                                         "in the training period, pooled, least squares"},
        "beats_persistence": test_scores["lstm_vs_persistence"] < 1.0,
        "beats_linear": test_scores["lstm_vs_linear"] < 1.0,
        "parameters": count_parameters(predictor),
    }

    s = pick[0]
    index = np.flatnonzero(test.symbol == s)
    d, actual = stitch(test, index, test.raw[:, 1:], table, first_day=1)
    _, lstm = stitch(test, index, test_pred, table, first_day=1)
    _, last = stitch(test, index, test.raw[:, :-1], table, first_day=1)
    f = features.index(column)
    e_lstm = mse(torch.from_numpy(lstm), torch.from_numpy(actual))
    e_last = mse(torch.from_numpy(last), torch.from_numpy(actual))
    plot_panels([{"title": f"{table.symbols[s]}: next-day {column}", "x": d,
                  "lines": [("actual", actual[:, f], {"color": "black"}),
                            ("LSTM prediction", lstm[:, f], {"color": "C1", "linestyle": "--"}),
                            ("persistence (yesterday's value)", last[:, f],
                             {"color": "C2", "linestyle": ":"})]},
                 {"title": f"prediction error (MSE: LSTM {e_lstm:.3g} \\$², persistence "
                           f"{e_last:.3g} \\$²)", "x": d,
                  "lines": [("LSTM - actual", lstm[:, f] - actual[:, f], {"color": "C1"}),
                            ("persistence - actual", last[:, f] - actual[:, f],
                             {"color": "C2", "linestyle": ":"})]}],
                out_dir / "prediction.png",
                title=f"Next-day prediction over the test period "
                      f"({'held-out symbol' if s in held else 'test period'})",
                xlabel="date", ylabel="dollars", row_height=3.3)

    # 4. metrics, written last
    metrics = {
        "reconstruction": reconstruction,
        "prediction": prediction,
        "data": {"file": os.path.abspath(path), "features": list(features),
                 "symbols": len(table.symbols), "skipped_short_symbols": short,
                 "filled_cells": full.filled, "trading_days": len(table.dates),
                 "first_date": str(table.dates[0])[:10], "last_date": str(table.dates[-1])[:10],
                 "test_start": str(table.dates[cutoff])[:10],
                 "held_out_symbols": [table.symbols[i] for i in held],
                 "fold_symbols": [[table.symbols[i] for i in f] for f in folds],
                 "train_period_windows": len(splits.train.raw), "test_windows": len(test.raw)},
        "seconds_per_epoch": {"reconstruction": float(np.mean([r["seconds_per_epoch"]
                                                               for r in cv_rows])),
                              "prediction": float(np.mean([r["seconds"]
                                                           for r in pred_fit.history]))},
        "run_seconds": time.time() - started,
        **machine_info(device),            # device, torch_threads, CPU and its flags
        "config": {k: v for k, v in vars(args).items() if k != "debug"},
    }
    write_json(out_dir / "metrics.json", metrics)

    r, p = reconstruction["test"], prediction["test"]
    print(f"reconstruction (test period, {r['windows']} windows, fold {best + 1} model): MSE "
          f"{r['mse']:.3g} normalised, {r['mse_dollars']:.3g} $²; PCA-{pca['components']} "
          f"{pca['test_mse']:.3g} normalised, {pca['test_mse_dollars']:.3g} $²; window's own mean "
          f"{r['mean_baseline_mse_dollars']:.3g} $² (relative {r['relative_mse_dollars']:.3f})")
    held_p = prediction["test_held_out_symbols"] or {}
    nan = float("nan")
    print(f"prediction (test period, {p['targets']} next days), MSE in $²: LSTM "
          f"{p['lstm_mse_dollars']:.4g}, persistence {p['persistence_mse_dollars']:.4g}, linear "
          f"AR({args.ar_order}) {p['linear_mse_dollars']:.4g}; LSTM / persistence = "
          f"{p['lstm_vs_persistence']:.4f} (held-out symbols "
          f"{held_p.get('lstm_vs_persistence', nan):.4f}), linear / persistence = "
          f"{p['linear_vs_persistence']:.4f} ({held_p.get('linear_vs_persistence', nan):.4f})")
    verdict = "beats" if prediction["beats_persistence"] else "does NOT beat"
    versus = "beats" if prediction["beats_linear"] else "does not beat"
    print(f"the LSTM predictor {verdict} persistence on the test period and {versus} the linear "
          f"baseline; outputs in {out_dir}/")


if __name__ == "__main__":
    sys.exit(run(main))
