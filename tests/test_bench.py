"""bench/: the --quick benchmark runs and fills every column; the references compute exactly what
the product models compute on the same weights (so the speed comparison is fair). No test here
asserts a speed."""
from __future__ import annotations

import json
import math
from dataclasses import asdict

import pytest
import torch
import torch.nn.functional as F

from bench import benchmark
from bench.__main__ import main
from bench.reference import (ReferenceConvLSTMAutoencoder, ReferenceConvLSTMCell,
                             ReferenceLSTMAutoencoder, ReferenceLSTMClassifier)
from cli import run
from conftest import BF16_WORKS
from models import ConvLSTMAutoencoder, LSTMAutoencoder

ROW_KEYS = ("config", "device", "ms_per_step", "reference_ms_per_step", "speedup",
            "sequences_per_s", "peak_mem_mb", "gflops", "fraction_of_peak", "matmul_peak_gflops",
            "gflop_per_step", "product_ms", "reference_ms")
TINY = ["--quick", "--threads", "1", "--batch-size", "4", "--repeats", "1", "--warmup", "1",
        "--matmul-size", "256"]


def _assert_same(a, b, atol=1e-5):
    for name, u, v in zip(a._fields, a, b):
        assert u.shape == v.shape, name
        assert torch.allclose(u, v, atol=atol), (name, (u - v).abs().max().item())


def _check_rows(rows, names):
    assert [r["config"] for r in rows] == list(names)
    for row in rows:
        for key in ROW_KEYS:
            assert key in row, key
        for key in ("ms_per_step", "reference_ms_per_step", "speedup", "sequences_per_s",
                    "peak_mem_mb", "gflops", "fraction_of_peak"):
            assert math.isfinite(row[key]) and row[key] > 0, (row["config"], key, row[key])


def test_quick_in_process_every_row_and_column(tmp_path, capsys):
    out_json, out_md = tmp_path / "bench.json", tmp_path / "performance.md"
    assert run(main, TINY + ["--no-subprocess", "--json", str(out_json),
                             "--markdown", str(out_md)]) == 0
    result = json.loads(out_json.read_text())
    measured = [n for n in benchmark.CONFIG_NAMES if BF16_WORKS or not n.endswith("bf16")]
    _check_rows(result["rows"], measured)
    # without bf16 support the bf16 row is left out with the probe's reason, in table and report
    assert [item["what"] for item in result["left_out"]] == (
        [] if BF16_WORKS else ["MNIST rows F_fc, bf16 autocast on cpu"])
    assert result["matmul_peak_gflops"]["cpu"] > 0
    printed = capsys.readouterr().out
    assert "torch " in printed and "threads: 1" in printed and "speed-up" in printed
    report = out_md.read_text()
    assert "python -m bench --quick" in report          # the exact command
    assert "| configuration |" in report and report.count("| cpu |") == len(measured)
    assert "## Machine" in report and "## Where the time goes" in report
    assert "MNIST rows F_fc" in report and "MNIST rows F_conv" in report
    assert set(result["profiles"]) and all(p["shares"] for p in result["profiles"].values())
    # the targets say what bounds F_conv's speed-up and pixel mode, with this run's numbers
    conv = next(line for line in report.splitlines() if "MNIST rows F_conv: speed-up" in line)
    assert "the convolutions gain at most 1.48×" in conv      # (3C + 1) / (2C + 1), C = 14
    assert "2× needs a step of at most" in conv and "of the profiled step" in conv
    conv_profile = next(p for name, p in result["profiles"].items()
                        if name.startswith("MNIST rows F_conv on") and p["which"] == "product")
    assert "fused LSTM layers (oneDNN)" not in conv_profile["shares"]   # it has none
    pixel = next(line for line in report.splitlines() if "MNIST pixels F_fc: " in line
                 and "of the matmul peak" in line)
    assert "224 time steps" in pixel and "fused LSTM layers take" in pixel   # quick: T=112


def test_bf16_row_left_out_with_its_reason_where_the_probe_says_no(tmp_path, capsys, no_bf16):
    out_json, out_md = tmp_path / "bench.json", tmp_path / "performance.md"
    assert run(main, TINY + ["--no-subprocess", "--configs", "toy", "mnist-row-fc-bf16",
                             "--json", str(out_json), "--markdown", str(out_md)]) == 0
    result = json.loads(out_json.read_text())
    _check_rows(result["rows"], ["toy"])
    line = ("MNIST rows F_fc, bf16 autocast on cpu: left out, this CPU's oneDNN has no bf16 LSTM "
            "kernel: forced off by the test")
    assert line in capsys.readouterr().out
    assert f"- {line}" in out_md.read_text()


def test_quick_subprocess_row(tmp_path):
    """The default mode measures each configuration in its own process (honest peak memory)."""
    out_json = tmp_path / "bench.json"
    assert run(main, TINY + ["--configs", "toy", "--json", str(out_json)]) == 0
    result = json.loads(out_json.read_text())
    _check_rows(result["rows"], ["toy"])
    assert result["settings"]["subprocess"] is True
    assert result["rows"][0]["base_rss_mb"] <= result["rows"][0]["peak_mem_mb"]


@pytest.mark.parametrize("m, hidden, output", [(1, 8, "sigmoid"), (28, 16, "sigmoid"),
                                               (3, 5, "linear")])
def test_reference_lstm_matches_product(m, hidden, output):
    torch.manual_seed(0)
    product = LSTMAutoencoder(m, hidden, output=output)
    reference = ReferenceLSTMAutoencoder.from_product(product)
    x = torch.rand(4, 7, m)
    _assert_same(product(x), reference(x))
    # the same gradients too: one training step does the same work
    product(x).recon.square().sum().backward()
    reference(x).recon.square().sum().backward()
    assert torch.allclose(product.encoder.weight_hh_l0.grad, reference.encoder_cell.weight_hh.grad,
                          atol=1e-5)
    assert torch.allclose(product.decoder.bias_ih_l0.grad, reference.decoder_cell.bias_ih.grad,
                          atol=1e-5)


@pytest.mark.parametrize("channels, kernel", [(8, 5), (3, 3), (16, 1)])
def test_reference_convlstm_matches_product(channels, kernel):
    torch.manual_seed(0)
    product = ConvLSTMAutoencoder(10, channels, kernel)
    reference = ReferenceConvLSTMAutoencoder.from_product(product)
    x = torch.rand(3, 6, 10)
    _assert_same(product(x), reference(x))
    product(x).recon.sum().backward()
    reference(x).recon.sum().backward()
    grad = torch.cat([product.decoder[0].input_conv.weight.grad,
                      product.decoder[0].hidden_conv.weight.grad], dim=1)
    assert torch.allclose(grad, reference.decoder_cell.conv.weight.grad, atol=1e-5)


def test_reference_cell_is_the_concatenated_convolution():
    """The ndrplz cell: one convolution of cat([x_t, h]) split as gates [i, f, o, g]."""
    torch.manual_seed(0)
    cell = ReferenceConvLSTMCell(2, 3, 3)
    x, h, c = torch.rand(2, 2, 7), torch.rand(2, 3, 7), torch.rand(2, 3, 7)
    gates = F.conv1d(torch.cat([x, h], 1), cell.conv.weight, cell.conv.bias, padding=1)
    i, f, o, g = gates.chunk(4, 1)
    c_next = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h_next, c_out = cell(x, (h, c))
    assert torch.allclose(c_out, c_next)
    assert torch.allclose(h_next, torch.sigmoid(o) * torch.tanh(c_next))


def test_benchmark_pairs_compute_the_same_loss():
    """For every configuration, product and reference (with its head) give the same loss."""
    for config in benchmark.configurations(quick=True, batch=3):
        product, reference = benchmark.build_models(config)
        batch = benchmark.make_batch(config, torch.device("cpu"))
        loss = benchmark.loss_fn(config)
        assert torch.allclose(loss(product, batch), loss(reference, batch), atol=1e-5), config.name


def test_scratch_lstm_row_is_timed_against_nn_lstm_with_its_weights(capsys):
    """The palindrome row: ScratchLSTM beside nn.LSTM holding the same weights; its target line
    is "within 2× of nn.LSTM", read from the row's own times."""
    config = next(c for c in benchmark.configurations(quick=True, batch=3)
                  if c.name == "palindrome-lstm")
    assert (config.cell, config.steps, config.hidden, config.input_size) == ("scratch", 20, 128, 10)
    product, reference = benchmark.build_models(config)
    assert isinstance(reference, ReferenceLSTMClassifier) and isinstance(reference.lstm, torch.nn.LSTM)
    x, y = benchmark.make_batch(config, torch.device("cpu"))
    assert torch.all(x.sum(-1) == 1)                                    # one-hot digits
    assert torch.allclose(product(x).logits, reference(x).logits, atol=1e-5)
    row = {"config": config.name, "label": config.label, "device": "cpu", "ms_per_step": 30.0,
           "reference_ms_per_step": 20.0, "speedup": 20.0 / 30.0, "configuration": asdict(config)}
    (line,) = benchmark.targets([row], None)
    assert "1.50× nn.LSTM's 20.0 ms" in line and "target ≤ 2×: met" in line


def test_references_refuse_what_they_do_not_cover():
    with pytest.raises(ValueError, match="bidirectional"):
        ReferenceLSTMAutoencoder.from_product(LSTMAutoencoder(1, 4, bidirectional=True))
    with pytest.raises(ValueError, match="num_layers"):
        ReferenceConvLSTMAutoencoder.from_product(ConvLSTMAutoencoder(4, 2, 3, num_layers=2))


def test_gate_flops_formula():
    fc = benchmark.Config("x", "x", "fc", steps=10, input_size=3, hidden=4, batch=2)
    assert benchmark.gate_flops(fc) == 3 * 2 * 10 * 2 * 4 * 4 * ((3 + 4) + (4 + 4))
    conv = benchmark.Config("y", "y", "conv", steps=5, input_size=6, hidden=2, batch=1,
                            kernel_size=3)
    assert benchmark.gate_flops(conv) == 3 * 5 * 2 * 4 * 2 * 3 * 6 * ((1 + 2) + (2 + 2))
    scratch = benchmark.Config("z", "z", "scratch", steps=20, input_size=10, hidden=8, batch=4)
    assert benchmark.gate_flops(scratch) == 3 * 4 * 20 * 2 * 4 * 8 * (10 + 8)
    # reference: 5 steps of 1 + 2 and of 2 + 2 input channels; product: the encoder's [x_t, h]
    # (1 + 2 channels) for 5 steps, then the decoder's z once (2 channels) and h at 4 steps
    assert benchmark.conv_flop_ratio(conv) == pytest.approx((5 * 3 + 5 * 4) / (5 * 3 + 2 + 4 * 2))


def test_bad_input_is_one_line_exit_2(tmp_path, capsys):
    if not torch.cuda.is_available():
        assert run(main, ["--device", "cuda", "--no-table"]) == 2
        assert "CUDA is not available" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert run(main, ["--json", str(blocker / "out.json")]) == 2
    err = capsys.readouterr().err
    assert "--json" in err and len(err.strip().splitlines()) == 1
    assert run(main, ["--time-to-accuracy", "--no-table", "--data-dir", str(tmp_path)]) == 2
    assert "MNIST" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["--configs", "nope"])
    assert exit_info.value.code == 2


def test_time_to_accuracy_stops_at_the_target(mnist_root, tmp_path):
    out_json = tmp_path / "tta.json"
    assert run(main, ["--time-to-accuracy", "--no-table", "--device", "cpu", "--threads", "1",
                      "--data-dir", str(mnist_root), "--train-size", "256", "--test-size", "500",
                      "--eval-every", "1",
                      "--target-accuracy", "0.05", "--json", str(out_json)]) == 0
    result = json.loads(out_json.read_text())
    runs = result["time_to_accuracy"]
    # one run per hidden size (the benchmark row's 128, the script's default 256) and precision;
    # bf16 where this machine runs it, else a line saying why it was left out
    precisions = ("fp32", "bf16") if BF16_WORKS else ("fp32",)
    assert [(tta["hidden_size"], tta["precision"]) for tta in runs] == [
        (h, p) for h in (128, 256) for p in precisions]
    expected_left_out = [] if BF16_WORKS else [
        "time to accuracy, H=128, bf16, on cpu", "time to accuracy, the script's default "
                                                 "hidden size, bf16, on cpu"]
    assert [item["what"] for item in result["left_out"]] == expected_left_out
    for tta in runs:
        assert tta["reached"] and tta["checks"][-1]["test_accuracy"] >= 0.05
        assert tta["train_seconds"] > 0 and tta["default_hidden_size"] == 256


def test_profiler_ops_are_grouped_by_the_work_they_do():
    fused, pointwise = "fused LSTM layers (oneDNN)", "element-wise gate arithmetic"
    assert benchmark.categorize("aten::mkldnn_rnn_layer_backward") == fused
    assert benchmark.categorize("aten::lstm") == fused
    assert benchmark.categorize("LSTMPointwiseBackward") == pointwise    # models.LSTMPointwise
    assert benchmark.categorize("aten::lstm_cell") == pointwise          # nn.LSTMCell's cell
    assert benchmark.categorize("aten::convolution_backward") == "convolutions"
    assert benchmark.categorize("aten::addmm") == "matrix products"
    assert benchmark.categorize("autograd::engine::evaluate_function: MulBackward0") == \
        "autograd engine"


def test_machine_readings_missing_on_other_systems(monkeypatch):
    """No load average or getrusage (Windows): the bench says so instead of failing."""
    import os
    import sys
    monkeypatch.delattr(os, "getloadavg")
    monkeypatch.setitem(sys.modules, "resource", None)         # import resource → ImportError
    assert benchmark.load_average() is None
    assert math.isnan(benchmark.peak_memory_mb(torch.device("cpu")))
    assert benchmark.machine_info([torch.device("cpu")])["load_average"] is None


def test_tsne_rows_and_targets(mnist_root, tmp_path, capsys):
    """--tsne: scikit-learn's exact t-SNE beside ours on the same images, and the scaling rows."""
    out_json, out_md = tmp_path / "tsne.json", tmp_path / "tsne.md"
    assert run(main, ["--tsne", "--no-table", "--threads", "1", "--data-dir", str(mnist_root),
                      "--tsne-sizes", "40", "80", "--tsne-iterations", "3",
                      "--tsne-reference-images", "60", "--json", str(out_json),
                      "--markdown", str(out_md)]) == 0
    t = json.loads(out_json.read_text())["tsne"]
    v = t["versus_sklearn"]
    assert v["n_images"] == 60 and v["sklearn_exact"]["iterations"] == 250
    for gradient in ("compiled", "fused", "autograd"):
        assert v[gradient]["iterations_per_s"] > 0 and v[gradient]["speedup_vs_sklearn"] > 0
        # "compiled" runs the fused pass where the machine cannot compile (tests/test_tsne.py)
        assert v[gradient]["gradient_used"] in {gradient, "fused"}
    assert v["compile_seconds"] > 0
    assert [r["n_images"] for r in t["scaling"]] == [40, 80]
    assert all(r["projected_1000_iterations_s"] > r["p_seconds"] for r in t["scaling"])
    printed = capsys.readouterr().out
    assert "scikit-learn TSNE(method='exact')" in printed and "target ≥ 10×" in printed
    assert "compiled gradient (default)" in printed and "torch.compile before" in printed
    assert "## t-SNE" in out_md.read_text()


def test_pixel_study_times_the_script_model_and_leaves_out_bf16_with_its_reason(monkeypatch):
    """bench/pixel.py: the model is the pixel-mode default as lstm_ae_mnist.py builds it; every
    variant gets a row (or a left-out line with the probe's reason), the default's gain is 1."""
    from bench import pixel

    args = pixel.pixel_defaults()
    model = pixel.build_pixel_model(args).autoencoder
    assert (model.config["hidden_size"], model.config["decoder_input"], model.config["init"],
            model.config["seq_len"], args.batch_size) == (64, "z+time", "chrono", 784, 32)
    monkeypatch.setattr(pixel, "bf16_unsupported_reason", lambda device: "no bf16 here (test)")
    result = pixel.run_pixel_study(torch.device("cpu"), batches=(64,), rounds=2, steps=1,
                                   warmup=1, compile_=False, extra=["--hidden-size", "4"],
                                   log=lambda text: None)
    rows = {r["variant"]: r for r in result["rows"]}
    assert list(rows) == ["eager fp32, batch 32 (the default)", "eager fp32, batch 64"]
    assert rows["eager fp32, batch 32 (the default)"]["gain"] == 1.0
    for r in rows.values():
        assert len(r["step_seconds"]) == 2 and r["ms_per_step"] > 0
        assert r["images_per_second"] == pytest.approx(r["batch"] / (r["ms_per_step"] / 1e3))
    assert [x["reason"] for x in result["left_out"]] == ["no bf16 here (test)"] * 2
    assert "left out: no bf16 here (test)" in result["table"]
    assert any(line.startswith("larger batch") for line in result["findings"])


def test_pixel_study_times_bf16_where_the_probe_says_yes(capsys):
    """The other branch of the probe: where this CPU trains in bf16 the study times both bf16
    rows; where it cannot, they are left out with the real probe's reason."""
    from bench import pixel
    from hardware import bf16_unsupported_reason

    result = pixel.run_pixel_study(torch.device("cpu"), batches=(64,), rounds=1, steps=1,
                                   warmup=1, compile_=False, extra=["--hidden-size", "4"],
                                   log=lambda text: None)
    bf16 = [r for r in result["rows"] if r["precision"] == "bf16"]
    if BF16_WORKS:
        assert [r["batch"] for r in bf16] == [32, 64] and not result["left_out"]
        assert all(r["ms_per_step"] > 0 for r in bf16)
        assert sum("bf16 autocast" in line for line in result["findings"]) == 2
    else:
        assert not bf16
        assert [x["reason"] for x in result["left_out"]] == \
            [bf16_unsupported_reason(torch.device("cpu"))] * 2


def test_pixel_study_eager_failure_is_raised_not_left_out(monkeypatch):
    """Only torch.compile may fail into a left-out line; a broken eager step is an error."""
    from bench import pixel

    def broken(self):
        raise RuntimeError("broken step")

    monkeypatch.setattr(pixel.PixelTrainer, "step", broken)
    with pytest.raises(RuntimeError, match="broken step"):
        pixel.run_pixel_study(torch.device("cpu"), batches=(64,), rounds=1, steps=1, warmup=1,
                              compile_=False, extra=["--hidden-size", "4"], log=lambda text: None)
