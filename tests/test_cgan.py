"""Tests for the conditional GAN (cgan_mnist.py, feedforward's GAN block, adversarial.py):
shapes, the centre slice, class-balanced fakes, the centre loss, the discriminator learning,
the collapse and NaN guards, resume (in process and after SIGKILL), the script end to end for
both conditionings, and bad input. Tiny subsets and the session's tiny judge."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

import cgan_mnist
from adversarial import AdversarialSettings, collapse_reason, fit_adversarial
from cgan_mnist import ConditionalGANObjective, centre_loss
from cli import run
from errors import TrainingDiverged
from feedforward import (ConditionalDiscriminator, ConditionalGenerator, balanced_labels,
                         centre_mask, centre_patch, one_hot)

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------
# networks and conditioning

@pytest.mark.parametrize("cond_dim", [10, 100])
def test_generator_and_discriminator_shapes(cond_dim):
    g = ConditionalGenerator(noise_dim=100, cond_dim=cond_dim, hidden=(200, 400))
    d = ConditionalDiscriminator(784, cond_dim, hidden=(400, 200, 100), dropout=0.3)
    assert g.net[0].in_features == 100 + cond_dim                 # 110 (label) or 200 (centre)
    assert d.body[0].in_features == 784 + cond_dim                # 794 or 884
    cond = torch.rand(7, cond_dim)
    fake = g(g.noise(7), cond)
    assert fake.shape == (7, 784) and fake.abs().max() <= 1       # tanh: pixels in [-1, 1]
    logits = d(fake, cond)
    assert logits.shape == (7,)
    logits.sum().backward()
    assert all(p.grad is not None for p in g.parameters())


def test_centre_slice_is_the_10_by_10_centre():
    images = torch.arange(2 * 784, dtype=torch.float32).reshape(2, 28, 28)
    patch = centre_patch(images)
    assert patch.shape == (2, 100)
    assert torch.equal(patch, images[:, 9:19, 9:19].reshape(2, 100))
    assert torch.equal(centre_patch(images.flatten(1)), patch)     # flat images too
    mask = centre_mask()
    assert mask.sum() == 100 and torch.equal(images.flatten(1)[:, mask], patch)


class Spy(torch.nn.Module):
    """Records the condition it was called with; wraps a real network."""

    def __init__(self, net):
        super().__init__()
        self.net, self.calls = net, []
        self.config = net.config

    def forward(self, x, cond):
        self.calls.append(cond.clone())
        return self.net(x, cond)

    def noise(self, n, generator=None):
        return self.net.noise(n, generator)


@pytest.mark.parametrize("batch", [100, 25])
def test_fake_batch_is_class_balanced_and_labelled_as_generated(batch):
    g, d = Spy(ConditionalGenerator()), Spy(ConditionalDiscriminator())
    real_labels = torch.zeros(batch, dtype=torch.long)               # all zeros: fakes must not copy
    x, cond = torch.rand(batch, 784) * 2 - 1, one_hot(real_labels)
    ConditionalGANObjective("label").discriminator_loss(g, d, (x, cond))
    (given,) = g.calls
    counts = torch.bincount(given.argmax(1), minlength=10)
    assert counts.max() - counts.min() <= 1 and counts.sum() == batch
    assert torch.equal(given.sum(1), torch.ones(batch))              # one-hot rows
    real_seen, fake_seen = d.calls
    assert torch.equal(real_seen, cond) and torch.equal(fake_seen, given)
    assert torch.equal(balanced_labels(20), torch.arange(20) % 10)


def test_centre_loss_is_zero_when_the_generator_copies_the_condition():
    torch.manual_seed(0)
    images = torch.rand(6, 784) * 2 - 1
    cond = centre_patch(images)
    assert centre_loss(images, cond).item() == 0.0
    other = images.clone()
    other[:, centre_mask()] += 0.5
    assert centre_loss(other, cond).item() == pytest.approx(0.25)
    # generator loss = adversarial BCE + λ · centre MSE, by hand
    d = ConditionalDiscriminator(784, 100).eval()
    loss, metrics = ConditionalGANObjective("centre", 10.0).generator_loss(None, d, (other, cond))
    adversarial = F.binary_cross_entropy_with_logits(d(other, cond), torch.ones(6))
    assert loss.item() == pytest.approx(adversarial.item() + 10 * 0.25, rel=1e-6)
    assert metrics["g_centre_mse"] == pytest.approx(0.25)


def test_discriminator_steps_lower_its_loss(mnist_root):
    from data import load_mnist

    torch.manual_seed(0)
    images, labels = load_mnist(mnist_root, train=False)
    x, cond = images[:200].flatten(1) * 2 - 1, one_hot(labels[:200])
    g, d = ConditionalGenerator(), ConditionalDiscriminator()
    objective = ConditionalGANObjective("label")
    optimizer = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    losses = []
    for _ in range(30):
        loss, _, _ = objective.discriminator_loss(g, d, (x, cond))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(0.69, abs=0.05)               # ln 2: D undecided at start
    assert losses[-1] < 0.5 * losses[0]


# ---------------------------------------------------------------------------------------------
# the loop: guards and resume

def test_collapse_detector_fires_on_constructed_collapses():
    settings = AdversarialSettings(collapse_epochs=3)
    healthy = [{"epoch": e, "d_accuracy_real": 0.7, "d_accuracy_fake": 0.6, "gen_std": 0.2}
               for e in range(1, 6)]
    assert collapse_reason(healthy, settings) is None
    won = healthy + [{"epoch": e, "d_accuracy_real": 1.0, "d_accuracy_fake": 0.995, "gen_std": 0.2}
                     for e in range(6, 9)]
    assert "discriminator won" in collapse_reason(won, settings)
    assert collapse_reason(won[:-1], settings) is None               # 2 epochs are not "many"
    flat = healthy + [{"epoch": 6, "d_accuracy_real": 0.7, "d_accuracy_fake": 0.6, "gen_std": 1e-5}]
    assert "generator collapsed" in collapse_reason(flat, settings)


def _tiny_run(tmp_path, epochs, epoch_end=None, resume=False, objective=None, seed=0):
    torch.manual_seed(seed)
    g, d = ConditionalGenerator(8, 10, (16,)), ConditionalDiscriminator(784, 10, (16,), 0.2)
    data = [torch.rand(60, 784) * 2 - 1, one_hot(torch.arange(60) % 10)]
    result = fit_adversarial(g, d, objective or ConditionalGANObjective("label"), data,
                             AdversarialSettings(batch_size=20, epochs=epochs), run_dir=tmp_path,
                             identity={"test": 1}, device=torch.device("cpu"), seed=seed,
                             resume=resume, epoch_end=epoch_end)
    return g, d, result


def test_collapse_stops_the_loop_and_keeps_the_last_good_checkpoint(tmp_path):
    stds = iter([0.3, 0.0])
    with pytest.raises(TrainingDiverged, match="generator collapsed at epoch 2"):
        _tiny_run(tmp_path, 4, epoch_end=lambda g, d: {"gen_std": next(stds)})
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 1 and len(pd.read_csv(tmp_path / "history.csv")) == 1


def test_nan_loss_stops_with_one_line(tmp_path):
    class Broken(ConditionalGANObjective):
        def generator_loss(self, generator, discriminator, fakes):
            loss, metrics = super().generator_loss(generator, discriminator, fakes)
            return loss * float("nan"), metrics

    with pytest.raises(TrainingDiverged, match="generator loss became nan at epoch 1"):
        _tiny_run(tmp_path, 2, objective=Broken("label"))


def test_resume_continues_both_networks_and_both_optimizers(tmp_path):
    g_full, d_full, full = _tiny_run(tmp_path / "full", 3)
    _tiny_run(tmp_path / "split", 1)
    g_res, d_res, resumed = _tiny_run(tmp_path / "split", 3, resume=True)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    for a, b in ((g_full, g_res), (d_full, d_res)):
        for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(x, y), name                          # bit-identical continuation
    state = torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=True)
    assert set(state["optimizer"]) == {"generator", "discriminator"}
    assert state["config"]["generator"]["noise_dim"] == 8


# ---------------------------------------------------------------------------------------------
# the script

TINY = ["--train-size", "300", "--epochs", "2", "--eval-samples", "200", "--test-size", "300",
        "--g-hidden", "32", "--d-hidden", "32", "16", "--threads", "1"]


@pytest.fixture
def judge_copy(tiny_judge, tmp_path):
    path = tmp_path / "judge" / "judge.pt"
    path.parent.mkdir()
    shutil.copy(tiny_judge[0], path)
    return path


def test_script_label_end_to_end(mnist_root, judge_copy, tmp_path):
    out = tmp_path / "cgan"
    cgan_mnist.main(["--data-dir", str(mnist_root), "--out-dir", str(out), "--judge-file",
                     str(judge_copy), *TINY])
    for name in ("accuracy.png", "losses.png", "judge.png", "samples.png", "history.csv",
                 "checkpoint.pt", "metrics.json"):
        assert (out / name).stat().st_size > 0, name
    m = json.loads((out / "metrics.json").read_text())
    assert m["condition"] == "label" and m["n_generated"] == 200 and m["epochs_run"] == 2
    assert 0 <= m["judge_agreement"] <= 1 and m["frechet"] > m["frechet_real_vs_real"] > 0
    assert m["baselines"]["class_mean_images"]["judge_agreement"] > 0.5
    history = pd.read_csv(out / "history.csv")
    assert {"judge_agreement", "frechet", "d_accuracy_real", "d_accuracy_fake", "gen_std"} <= set(history)


def test_script_centre_end_to_end(mnist_root, judge_copy, tmp_path):
    out = tmp_path / "imputation"
    cgan_mnist.main(["--condition", "centre", "--centre-weight", "0", "10", "--data-dir",
                     str(mnist_root), "--out-dir", str(out), "--judge-file", str(judge_copy),
                     *TINY[:2], "--epochs", "1", *TINY[4:]])
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["lambda"]) == {"0", "10"} and m["n_test"] == 300
    for name in ("0", "10"):
        assert (out / f"imputation_lambda_{name}.png").stat().st_size > 0
        assert (out / f"lambda_{name}" / "history.csv").exists()
    assert (out / "training.png").exists()
    base = m["baselines"]
    assert base["mean_image_true_centre"]["centre_mse"] == 0.0         # the true centre pasted in
    assert base["nearest_centre_training_image"]["centre_mse"] < base["random_training_image"]["centre_mse"]


def test_sigkill_then_resume(mnist_root, judge_copy, tmp_path):
    out = tmp_path / "run"
    argv = [sys.executable, str(ROOT / "cgan_mnist.py"), "--data-dir", str(mnist_root),
            "--out-dir", str(out), "--judge-file", str(judge_copy), "--train-size", "2000",
            "--eval-samples", "100", "--test-size", "200", "--g-hidden", "32", "--d-hidden", "32",
            "--threads", "1", "--epochs", "2"]
    # GLIBC_TUNABLES set: no allocator re-exec, so each process imports torch once
    env = {**os.environ, "TQDM_DISABLE": "1", "GLIBC_TUNABLES": os.environ.get("GLIBC_TUNABLES", "")}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.time() + 120
    while not (out / "history.csv").exists():
        assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
        assert time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "metrics.json").exists()
    done = subprocess.run([*argv, "--resume"], capture_output=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert list(pd.read_csv(out / "history.csv")["epoch"]) == [1, 2]
    assert (out / "metrics.json").exists()


def _run_cli(argv, capsys):
    try:
        code = run(cgan_mnist.main, argv)
    except SystemExit as exit_:                                        # argparse errors
        code = exit_.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("argv, needle", [
    (["--condition", "pixels"], "--condition"),
    (["--noise-dim", "0"], "--noise-dim"),
    (["--condition", "centre", "--centre-weight", "-1"], "--centre-weight"),
    (["--centre-weight", "1"], "--centre-weight"),                    # label mode has no centre
    (["--lr", "0"], "--lr"),
    (["--d-lr", "-1e-4"], "--d-lr"),
    (["--d-dropout", "1"], "--d-dropout"),
    (["--patience", "3"], "--patience"),
    (["--real-label", "1.5"], "--real-label"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(argv, needle, tmp_path, capsys):
    out = tmp_path / "o"
    code, err = _run_cli([*argv, "--data-dir", str(tmp_path), "--out-dir", str(out)], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and needle in err and "Traceback" not in err
    assert not out.exists()
