"""Shared test fixtures.

Tests that need the real data sets read them from ``../shared/data`` (or $LSTM_AE_SHARED_DATA).
Locally they skip when it is missing; under CI=true they fail, so a CI run can never pass
without having exercised the real data.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

import hardware

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
# The test models are tiny: one thread is faster than two, and never stalls on a busy machine.
torch.set_num_threads(1)


def _shared_data() -> Path:
    return Path(os.environ.get("LSTM_AE_SHARED_DATA", ROOT.parent / "shared" / "data"))


def _require(path: Path) -> Path:
    if not path.exists():
        message = f"real data not found at {path} (set LSTM_AE_SHARED_DATA)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def ray_installed() -> None:
    """Ray is optional (requirements-ray.txt): its tests skip locally without it and fail under
    CI=true, whose .ci/run installs it."""
    try:
        import ray  # noqa: F401
    except ImportError:
        message = "Ray is not installed (pip install -r requirements-ray.txt)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """Folder holding MNIST/raw/ and sp500/ (the read-only shared copies)."""
    return _require(_shared_data())


@pytest.fixture(scope="session")
def mnist_root(shared_data_dir) -> Path:
    """Root for torchvision.datasets.MNIST(root=...): holds MNIST/raw/."""
    _require(shared_data_dir / "MNIST" / "raw" / "train-images-idx3-ubyte")
    return shared_data_dir


@pytest.fixture(scope="session")
def sp500_csv(shared_data_dir) -> Path:
    return _require(shared_data_dir / "sp500" / "SP 500 Stock Prices 2014-2017.csv")


# The real answer of this machine's bf16 probe: tests that need bf16 hardware run their real
# check where it is True and assert the clean refusal where it is False, so the suite passes on
# AVX2-only and AVX-512 CPUs alike and never skips a bf16 test.
BF16_WORKS = hardware.bf16_support("cpu")[0]


@pytest.fixture
def no_bf16(monkeypatch):
    """Force the probe's answer to "bf16 does not work here", whatever the CPU."""
    monkeypatch.setattr(hardware, "bf16_support",
                        lambda device="cpu": (False, "forced off by the test"))


@pytest.fixture
def bf16_claimed(monkeypatch):
    """Force the probe's answer to "bf16 works here" (for checks that do not run bf16 kernels)."""
    monkeypatch.setattr(hardware, "bf16_support", lambda device="cpu": (True, ""))


@pytest.fixture(scope="session")
def tiny_judge(mnist_root, tmp_path_factory):
    """A digit judge trained for one epoch on 3,000 images (a few seconds; ~80 % accurate),
    cached in a session folder: (path of its judge.pt, the Judge)."""
    from judge import load_or_train_judge
    from training import TrainSettings

    path = tmp_path_factory.mktemp("judge") / "judge.pt"
    judge = load_or_train_judge(path, mnist_root, settings=TrainSettings(epochs=1, lr=3e-3),
                                train_size=3000)
    return path, judge


def overfit(model: torch.nn.Module, x: torch.Tensor, steps: int, lr: float = 1e-2) -> float:
    """Train ``model`` to reconstruct the one batch ``x`` (Adam, one-cycle lr, clip 1) for
    ``steps`` steps; returns the last step's MSE, for the overfit-one-batch tests."""
    from training import learning_rate

    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = learning_rate(step, steps, lr, "onecycle")
        loss = torch.nn.functional.mse_loss(model(x).recon, x)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return loss.item()


def assert_only_z_reaches_the_decoder(model: torch.nn.Module, x: torch.Tensor) -> None:
    """The bottleneck: in evaluation mode forward(x) = decode(encode(x)), and an input with the
    same code z gets the same reconstruction, to the bit."""
    model.eval()
    length = x.shape[1]
    recon, hidden = model.decode(model.encode(x), length)
    torch.testing.assert_close(model(x).recon, recon)
    torch.testing.assert_close(model(x).dec_hidden, hidden)
    z = model.encode(x)
    assert torch.equal(model.decode(z, length)[0], model.decode(z.clone(), length)[0])
