"""An LSTM that draws the bottom half of an MNIST digit, patch by patch (spec 002, problem 1).

Each image is cut into 16 non-overlapping 7×7 patches, row-major from the top left, each
flattened: a sequence X (16, 49). ``models.NextPatchLSTM`` (an LSTM stack, 2 × 64 by default, +
dense to 49 + sigmoid) learns to predict patch t+1 from patches 1..t: loss = MSE(Y_{1..15},
X_{2..16}) (equation 2 with a squared distance, averaged). Early stopping watches a seeded 10 %
validation split of the *training* images (the spec validates on the test set; here the test
images are kept for the final numbers).

Generation (equations 3-7): patches 1-8 (the top half) are fed once; the model then runs 7 steps
closed loop, each drawn patch fed back as the next input with the carried (h, c); [X_1..8,
Y_8..15] is put back together into a 28×28 image.

Measured on all 10,000 test images, beside two baselines on the same images (the mean bottom
half of the training images; the bottom half of the training image whose top half is nearest):
bottom-half MSE, and the digit judge's (``judge.py``) label agreement of the completed images
with their true labels, beside the originals' and blank-bottom images', a Fréchet distance in
the judge's feature space, and which digits turn into which.

Writes to ``--out-dir`` (default report/patches/): generated.png, originals.png (10 test images
of each digit, one row per digit, seeded), loss.png, confusion.csv, metrics.json, history.csv,
checkpoint.pt.

    python lstm_mnist_patches.py --data-dir ../shared/data
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from cli import Parser, common_parser, positive_int, run, setup_runtime
from data import load_mnist, mnist_split
from errors import UsageError
from hardware import machine_info
from judge import (default_judge_file, frechet_from_features, judge_outputs, load_or_train_judge,
                   real_halves)
from models import NextPatchLSTM, count_parameters
from outputs import prepare_out_dir, write_csv, write_json
from plotting import plot_histories, plot_image_grid
from training import GridBackend, TrainSettings, evaluate, grid_points, run_grid

TASK = "patches"
DATA_ENV = "LSTM_AE_DATA_DIR"
SIDE, PATCH = 28, 7
GRID = SIDE // PATCH                  # 4 × 4 patches
N_PATCHES, PATCH_SIZE = GRID * GRID, PATCH * PATCH   # 16 patches of 49 pixels
GIVEN = N_PATCHES // 2                # the top half: patches 1-8
TARGETS = {"min_lstm_agreement": 0.9, "max_train_minutes": 10}   # issue 16


# ---------------------------------------------------------------------------------------------
# images ↔ patch sequences

def patchify(images: torch.Tensor) -> torch.Tensor:
    """(N, 28, 28) → (N, 16, 49): 7×7 patches row-major from the top left, each row-major."""
    n = images.shape[0]
    blocks = images.reshape(n, GRID, PATCH, GRID, PATCH)      # (N, row, y, col, x)
    return blocks.permute(0, 1, 3, 2, 4).reshape(n, N_PATCHES, PATCH_SIZE)


def unpatchify(patches: torch.Tensor) -> torch.Tensor:
    """(N, 16, 49) → (N, 28, 28), the inverse of ``patchify``."""
    n = patches.shape[0]
    blocks = patches.reshape(n, GRID, GRID, PATCH, PATCH)     # (N, row, col, y, x)
    return blocks.permute(0, 1, 3, 2, 4).reshape(n, SIDE, SIDE)


def next_patch_step(model, batch):
    """step_fn: feed X_1..15, compare Y_1..15 with X_2..16 (MSE per pixel)."""
    (x,) = batch                                              # (B, 16, 49)
    y, _ = model(x[:, :-1])                                   # (B, 15, 49)
    return F.mse_loss(y, x[:, 1:]), {}


@torch.no_grad()
def complete(model, patches: torch.Tensor, batch_size: int = 2000) -> torch.Tensor:
    """Top halves of ``patches`` (N, 16, 49) → completed images (N, 28, 28): [X_1..8, Y_8..15]."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    for chunk in patches.split(batch_size):
        given = chunk[:, :GIVEN].to(device)                   # (b, 8, 49)
        drawn = model.complete(given, N_PATCHES - GIVEN)      # (b, 8, 49)
        out.append(unpatchify(torch.cat([given, drawn], 1)).cpu())
    return torch.cat(out)


# ---------------------------------------------------------------------------------------------
# baselines

def nearest_top_half(train_images: torch.Tensor, query: torch.Tensor, chunk: int = 1000) -> torch.Tensor:
    """Index of the training image whose top half is nearest (Euclidean) to each query's top half."""
    half = SIDE // 2
    bank = train_images[:, :half].flatten(1)                  # (M, 392)
    bank_sq = bank.pow(2).sum(1)                              # (M,)
    best = []
    for part in query[:, :half].flatten(1).split(chunk):      # (b, 392)
        distance = bank_sq[None] - 2 * part @ bank.T          # ‖a−b‖² without the constant ‖a‖²
        best.append(distance.argmin(1))
    return torch.cat(best)


def with_bottom(images: torch.Tensor, bottom: torch.Tensor) -> torch.Tensor:
    """Images (N, 28, 28) with their bottom half replaced by ``bottom`` (N or 1, 14, 28)."""
    out = images.clone()
    out[:, SIDE // 2:] = bottom
    return out


def bottom_mse(images: torch.Tensor, truth: torch.Tensor) -> float:
    half = SIDE // 2
    return F.mse_loss(images[:, half:], truth[:, half:]).item()


# ---------------------------------------------------------------------------------------------

def parse_args(argv=None):
    common = common_parser(TASK, hidden_size=64, num_layers=2, epochs=12, lr=3e-3, grad_clip=0.0,
                           batch_size=100, patience=3,
                           model_flags=("--hidden-size", "--num-layers", "--init"))
    parser = Parser(description=__doc__.split("\n\n")[0], parents=[common])
    data = parser.add_argument_group("data")
    data.add_argument("--data-dir", default=os.environ.get(DATA_ENV, "data"),
                      help=f"folder holding MNIST/raw/ (read only); default ${DATA_ENV} if set, "
                           f"else data/")
    data.add_argument("--train-size", type=positive_int, default=None, metavar="N",
                      help="train on a seeded subset of N of the 54,000 training images (the "
                           "validation 6,000 and the test images are unchanged; default: all)")
    data.add_argument("--test-size", type=positive_int, default=None, metavar="N",
                      help="measure on a seeded subset of N of the 10,000 test images (for quick "
                           "runs; default: all)")
    data.add_argument("--per-digit", type=positive_int, default=10,
                      help="test images of each digit shown in generated.png/originals.png "
                           "(seeded choice; default 10)")
    data.add_argument("--judge-file", default=None,
                      help="the digit judge's checkpoint; trained there (about 2 min) if missing "
                           "or stale (default: judge/judge.pt beside --out-dir, i.e. "
                           "report/judge/judge.pt)")
    return parser.parse_args(argv)


def train_model(args, train_x, val_x, out_dir, device):
    """Train one NextPatchLSTM per grid point (one by default) and return the best GridResult."""
    def build(params):
        return NextPatchLSTM(PATCH_SIZE, params["hidden_size"], args.num_layers, init=args.init)

    identity = dict(task=TASK, train_size=args.train_size, seed=args.seed,
                    model={k: v for k, v in build({"hidden_size": 1}).config.items()
                           if k != "hidden_size"},
                    optimizer=args.optimizer, lr_schedule=args.lr_schedule,
                    weight_decay=args.weight_decay, batch_size=args.batch_size)
    return run_grid(grid_points(args.hidden_size, args.lr, args.grad_clip), build, next_patch_step,
                    [train_x], [val_x], TrainSettings.from_args(args), out_dir=out_dir,
                    identity=identity, device=device, seed=args.seed, resume=args.resume,
                    backend=GridBackend.from_args(args))


def shown_images(test_labels: torch.Tensor, per_digit: int, seed: int) -> list[list[int]]:
    """For each digit, ``per_digit`` seeded test indices of that digit."""
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for digit in range(10):
        members = torch.nonzero(test_labels == digit).flatten()
        if len(members) < per_digit:
            raise UsageError(f"--per-digit {per_digit}: only {len(members)} test images of "
                             f"digit {digit}")
        rows.append(members[torch.randperm(len(members), generator=generator)[:per_digit]].tolist())
    return rows


def judge_scores(judge, test_images, test_labels, versions: dict, seed: int) -> tuple[dict, dict]:
    """Label agreement and Fréchet distance (first test half's version vs the real second half)
    of each version of the test images; also the judged labels of each version."""
    first, second = real_halves(len(test_images), seed)
    _, real_features = judge_outputs(judge, test_images[second])
    scores, judged = {}, {}
    for name, images in versions.items():
        labels, features = judge_outputs(judge, images)
        judged[name] = labels
        scores[name] = {"label_agreement": (labels == test_labels).double().mean().item(),
                        "frechet_to_real": frechet_from_features(features[first], real_features)}
    return scores, judged


def confusions(true: torch.Tensor, judged_original: torch.Tensor, judged_completed: torch.Tensor,
               top: int = 8) -> tuple[pd.DataFrame, list[dict]]:
    """10×10 counts of (true digit, judged digit of the completion), and the ``top`` most frequent
    changes among images whose original the judge reads correctly (so the LSTM changed them)."""
    counts = np.zeros((10, 10), dtype=int)
    np.add.at(counts, (true.numpy(), judged_completed.numpy()), 1)
    frame = pd.DataFrame(counts, columns=[f"judged_{d}" for d in range(10)])
    frame.insert(0, "true", range(10))
    ok = (judged_original == true) & (judged_completed != true)
    pairs = pd.Series(list(zip(true[ok].tolist(), judged_completed[ok].tolist()))).value_counts()
    per_class = torch.bincount(true[judged_original == true], minlength=10)
    changes = [{"true": int(a), "becomes": int(b), "count": int(n),
                "share_of_class": int(n) / max(1, int(per_class[a]))}
               for (a, b), n in pairs.head(top).items()]
    return frame, changes


def plot_digits(images, rows, judged, path, *, title: str):
    grid = [[images[i].numpy() for i in row] for row in rows]
    labels = [[f"judged {int(judged[i])}" for i in row] for row in rows]
    plot_image_grid(grid, path, title=title, row_labels=[f"digit {d}" for d in range(10)],
                    col_labels=labels, value_label="pixel intensity (0 = black, 1 = white)",
                    cell=1.25)


def main(argv=None):
    args = parse_args(argv)
    device = setup_runtime(args)
    started = time.time()

    # data: (N, 16, 49) patch sequences; validation = a seeded 10 % of the training images
    train_images, _ = load_mnist(args.data_dir, train=True)
    test_images, test_labels = load_mnist(args.data_dir, train=False)
    train_idx, val_idx = mnist_split(args.seed, args.train_size, n=len(train_images))
    if args.test_size is not None:
        if args.test_size > len(test_images):
            raise UsageError(f"--test-size {args.test_size}: there are {len(test_images)} test images")
        keep = torch.randperm(len(test_images), generator=torch.Generator().manual_seed(args.seed))
        test_images, test_labels = test_images[keep[:args.test_size]], test_labels[keep[:args.test_size]]
    rows = shown_images(test_labels, args.per_digit, args.seed)
    out_dir = prepare_out_dir(args.out_dir)
    judge_file = Path(args.judge_file) if args.judge_file else default_judge_file(out_dir)
    prepare_out_dir(judge_file.parent, "--judge-file")
    train_x, val_x = patchify(train_images[train_idx]), patchify(train_images[val_idx])
    test_x = patchify(test_images)

    # the model, trained with the shared loop (early stopping on validation)
    grid = train_model(args, train_x, val_x, out_dir, device)
    model = grid.model
    test_next_patch_mse = evaluate(model, next_patch_step, [test_x.to(device)])["loss"]

    # completions and the two baselines, on all test images
    t0 = time.time()
    completed = complete(model, test_x)                                     # (N, 28, 28)
    generation_seconds = time.time() - t0
    train_pool = train_images[train_idx]
    mean_bottom = train_pool[:, SIDE // 2:].mean(0, keepdim=True)           # (1, 14, 28)
    nearest = nearest_top_half(train_pool, test_images)
    versions = {
        "lstm": completed,
        "original": test_images,
        "blank_bottom": with_bottom(test_images, torch.zeros(1, SIDE // 2, SIDE)),
        "mean_bottom": with_bottom(test_images, mean_bottom),
        "nearest_top_half": with_bottom(test_images, train_pool[nearest][:, SIDE // 2:]),
    }
    mse = {name: bottom_mse(images, test_images) for name, images in versions.items()
           if name != "original"}

    # the digit judge
    judge = load_or_train_judge(judge_file, args.data_dir, device)
    scores, judged = judge_scores(judge, test_images, test_labels, versions, args.seed)
    first, second = real_halves(len(test_images), args.seed)
    floor = frechet_from_features(judge_outputs(judge, test_images[first])[1],
                                  judge_outputs(judge, test_images[second])[1])
    confusion, changes = confusions(test_labels, judged["original"], judged["lstm"])
    write_csv(out_dir / "confusion.csv", confusion)
    shown = [i for row in rows for i in row]
    shown_agreement = (judged["lstm"][shown] == test_labels[shown]).double().mean().item()

    # figures
    plot_digits(versions["lstm"], rows, judged["lstm"], out_dir / "generated.png",
                title="Top half given (patches 1-8), bottom half drawn by the LSTM, closed loop "
                      "(test images)")
    plot_digits(test_images, rows, judged["original"], out_dir / "originals.png",
                title="The original test images whose top halves were given")
    plot_histories({"": grid.history}, out_dir / "loss.png", logy=True,
                   title="Next-patch prediction loss (validation: 10 % of the training images)",
                   ylabel="MSE per pixel (pixels in [0, 1])")

    metrics = {
        "bottom_half_mse": mse,
        "lstm_mse_vs_mean_bottom": mse["lstm"] / mse["mean_bottom"],
        "lstm_mse_vs_nearest_top_half": mse["lstm"] / mse["nearest_top_half"],
        "judge": {**scores, "frechet_real_vs_real": floor,
                  "frechet_n_per_side": len(first), "judge_test_accuracy": judge.info["test_accuracy"],
                  "judge_file": str(judge_file), "judge_trained_now": judge.trained,
                  "shown_lstm_agreement": shown_agreement},
        "changes": changes,
        "test_next_patch_mse": test_next_patch_mse,
        "best_params": grid.params,
        "best_epoch": min(grid.history, key=lambda r: r["val_loss"])["epoch"],
        "epochs_run": len(grid.history),
        "train_seconds": float(sum(r["seconds"] for r in grid.history)),
        "seconds_per_epoch": float(np.mean([r["seconds"] for r in grid.history])),
        "generation_seconds": generation_seconds,
        "parameters": count_parameters(model),
        "model": model.config,
        "interrupted": grid.interrupted,
        "targets": TARGETS,
        "data": {"n_train": len(train_idx), "n_val": len(val_idx), "n_test": len(test_images),
                 "patch_side": PATCH, "n_patches": N_PATCHES, "given_patches": GIVEN,
                 "closed_loop_steps": N_PATCHES - GIVEN - 1, "shown": rows},
        "run_seconds": time.time() - started,
        **machine_info(device),
        "config": {k: v for k, v in vars(args).items() if k != "debug"},
    }
    write_json(out_dir / "metrics.json", metrics)

    j = metrics["judge"]
    print(f"bottom-half MSE: LSTM {mse['lstm']:.4f}, mean bottom {mse['mean_bottom']:.4f}, nearest "
          f"training top half {mse['nearest_top_half']:.4f}; judge agreement: LSTM "
          f"{100 * j['lstm']['label_agreement']:.1f} %, originals "
          f"{100 * j['original']['label_agreement']:.1f} %, blank bottom "
          f"{100 * j['blank_bottom']['label_agreement']:.1f} %, nearest top half "
          f"{100 * j['nearest_top_half']['label_agreement']:.1f} %; outputs in {out_dir}/")


if __name__ == "__main__":
    sys.exit(run(main))
