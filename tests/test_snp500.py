"""S&P 500: loader checks, windows and normalisation, splits, causality of the predictor, and the
script end to end (lstm_ae_snp500.py, data.py's S&P 500 section)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

import lstm_ae_snp500 as snp
from cli import run
from data import (causal_normalize, date_cutoff, denormalize, load_sp500, make_windows,
                  normalize, select_symbols)
from errors import UsageError
from models import AutoencoderWithHead, LSTMAutoencoder, PredictorHead

FIGURES = ("amzn_googl.png", "reconstructions.png", "losses.png", "prediction.png")


def write_prices(path, symbols=("AAA", "BBB", "CCC", "DDD", "EEE", "FFF"), days=120, seed=0,
                 edit=None):
    """A small CSV in the Kaggle layout: random-walk prices, one row per symbol and day.
    ``edit(frame)`` may change the frame before it is written."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2016-01-04", periods=days)
    rows = []
    for i, symbol in enumerate(symbols):
        price = (20 + 10 * i) * np.exp(np.cumsum(rng.normal(0, 0.01, days)))
        for d, p in zip(dates, price):
            rows.append({"symbol": symbol, "date": d.strftime("%Y-%m-%d"), "open": p,
                         "high": p * 1.01, "low": p * 0.99, "close": p, "volume": 1000})
    frame = pd.DataFrame(rows).sort_values(["date", "symbol"]).reset_index(drop=True)
    if edit is not None:
        frame = edit(frame)
    frame.to_csv(path, index=False)
    return path


def run_script(argv, capsys):
    """(exit status, stdout, stderr) of the script run in this process."""
    status = run(snp.main, argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


QUICK = ["--seq-len", "10", "--lookback", "10", "--stride", "10", "--folds", "2", "--epochs", "1",
         "--pred-epochs", "1", "--hidden-size", "8", "--threads", "1", "--device", "cpu"]


# ---------------------------------------------------------------------------------------------
# loader

def test_loader_on_the_real_csv(sp500_csv):
    table = load_sp500(sp500_csv)
    assert len(table.symbols) == 505
    assert len(table.dates) == 1007
    assert {"AMZN", "GOOGL"} <= set(table.symbols)
    assert table.values.shape == (505, 1007, 1)
    assert np.issubdtype(table.dates.dtype, np.datetime64)
    assert str(table.dates[0])[:10] == "2014-01-02" and str(table.dates[-1])[:10] == "2017-12-29"
    amzn = table.series("AMZN")[:, 0]
    assert np.isfinite(amzn).all() and 250 < amzn.min() < amzn.max() < 1300    # dollars
    # empty high cells: filled from the previous day unless on a symbol's first row
    assert table.filled > 0
    drop = load_sp500(sp500_csv, missing="drop")
    assert np.isnan(drop.values).sum() == np.isnan(table.values).sum() + table.filled
    two = load_sp500(sp500_csv, features=("high", "low"))
    assert two.values.shape == (505, 1007, 2)


@pytest.mark.parametrize("edit, expected", [
    (lambda f: f.drop(columns="high"), "no high column (looked for 'high', any case) (columns "
                                       "found: symbol, date, open, low, close, volume)"),
    (lambda f: f.drop(columns="symbol"), "no symbol column (looked for 'symbol', 'ticker', "
                                         "'name', any case; name it with --symbol-column)"),
    (lambda f: f.assign(Name=f["symbol"]), "2 columns could be the symbol column ('symbol', "
                                           "'Name'); choose one with --symbol-column"),
    (lambda f: f.assign(date=f["date"].where(f.index != 7, "2016-13-45")),
     "unparsable date '2016-13-45' in column 'date' (line 9)"),
    (lambda f: f.assign(high=f["high"].astype(object).where(f.index != 3, "n/a")),
     "column 'high' holds text 'n/a' (line 5)"),
    (lambda f: f.assign(high=f["high"].where(f.index != 4, np.inf)),
     "column 'high' holds ±Inf (line 6)"),
    (lambda f: f.assign(high=f["high"].where(f.index != 4, -1.0)),
     "column 'high' holds a price ≤ 0 (line 6)"),
    (lambda f: pd.concat([f, f.iloc[[2]]]), "symbol and date repeated (line"),
])
def test_loader_bad_files(tmp_path, edit, expected):
    path = write_prices(tmp_path / "prices.csv", edit=edit)
    with pytest.raises(UsageError, match=None) as err:
        load_sp500(path)
    assert expected in str(err.value) and str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_loader_finds_the_columns_of_other_kaggle_layouts(tmp_path):
    """Other popular files: Name/ticker for the symbol, capitalised Date/High, any column order;
    the same prices come out. Columns no spelling finds are named with the flags."""
    reference = load_sp500(write_prices(tmp_path / "kaggle.csv"), features=("high", "low"))

    def same(table):
        assert table.symbols == reference.symbols
        np.testing.assert_array_equal(table.values, reference.values)
        np.testing.assert_array_equal(table.dates, reference.dates)

    five_years = write_prices(tmp_path / "all_stocks_5yr.csv", edit=lambda f: f.rename(
        columns={"symbol": "Name"})[["date", "open", "high", "low", "close", "volume", "Name"]])
    same(load_sp500(five_years, features=("high", "low")))
    capitalised = write_prices(tmp_path / "caps.csv", edit=lambda f: f.rename(
        columns={"symbol": "Ticker", "date": "Date", "high": "High", "low": "Low"}))
    same(load_sp500(capitalised, features=("high", "low")))
    odd = write_prices(tmp_path / "odd.csv", edit=lambda f: f.rename(
        columns={"symbol": "stock", "date": "day"}))
    with pytest.raises(UsageError, match="no symbol column .*name it with --symbol-column"):
        load_sp500(odd)
    same(load_sp500(odd, features=("high", "low"), symbol_column="stock", date_column="day"))
    with pytest.raises(UsageError, match="column 'sym' given by --symbol-column not found "
                                         r"\(columns found: stock, day,"):
        load_sp500(odd, symbol_column="sym", date_column="day")


def test_script_takes_the_column_flags(tmp_path, capsys):
    path = write_prices(tmp_path / "odd.csv", edit=lambda f: f.rename(
        columns={"symbol": "stock", "date": "day"}))
    status, _, err = run_script([*QUICK, "--data-file", str(path), "--out-dir",
                                 str(tmp_path / "r"), "--symbol-column", "stock",
                                 "--date-column", "day"], capsys)
    assert status == 0, err
    status, _, err = run_script([*QUICK, "--data-file", str(path), "--out-dir",
                                 str(tmp_path / "s")], capsys)
    assert status == 2 and "--symbol-column" in err and len(err.strip().splitlines()) == 1


def test_loader_missing_cells(tmp_path):
    """Empty cells: ffill takes the previous day's value of the same symbol (never a later one);
    a symbol's first row has nothing before it, so that day is dropped; drop drops the day;
    error names the lines."""
    def blank(frame):
        frame = frame.copy()
        first_aaa = frame.index[frame["symbol"] == "AAA"][0]
        fifth_bbb = frame.index[frame["symbol"] == "BBB"][4]
        frame.loc[[first_aaa, fifth_bbb], "high"] = np.nan
        return frame
    path = write_prices(tmp_path / "prices.csv", edit=blank)
    filled = load_sp500(path)
    assert filled.filled == 1
    aaa, bbb = filled.series("AAA")[:, 0], filled.series("BBB")[:, 0]
    assert np.isnan(aaa[0]) and np.isfinite(aaa[1:]).all()
    assert bbb[4] == bbb[3]
    dropped = load_sp500(path, missing="drop")
    assert np.isnan(dropped.series("BBB")[4, 0]) and dropped.filled == 0
    with pytest.raises(UsageError, match=r"empty cell in column\(s\) high \(line \d+, \d+\)"):
        load_sp500(path, missing="error")
    # a day with an empty cell is never inside a window with --missing drop
    windows = make_windows(dropped, seq_len=5, stride=1, lookback=2)
    bbb_index = dropped.symbols.index("BBB")
    for start in windows.start[windows.symbol == bbb_index]:
        assert not start - 2 <= 4 < start + 5


def test_unknown_symbol_suggests_close_matches(sp500_csv):
    table = load_sp500(sp500_csv)
    with pytest.raises(UsageError, match=r"--symbols AMZM: unknown symbol.*close matches: AMZN"):
        select_symbols(table, ["AAPL", "AMZM"])
    assert select_symbols(table, ["googl", "AMZN"]).symbols == ["GOOGL", "AMZN"]


# ---------------------------------------------------------------------------------------------
# bad input through the script: one line, exit 2, no traceback, no metrics.json

@pytest.mark.parametrize("extra, edit, expected", [
    (["--data-file", "{dir}/absent.csv"], None, "--data-file {dir}/absent.csv: no such file"),
    ([], lambda f: f.drop(columns="symbol"),
     "no symbol column (looked for 'symbol', 'ticker', 'name', any case; name it with "
     "--symbol-column)"),
    ([], lambda f: f.assign(date=f["date"].where(f.index != 0, "yesterday")),
     "unparsable date 'yesterday'"),
    (["--symbols", "AAA", "BBX"], None, "--symbols BBX: unknown symbol"),
    (["--symbols", "AAA", "BBB", "SHORT"],
     lambda f: pd.concat([f, f[f.symbol == "AAA"].head(12).assign(symbol="SHORT")]),
     "--symbols SHORT: only 12 consecutive trading days"),
    (["--folds", "1"], None, "--folds 1: cross-validation needs at least 2 folds"),
    (["--folds", "9"], None, "--folds 9: more folds than the 5 symbol(s)"),
    (["--seq-len", "500"], None, "--seq-len 500: longer than the series"),
    (["--feature", "high", "--input-size", "3"], None, "--input-size 3"),
    (["--lr", "1e-3", "1e-2"], None, "--lr: one value here"),
])
def test_script_bad_input(tmp_path, capsys, extra, edit, expected):
    path = write_prices(tmp_path / "prices.csv", edit=edit)
    out_dir = tmp_path / "report"
    argv = [*QUICK, "--data-file", str(path), "--out-dir", str(out_dir)]
    argv += [a.replace("{dir}", str(tmp_path)) for a in extra]
    status, _, err = run_script(argv, capsys)
    assert status == 2
    assert expected.replace("{dir}", str(tmp_path)) in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (out_dir / "metrics.json").exists()


def test_short_symbols_are_skipped_with_a_note(tmp_path, capsys):
    """Without --symbols, a symbol too short for one window is skipped (and said so)."""
    path = write_prices(tmp_path / "prices.csv", edit=lambda f: pd.concat(
        [f, f[f.symbol == "AAA"].head(12).assign(symbol="SHORT")]))
    args = snp.parse_args([*QUICK, "--data-file", str(path)])
    table = load_sp500(path)
    cutoff = snp.check_inputs(args, table)
    assert cutoff == date_cutoff(120, 0.2) == 96
    status, _, err = run_script([*QUICK, "--data-file", str(path), "--out-dir",
                              str(tmp_path / "r")], capsys)
    assert status == 0, err
    assert "1 symbol(s) with fewer than 20 consecutive trading days skipped: SHORT" in err
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["data"]["skipped_short_symbols"] == ["SHORT"]


# ---------------------------------------------------------------------------------------------
# windows, normalisation, splits

def test_windows_and_inverse_normalisation(tmp_path):
    table = load_sp500(write_prices(tmp_path / "p.csv", days=60), features=("high", "low"))
    windows = make_windows(table, seq_len=10, stride=7, lookback=5, lo=0, hi=50)
    n_symbols = len(table.symbols)
    assert windows.raw.shape == (n_symbols * 6, 10, 2)        # starts 5, 12, ..., 40 per symbol
    assert windows.history.shape == (n_symbols * 6, 5, 2)
    for i in range(len(windows.raw)):
        s, d = windows.symbol[i], windows.start[i]
        assert torch.equal(windows.raw[i], torch.from_numpy(table.values[s, d:d + 10]))
        assert torch.equal(windows.history[i], torch.from_numpy(table.values[s, d - 5:d]))
        assert d - 5 >= 0 and d + 10 <= 50
    x, stats = normalize(windows.raw)
    assert x.min() >= 0 and x.max() <= 1
    assert torch.allclose(x.mean(1), torch.full_like(x.mean(1), 0.5))
    assert torch.allclose(denormalize(x, stats), windows.raw)
    xc, cstats = causal_normalize(windows.raw, windows.history, spread=0.02)
    assert torch.allclose(denormalize(xc, cstats), windows.raw)
    assert torch.allclose(cstats.center, windows.history.mean(1, keepdim=True))


def test_folds_grouped_by_symbol_and_test_out_of_time(sp500_csv):
    table = load_sp500(sp500_csv)
    args = snp.parse_args(["--data-file", str(sp500_csv)])
    cutoff = snp.check_inputs(args, table)
    splits = snp.make_splits(table, args, cutoff)
    groups = [set(f.tolist()) for f in splits.folds] + [set(splits.held.tolist())]
    assert len(groups) == args.folds + 1
    for i, a in enumerate(groups):
        for b in groups[i + 1:]:
            assert not a & b                                     # no symbol in two groups
    for k in range(args.folds):
        train, val = snp.fold_windows(splits, k)
        assert not set(train.symbol) & set(val.symbol)
        assert not set(train.symbol) & set(splits.held)
        assert set(val.symbol) <= set(splits.folds[k])
        last_day = max(train.start.max(), val.start.max()) + args.seq_len - 1
        assert last_day < cutoff <= splits.test.start.min()      # no date shared with the test
    train_dates = set(table.dates[:cutoff])
    test_dates = {d for s in splits.test.start for d in table.dates[s:s + args.seq_len]}
    assert not train_dates & test_dates


# ---------------------------------------------------------------------------------------------
# causality: ỹ_t must not move when prices after day t change

def predictor(seed=0):
    torch.manual_seed(seed)
    model = AutoencoderWithHead(LSTMAutoencoder(1, 8, output="linear"), PredictorHead(8, 1),
                                source="encoder")
    with torch.no_grad():                      # a head that is not zero, so ỹ_t ≠ x_t
        model.head.linear.weight.normal_(0, 0.5)
    return model.eval()


def test_predictor_is_causal_through_the_whole_pipeline(tmp_path):
    path = write_prices(tmp_path / "p.csv", days=80)
    table = load_sp500(path)
    model = predictor()
    windows = make_windows(table, seq_len=20, stride=100, lookback=10)    # one per symbol
    assert len(windows.raw) == len(table.symbols)
    before = snp.predict_next_dollars(model, windows, "cpu", spread=0.02)   # (N, 19, 1)
    for t in (0, 7, 18):
        changed = table.values.copy()
        for s, start in zip(windows.symbol, windows.start):
            changed[s, start + t + 1:] *= 1.3               # every price after day t
        table_b = table._replace(values=changed)
        after = snp.predict_next_dollars(model, make_windows(table_b, 20, 100, 10), "cpu", 0.02)
        # ỹ_0..ỹ_t (predictions of days 1..t+1) use days ≤ t: unchanged
        assert torch.allclose(after[:, :t + 1], before[:, :t + 1], rtol=0, atol=1e-9)
        if t < 18:
            assert not torch.allclose(after[:, t + 1:], before[:, t + 1:])


def test_causality_check_catches_per_window_normalisation(tmp_path):
    """The same check fails for the per-window normalisation (its mean uses the whole window):
    the test above would notice a look-ahead in the scaling."""
    table = load_sp500(write_prices(tmp_path / "p.csv", days=80))
    model = predictor()
    windows = make_windows(table, seq_len=20, stride=20, lookback=10)
    changed = windows.raw.clone()
    changed[:, 11:] *= 1.3
    y_before = model(normalize(windows.raw)[0].float())[1]
    y_after = model(normalize(changed)[0].float())[1]
    assert not torch.allclose(y_before[:, :10], y_after[:, :10])


def test_linear_baseline_recovers_an_ar1():
    rng = np.random.default_rng(0)
    r = np.zeros((50, 400))
    for d in range(1, 400):
        r[:, d] = 0.3 * r[:, d - 1] + rng.normal(0, 0.01, 50)
    prices = 100 * np.exp(np.cumsum(r, axis=1))
    coef = snp.fit_ar(prices, 1)
    assert abs(coef[1] - 0.3) < 0.03 and abs(coef[0]) < 1e-3


# ---------------------------------------------------------------------------------------------
# end to end

def test_script_end_to_end(sp500_csv, tmp_path, capsys):
    out_dir = tmp_path / "snp"
    status, out, err = run_script(["--data-file", str(sp500_csv), "--symbols", "AMZN", "GOOGL",
                                   "AAPL", "MSFT", "IBM", "ORCL", "XOM", "JPM", "--folds", "2",
                                   "--epochs", "2",
                                   "--pred-epochs", "1", "--hidden-size", "8", "--threads", "1",
                                   "--device", "cpu", "--out-dir", str(out_dir)], capsys)
    assert status == 0, err
    assert "persistence on the test period" in out
    for name in (*FIGURES, "cv_loss.png", "cv.csv", "metrics.json"):
        assert (out_dir / name).stat().st_size > 0, name
    cv = pd.read_csv(out_dir / "cv.csv")
    assert list(cv["fold"]) == [1, 2] and cv["val_mse"].notna().all()
    metrics = json.loads((out_dir / "metrics.json").read_text())
    rec, pred = metrics["reconstruction"], metrics["prediction"]
    assert rec["chosen_fold"] == 1 + int(cv["val_mse"].idxmin())
    for key in ("mse", "mse_dollars", "mean_baseline_mse_dollars", "relative_mse_dollars"):
        assert rec["test"][key] > 0
    for key in ("lstm_mse_dollars", "persistence_mse_dollars", "linear_mse_dollars",
                "lstm_vs_persistence", "linear_vs_persistence"):
        assert pred["test"][key] > 0
    assert isinstance(pred["beats_persistence"], bool)
    assert metrics["config"]["folds"] == 2 and len(rec["folds"]) == 2
    # PCA with the model's code size (z = h_T: 8 numbers) on the same normalised test windows
    assert rec["z_size"] == rec["pca"]["components"] == 8
    assert 0 < rec["pca"]["test_mse"] < rec["test"]["mean_baseline_mse"]
    assert 0 < rec["pca"]["test_mse_dollars"] < rec["test"]["mean_baseline_mse_dollars"]
    assert (out_dir / "folds" / "fold1" / "history.csv").exists()
    assert (out_dir / "predictor" / "history.csv").exists()
