"""Conditional GAN on MNIST: draw the digit you ask for, or impute a digit around its centre
(spec 002, problems 3 and 4).

One conditional GAN (Mirza & Osindero 2014, "Conditional Generative Adversarial Nets") with two
kinds of conditioning vector c, chosen by ``--condition``:

- ``label`` (problem 3): c = the one-hot digit label. Generator 110-200-400-784 (100 noise values
  from N(0, 1) + c; ReLU, tanh output: pixels in [-1, 1]); discriminator 794-400-200-100-1
  (image + c; LeakyReLU, dropout, logistic output). Real images are rescaled to [-1, 1]; every
  fake batch is class-balanced and the one-hot given to the generator is the one appended to its
  image for the discriminator. Scored by the digit judge (``judge.py``): the label agreement of
  10,000 generated digits and the Fréchet distance of their judge features to real test digits,
  beside the real-vs-real floor, after every epoch.
  Writes (default report/cgan/): accuracy.png (the discriminator's accuracy on real and fake
  examples vs epoch), losses.png, judge.png (agreement and Fréchet distance vs epoch),
  samples.png (10×10, one row per class, fresh noise), history.csv, metrics.json.
- ``centre`` (problem 4, missing-value imputation): c = the centre 10×10 patch of a real image,
  flattened (rows and columns 9-18; the spec's ``X[:, 10:19, 10:19]`` is 9×9). Generator
  200-200-400-784, discriminator 884-400-200-100-1. Generator loss = adversarial loss +
  λ · MSE(centre of the generated image, c) (``--centre-weight``; the default trains λ = 0, the
  spec's failure, 0.1 and 10, one GAN each). Scored on the 10,000 test images: centre MSE (are the
  given pixels kept), MSE of the surrounding (missing) pixels against the truth, and the judge's
  agreement of the imputed image with the true label, beside three baselines: the mean training
  image around the true centre, the training image with the nearest centre, and a random
  training image (what ignoring the condition scores).
  Writes (default report/imputation/): imputation_lambda_<λ>.png, training.png, metrics.json,
  and lambda_<λ>/ with each GAN's history.csv and checkpoint.

Training is ``adversarial.fit_adversarial`` (Adam with β1 = 0.5 and low learning rates, tqdm,
history.csv and a checkpoint of both networks and both optimizers after every epoch,
``--resume``, Ctrl-C, and a stop with one line when the run diverges or collapses).

    python cgan_mnist.py --data-dir ../shared/data                       # digits on demand
    python cgan_mnist.py --condition centre --data-dir ../shared/data    # imputation, λ = 0, 0.1, 10
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from adversarial import AdversarialSettings, fit_adversarial
from cli import (Parser, common_parser, non_negative_float, positive_float, positive_int,
                 probability, run, setup_runtime)
from data import load_mnist, mnist_split
from errors import UsageError
from feedforward import (SIDE, ConditionalDiscriminator, ConditionalGenerator, balanced_labels,
                         centre_mask, centre_patch, one_hot)
from hardware import machine_info
from judge import default_judge_file, frechet_from_features, judge_outputs, load_or_train_judge, real_halves
from outputs import prepare_out_dir, write_json
from plotting import COLORS, STYLE, figure, plot_image_grid, plot_panels, save_figure

TASKS = {"label": "cgan", "centre": "imputation"}
DATA_ENV = "LSTM_AE_DATA_DIR"
DEFAULT_CENTRE_WEIGHTS = (0.0, 0.1, 10.0)
EVAL_SEED = 12345          # fixed noise for the per-epoch scores, so epochs are comparable


# ---------------------------------------------------------------------------------------------
# command line

def dropout_rate(text: str) -> float:
    value = probability(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must be < 1, got {value:g}")
    return value


def parse_args(argv=None):
    common = common_parser(TASKS["label"], epochs=40, lr=2e-4, grad_clip=0.0, batch_size=100,
                           lr_schedule="constant", model_flags=(), grid=False)
    for action in common._actions:        # the default folder depends on --condition
        if action.dest == "out_dir":
            action.default = None
            action.help = ("where figures, metrics, history and checkpoints go (default "
                           "report/cgan/ for --condition label, report/imputation/ for centre)")
        if action.dest == "lr":
            action.help = "the generator's Adam learning rate (default 0.0002)"
    parser = Parser(description=__doc__.split("\n\n")[0], parents=[common])
    gan = parser.add_argument_group("conditional GAN")
    gan.add_argument("--condition", choices=tuple(TASKS), default="label",
                     help="label: condition on the one-hot digit (problem 3); centre: on the centre "
                          "10×10 pixels, to impute the rest (problem 4) (default label)")
    gan.add_argument("--noise-dim", type=positive_int, default=100,
                     help="noise values d fed to the generator, from N(0, 1) (default 100)")
    gan.add_argument("--g-hidden", type=positive_int, nargs="+", default=[200, 400], metavar="N",
                     help="generator hidden layer sizes, ReLU (default 200 400)")
    gan.add_argument("--d-hidden", type=positive_int, nargs="+", default=[400, 200, 100],
                     metavar="N", help="discriminator hidden layer sizes, LeakyReLU(0.2) "
                                       "(default 400 200 100)")
    gan.add_argument("--d-dropout", type=dropout_rate, default=0.3,
                     help="dropout after each discriminator hidden layer (default 0.3)")
    gan.add_argument("--no-projection", dest="projection", action="store_false",
                     help="the discriminator sees the condition only concatenated to its input "
                          "(the spec's plain design), without the projection term ⟨P c, h⟩ on "
                          "its last hidden layer (Miyato & Koyama 2018)")
    gan.add_argument("--d-lr", type=positive_float, default=2e-4,
                     help="the discriminator's Adam learning rate (default 0.0002)")
    gan.add_argument("--beta1", type=dropout_rate, default=0.5,
                     help="Adam's β1 for both networks (default 0.5, the usual GAN setting)")
    gan.add_argument("--real-label", type=probability, default=0.9,
                     help="the discriminator's target for real pairs; below 1 is one-sided label "
                          "smoothing (default 0.9)")
    gan.add_argument("--centre-weight", type=non_negative_float, nargs="+", default=None,
                     metavar="λ", help="--condition centre: weight λ of the centre MSE in the "
                                       "generator's loss; several values train one GAN each "
                                       "(default 0 0.1 10)")
    gan.add_argument("--collapse-epochs", type=positive_int, default=5,
                     help="stop when the discriminator is ≥ 99 %% accurate on real and fake "
                          "examples for this many epochs in a row (default 5)")
    data = parser.add_argument_group("data and scores")
    data.add_argument("--data-dir", default=os.environ.get(DATA_ENV, "data"),
                      help=f"folder holding MNIST/raw/ (read only); default ${DATA_ENV} if set, "
                           f"else data/")
    data.add_argument("--train-size", type=positive_int, default=None, metavar="N",
                      help="train on a seeded subset of N of the 54,000 training images "
                           "(default: all)")
    data.add_argument("--test-size", type=positive_int, default=None, metavar="N",
                      help="score on a seeded subset of N of the 10,000 test images (quick runs "
                           "and tests; default: all)")
    data.add_argument("--eval-samples", type=positive_int, default=10_000, metavar="N",
                      help="label: digits generated and judged after every epoch and at the end; "
                           "centre: validation images imputed after every epoch (at most the "
                           "6,000 there) (default 10000)")
    data.add_argument("--judge-file", default=None,
                      help="the digit judge's checkpoint; trained there (about 2 min) if missing "
                           "or stale (default: judge/judge.pt beside --out-dir, i.e. "
                           "report/judge/judge.pt)")
    return parser.parse_args(argv)


def check_args(args) -> None:
    """What argparse cannot check: one UsageError line each, before anything is written."""
    if len(args.lr) > 1 or len(args.grad_clip) > 1:
        raise UsageError("--lr/--grad-clip: one value each (no grid search for the GAN)")
    if args.patience:
        raise UsageError(f"--patience {args.patience}: a GAN has no validation loss to stop on; "
                         f"use --epochs")
    if args.precision != "fp32":
        raise UsageError(f"--precision {args.precision}: cgan_mnist.py trains in fp32 only")
    if args.condition == "label":
        if args.centre_weight is not None:
            raise UsageError("--centre-weight: only with --condition centre")
        if args.eval_samples < 20:
            raise UsageError(f"--eval-samples {args.eval_samples}: need at least 20 (two per "
                             f"class, half of them for the Fréchet distance)")
    elif args.centre_weight is None:
        args.centre_weight = list(DEFAULT_CENTRE_WEIGHTS)
    elif len(set(args.centre_weight)) < len(args.centre_weight):
        raise UsageError(f"--centre-weight {' '.join(f'{w:g}' for w in args.centre_weight)}: "
                         f"a value is repeated")
    if args.out_dir is None:
        args.out_dir = os.path.join("report", TASKS[args.condition])


# ---------------------------------------------------------------------------------------------
# data and the two losses

def to_gan_pixels(images: torch.Tensor) -> torch.Tensor:
    """(N, 28, 28) in [0, 1] → (N, 784) in [-1, 1], the generator's tanh range."""
    return images.flatten(1) * 2 - 1


def to_judge_pixels(flat: torch.Tensor) -> torch.Tensor:
    """(N, 784) in [-1, 1] → (N, 28, 28) in [0, 1], as the judge and the figures want them."""
    return ((flat + 1) / 2).clamp(0, 1).reshape(-1, SIDE, SIDE)


def conditions(condition: str, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The conditioning vector of each real image (N, 784) in [-1, 1]: (N, 10) one-hot labels
    or (N, 100) centre pixels."""
    return one_hot(labels) if condition == "label" else centre_patch(images)


def centre_loss(fake: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
    """MSE between the generated centre (B, 100) and the given one, in the generator's [-1, 1]
    pixel units (4 × the MSE in [0, 1] pixels)."""
    return F.mse_loss(centre_patch(fake), cond)


class ConditionalGANObjective:
    """The two losses of the conditional GAN (``adversarial.Objective``) for either condition.

    Discriminator: ½ [BCE(D(x, c), r) + BCE(D(G(z, c'), c'), 0)], the fakes detached; r =
    ``--real-label`` (1, or e.g. 0.9: one-sided label smoothing, Salimans et al. 2016, which keeps
    the discriminator from becoming over-confident).
    Generator: BCE(D(G(z, c'), c'), real) (the non-saturating loss, Goodfellow et al. 2014 §3)
    + λ · ``centre_loss`` (``--centre-weight``; centre conditioning only).
    c' = a class-balanced set of one-hot labels (label) or the batch's own real centres (centre).
    """

    def __init__(self, condition: str, centre_weight: float = 0.0, real_label: float = 1.0):
        self.condition, self.centre_weight, self.real_label = condition, centre_weight, real_label

    def fake_conditions(self, real_cond: torch.Tensor) -> torch.Tensor:
        if self.condition == "label":
            return one_hot(balanced_labels(len(real_cond), device=real_cond.device))
        return real_cond

    def discriminator_loss(self, generator, discriminator, batch):
        x, cond = batch                                               # (B, 784), (B, C)
        fake_cond = self.fake_conditions(cond)
        fake = generator(generator.noise(len(x)), fake_cond)          # (B, 784), keeps its graph
        real_logits = discriminator(x, cond)                          # (B,)
        fake_logits = discriminator(fake.detach(), fake_cond)         # (B,)
        real_target = torch.full_like(real_logits, self.real_label)
        loss = 0.5 * (F.binary_cross_entropy_with_logits(real_logits, real_target)
                      + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
        metrics = {"d_accuracy_real": (real_logits > 0).float().mean().item(),
                   "d_accuracy_fake": (fake_logits < 0).float().mean().item()}
        return loss, metrics, (fake, fake_cond)

    def generator_loss(self, generator, discriminator, fakes):
        fake, fake_cond = fakes
        logits = discriminator(fake, fake_cond)
        adversarial = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
        if self.condition == "label":
            return adversarial, {}
        centre = centre_loss(fake, fake_cond)
        return (adversarial + self.centre_weight * centre,
                {"g_adversarial": adversarial.item(), "g_centre_mse": centre.item()})


@torch.no_grad()
def generate(generator, cond: torch.Tensor, seed: int, batch_size: int = 2000) -> torch.Tensor:
    """G(z, c) for every condition row, with noise from a seeded generator: (N, 784) on the CPU."""
    generator.eval()
    noise_gen = torch.Generator().manual_seed(seed)
    device = next(generator.parameters()).device
    out = [generator(generator.noise(len(c), noise_gen), c.to(device)).cpu()
           for c in cond.split(batch_size)]
    return torch.cat(out)


def pixel_std(flat: torch.Tensor) -> float:
    """Per-pixel standard deviation across samples, averaged over pixels ([0, 1] units): ~0 when
    the generator draws the same image whatever its noise and condition."""
    return ((flat + 1) / 2).std(0).mean().item()


# ---------------------------------------------------------------------------------------------
# scores

def digit_scores(judge, flat: torch.Tensor, labels: torch.Tensor, real_features: torch.Tensor) -> dict:
    """Judge label agreement of all images (N, 784) with ``labels``, and the Fréchet distance of
    the first half's judge features to ``real_features`` (the real test set's second half)."""
    judged, features = judge_outputs(judge, to_judge_pixels(flat))
    half = len(flat) // 2
    return {"judge_agreement": (judged == labels).double().mean().item(),
            "frechet": frechet_from_features(features[:half], real_features),
            "gen_std": pixel_std(flat)}


def imputation_scores(judge, flat: torch.Tensor, truth: torch.Tensor, labels: torch.Tensor) -> dict:
    """Centre MSE, surround MSE (both in [0, 1] pixels) and judge agreement of imputed images
    (N, 784) against the true images (N, 784) in [-1, 1] and their labels."""
    mask = centre_mask()
    sq = ((flat - truth) / 2).pow(2)                                   # [0, 1] pixel units
    judged = judge_outputs(judge, to_judge_pixels(flat))[0]
    return {"centre_mse": sq[:, mask].mean().item(), "surround_mse": sq[:, ~mask].mean().item(),
            "judge_agreement": (judged == labels).double().mean().item(),
            "gen_std": pixel_std(flat)}


def nearest_by_centre(train_centres: torch.Tensor, query: torch.Tensor, chunk: int = 1000) -> torch.Tensor:
    """Index of the training image whose centre is nearest (Euclidean) to each query centre."""
    out = [torch.cdist(q, train_centres).argmin(1) for q in query.split(chunk)]
    return torch.cat(out)


# ---------------------------------------------------------------------------------------------
# the two experiments

def build_pair(args, cond_dim: int, seed: int):
    torch.manual_seed(seed)
    generator = ConditionalGenerator(args.noise_dim, cond_dim, tuple(args.g_hidden))
    discriminator = ConditionalDiscriminator(SIDE * SIDE, cond_dim, tuple(args.d_hidden),
                                             args.d_dropout, args.projection)
    return generator, discriminator


def train_pair(args, objective, train, run_dir, device, epoch_end, desc):
    cond_dim = train[1].shape[1]
    generator, discriminator = build_pair(args, cond_dim, args.seed)
    settings = AdversarialSettings(lr_g=args.lr[0], lr_d=args.d_lr, beta1=args.beta1,
                                   optimizer=args.optimizer, lr_schedule=args.lr_schedule,
                                   grad_clip=args.grad_clip[0], batch_size=args.batch_size,
                                   epochs=args.epochs, collapse_epochs=args.collapse_epochs)
    identity = dict(task=TASKS[args.condition], generator=generator.config,
                    discriminator=discriminator.config, train_size=args.train_size,
                    seed=args.seed, eval_samples=args.eval_samples, test_size=args.test_size,
                    real_label=args.real_label,
                    centre_weight=getattr(objective, "centre_weight", None),
                    settings={k: v for k, v in asdict(settings).items() if k != "epochs"})
    result = fit_adversarial(generator, discriminator, objective, train, settings, run_dir=run_dir,
                             identity=identity, device=device, seed=args.seed, resume=args.resume,
                             epoch_end=epoch_end, desc=desc)
    return generator, result


def label_experiment(args, data, judge, out_dir: Path, device) -> dict:
    """Problem 3: train the label-conditioned GAN, score it per epoch and at the end, plot."""
    test_flat, test_labels = data["test"]
    first, second = real_halves(len(test_flat), args.seed)
    real_judged, real_features = judge_outputs(judge, to_judge_pixels(test_flat))
    floor = frechet_from_features(real_features[first], real_features[second])
    eval_labels = balanced_labels(args.eval_samples)
    eval_cond = one_hot(eval_labels)

    def epoch_end(generator, _discriminator):
        fakes = generate(generator, eval_cond, EVAL_SEED)
        return digit_scores(judge, fakes, eval_labels, real_features[second])

    generator, result = train_pair(args, ConditionalGANObjective("label", real_label=args.real_label), data["train"], out_dir,
                                   device, epoch_end, "cGAN (label)")
    if not result.history:
        raise UsageError("training stopped before the first epoch finished: nothing to evaluate")
    # final scores with fresh noise (not the per-epoch noise), beside two reference image sets
    fakes = generate(generator, eval_cond, args.seed + 1)
    final = digit_scores(judge, fakes, eval_labels, real_features[second])
    train_flat, train_labels = data["train_images"]
    class_means = torch.stack([train_flat[train_labels == d].mean(0) for d in range(10)])
    mean_scores = digit_scores(judge, class_means[eval_labels], eval_labels, real_features[second])
    real_scores = {"judge_agreement": (real_judged == test_labels).double().mean().item(),
                   "frechet": floor}

    history = result.history
    epochs = [r["epoch"] for r in history]
    plot_panels([{"title": "", "x": epochs, "lines": [
        ("real examples", [100 * r["d_accuracy_real"] for r in history], {"color": "red"}),
        ("fake examples", [100 * r["d_accuracy_fake"] for r in history], {"color": "blue"}),
        ("50 % (confused)", [50] * len(epochs), {"color": "grey", "linestyle": ":"})]}],
        out_dir / "accuracy.png", xlabel="epoch", ylabel="accuracy (%, training batches)",
        title="Discriminator accuracy on real and fake examples (label-conditioned GAN)",
        row_height=4.2)
    plot_panels([{"title": "", "x": epochs, "lines": [
        ("discriminator", [r["d_loss"] for r in history], {"color": "C0"}),
        ("generator", [r["g_loss"] for r in history], {"color": "C1"}),
        ("D at equilibrium (ln 2)", [np.log(2)] * len(epochs), {"color": "grey", "linestyle": ":"})]}],
        out_dir / "losses.png", xlabel="epoch", ylabel="binary cross-entropy (nats)",
        title="GAN losses per epoch (mean over training batches)", row_height=4.2)
    plot_judge_scores(history, out_dir / "judge.png", floor=floor, mean_scores=mean_scores,
                      real_agreement=real_scores["judge_agreement"])
    plot_samples(judge, generator, out_dir / "samples.png", seed=args.seed + 2, final=final)

    return {"judge_agreement": final["judge_agreement"], "frechet": final["frechet"],
            "frechet_real_vs_real": floor, "frechet_vs_floor": final["frechet"] / floor,
            "gen_std": final["gen_std"], "n_generated": len(fakes), "frechet_n_per_side": len(second),
            "last_epoch": history[-1],
            "baselines": {"chance": 0.1, "class_mean_images": mean_scores, "real_test_digits": real_scores},
            "epochs_run": len(history), "interrupted": result.interrupted,
            "train_seconds": result.seconds,
            "seconds_per_epoch": float(np.mean([r["seconds"] for r in history])),
            "parameters": {"generator": sum(p.numel() for p in generator.parameters())}}


def centre_experiment(args, data, judge, out_dir: Path, device) -> dict:
    """Problem 4: one GAN per λ; each imputes the 10,000 test images from their centres."""
    test_flat, test_labels = data["test"]
    val_flat, val_labels = data["val"]
    n_val = min(args.eval_samples, len(val_flat))
    val_flat, val_labels = val_flat[:n_val], val_labels[:n_val]
    val_cond, test_cond = centre_patch(val_flat), centre_patch(test_flat)

    def epoch_end(generator, _discriminator):
        return imputation_scores(judge, generate(generator, val_cond, EVAL_SEED), val_flat, val_labels)

    results, histories = {}, {}
    for weight in args.centre_weight:
        name = f"{weight:g}"
        generator, result = train_pair(args, ConditionalGANObjective("centre", weight, args.real_label),
                                       data["train"], out_dir / f"lambda_{name}", device, epoch_end,
                                       f"cGAN (centre, λ={name})")
        if result.history:
            imputed = generate(generator, test_cond, args.seed + 1)
            results[name] = {**imputation_scores(judge, imputed, test_flat, test_labels),
                             "epochs_run": len(result.history), "interrupted": result.interrupted,
                             "train_seconds": result.seconds,
                             "seconds_per_epoch": float(np.mean([r["seconds"] for r in result.history])),
                             "last_epoch": result.history[-1]}
            histories[name] = result.history
            plot_imputations(imputed, test_flat, test_labels, out_dir / f"imputation_lambda_{name}.png",
                             weight=name, scores=results[name])
        if result.interrupted:
            break
    if not results:
        raise UsageError("training stopped before the first epoch finished: nothing to evaluate")

    # baselines on the same test images
    train_flat, train_labels = data["train_images"]
    mask = centre_mask()
    mean_image = train_flat.mean(0).expand_as(test_flat).clone()
    mean_image[:, mask] = test_cond                                    # the true centre pasted in
    nearest = train_flat[nearest_by_centre(centre_patch(train_flat), test_cond)]
    random_pick = torch.randint(len(train_flat), (len(test_flat),),
                                generator=torch.Generator().manual_seed(args.seed))
    shuffled = train_flat[random_pick]                                 # ignores the condition
    baselines = {"mean_image_true_centre": imputation_scores(judge, mean_image, test_flat, test_labels),
                 "nearest_centre_training_image": imputation_scores(judge, nearest, test_flat, test_labels),
                 "random_training_image": imputation_scores(judge, shuffled, test_flat, test_labels)}
    plot_centre_training(histories, out_dir / "training.png")
    return {"lambda": results, "baselines": baselines, "centre_weights": list(results),
            "centre_pixels": "rows and columns 9-18 (X[:, 9:19, 9:19], 10×10 = 100 values; the "
                             "spec's X[:, 10:19, 10:19] is 9×9 = 81)",
            "mse_units": "pixels in [0, 1]", "n_test": len(test_flat), "n_val_per_epoch": n_val,
            "interrupted": any(r["interrupted"] for r in results.values())}


# ---------------------------------------------------------------------------------------------
# figures

def plot_judge_scores(history, path, *, floor, mean_scores, real_agreement) -> None:
    """Label agreement and Fréchet distance of the generated digits vs epoch, with references."""
    epochs = [r["epoch"] for r in history]
    fig, (left, right) = figure(1, 2, width=12.0, row_height=4.5)
    with plt.rc_context(STYLE):
        left.plot(epochs, [100 * r["judge_agreement"] for r in history], "o-", color=COLORS[0],
                  markersize=3, label="generated digits")
        left.axhline(100 * real_agreement, color="black", linestyle="--",
                     label=f"real test digits ({100 * real_agreement:.1f} %)")
        left.axhline(95, color="grey", linestyle=":", label="target 95 %")
        left.set_xlabel("epoch")
        left.set_ylabel("judge agrees with the label (%)")
        left.set_title("Label agreement (judge)")
        left.legend(framealpha=0.85)
        right.plot(epochs, [r["frechet"] for r in history], "o-", color=COLORS[1], markersize=3,
                   label="generated vs real test")
        right.axhline(floor, color="black", linestyle="--", label=f"real vs real ({floor:.3g})")
        right.axhline(mean_scores["frechet"], color="grey", linestyle=":",
                      label=f"class-mean images ({mean_scores['frechet']:.3g})")
        right.set_yscale("log")
        right.set_xlabel("epoch")
        right.set_ylabel("Fréchet distance (judge features)")
        right.set_title("Fréchet distance to real test digits")
        right.legend(framealpha=0.85)
        fig.suptitle("Generated digits scored by the digit judge after every epoch")
    save_figure(fig, path)


def plot_samples(judge, generator, path, *, seed: int, final: dict) -> None:
    """samples.png: ten fresh samples per class, one row per class, each titled by the judge."""
    labels = torch.arange(10).repeat_interleave(10)                    # (100,) row r = digit r
    images = to_judge_pixels(generate(generator, one_hot(labels), seed))
    judged = judge_outputs(judge, images)[0]
    rows = [[images[10 * r + c].numpy() for c in range(10)] for r in range(10)]
    titles = [[f"judge: {int(judged[10 * r + c])}" for c in range(10)] for r in range(10)]
    plot_image_grid(rows, path, row_labels=[f"asked for {d}" for d in range(10)], col_labels=titles,
                    value_label="pixel value (0 = black)", cell=1.25,
                    title=f"Generated digits, fresh noise (judge agreement over "
                          f"{final['judge_agreement'] * 100:.1f} % of 10,000 samples)")


def plot_imputations(imputed, truth, labels, path, *, weight: str, scores: dict) -> None:
    """imputation_lambda_<λ>.png: for one test image of each digit, the given centre, the GAN's
    imputed image and the ground truth."""
    digits = [d for d in range(10) if (labels == d).any()]
    picks = [int((labels == d).nonzero()[0, 0]) for d in digits]
    mask = centre_mask()
    given = torch.full_like(truth[picks], 0.0)                          # unknown pixels: mid-grey
    given[:, mask] = truth[picks][:, mask]
    rows = [[to_judge_pixels(t)[0].numpy() for t in block] for block in
            (given, imputed[picks], truth[picks])]
    plot_image_grid(rows, path, row_labels=["given centre", f"imputed, λ = {weight}", "ground truth"],
                    col_labels=[f"test digit {d}" for d in digits],
                    value_label="pixel value (0 = black; grey = not given)", cell=1.35,
                    title=f"Imputation from the centre 10×10 (λ = {weight}): centre MSE "
                          f"{scores['centre_mse']:.4f}, surround MSE {scores['surround_mse']:.4f}, "
                          f"judge agreement {100 * scores['judge_agreement']:.1f} % "
                          f"({len(truth):,} test images)")


def plot_centre_training(histories: dict, path) -> None:
    """training.png: discriminator accuracy, validation centre MSE and judge agreement vs epoch,
    one colour per λ."""
    fig, axes = figure(1, 3, width=15.0, row_height=4.3)
    with plt.rc_context(STYLE):
        for i, (name, history) in enumerate(histories.items()):
            epochs = [r["epoch"] for r in history]
            color = COLORS[i % len(COLORS)]
            axes[0].plot(epochs, [100 * r["d_accuracy_real"] for r in history], "-", color=color,
                         label=f"λ = {name}, real")
            axes[0].plot(epochs, [100 * r["d_accuracy_fake"] for r in history], "--", color=color,
                         label=f"λ = {name}, fake")
            axes[1].plot(epochs, [r["centre_mse"] for r in history], "o-", markersize=3, color=color,
                         label=f"λ = {name}")
            axes[2].plot(epochs, [100 * r["judge_agreement"] for r in history], "o-", markersize=3,
                         color=color, label=f"λ = {name}")
        axes[0].set_ylabel("discriminator accuracy (%)")
        axes[0].set_title("Discriminator (training batches)")
        axes[1].set_yscale("log")
        axes[1].set_ylabel("centre MSE (pixels in [0, 1])")
        axes[1].set_title("Is the given centre kept? (validation)")
        axes[2].set_ylabel("judge agrees with true label (%)")
        axes[2].set_title("Is it the right digit? (validation)")
        for ax in axes:
            ax.set_xlabel("epoch")
            ax.legend(framealpha=0.85, fontsize=8)
        fig.suptitle("Imputation GANs per epoch, one colour per centre weight λ")
    save_figure(fig, path)


# ---------------------------------------------------------------------------------------------

def load_data(args) -> dict:
    """Training (and validation) images as (N, 784) in [-1, 1] with their conditions; test."""
    images, labels = load_mnist(args.data_dir, train=True)
    test_images, test_labels = load_mnist(args.data_dir, train=False)
    train_idx, val_idx = mnist_split(args.seed, args.train_size, n=len(images))
    if args.test_size is not None:
        if args.test_size > len(test_images):
            raise UsageError(f"--test-size {args.test_size}: the test set has {len(test_images)} images")
        pick = torch.randperm(len(test_images), generator=torch.Generator().manual_seed(args.seed))
        test_images, test_labels = test_images[pick[:args.test_size]], test_labels[pick[:args.test_size]]
    flat, test_flat = to_gan_pixels(images), to_gan_pixels(test_images)
    train_flat, train_labels = flat[train_idx], labels[train_idx]
    return {"train": [train_flat, conditions(args.condition, train_flat, train_labels)],
            "train_images": (train_flat, train_labels),
            "val": (flat[val_idx], labels[val_idx]), "test": (test_flat, test_labels)}


def main(argv=None):
    args = parse_args(argv)
    check_args(args)
    device = setup_runtime(args)
    started = time.time()
    data = load_data(args)
    out_dir = prepare_out_dir(args.out_dir)
    judge_file = Path(args.judge_file) if args.judge_file else default_judge_file(out_dir)
    prepare_out_dir(judge_file.parent, "--judge-file")
    judge = load_or_train_judge(judge_file, args.data_dir, device)

    experiment = label_experiment if args.condition == "label" else centre_experiment
    metrics = experiment(args, data, judge, out_dir, device)
    metrics.update({
        "condition": args.condition,
        "judge": {"file": str(judge_file), "test_accuracy": judge.info["test_accuracy"]},
        "n_train": len(data["train"][0]),
        "run_seconds": time.time() - started,
        **machine_info(device),
        "config": {k: v for k, v in vars(args).items() if k != "debug"},
    })
    write_json(out_dir / "metrics.json", metrics)
    report_line(metrics, out_dir)


def report_line(m: dict, out_dir: Path) -> None:
    if m["condition"] == "label":
        print(f"judge agreement {100 * m['judge_agreement']:.2f} % of {m['n_generated']:,} generated "
              f"digits (class-mean images {100 * m['baselines']['class_mean_images']['judge_agreement']:.1f} %, "
              f"chance 10 %); Fréchet {m['frechet']:.3g} vs real-vs-real {m['frechet_real_vs_real']:.3g} "
              f"(class means {m['baselines']['class_mean_images']['frechet']:.3g}); "
              f"{m['epochs_run']} epochs in {m['train_seconds']:.0f} s; outputs in {out_dir}/")
        return
    for name, r in m["lambda"].items():
        print(f"λ = {name}: centre MSE {r['centre_mse']:.4f}, surround MSE {r['surround_mse']:.4f}, "
              f"judge agreement {100 * r['judge_agreement']:.1f} %")
    for name, r in m["baselines"].items():
        print(f"{name}: centre MSE {r['centre_mse']:.4f}, surround MSE {r['surround_mse']:.4f}, "
              f"judge agreement {100 * r['judge_agreement']:.1f} %")
    print(f"outputs in {out_dir}/")


if __name__ == "__main__":
    sys.exit(run(main))
