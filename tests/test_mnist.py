"""Tests for the MNIST experiment: the ConvLSTM autoencoder, the MNIST loader and split, and
lstm_ae_mnist.py end to end and on bad input (tiny subsets, CPU, well under a minute)."""
from __future__ import annotations

import json
import multiprocessing
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

import lstm_ae_mnist
from cli import run
from data import load_mnist, mnist_split
from models import (AutoencoderWithHead, ClassifierHead, ConvLSTMAutoencoder, ConvLSTMLayer,
                    LSTMAutoencoder, LSTMPointwise)


# ---------------------------------------------------------------------------------------------
# ConvLSTM

def test_conv_lstm_shapes_and_gradients():
    torch.manual_seed(0)
    model = ConvLSTMAutoencoder(width=7, channels=3, kernel_size=3, num_layers=2,
                                bidirectional=True)
    x = torch.rand(2, 5, 7)                                   # (B, T, W)
    out = model(x)
    assert out.recon.shape == (2, 5, 7)
    assert out.z.shape == (2, 6, 7)                           # (B, 2C, W): [h_T, backward h_1]
    assert out.dec_hidden.shape == (2, 5, 3, 7)               # (B, T, C, W)
    assert out.enc_hidden.shape == (2, 5, 6, 7)
    assert model.z_size == 6 * 7
    assert ((out.recon > 0) & (out.recon < 1)).all()
    out.recon.pow(2).mean().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, f"no gradient reaches {name}"


def test_pointwise_cell_matches_the_textbook_formula_and_its_gradients():
    """LSTMPointwise (σ-based tanh, hand-written backward) == autograd through the formula."""
    torch.manual_seed(4)
    gates = torch.randn(3, 8, 5, dtype=torch.float64, requires_grad=True)   # (B, 4C, W), C=2
    c_prev = torch.randn(3, 2, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(LSTMPointwise.apply, (gates, c_prev))
    i, f, o, g = gates.chunk(4, dim=1)
    c_ref = torch.sigmoid(f) * c_prev + torch.sigmoid(i) * torch.tanh(g)
    h_ref = torch.sigmoid(o) * torch.tanh(c_ref)
    h, c = LSTMPointwise.apply(gates, c_prev)
    torch.testing.assert_close(h, h_ref, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(c, c_ref, rtol=1e-12, atol=1e-14)
    weights = torch.randn_like(h), torch.randn_like(c)       # both outputs feed the loss
    ours = torch.autograd.grad((h * weights[0]).sum() + (c * weights[1]).sum(), (gates, c_prev))
    ref = torch.autograd.grad((h_ref * weights[0]).sum() + (c_ref * weights[1]).sum(),
                              (gates, c_prev))
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_conv_lstm_trains_under_bf16_autocast():
    torch.manual_seed(5)
    model = ConvLSTMAutoencoder(width=8, channels=4, kernel_size=3)
    x = torch.rand(2, 5, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    assert out.dec_hidden.dtype == torch.bfloat16
    torch.nn.functional.mse_loss(out.recon.float(), x).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name


def test_conv_lstm_rejects_even_kernel_and_single_pixel_steps():
    with pytest.raises(ValueError):
        ConvLSTMLayer(1, 4, kernel_size=4)
    with pytest.raises(ValueError):
        ConvLSTMAutoencoder(width=1)


@pytest.mark.parametrize("reverse, bidirectional, layers", [(False, False, 1), (True, True, 2)])
def test_decoder_convolving_z_once_matches_per_step_reference(reverse, bidirectional, layers):
    """The decoder's W_x * z computed once == conv(cat([z, h_{t-1}])) at every step."""
    torch.manual_seed(1)
    model = ConvLSTMAutoencoder(width=9, channels=4, kernel_size=5, num_layers=layers,
                                reverse=reverse, bidirectional=bidirectional).double()
    x = torch.rand(3, 6, 9, dtype=torch.float64)
    fast, slow = model(x), model(x, per_step=True)
    for a, b in zip(fast, slow):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    grads = []
    for per_step in (False, True):
        model.zero_grad()
        model(x, per_step=per_step).recon.sum().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_wide_z_kernel_starts_as_the_narrow_decoder_and_matches_the_per_step_reference():
    """--z-kernel-size: the decoder reads z through a wider convolution whose outer taps start
    at zero, so at initialisation the model computes what the narrow one computes; it still
    agrees with the per-step formulation, and gradients reach the outer taps."""
    torch.manual_seed(7)
    wide = ConvLSTMAutoencoder(width=9, channels=3, kernel_size=3, bidirectional=True,
                               z_kernel_size=17).double()
    z_weight = wide.decoder[0].input_conv.weight
    assert z_weight.shape == (12, 6, 17) and wide.decoder[0].hidden_conv.weight.shape == (12, 3, 3)
    assert wide.config["z_kernel_size"] == 17
    assert (z_weight[:, :, :7] == 0).all() and (z_weight[:, :, 10:] == 0).all()
    assert (z_weight[:, :, 7:10] != 0).all()
    narrow = ConvLSTMAutoencoder(width=9, channels=3, kernel_size=3, bidirectional=True).double()
    state = wide.state_dict()
    state["decoder.0.input_conv.weight"] = z_weight[:, :, 7:10]
    narrow.load_state_dict(state)
    x = torch.rand(2, 5, 9, dtype=torch.float64)
    torch.testing.assert_close(wide(x).recon, narrow(x).recon, rtol=0, atol=0)
    fast, slow = wide(x), wide(x, per_step=True)
    for a, b in zip(fast, slow):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    fast.recon.sum().backward()
    outer = wide.decoder[0].input_conv.weight.grad[:, :, :7]
    assert outer.abs().sum() > 0
    for z_kernel in (2, 1):                                   # even, or narrower than the kernel
        with pytest.raises(ValueError, match="kernel_size"):
            ConvLSTMAutoencoder(width=9, kernel_size=3, z_kernel_size=z_kernel)


def test_layer_agrees_with_separate_input_and_hidden_convolutions_from_a_given_state():
    """conv(cat([x_t, h_{t-1}]), [W_x, W_h]) == W_x * x_t + W_h * h_{t-1} (``recur``)."""
    torch.manual_seed(2)
    layer = ConvLSTMLayer(2, 3, kernel_size=3).double()
    x = torch.rand(2, 4, 2, 8, dtype=torch.float64)           # (B, T, C_in, W)
    state = (torch.randn(2, 3, 8, dtype=torch.float64), torch.randn(2, 3, 8, dtype=torch.float64))
    separate = layer.recur([layer.input_conv(x_t) for x_t in x.unbind(1)], state)
    (h1, (hT1, cT1)), (h2, (hT2, cT2)) = layer(x, state), separate
    torch.testing.assert_close(h1, h2)
    torch.testing.assert_close(cT1, cT2)
    torch.testing.assert_close(hT1, h1[:, -1])
    torch.testing.assert_close(hT2, h2[:, -1])


@pytest.mark.parametrize("bidirectional", [False, True])
def test_conv_code_size_is_all_the_decoder_receives(bidirectional):
    torch.manual_seed(0)
    model = ConvLSTMAutoencoder(width=6, channels=2, kernel_size=3, code_size=5,
                                bidirectional=bidirectional)
    x = torch.rand(3, 4, 6)
    out = model(x)
    assert out.z.shape == (3, 5) and model.z_size == 5
    F.mse_loss(out.recon, x).backward()
    assert model.to_code.weight.grad.abs().sum() > 0 and model.from_code.weight.grad.abs().sum() > 0
    model.eval()
    recon, hidden = model.decode(model.encode(x)[0], 4)
    torch.testing.assert_close(model(x).recon, recon)
    torch.testing.assert_close(model(x, per_step=True).recon, recon)
    with pytest.raises(ValueError, match="code_size"):
        ConvLSTMAutoencoder(width=6, code_size=-1)


def test_classifier_logits_come_from_decoder_last_hidden_state():
    torch.manual_seed(3)
    x = torch.rand(4, 28, 28)
    conv = AutoencoderWithHead(ConvLSTMAutoencoder(28, 2, 3, reverse=True), ClassifierHead(2 * 28),
                               source="decoder")
    fc = AutoencoderWithHead(LSTMAutoencoder(28, 8, reverse=True), ClassifierHead(8), source="decoder")
    for model in (conv, fc):
        out, logits = model(x)
        assert logits.shape == (4, 10)
        last = out.dec_hidden[:, -1].flatten(1)               # h̃_T, the last state computed
        torch.testing.assert_close(logits, model.head.linear(last))
    # h̃_T really is the decoder's final state: rerun the decoder recurrence by hand
    ae = conv.autoencoder
    z, _ = ae.encode(x)
    hidden, (h_T, _) = ae.decoder[0](z.unsqueeze(1).expand(-1, 28, -1, -1))
    torch.testing.assert_close(conv(x)[0].dec_hidden[:, -1], h_T)
    z_fc = fc.autoencoder.encode(x)
    _, (h_n, _) = fc.autoencoder.decoder(z_fc.unsqueeze(1).expand(-1, 28, -1))
    torch.testing.assert_close(fc(x)[0].dec_hidden[:, -1], h_n[-1])


# ---------------------------------------------------------------------------------------------
# data

def test_loader_gives_unit_floats_and_the_documented_split(mnist_root):
    images, labels = load_mnist(mnist_root, train=True)
    test_images, test_labels = load_mnist(mnist_root, train=False)
    assert images.shape == (60_000, 28, 28) and test_images.shape == (10_000, 28, 28)
    assert images.dtype == torch.float32 and labels.dtype == torch.int64
    assert images.min() == 0.0 and images.max() == 1.0
    assert 0.0 <= test_images.min() and test_images.max() <= 1.0
    assert set(labels.unique().tolist()) == set(range(10)) == set(test_labels.unique().tolist())

    train_idx, val_idx = mnist_split(seed=0)
    assert len(train_idx) == 54_000 and len(val_idx) == 6_000      # a seeded 10 % validation
    assert not set(train_idx.tolist()) & set(val_idx.tolist())
    assert len(set(train_idx.tolist()) | set(val_idx.tolist())) == 60_000
    again_train, again_val = mnist_split(seed=0)
    assert torch.equal(val_idx, again_val) and torch.equal(train_idx, again_train)
    assert not torch.equal(mnist_split(seed=1)[1], val_idx)

    sub_train, sub_val = mnist_split(seed=0, train_size=500)       # --train-size: same validation
    assert len(sub_train) == 500 and torch.equal(sub_val, val_idx)
    assert set(sub_train.tolist()) <= set(train_idx.tolist())


def test_data_dir_default_reads_the_environment(monkeypatch):
    monkeypatch.setenv("LSTM_AE_DATA_DIR", "/somewhere/mnist")
    assert lstm_ae_mnist.parse_args([]).data_dir == "/somewhere/mnist"
    monkeypatch.delenv("LSTM_AE_DATA_DIR")
    assert lstm_ae_mnist.parse_args([]).data_dir == "data"


# ---------------------------------------------------------------------------------------------
# the script

TINY = ["--train-size", "256", "--epochs", "1", "--hidden-size", "8", "--conv-channels", "2",
        "--kernel-size", "3", "--batch-size", "64", "--seed", "0", "--threads", "1"]


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """--threads 1 (much faster on a busy 2-core machine) sets a process-wide torch setting."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_script_end_to_end_both_cells(mnist_root, tmp_path):
    out = tmp_path / "mnist"
    lstm_ae_mnist.main(["--data-dir", str(mnist_root), "--out-dir", str(out), "--cell", "both",
                        "--reverse", *TINY])
    for name in ("digits.png", "loss.png", "accuracy.png", "metrics.json", "fc/history.csv",
                 "conv/history.csv", "dense/history.csv"):
        assert (out / name).stat().st_size > 0, name
    metrics = json.loads((out / "metrics.json").read_text())
    for arch in ("F_fc", "F_conv"):
        for key in ("test_mse", "test_accuracy", "parameters", "seconds_per_epoch"):
            assert metrics[arch][key] is not None, (arch, key)
        assert 0.0 <= metrics[arch]["test_accuracy"] <= 1.0
    assert 0.05 < metrics["baselines"]["mean_image"]["test_mse"] < 0.08
    assert metrics["baselines"]["dense_ae"]["sizes"] == [784, 128, 32, 128, 784]
    # PCA with each model's code size, fitted on the training images: z = h_T (8 hidden in TINY)
    # for F_fc, 2 × 2 channels × 28 = 112 for F_conv (both encoders' maps), 32 for the dense AE
    for arch in ("F_fc", "F_conv"):
        pca = metrics[arch]["pca"]
        assert pca["code_size"] == metrics[arch]["z_size"] == pca["components"]
        assert metrics[arch]["mse_vs_pca"] == pytest.approx(metrics[arch]["test_mse"] / pca["test_mse"])
    dense_pca = metrics["baselines"]["dense_ae"]["pca"]["test_mse"]
    assert dense_pca < metrics["baselines"]["mean_image"]["test_mse"]
    assert metrics["F_conv"]["pca"]["test_mse"] < dense_pca < metrics["F_fc"]["pca"]["test_mse"]
    assert metrics["F_conv"]["z_size"] == 2 * 2 * 28 and metrics["F_conv"]["model"]["bidirectional"]
    assert not metrics["F_fc"]["model"]["bidirectional"]
    assert metrics["baselines"]["dense_ae"]["epochs_run"] == 1
    assert metrics["config"]["cell"] == "both" and metrics["data"]["n_train"] == 256
    assert metrics["data"]["n_val"] == 6_000 and metrics["data"]["n_test"] == 10_000


@pytest.mark.parametrize("argv, fc_bidirectional, conv_bidirectional", [
    ([], False, True),                                  # F_conv's default encoder reads both ways
    (["--bidirectional", "--conv-encoder", "forward"], True, False),   # --bidirectional is F_fc's
])
def test_each_cell_has_its_own_encoder_direction(argv, fc_bidirectional, conv_bidirectional,
                                                 mnist_root, tmp_path, monkeypatch):
    built = {}
    for name, cls in (("fc", lstm_ae_mnist.LSTMAutoencoder), ("conv", lstm_ae_mnist.ConvLSTMAutoencoder)):
        def capture(*args, _cls=cls, _name=name, **kwargs):
            built[_name] = kwargs["bidirectional"]
            return _cls(*args, **kwargs)
        monkeypatch.setattr(lstm_ae_mnist, cls.__name__, capture)
    lstm_ae_mnist.main(["--data-dir", str(mnist_root), "--out-dir", str(tmp_path / "o"),
                        *argv, *TINY])
    assert built == {"fc": fc_bidirectional, "conv": conv_bidirectional}
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert metrics["F_conv"]["z_size"] == (2 if conv_bidirectional else 1) * 2 * 28


@pytest.mark.parametrize("argv, weights", [
    ([], {"F_fc": 0.02, "F_conv": 0.05}),                # each cell's own default
    (["--class-weight", "0.3"], {"F_fc": 0.3, "F_conv": 0.3}),   # the flag sets both
])
def test_each_cell_trains_with_its_own_class_weight(argv, weights, mnist_root, tmp_path,
                                                    monkeypatch):
    used = []
    real_step = lstm_ae_mnist.classification_step
    monkeypatch.setattr(lstm_ae_mnist, "classification_step",
                        lambda w: used.append(w) or real_step(w))
    lstm_ae_mnist.main(["--data-dir", str(mnist_root), "--out-dir", str(tmp_path / "o"),
                        *argv, *TINY])
    assert used == [weights["F_fc"], weights["F_conv"]]     # the loss each cell trained with
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert {arch: metrics[arch]["class_weight"] for arch in weights} == weights
    assert metrics["config"]["class_weight"] == (0.3 if argv else None)


def test_code_size_sizes_the_lstm_and_the_dense_baseline(mnist_root, tmp_path):
    out = tmp_path / "k8"
    lstm_ae_mnist.main(["--data-dir", str(mnist_root), "--out-dir", str(out), "--cell", "fc",
                        "--code-size", "8", *TINY])
    metrics = json.loads((out / "metrics.json").read_text())
    dense = metrics["baselines"]["dense_ae"]
    assert metrics["F_fc"]["z_size"] == dense["z_size"] == 8 and dense["sizes"][2] == 8
    assert metrics["F_fc"]["pca"] == dense["pca"] and dense["pca"]["components"] == 8


def test_script_pixel_mode_with_normalisation(mnist_root, tmp_path):
    """--input-size 1: each image is a sequence of 784 single pixels (F_fc only)."""
    out = tmp_path / "pixels"
    lstm_ae_mnist.main(["--data-dir", str(mnist_root), "--out-dir", str(out), "--cell", "fc",
                        "--input-size", "1", "--normalize", *TINY])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data"]["steps"] == 784 and metrics["mse_units"] == "normalised units"
    assert "F_conv" not in metrics and metrics["F_fc"]["model"]["input_size"] == 1
    for name in ("digits.png", "loss.png", "accuracy.png"):
        assert (out / name).stat().st_size > 0


def _run_cli(argv, capsys):
    try:
        code = run(lstm_ae_mnist.main, argv)
    except SystemExit as exit_:                               # argparse errors
        code = exit_.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("argv, needle", [
    (["--input-size", "5"], "--input-size 5"),
    (["--cell", "conv", "--input-size", "1"], "--cell conv"),
    (["--cell", "both", "--input-size", "1"], "--cell both"),
    (["--kernel-size", "4"], "--kernel-size"),
    (["--z-kernel-size", "8"], "--z-kernel-size"),
    (["--kernel-size", "5", "--z-kernel-size", "3"], "--z-kernel-size 3"),
    (["--train-size", "0"], "--train-size"),
    (["--train-size", "-3"], "--train-size"),
    (["--cell", "conv", "--decoder", "autoregressive"], "--decoder"),
    (["--code-size", "0"], "--code-size"),
    (["--decoder-input", "z+time"], "--decoder-input z+time"),      # --cell both: F_conv reads z only
    (["--decoder-input", "time"], "--decoder-input"),
    (["--init", "chrono"], "--init chrono"),                         # F_conv has no chrono init
    (["--cell", "fc", "--input-size", "392", "--init", "chrono"], "--init chrono"),   # 2 steps
])
def test_bad_flags_give_one_line_and_exit_2(argv, needle, tmp_path, capsys):
    code, err = _run_cli([*argv, "--data-dir", str(tmp_path), "--out-dir", str(tmp_path / "o")],
                         capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and needle in err and "Traceback" not in err


def test_missing_data_dir_says_where_and_how(tmp_path, capsys):
    missing = tmp_path / "no-mnist-here"
    code, err = _run_cli(["--data-dir", str(missing), "--out-dir", str(tmp_path / "o")], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert str(missing) in err and "--download" in err and "Traceback" not in err


def test_train_size_larger_than_the_training_part(mnist_root, tmp_path, capsys):
    code, err = _run_cli(["--data-dir", str(mnist_root), "--train-size", "54001",
                          "--out-dir", str(tmp_path / "o")], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "--train-size 54001" in err and "54000" in err


def test_command_line_error_has_no_traceback(tmp_path):
    """The real entry point: a missing data folder is one line on stderr and exit status 2."""
    result = subprocess.run([sys.executable, "lstm_ae_mnist.py", "--data-dir",
                             str(tmp_path / "nothing"), "--out-dir", str(tmp_path / "o")],
                            cwd=lstm_ae_mnist.__file__.rsplit("/", 1)[0], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


# ---------------------------------------------------------------------------------------------
# --cell both: F_fc and F_conv side by side in two processes

SIDE_BY_SIDE = [arg if arg != "1" or TINY[i - 1] != "--threads" else "2" for i, arg in enumerate(TINY)]


def test_cells_side_by_side_give_the_numbers_of_one_after_the_other(mnist_root, tmp_path):
    """--threads 2 splits into one thread per cell, so each cell computes what it does alone
    with --threads 1 (the one that finishes last may take the second thread for its last steps,
    which changes sums only in their rounding)."""
    assert "--threads" in SIDE_BY_SIDE and SIDE_BY_SIDE[SIDE_BY_SIDE.index("--threads") + 1] == "2"
    metrics, histories = {}, {}
    for how, argv in (("side", SIDE_BY_SIDE), ("sequential", TINY)):
        out = tmp_path / how
        lstm_ae_mnist.main(["--data-dir", str(mnist_root), "--out-dir", str(out), *argv])
        metrics[how] = json.loads((out / "metrics.json").read_text())
        histories[how] = {cell: pd.read_csv(out / cell / "history.csv") for cell in ("fc", "conv")}
        # only the side-by-side run has the cells' own logs (no progress bars: TQDM_DISABLE)
        for cell in ("fc", "conv"):
            assert (out / cell / "train.log").exists() == (how == "side")
        assert (out / "digits.png").stat().st_size > 0
    for arch in ("F_fc", "F_conv"):
        assert metrics["side"][arch].keys() == metrics["sequential"][arch].keys()
        for key in ("z_size", "parameters", "best_epoch", "class_weight", "epochs_run"):
            assert metrics["side"][arch][key] == metrics["sequential"][arch][key], (arch, key)
        for key in ("test_mse", "test_accuracy", "test_cross_entropy", "mse_vs_dense_ae",
                    "mse_vs_pca"):
            assert metrics["side"][arch][key] == pytest.approx(metrics["sequential"][arch][key],
                                                               rel=1e-4), (arch, key)
    assert metrics["side"]["F_conv"]["class_weight"] == 0.05           # each cell its own weight
    for cell in ("fc", "conv"):                                        # every epoch's losses
        side, seq = histories["side"][cell], histories["sequential"][cell]
        for column in ("train_loss", "val_loss", "val_accuracy"):
            assert side[column].tolist() == pytest.approx(seq[column].tolist(), rel=1e-4), column


def test_the_cell_left_training_takes_every_thread():
    """_take_all_threads: one thread until the other cell has finished, all from the next step."""
    alone = threading.Event()
    seen = []
    step = lstm_ae_mnist._take_all_threads(alone, 2, lambda model, batch: seen.append(
        torch.get_num_threads()) or (torch.tensor(0.0), {}))
    torch.set_num_threads(1)
    step(None, None)
    alone.set()
    step(None, None)
    step(None, None)
    assert seen == [1, 2, 2]


@pytest.mark.parametrize("checkpoint", [False, True])
def test_a_cell_process_that_dies_is_one_line_and_exit_1(checkpoint, tmp_path, capsys):
    """A cell's process that ends without a result (killed, out of memory: here it exits 3
    at once) ends the command with one line naming it and its log (ProcessFailed → exit 1)."""
    (tmp_path / "conv").mkdir()
    if checkpoint:
        (tmp_path / "conv" / "checkpoint.pt").write_bytes(b"kept")
    cells = lstm_ae_mnist.CellsSideBySide.__new__(lstm_ae_mnist.CellsSideBySide)
    cells.cells, cells.results, cells.alone, cells.started = ["conv"], queue.Queue(), {}, time.time()
    cells.job = SimpleNamespace(args=SimpleNamespace(hidden_size=[8], lr=[1e-3], grad_clip=[1.0]),
                                settings=SimpleNamespace(epochs=1), out_dir=tmp_path,
                                resume={"conv": False})
    dying = multiprocessing.get_context("spawn").Process(target=sys.exit, args=(3,))
    dying.start()
    cells.workers = {"conv": dying}
    code = run(lambda argv: cells.wait(), [])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and "Traceback" not in "\n".join(err)
    assert "F_conv's training process ended (exit code 3) without a result" in err[-1]
    assert str(tmp_path / "conv" / "train.log") in err[-1]
    assert ("--resume continues" in err[-1]) == checkpoint
    assert ("had not finished an epoch" in err[-1]) != checkpoint


@pytest.mark.parametrize("argv, device, threads, expected", [
    ([], "cpu", 2, True),
    ([], "cpu", 1, False),                              # nothing to split
    (["--sequential-cells"], "cpu", 2, False),
    (["--cell", "fc"], "cpu", 2, False),                # one cell
    ([], "cuda", 2, False),                             # one GPU: one after the other
])
def test_when_the_cells_train_side_by_side(argv, device, threads, expected):
    args = lstm_ae_mnist.parse_args(argv)
    cells = lstm_ae_mnist.check_args(args)
    assert lstm_ae_mnist.side_by_side(args, cells, torch.device(device), threads) == expected


def test_progress_counts_only_this_runs_epochs(tmp_path):
    """The side-by-side progress lines read history.csv: a file left by an earlier run counts
    only with --resume (since=None); a grid's trials are summed, its best-run copy is not."""
    run_dir = tmp_path / "conv"
    run_dir.mkdir()
    (run_dir / "history.csv").write_text("epoch,train_loss,val_loss\n1,0.5,0.4\n2,0.3,0.2\n")
    written = (run_dir / "history.csv").stat().st_mtime
    assert lstm_ae_mnist.epochs_done(run_dir, since=None) == (2, {"epoch": 2, "train_loss": 0.3,
                                                                  "val_loss": 0.2})
    assert lstm_ae_mnist.epochs_done(run_dir, since=written + 1) == (0, None)
    for trial, rows in (("h8", 3), ("h16", 1)):
        (run_dir / "trials" / trial).mkdir(parents=True)
        (run_dir / "trials" / trial / "history.csv").write_text(
            "epoch,train_loss,val_loss\n" + "".join(f"{e},0.1,0.1\n" for e in range(1, rows + 1)))
    assert lstm_ae_mnist.epochs_done(run_dir, since=None)[0] == 4


def test_ctrl_c_side_by_side_stops_both_cells_and_reports_their_best(mnist_root, tmp_path):
    """The real command, interrupted (SIGINT to its process group, as Ctrl-C does) once both
    cells have finished an epoch: each stops, and the report of their best models is written.
    An error inside a cell's process (--resume with another class weight, which the cells'
    checkpoints refuse; the dense AE's accepts it) then ends the command with that one line and
    leaves the checkpoints as they were; --resume with the same settings finishes both cells."""
    out = tmp_path / "o"
    argv = [sys.executable, "lstm_ae_mnist.py", "--data-dir", str(mnist_root), "--out-dir",
            str(out), *SIDE_BY_SIDE[:SIDE_BY_SIDE.index("--epochs")],
            *SIDE_BY_SIDE[SIDE_BY_SIDE.index("--epochs") + 2:], "--epochs", "200"]
    repo = lstm_ae_mnist.__file__.rsplit("/", 1)[0]
    process = subprocess.Popen(argv, cwd=repo, start_new_session=True, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while not all((out / cell / "history.csv").exists() for cell in ("fc", "conv")):
        assert process.poll() is None and time.time() < deadline, process.communicate()
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    # this process may still be training the dense baseline (fit's own message) or waiting
    assert "\ninterrupted: " in err and "Traceback" not in err
    metrics = json.loads((out / "metrics.json").read_text())
    for arch in ("F_fc", "F_conv"):
        assert metrics[arch]["interrupted"] and 1 <= metrics[arch]["epochs_run"] < 200, arch
    checkpoints = {cell: (out / cell / "checkpoint.pt").read_bytes() for cell in ("fc", "conv")}
    refused = subprocess.run([*argv[:-1], "3", "--resume", "--class-weight", "0.3"], cwd=repo,
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    last = refused.stderr.strip().splitlines()[-1]
    assert last.startswith("lstm_ae_mnist.py: error: --resume:"), last
    assert "different configuration" in last and "class_weight" in last
    assert {cell: (out / cell / "checkpoint.pt").read_bytes() for cell in ("fc", "conv")} == checkpoints
    resumed = subprocess.run([*argv[:-1], "3", "--resume"], cwd=repo, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    for arch in ("F_fc", "F_conv"):
        assert not metrics[arch]["interrupted"], arch
