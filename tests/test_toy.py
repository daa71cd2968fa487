"""The toy script end to end, the shared training loop's resume/grid/NaN/Ctrl-C behaviour, and bad
input: one line on stderr, exit 2, nothing overwritten."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

import hardware
import lstm_ae_toy
from cli import run
from conftest import BF16_WORKS
from errors import TrainingDiverged
from hardware import check_precision
from models import ConvLSTMAutoencoder, LSTMAutoencoder
from training import TrainSettings, fit

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--n-seqs", "60", "--seq-len", "10", "--hidden-size", "6", "--batch-size", "16",
        "--epochs", "2", "--threads", "1"]


def toy(out_dir, *extra):
    return run(lstm_ae_toy.main, [*TINY, "--out-dir", str(out_dir), *extra])


def test_end_to_end_writes_every_output(tmp_path):
    assert toy(tmp_path) == 0
    for name in ("examples.png", "reconstructions.png", "loss.png", "history.csv", "metrics.json"):
        assert (tmp_path / name).stat().st_size > 0, name
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["relative_mse"] == pytest.approx(metrics["test_mse"] / metrics["baseline_mse"])
    assert metrics["config"]["hidden_size"] == [6]
    assert len(pd.read_csv(tmp_path / "history.csv")) == 2
    # the default code: 8 numbers, with PCA-8 fitted on the training split beside it
    assert metrics["z_size"] == 8 and metrics["config"]["signal"] == "tones"
    assert metrics["pca"]["code_size"] == metrics["pca"]["components"] == 8
    assert metrics["mse_vs_pca"] == pytest.approx(metrics["test_mse"] / metrics["pca"]["test_mse"])
    assert 0 < metrics["pca"]["test_mse"] < metrics["baseline_mse"]
    assert 8 < metrics["linear_rank"]["components"] <= 10
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_bf16_precision_autocasts_training_and_validation_only(tmp_path):
    """--precision bf16 in the shared loop: the training and validation forward passes run under
    bf16 autocast and parameters stay fp32. The ConvLSTM trains under bf16 on every CPU (oneDNN's
    bf16 LSTM needs more than AVX2), so this runs everywhere."""
    seen = []

    def step(model, batch):
        out = model(batch[0])
        seen.append((model.training, out.recon.dtype))
        return F.mse_loss(out.recon.float(), batch[0]), {}

    model = ConvLSTMAutoencoder(4, channels=2, kernel_size=3)
    x = torch.rand(32, 5, 4)
    fit(model, step, [x], [x[:8]], TrainSettings(epochs=1, batch_size=16, precision="bf16"),
        run_dir=tmp_path, identity={}, device=torch.device("cpu"))
    assert (True, torch.bfloat16) in seen and (False, torch.bfloat16) in seen
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_bf16_script_runs_where_supported_and_is_refused_cleanly_elsewhere(tmp_path, capsys):
    """The real hardware: where the probe says bf16 works the script trains under it and its test
    numbers are fp32; where it says no, one line naming --precision, exit 2, nothing written."""
    status = toy(tmp_path / "run", "--precision", "bf16")
    if BF16_WORKS:
        assert status == 0
        metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
        assert metrics["config"]["precision"] == "bf16" and metrics["test_mse"] < 1
    else:
        assert status == 2 and not (tmp_path / "run").exists()
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--precision bf16: not supported on this machine" in err[0]


def test_bf16_refused_where_the_probe_says_no(tmp_path, capsys, no_bf16):
    assert toy(tmp_path / "run", "--precision", "bf16") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith(
        "error: --precision bf16: not supported on this machine; this CPU's oneDNN has no bf16 "
        "LSTM kernel: forced off by the test. Use --precision fp32")
    assert not (tmp_path / "run").exists()
    assert toy(tmp_path / "fp32") == 0           # fp32 is untouched by the probe's answer


def test_bf16_accepted_where_the_probe_says_yes(bf16_claimed):
    check_precision("bf16", torch.device("cpu"))                  # no error
    assert hardware.bf16_unsupported_reason("cpu") is None


def test_machine_limits_are_one_line_each(tmp_path, capsys):
    """More threads than cores, or CUDA without a GPU: one line naming the flag, exit 2."""
    assert toy(tmp_path / "a", "--threads", str(hardware.available_cores() + 1)) == 2
    assert "--threads" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert toy(tmp_path / "b", "--device", "cuda") == 2
        assert "--device cuda: CUDA is not available" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_metrics_record_the_machine(tmp_path):
    assert toy(tmp_path) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["device"] == "cpu" and metrics["torch_threads"] == 1
    assert metrics["cpu_flags"] == hardware.cpu_flags() and metrics["cpu_capability"]


def test_resumed_run_has_the_same_history_as_an_uninterrupted_one(tmp_path):
    assert toy(tmp_path / "a", "--epochs", "4") == 0
    assert toy(tmp_path / "b", "--epochs", "2") == 0
    assert toy(tmp_path / "b", "--epochs", "4", "--resume") == 0
    a = pd.read_csv(tmp_path / "a" / "history.csv")
    b = pd.read_csv(tmp_path / "b" / "history.csv")
    assert list(b["epoch"]) == [1, 2, 3, 4] == list(a["epoch"])


def test_same_seed_gives_identical_metrics(tmp_path):
    assert toy(tmp_path / "a") == 0
    assert toy(tmp_path / "b") == 0
    a = json.loads((tmp_path / "a" / "metrics.json").read_text())
    b = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert a["test_mse"] == b["test_mse"]


def test_grid_writes_table_and_figure_and_rerun_skips_finished_trials(tmp_path, capsys):
    grid = ["--hidden-size", "4", "6", "--lr", "1e-3", "1e-2", "--grad-clip", "0", "1"]
    assert toy(tmp_path, *grid) == 0
    table = pd.read_csv(tmp_path / "grid.csv")
    assert len(table) == 8 and (tmp_path / "grid.png").exists()
    best = table.loc[table["best_val_loss"].idxmin()]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["best_params"]["hidden_size"] == best["hidden_size"]
    capsys.readouterr()
    assert toy(tmp_path, *grid) == 0
    assert capsys.readouterr().err.count("finished earlier, skipped") == 8
    assert len(pd.read_csv(tmp_path / "grid.csv")) == 8


def test_grid_file_keeps_an_all_digit_config_hash_as_text(tmp_path):
    from training import read_grid
    path = tmp_path / "grid.csv"
    path.write_text("trial,hidden_size,lr,grad_clip,best_val_loss,best_epoch,epochs_run,seconds,config\n"
                    "h4,4,0.001,0,0.5,1,2,0.1,012345678901\n")
    table = read_grid(path)
    assert (table["config"] == "012345678901").all() and (table["trial"] == "h4").all()


def test_clipping_records_the_largest_gradient_norm_and_how_often_it_acts(tmp_path):
    torch.manual_seed(0)
    x = torch.rand(32, 5, 1)

    def step(model, batch):
        return F.mse_loss(model(batch[0]).recon, batch[0]), {}

    def train(clip):
        settings = TrainSettings(epochs=2, batch_size=8, grad_clip=clip)
        (tmp_path / str(clip)).mkdir()
        return fit(LSTMAutoencoder(1, 4), step, [x], [x], settings, run_dir=tmp_path / str(clip),
                   identity={}, device=torch.device("cpu")).history

    tiny = train(1e-6)        # every step's gradient is larger than this
    assert all(r["clipped_fraction"] == 1.0 and r["grad_norm_max"] > 1e-6 for r in tiny)
    huge = train(1e6)         # and never this large
    assert all(r["clipped_fraction"] == 0.0 and 0 < r["grad_norm_max"] < 1e6 for r in huge)
    assert "grad_norm_max" not in train(0.0)[0]


def test_nan_loss_stops_with_one_line_and_keeps_the_checkpoint(tmp_path):
    x = torch.rand(32, 5, 1)
    settings = TrainSettings(epochs=4, batch_size=8)

    def step(model, batch, calls=[0]):
        calls[0] += 1
        loss = F.mse_loss(model(batch[0]).recon, batch[0])
        return (loss * float("nan") if calls[0] > 6 else loss), {}

    model = LSTMAutoencoder(1, 4)
    with pytest.raises(TrainingDiverged, match="epoch 2"):
        fit(model, step, [x], [x], settings, run_dir=tmp_path, identity={}, device=torch.device("cpu"))
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert saved["epoch"] == 1


def test_ctrl_c_stops_training_and_keeps_the_best_model(tmp_path):
    x = torch.rand(32, 5, 1)

    def step(model, batch, calls=[0]):
        calls[0] += model.training
        if calls[0] == 10:  # 4 training steps an epoch: the 2nd step of epoch 3
            raise KeyboardInterrupt
        return F.mse_loss(model(batch[0]).recon, batch[0]), {}

    model = LSTMAutoencoder(1, 4)
    result = fit(model, step, [x], [x], TrainSettings(epochs=5, batch_size=8), run_dir=tmp_path,
                 identity={}, device=torch.device("cpu"))
    assert result.interrupted and len(result.history) == 2
    best = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["best"]
    assert best["epoch"] == result.best_epoch
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, best["model"][name])


def error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert err and "Traceback" not in "\n".join(err)
    return err[-1]


@pytest.mark.parametrize("flags, names", [
    (["--hidden-size", "0"], "--hidden-size"),
    (["--hidden-size", "-3"], "--hidden-size"),
    (["--epochs", "0"], "--epochs"),
    (["--batch-size", "0"], "--batch-size"),
    (["--lr", "0"], "--lr"),
    (["--lr", "-1e-3"], "--lr"),
    (["--lr", "nan"], "--lr"),
    (["--grad-clip", "-1"], "--grad-clip"),
    (["--input-size", "3"], "--input-size"),
    (["--input-size", "0"], "--input-size"),
    (["--optimizer", "adagrad"], "--optimizer"),
    (["--n-seqs", "5"], "--n-seqs"),
    (["--code-size", "0"], "--code-size"),
    (["--code-size", "-2"], "--code-size"),
    (["--code-size", "big"], "--code-size"),
    (["--device", "tpu"], "--device"),
])
def test_bad_flags_give_one_line_and_exit_2(tmp_path, capsys, flags, names):
    with pytest.raises(SystemExit) as exit_info:
        code = toy(tmp_path, *flags)
        raise SystemExit(code)
    assert exit_info.value.code == 2
    assert names in error_line(capsys)
    assert not (tmp_path / "metrics.json").exists()


def test_unwritable_out_dir(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert toy(blocker / "out") == 2
    assert "--out-dir" in error_line(capsys)


def test_resume_without_checkpoint(tmp_path, capsys):
    assert toy(tmp_path, "--resume") == 2
    assert "no checkpoint" in error_line(capsys)


def test_resume_from_corrupt_checkpoint_names_it_and_keeps_it(tmp_path, capsys):
    assert toy(tmp_path) == 0
    ckpt = tmp_path / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:200])
    damaged = ckpt.read_bytes()
    metrics = (tmp_path / "metrics.json").read_bytes()
    assert toy(tmp_path, "--resume", "--epochs", "3") == 2
    assert "checkpoint.pt" in error_line(capsys)
    assert ckpt.read_bytes() == damaged and (tmp_path / "metrics.json").read_bytes() == metrics


def test_resume_with_a_different_configuration_is_refused(tmp_path, capsys):
    assert toy(tmp_path) == 0
    before = (tmp_path / "checkpoint.pt").read_bytes()
    assert toy(tmp_path, "--resume", "--epochs", "3", "--hidden-size", "7") == 2
    line = error_line(capsys)
    assert "different configuration" in line and "hidden_size" in line
    assert (tmp_path / "checkpoint.pt").read_bytes() == before


def test_damaged_grid_file_is_named(tmp_path, capsys):
    (tmp_path / "grid.csv").write_text("trial,hidden_size\nh4,4\n")
    assert toy(tmp_path, "--hidden-size", "4", "6") == 2
    assert "grid.csv" in error_line(capsys)


def test_script_as_a_subprocess_prints_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "lstm_ae_toy.py"), "--lr", "-1",
                           "--out-dir", str(tmp_path)], capture_output=True, text=True,
                          env={**os.environ, "TQDM_DISABLE": "1"})
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "--lr" in proc.stderr


def test_code_size_none_is_the_hidden_state_and_a_larger_code_is_exact_for_pca(tmp_path):
    assert toy(tmp_path, "--code-size", "none") == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["z_size"] == 6 and metrics["config"]["code_size"] is None
    assert toy(tmp_path / "k20", "--code-size", "20") == 0        # 20 numbers for 10 values
    pca = json.loads((tmp_path / "k20" / "metrics.json").read_text())["pca"]
    assert pca["components"] == 10 and pca["test_mse"] < 1e-12
