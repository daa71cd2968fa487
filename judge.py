"""The digit judge: a small CNN MNIST classifier that scores generated digits by numbers.

Generated digits (an LSTM's completed bottom halves, a GAN's samples) are judged by a classifier
trained on real MNIST, not by eye (spec 002; issue 16). Two scores:

- ``label_agreement(judge, images, labels)``: the share of images the judge assigns to the
  intended class.
- ``frechet_distance(judge, images_a, images_b)``: the Fréchet distance between Gaussians fitted
  to the judge's penultimate-layer features of two image sets (the MNIST analogue of FID,
  Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
  Equilibrium"; Inception weights cannot be downloaded here). ``real_floor(judge, real)`` is the
  distance between two disjoint halves of the real test set: what a perfect generator scores
  with the same sample size.

The judge (``feedforward.DigitJudge``) is trained once with the shared loop and cached in a
checkpoint (``judge.pt``: state_dict + config + a fingerprint of the judge's code, loaded with
``weights_only=True``). ``load_or_train_judge(path, data_dir)`` returns it, retraining it when the
file is missing, unreadable, or was written by other judge code (the fingerprint hashes the
source of ``DigitJudge`` and of the training code here). Its training run (history.csv,
resumable checkpoint.pt) lives beside it in ``<stem>_training/``.

Images everywhere here: (N, 28, 28) float tensors with pixels in [0, 1] (0 = black background,
as MNIST); a GAN producing [-1, 1] maps them with (x + 1) / 2 first.

Run as a script it trains (or reuses) the judge and writes its report section's numbers:

    python judge.py --data-dir ../shared/data             # → report/judge/judge.pt, metrics.json
"""
from __future__ import annotations

import inspect
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from cli import Parser, common_parser, positive_int, run, setup_runtime
from data import load_mnist, mnist_split
from errors import UsageError
from feedforward import DigitJudge
from hardware import machine_info
from outputs import prepare_out_dir, write_csv, write_json
from training import TrainSettings, evaluate, fit, save_checkpoint, stable_hash

TASK = "judge"
JUDGE_FILE = "judge.pt"
DATA_ENV = "LSTM_AE_DATA_DIR"
# Default training: measured ≥ 99.0 % test accuracy in well under 2 minutes on 2 CPU cores.
DEFAULT_SETTINGS = TrainSettings(optimizer="adam", lr=3e-3, lr_schedule="onecycle",
                                 batch_size=128, epochs=3)


class Judge(NamedTuple):
    model: DigitJudge          # in eval mode, on the requested device
    info: dict                 # test_accuracy, training settings, seconds, fingerprint...
    trained: bool              # True if trained in this call, False if loaded from the cache


def default_judge_file(out_dir) -> Path:
    """Where a script writing to ``out_dir`` looks for the judge by default: the ``judge``
    experiment's folder beside it (report/patches → report/judge/judge.pt)."""
    return Path(out_dir).resolve().parent / TASK / JUDGE_FILE


def judge_fingerprint(config: dict) -> str:
    """Hash of the judge's code and architecture: a change to either retrains the cached judge."""
    code = inspect.getsource(DigitJudge) + inspect.getsource(judge_step) + inspect.getsource(train_judge)
    return stable_hash({"code": code, "config": config})


def judge_step(model, batch):
    """step_fn for the shared loop: cross-entropy of (images (B, 28, 28), labels (B,))."""
    x, y = batch
    logits = model(x)                                         # (B, 10)
    return F.cross_entropy(logits, y), {"accuracy": (logits.argmax(1) == y).float().mean().item()}


def train_judge(path, data_dir, *, settings: TrainSettings = DEFAULT_SETTINGS,
                train_size: int | None = None, seed: int = 0,
                device: torch.device = torch.device("cpu"), resume: bool = False) -> Judge:
    """Train the judge on MNIST's training images (a seeded 10 % held out for validation) with
    the shared loop, measure it on the 10,000 test images and write ``path`` atomically."""
    path = Path(path)
    train_images, train_labels = load_mnist(data_dir, train=True)
    test_images, test_labels = load_mnist(data_dir, train=False)
    train_idx, val_idx = mnist_split(seed, train_size, n=len(train_images))
    run_dir = training_dir(path)
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = DigitJudge()
    fingerprint = judge_fingerprint(model.config)
    identity = dict(task=TASK, fingerprint=fingerprint, settings=asdict(settings),
                    train_size=train_size, seed=seed)
    can_resume = resume and (run_dir / "checkpoint.pt").exists()
    result = fit(model, judge_step, [train_images[train_idx], train_labels[train_idx]],
                 [train_images[val_idx], train_labels[val_idx]], settings, run_dir=run_dir,
                 identity=identity, device=device, seed=seed, resume=can_resume, desc="judge")
    model.eval()
    test = evaluate(model, judge_step, [test_images.to(device), test_labels.to(device)])
    info = {"test_accuracy": test["accuracy"], "test_cross_entropy": test["loss"],
            "best_epoch": result.best_epoch, "epochs_run": len(result.history),
            "train_seconds": result.seconds, "n_train": len(train_idx), "n_val": len(val_idx),
            "settings": asdict(settings), "train_size": train_size, "seed": seed,
            "fingerprint": fingerprint, "interrupted": result.interrupted}
    save_checkpoint(path, {"format": 1, "kind": "digit-judge", "config": model.config,
                           "model": {k: v.cpu() for k, v in model.state_dict().items()},
                           "info": info})
    return Judge(model, info, True)


def training_dir(path) -> Path:
    """The judge's training run (history.csv, checkpoint.pt): ``<dir>/<stem>_training/``."""
    path = Path(path)
    return path.parent / f"{path.stem}_training"


def load_judge(path, device: torch.device = torch.device("cpu")) -> Judge | None:
    """The cached judge at ``path``, or None if it is missing, unreadable, or from other code."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model = DigitJudge(**state["config"])
        model.load_state_dict(state["model"])
    except Exception as err:  # damaged file or another architecture: retrain rather than fail
        print(f"note: judge file {path} unreadable ({type(err).__name__}); retraining it",
              file=sys.stderr)
        return None
    if state.get("kind") != "digit-judge" or state["info"].get("fingerprint") != judge_fingerprint(model.config):
        print(f"note: judge file {path} was written by other judge code; retraining it",
              file=sys.stderr)
        return None
    return Judge(model.to(device).eval(), state["info"], False)


def load_or_train_judge(path, data_dir, device: torch.device = torch.device("cpu"), *,
                        settings: TrainSettings | None = None, train_size: int | None = None,
                        seed: int = 0, resume: bool = False) -> Judge:
    """The judge cached at ``path``; trained (and cached) when missing or stale.

    With ``settings`` (or ``train_size``) given, a cached judge trained with other settings is
    retrained too; with neither (what the experiment scripts do) any judge of the current code
    is used, and a missing one is trained with ``DEFAULT_SETTINGS``. ``path``'s folder must be
    writable (``--data-dir`` may be read-only: the cache never goes there).
    """
    judge = load_judge(path, device)
    wanted = settings or DEFAULT_SETTINGS
    if judge is not None and (settings is None and train_size is None or (
            judge.info["settings"] == asdict(wanted) and judge.info["train_size"] == train_size
            and judge.info["seed"] == seed)):
        return judge
    print(f"training the digit judge into {path} (once; later runs reuse it)", file=sys.stderr)
    return train_judge(path, data_dir, settings=wanted, train_size=train_size, seed=seed,
                       device=device, resume=resume)


# ---------------------------------------------------------------------------------------------
# scores

def _device(judge) -> torch.device:
    model = judge.model if isinstance(judge, Judge) else judge
    return next(model.parameters()).device


@torch.no_grad()
def judge_outputs(judge, images: torch.Tensor, batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """(predicted labels (N,), penultimate features (N, F) float64) of images (N, 28, 28)."""
    model = judge.model if isinstance(judge, Judge) else judge
    if images.dim() != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"the judge takes images (N, 28, 28), got {tuple(images.shape)}")
    was_training = model.training
    model.eval()
    labels, features = [], []
    for chunk in images.split(batch_size):
        h = model.features(chunk.float().to(_device(model)))          # (b, F)
        labels.append(model.classify(h).argmax(1).cpu())
        features.append(h.double().cpu())
    model.train(was_training)
    return torch.cat(labels), torch.cat(features)


def predict(judge, images: torch.Tensor) -> torch.Tensor:
    """The judge's class for each image (N, 28, 28) → (N,)."""
    return judge_outputs(judge, images)[0]


def label_agreement(judge, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of images (N, 28, 28) the judge assigns to their intended class ``labels`` (N,)."""
    return (predict(judge, images) == labels.cpu()).double().mean().item()


def frechet_from_features(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to feature sets a (N, F) and b (M, F):
    ‖μ_a − μ_b‖² + Tr(Σ_a + Σ_b − 2 (Σ_a Σ_b)^½).

    Tr (Σ_a Σ_b)^½ = Σ √λ_i, λ the eigenvalues of Σ_a^½ Σ_b Σ_a^½ (symmetric PSD, same spectrum
    as Σ_a Σ_b), so only symmetric eigendecompositions are needed (float64)."""
    a, b = a.double(), b.double()
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)                 # (F, F)
    evals, evecs = torch.linalg.eigh(cov_a)
    sqrt_a = evecs @ torch.diag(evals.clamp(min=0).sqrt()) @ evecs.T
    middle = sqrt_a @ cov_b @ sqrt_a
    trace_sqrt = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    value = (mu_a - mu_b).pow(2).sum() + cov_a.trace() + cov_b.trace() - 2 * trace_sqrt
    return max(value.item(), 0.0)


def frechet_distance(judge, images_a: torch.Tensor, images_b: torch.Tensor) -> float:
    """Fréchet distance in the judge's feature space between two image sets (N, 28, 28)."""
    return frechet_from_features(judge_outputs(judge, images_a)[1], judge_outputs(judge, images_b)[1])


def real_halves(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two disjoint seeded halves of range(n): the real-vs-real comparison's index sets."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[:n // 2], order[n // 2:2 * (n // 2)]


def real_floor(judge, real: torch.Tensor, seed: int = 0) -> float:
    """Fréchet distance between two disjoint halves of the real images (N/2 each): the score of
    a perfect generator with N/2 samples. Compare a generator's N/2 samples against the same
    second half (``real[real_halves(N)[1]]``) to be on the same footing."""
    first, second = real_halves(len(real), seed)
    return frechet_distance(judge, real[first], real[second])


# ---------------------------------------------------------------------------------------------
# the script: train (or reuse) the judge and report it

def parse_args(argv=None):
    common = common_parser(TASK, epochs=DEFAULT_SETTINGS.epochs, lr=DEFAULT_SETTINGS.lr,
                           grad_clip=0.0, batch_size=DEFAULT_SETTINGS.batch_size, model_flags=(),
                           grid=False)
    parser = Parser(description=__doc__.split("\n\n")[0], parents=[common])
    data = parser.add_argument_group("data")
    data.add_argument("--data-dir", default=os.environ.get(DATA_ENV, "data"),
                      help=f"folder holding MNIST/raw/ (read only); default ${DATA_ENV} if set, "
                           f"else data/")
    data.add_argument("--train-size", type=positive_int, default=None, metavar="N",
                      help="train on a seeded subset of N of the 54,000 training images "
                           "(default: all)")
    parser.add_argument("--retrain", action="store_true",
                        help="train even if --out-dir holds a judge of the same code and settings")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    device = setup_runtime(args)
    if len(args.lr) > 1 or len(args.grad_clip) > 1:
        raise UsageError("--lr/--grad-clip: the judge takes one value each (no grid search)")
    started = time.time()
    test_images, test_labels = load_mnist(args.data_dir, train=False)
    if args.train_size is not None:
        mnist_split(args.seed, args.train_size)               # a bad size fails before writing
    out_dir = prepare_out_dir(args.out_dir)
    path = out_dir / JUDGE_FILE
    if args.retrain:
        path.unlink(missing_ok=True)
    settings = TrainSettings.from_args(args)
    judge = load_or_train_judge(path, args.data_dir, device, settings=settings,
                                train_size=args.train_size, seed=args.seed, resume=args.resume)

    predicted, features = judge_outputs(judge, test_images)
    confusion = np.zeros((10, 10), dtype=int)
    np.add.at(confusion, (test_labels.numpy(), predicted.numpy()), 1)
    write_csv(out_dir / "confusion.csv", _confusion_frame(confusion))
    first, second = real_halves(len(test_images), args.seed)
    floor = frechet_from_features(features[first], features[second])
    blank = torch.zeros_like(test_images[first])
    metrics = {
        "test_accuracy": judge.info["test_accuracy"],
        "label_agreement_test": (predicted == test_labels).double().mean().item(),
        "frechet_real_vs_real": floor,
        "frechet_blank_vs_real": frechet_from_features(judge_outputs(judge, blank)[1], features[second]),
        "frechet_n_per_side": len(first),
        "train_seconds": judge.info["train_seconds"],
        "trained_now": judge.trained,
        "epochs_run": judge.info["epochs_run"],
        "parameters": sum(p.numel() for p in judge.model.parameters()),
        "judge_file": str(path),
        "model": judge.model.config,
        "training": {k: judge.info[k] for k in ("settings", "train_size", "seed", "n_train", "n_val",
                                                "best_epoch", "fingerprint")},
        "run_seconds": time.time() - started,
        **machine_info(device),
        "config": {k: v for k, v in vars(args).items() if k != "debug"},
    }
    write_json(out_dir / "metrics.json", metrics)
    print(f"judge: test accuracy {100 * metrics['test_accuracy']:.2f} %, trained in "
          f"{metrics['train_seconds']:.0f} s ({'now' if judge.trained else 'earlier'}); Fréchet "
          f"real vs real {floor:.3g} ({len(first)} vs {len(second)} test images), an all-black "
          f"image set {metrics['frechet_blank_vs_real']:.3g}; outputs in {out_dir}/")


def _confusion_frame(confusion: np.ndarray):
    import pandas as pd

    frame = pd.DataFrame(confusion, columns=[f"judged_{d}" for d in range(10)])
    frame.insert(0, "true", range(10))
    return frame


if __name__ == "__main__":
    sys.exit(run(main))
