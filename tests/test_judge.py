"""Tests for the digit judge (judge.py, feedforward.DigitJudge): the Fréchet distance against
hand computation, the scores on real test images, and the cache (trained once, reused, retrained
when missing, damaged or from other code)."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

import judge as judge_module
from data import load_mnist
from feedforward import DigitJudge
from judge import (frechet_distance, frechet_from_features, judge_outputs, label_agreement,
                   load_judge, load_or_train_judge, real_floor, real_halves)


def test_judge_shapes_and_features():
    model = DigitJudge()
    x = torch.rand(5, 28, 28)
    assert model(x).shape == (5, 10)
    assert model.features(x).shape == (5, model.config["features"])
    assert model(x.unsqueeze(1)).shape == (5, 10)


def test_frechet_matches_hand_computation():
    torch.manual_seed(0)
    a = torch.randn(4000, 6, dtype=torch.float64) @ torch.randn(6, 6, dtype=torch.float64)
    assert frechet_from_features(a, a) == pytest.approx(0.0, abs=1e-8)
    shift = torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0, 1.0], dtype=torch.float64)
    # same covariance, shifted mean: the distance is ‖shift‖²
    assert frechet_from_features(a, a + shift) == pytest.approx(shift.pow(2).sum().item(), rel=1e-9)
    # scaled copy: Σ_b = k² Σ_a, so Tr(Σ_a + Σ_b − 2 (Σ_a Σ_b)^½) = (1 − k)² Tr Σ_a (+ mean term)
    k = 1.7
    expected = (1 - k) ** 2 * torch.cov(a.T).trace().item() + ((k - 1) * a.mean(0)).pow(2).sum().item()
    assert frechet_from_features(a, k * a) == pytest.approx(expected, rel=1e-8)


def test_scores_on_real_test_images(tiny_judge, mnist_root):
    path, judge = tiny_judge
    assert judge.trained and path.exists()                 # the file was missing: trained
    images, labels = load_mnist(mnist_root, train=False)
    accuracy = judge.info["test_accuracy"]
    assert accuracy > 0.7                                   # one epoch on 3,000 images
    predicted, features = judge_outputs(judge, images)
    assert (predicted == labels).double().mean().item() == pytest.approx(accuracy, abs=1e-4)
    assert label_agreement(judge, images[:500], labels[:500]) == (
        predicted[:500] == labels[:500]).double().mean().item()
    first, second = real_halves(len(images))
    floor = frechet_from_features(features[first], features[second])
    assert floor == pytest.approx(real_floor(judge, images), rel=1e-6)
    blank = frechet_distance(judge, torch.zeros(1000, 28, 28), images[:1000])
    scrambled = frechet_distance(judge, images[:1000][:, torch.randperm(28)], images[1000:2000])
    assert floor < 0.02 * blank and floor < 0.1 * scrambled


def test_cache_is_reused_and_refused_when_stale(tiny_judge, mnist_root, tmp_path, monkeypatch):
    path, judge = tiny_judge
    again = load_or_train_judge(path, mnist_root)          # any settings accepted: loaded
    assert not again.trained and again.info == judge.info
    for name, value in judge.model.state_dict().items():
        assert torch.equal(value, again.model.state_dict()[name].cpu())
    assert (path.parent / "judge_training" / "history.csv").exists()

    copy = tmp_path / "judge.pt"
    shutil.copy(path, copy)
    assert load_judge(copy) is not None
    monkeypatch.setattr(judge_module, "judge_fingerprint", lambda config: "other code")
    assert load_judge(copy) is None                        # the judge's code changed: retrain
    monkeypatch.undo()
    copy.write_bytes(b"not a checkpoint")
    assert load_judge(copy) is None                        # damaged: retrain


def test_script_reuses_the_judge_and_writes_metrics(tiny_judge, mnist_root, tmp_path):
    path, judge = tiny_judge
    out = tmp_path / "judge"
    out.mkdir()
    shutil.copy(path, out / "judge.pt")                    # same code and settings: reused
    judge_module.main(["--data-dir", str(mnist_root), "--out-dir", str(out), "--epochs", "1",
                       "--lr", "3e-3", "--train-size", "3000", "--threads", "1"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert not metrics["trained_now"]
    assert metrics["test_accuracy"] == judge.info["test_accuracy"]
    assert 0 < metrics["frechet_real_vs_real"] < metrics["frechet_blank_vs_real"]
    assert (out / "confusion.csv").exists()
