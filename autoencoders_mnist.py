"""Compression, denoising and sparse autoencoders and a VAE on MNIST (spec 004, tasks 1 and 2).

Every kind trains with the shared loop (``training.fit``: checkpoints, ``--resume``, Ctrl-C keeps
the best model) on the MNIST script's split (``data.mnist_split``: a seeded 10 % of the training
images for validation; the 10,000 test images only for the final numbers), and is evaluated
from its best weights beside the training-set mean image and PCA with the same code size
(``baselines.py``), fitted on the training split.

- compression: 784-128-32-128-784, sigmoid on every layer, MSE (spec 1.1).
- denoising: the same network fed x + N(0, σ²) (``--noise-std`` 0.2), loss against the clean x
  (spec 1.2; Vincent et al. 2008, "Extracting and composing robust features with denoising
  autoencoders"); the noisy input's own MSE is its baseline.
- sparse: the same network plus ``--sparsity-weight`` × Σ_j KL(ρ ‖ ρ̂_j) on the mean activation
  ρ̂_j of each code unit over the batch, ρ = ``--sparsity`` 0.01 (spec 1.3,
  ``feedforward.sparsity_penalty``); the weight ramps up linearly over the first
  ``--sparsity-warmup`` epochs, so the code learns features before it is made sparse.
- vae: 784-128-64-(10 μ, 10 log σ²) → z = μ + σ ε → 10-64-128-784, ReLU, sigmoid output, loss =
  mean pixel-wise BCE + 0.001 × KL (spec 2; ``feedforward.VAE``, ``vae_loss``); reconstructions,
  samples from the prior, and interpolations in latent space beside pixel space. Beyond the
  spec, samples from a Gaussian mixture fitted to the training images' posterior means
  (``--mixture-components``). The digit judge (``judge.py``) scores 10,000 samples of each
  sampler: how confidently it reads them as digits, which digits, and their Fréchet distance to
  real test digits, beside real test digits, the VAE's reconstructions of them (the best its
  decoder draws) and samples of a Gaussian over PCA-10 coefficients (the linear generative model
  of the same size).

Writes to ``--out-dir`` (default report/autoencoders/): reconstructions.png, denoising.png,
sparse_codes.png, vae_samples.png, vae_samples_mixture.png, vae_interpolation.png, loss.png,
metrics.json, and one run folder per kind (history.csv, checkpoint.pt).

    python autoencoders_mnist.py --data-dir ../shared/data                 # all four kinds
    python autoencoders_mnist.py --kind denoising --noise-std 0.5 --epochs 10
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.mixture import GaussianMixture
from torch.distributions import Categorical, MixtureSameFamily, MultivariateNormal

from baselines import pca_decode, pca_fit, pca_reconstruct, pca_reconstruction_mse
from cli import (Parser, add_mnist_flags, common_parser, non_negative_float, non_negative_int,
                 positive_float, positive_int, run, setup_runtime)
from data import load_mnist, mnist_split
from errors import UsageError
from feedforward import VAE, DenseAutoencoder, sparsity_penalty, vae_loss
from hardware import machine_info
from judge import (default_judge_file, frechet_from_features, judge_outputs, load_or_train_judge,
                   real_halves)
from models import count_parameters
from outputs import prepare_out_dir, write_json
from plotting import figure, plot_histories, plot_image_mosaic, save_figure
from training import CHECKPOINT, Stream, TrainSettings, batches, fit

TASK = "autoencoders"
KINDS = ("compression", "denoising", "sparse", "vae")
AE_SIZES = (784, 128, 32)          # 784-128-32-128-784
VAE_SIZES = (784, 128, 64)         # encoder; latent 10; mirrored decoder
SIDE = 28
NAMES = {"compression": "compression AE", "denoising": "denoising AE", "sparse": "sparse AE",
         "vae": "VAE"}
SPARSITY_WEIGHT = 0.005            # with the warm-up: code activation within 2x of ρ = 0.01
SPARSITY_WARMUP = 20               # epochs (README: the sparse AE's measured choice)
JUDGED_SAMPLES = 10_000            # prior samples the digit judge scores
CONFIDENT = 0.9                    # a sample is read confidently if the judge's top softmax ≥ this
CONFIDENT_SHARE_TARGET = 0.8       # the "classifies confidently", made a number


def open_unit_interval(text: str) -> float:
    value = positive_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {value:g}")
    return value


def parse_args(argv=None):
    common = common_parser(TASK, model_flags=(), epochs=50, lr=0.01, grad_clip=0.0,
                           batch_size=256, lr_schedule="constant", grid=False)
    parser = Parser(description=__doc__.split("\n\n")[0], parents=[common])
    parser.add_argument("--kind", choices=(*KINDS, "all"), default="all",
                        help="which autoencoder to train (default all: the four, one after the other)")
    add_mnist_flags(parser)
    ae = parser.add_argument_group("autoencoders (spec 004 task 1)")
    ae.add_argument("--code-size", type=positive_int, default=AE_SIZES[-1],
                    help=f"units in the coding layer of the 784-128-Z-128-784 network "
                         f"(default {AE_SIZES[-1]})")
    ae.add_argument("--noise-std", type=non_negative_float, default=0.2,
                    help="denoising: standard deviation of the Gaussian noise added to the "
                         "input (pixels in [0, 1]; default 0.2)")
    ae.add_argument("--sparsity", type=open_unit_interval, default=0.01,
                    help="sparse: target mean activation ρ of each code unit, in (0, 1) "
                         "(default 0.01)")
    ae.add_argument("--sparsity-weight", type=non_negative_float, default=SPARSITY_WEIGHT,
                    help=f"sparse: weight β of the KL sparsity penalty, loss = MSE + β Σ_j "
                         f"KL(ρ ‖ ρ̂_j) (default {SPARSITY_WEIGHT:g})")
    ae.add_argument("--sparsity-warmup", type=non_negative_int, default=SPARSITY_WARMUP,
                    metavar="EPOCHS",
                    help=f"sparse: β ramps linearly from β/EPOCHS to β over the first EPOCHS "
                         f"epochs (0 = β from the start; default {SPARSITY_WARMUP})")
    vae = parser.add_argument_group("VAE (spec 004 task 2)")
    vae.add_argument("--vae-epochs", type=positive_int, default=50,
                     help="VAE training epochs (default 50)")
    vae.add_argument("--vae-lr", type=positive_float, default=1e-4,
                     help="VAE Adam learning rate (default 0.0001)")
    vae.add_argument("--vae-batch-size", type=positive_int, default=128,
                     help="VAE images per training step (default 128)")
    vae.add_argument("--latent-dim", type=positive_int, default=10,
                     help="VAE latent dimensions (default 10)")
    vae.add_argument("--kl-weight", type=non_negative_float, default=0.001,
                     help="VAE loss = mean pixel-wise BCE + w × KL (default 0.001)")
    vae.add_argument("--mixture-components", type=positive_int, default=50,
                     help="VAE: components of the Gaussian mixture fitted to the training images' "
                          "posterior means, a second sampler beside the prior; more components "
                          "follow the images' codes more closely, at a longer fit (default 50; "
                          "see README)")
    vae.add_argument("--judge-file", default=None,
                     help="the digit judge's checkpoint that scores the VAE samples; trained there "
                          "(about 2 min) if missing or stale (default: judge/judge.pt beside "
                          "--out-dir, i.e. report/judge/judge.pt)")
    args = parser.parse_args(argv)
    if len(args.lr) > 1 or len(args.grad_clip) > 1:
        raise UsageError("--lr and --grad-clip take one value here (no grid search)")
    return args


# ---------------------------------------------------------------------------------------------
# losses (one step_fn per kind; training.fit calls them on (B, 784) batches)

def compression_step(model, batch):
    """MSE between the image and its reconstruction."""
    x = batch[0]
    mse = F.mse_loss(model(x), x)
    return mse, {"mse": mse.item()}


def denoising_step(noise_std: float):
    """Training batches (x,) get fresh noise from torch's global generator (seeded by --seed
    and saved in the checkpoint, so --resume continues the same noise); validation and test
    batches come as (noisy, clean) pairs drawn once."""
    def step(model, batch):
        if len(batch) == 2:
            noisy, clean = batch
        else:
            clean = batch[0]
            noisy = clean + noise_std * torch.randn_like(clean)
        mse = F.mse_loss(model(noisy), clean)
        return mse, {"mse": mse.item()}
    return step


def sparse_step(rho: float, weight: float):
    """MSE + β Σ_j KL(ρ ‖ ρ̂_j), ρ̂ the code units' mean activation over the batch. Training
    batches (x, β_epoch) carry the warm-up's β (``sparse_batches``); validation and test
    batches (x,) use the full ``weight``."""
    def step(model, batch):
        x = batch[0]
        beta = batch[1] if len(batch) == 2 else weight
        codes = model.encode(x)                                # (B, Z) in (0, 1)
        mse = F.mse_loss(model.decoder(codes), x)
        penalty, rho_hat = sparsity_penalty(codes, rho)
        return mse + beta * penalty, {"mse": mse.item(), "sparsity_kl": penalty.item(),
                                      "mean_activation": rho_hat.mean().item()}
    return step


def warmup_weight(weight: float, warmup_epochs: int, epoch: int) -> float:
    """The sparsity weight in (1-based) ``epoch``: weight · epoch / warmup_epochs over the first
    ``warmup_epochs`` epochs, then ``weight`` (0 epochs: ``weight`` throughout)."""
    return weight * min(1.0, epoch / warmup_epochs) if warmup_epochs else weight


def sparse_batches(train_x: torch.Tensor, batch_size: int, weight: float, warmup_epochs: int,
                   seed: int) -> Stream:
    """Shuffled training batches (x, β_epoch): each epoch's order and β are functions of the
    epoch number, so ``--resume`` continues the same schedule."""
    def epoch_batches(epoch):
        beta = torch.tensor(warmup_weight(weight, warmup_epochs, epoch))
        order = torch.Generator().manual_seed(seed * 10_007 + epoch)
        return ((x, beta) for (x,) in batches([train_x], batch_size, shuffle=True,
                                               generator=order))
    return Stream(epoch_batches, math.ceil(len(train_x) / batch_size))


def vae_step(kl_weight: float):
    """The spec's loss: mean pixel-wise BCE + w × KL; metrics per image in nats."""
    def step(model, batch):
        x = batch[0]
        loss, metrics = vae_loss(model(x), x, kl_weight=kl_weight, reconstruction="mean")
        return loss, metrics
    return step


# ---------------------------------------------------------------------------------------------
# stages

def load_data(args):
    """(train, val, test) image tensors (N, 784) in [0, 1] and test labels."""
    train_images, _ = load_mnist(args.data_dir, train=True, download=args.download)
    test_images, test_labels = load_mnist(args.data_dir, train=False, download=args.download)
    train_idx, val_idx = mnist_split(args.seed, args.train_size, n=len(train_images))
    flat = train_images.flatten(1)
    return flat[train_idx], flat[val_idx], test_images.flatten(1), test_labels


def noisy_copy(x: torch.Tensor, std: float, seed: int) -> torch.Tensor:
    """x + N(0, std²) with its own seeded generator (the same noisy images every run)."""
    return x + std * torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))


def train_kind(kind, args, data, out_dir, device):
    """Build, train (or resume) and return (model, FitResult, step_fn) for one kind."""
    train_x, val_x, _, _ = data
    run_dir = out_dir / kind
    run_dir.mkdir(exist_ok=True)
    torch.manual_seed(args.seed)
    if kind == "vae":
        model = VAE(VAE_SIZES, args.latent_dim)
        settings = TrainSettings.from_args(args, lr=args.vae_lr, epochs=args.vae_epochs,
                                           batch_size=args.vae_batch_size)
        step, extra = vae_step(args.kl_weight), dict(kl_weight=args.kl_weight)
    else:
        model = DenseAutoencoder((*AE_SIZES[:-1], args.code_size), activation="sigmoid")
        settings = TrainSettings.from_args(args)
        step, extra = {"compression": (compression_step, {}),
                       "denoising": (denoising_step(args.noise_std), dict(noise_std=args.noise_std)),
                       "sparse": (sparse_step(args.sparsity, args.sparsity_weight),
                                  dict(sparsity=args.sparsity, weight=args.sparsity_weight,
                                       warmup_epochs=args.sparsity_warmup)),
                       }[kind]
    val = [noisy_copy(val_x, args.noise_std, args.seed + 1), val_x] if kind == "denoising" else [val_x]
    # everything but the epoch budget must match for --resume (more epochs continue a run)
    trained_with = {k: v for k, v in vars(settings).items() if k not in ("epochs", "patience")}
    identity = dict(task=TASK, kind=kind, model=model.config, settings=trained_with,
                    data=dict(seed=args.seed, train_size=args.train_size, n_train=len(train_x)),
                    **extra)
    train = (sparse_batches(train_x, settings.batch_size, args.sparsity_weight,
                            args.sparsity_warmup, args.seed) if kind == "sparse" else [train_x])
    resume = args.resume and (run_dir / CHECKPOINT).exists()
    result = fit(model, step, train, val, settings, run_dir=run_dir, identity=identity,
                 device=device, seed=args.seed, resume=resume, desc=NAMES[kind],
                 eval_batch_size=4096)
    model.eval()
    return model, result, step


@torch.no_grad()
def codes_of(model, x, batch=4096) -> torch.Tensor:
    return torch.cat([model.encode(chunk) for chunk in x.split(batch)]).cpu()


@torch.no_grad()
def reconstruct(model, x, batch=4096) -> torch.Tensor:
    """Deterministic reconstructions (VAE: decoded μ)."""
    outs = []
    for chunk in x.split(batch):
        out = model(chunk)
        outs.append((out.recon if isinstance(model, VAE) else out).cpu())
    return torch.cat(outs)


@torch.no_grad()
def vae_test_metrics(model, x, kl_weight, seed, batch=4096) -> dict:
    """Test numbers of the VAE: the negative ELBO per image (nats) estimated with one sample
    z ~ q(z|x) per image (seeded), its BCE and KL parts, the spec's loss, and the MSE and BCE of
    the deterministic reconstruction from z = μ. (``training.evaluate`` would put the model in
    eval mode, where z = μ, so the sampled pass is written out here.)"""
    sums, step = {}, vae_step(kl_weight)
    model.train()                                                 # sample z, as the ELBO needs
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for chunk in x.split(batch):
            loss, metrics = step(model, (chunk,))
            for key, value in {"loss": loss.item(), **metrics}.items():
                sums[key] = sums.get(key, 0.0) + value * len(chunk)
    model.eval()
    sampled = {key: value / len(x) for key, value in sums.items()}
    recon = reconstruct(model, x).to(x.device)
    bce_mu = F.binary_cross_entropy(recon, x, reduction="sum").item() / len(x)
    return {"test_loss": sampled["loss"], "test_neg_elbo": sampled["neg_elbo"],
            "test_bce": sampled["bce"], "test_kl": sampled["kl"],
            "test_bce_at_mean": bce_mu, "test_mse": F.mse_loss(recon, x).item()}


@torch.no_grad()
def pca_gaussian_samples(pca, n: int, generator: torch.Generator) -> torch.Tensor:
    """n images (n, 784) in [0, 1] from a Gaussian over the PCA coefficients (each component's
    training variance), decoded: the linear generative model with the VAE's latent size."""
    codes = torch.randn(n, len(pca.explained_variance), generator=generator, dtype=torch.float64)
    return pca_decode(pca, codes * pca.explained_variance.sqrt()).clamp(0, 1).float()


@torch.no_grad()
def judge_scores(judge, images: torch.Tensor, real_features: torch.Tensor) -> dict:
    """How the digit judge reads images (N, 784) in [0, 1]: the mean of its top softmax
    probability, the share read with top probability ≥ CONFIDENT, the share of each judged digit,
    and the Fréchet distance between the judge features of the first len(real_features) images
    and ``real_features`` (real test digits), the footing of ``judge.real_floor``."""
    labels, features = judge_outputs(judge, images.reshape(-1, SIDE, SIDE))
    judge.model.eval()
    device = next(judge.model.parameters()).device
    top = torch.cat([judge.model.classify(chunk.float().to(device)).softmax(1).amax(1).cpu()
                     for chunk in features.split(4096)])                          # (N,)
    return {"mean_top_probability": top.mean().item(),
            "confident_share": (top >= CONFIDENT).double().mean().item(),
            "digit_shares": (torch.bincount(labels, minlength=10) / len(labels)).tolist(),
            "frechet_to_real": frechet_from_features(features[:len(real_features)], real_features),
            "n_images": len(images)}


@torch.no_grad()
def posterior_mixture(vae: VAE, train_x: torch.Tensor, components: int, seed: int):
    """A Gaussian mixture (full covariances, scikit-learn) fitted to the posterior means μ(x) of
    the training images: sampling it instead of the prior N(0, I) ("ex-post density
    estimation", Ghosh et al. 2020, "From Variational to Deterministic Autoencoders") avoids
    the regions of the prior that no image encodes to."""
    device = vae.to_mu.weight.device
    mu = torch.cat([vae.encode(chunk.to(device))[0].cpu() for chunk in train_x.split(4096)])
    fitted = GaussianMixture(components, covariance_type="full", random_state=seed).fit(
        mu.double().numpy())
    return MixtureSameFamily(Categorical(probs=torch.from_numpy(fitted.weights_)),
                             MultivariateNormal(torch.from_numpy(fitted.means_),
                                                covariance_matrix=torch.from_numpy(fitted.covariances_)))


@torch.no_grad()
def mixture_samples(vae: VAE, mixture, n: int, seed: int) -> torch.Tensor:
    """n images (n, 784) decoded from z drawn from ``posterior_mixture`` (seeded)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        z = mixture.sample((n,)).float()                                    # (n, latent)
    return vae.decode(z.to(vae.to_mu.weight.device)).cpu()


def judge_vae_samples(vae: VAE, pca, train_x: torch.Tensor, test_x: torch.Tensor,
                      judge_file: Path, args, device) -> tuple[dict, torch.Tensor]:
    """The digit judge's scores of JUDGED_SAMPLES VAE samples, from the prior and from the
    posterior mixture, beside the VAE's reconstructions of real test digits (the best its
    decoder draws), samples of the PCA Gaussian of the same size, and real test digits. The
    reconstructed and real digits are one half of the test set; every Fréchet distance is to the
    other half, so the real digits' distance is the floor. Also returns 64 mixture samples."""
    judge = load_or_train_judge(judge_file, args.data_dir, device)
    first, second = real_halves(len(test_x), args.seed)
    real_features = judge_outputs(judge, test_x[second].reshape(-1, SIDE, SIDE))[1]
    generator = torch.Generator().manual_seed(args.seed + 3)
    mixture = posterior_mixture(vae, train_x, args.mixture_components, args.seed)
    mixture_images = mixture_samples(vae, mixture, JUDGED_SAMPLES, args.seed + 4)
    sets = {"vae_prior_samples": vae.sample(JUDGED_SAMPLES, generator).cpu(),
            "vae_mixture_samples": mixture_images,
            "vae_test_reconstructions": reconstruct(vae, test_x[first].to(device)),
            "pca_gaussian_samples": pca_gaussian_samples(pca, JUDGED_SAMPLES, generator),
            "real_test_digits": test_x[first].cpu()}
    return {**{name: judge_scores(judge, images, real_features) for name, images in sets.items()},
            "confident_threshold": CONFIDENT, "confident_share_target": CONFIDENT_SHARE_TARGET,
            "mixture_components": args.mixture_components,
            "judge_file": str(judge_file), "judge_trained_now": judge.trained,
            "judge_test_accuracy": judge.info["test_accuracy"]}, mixture_images[:64]


def pick_digits(labels: torch.Tensor, count: int = 10) -> list[int]:
    """The first test image of each digit 0..count−1."""
    return [int((labels == d).nonzero()[0]) for d in range(count)]


# ---------------------------------------------------------------------------------------------
# figures

def as_image(x) -> np.ndarray:
    return x.reshape(SIDE, SIDE).clamp(0, 1).numpy()


def plot_reconstructions(rows: list[tuple[str, torch.Tensor]], shown, labels, path):
    """rows: (label, images (len(shown), 784)) in the order of ``shown``."""
    plot_image_mosaic([[as_image(x) for x in images] for _, images in rows], path,
                      title="MNIST test digits and their reconstructions\n(each row's test MSE "
                            "against the clean images, pixel values in [0, 1])",
                      row_labels=[name for name, _ in rows],
                      col_labels=[str(labels[i].item()) for i in shown],
                      value_label="pixel intensity (0 = black, 1 = white)")


def plot_sparse_codes(codes: dict[str, torch.Tensor], rho: float, path):
    """Left: histogram of every code activation on the test set; right: each unit's mean."""
    fig, (left, right) = figure(1, 2, width=12.0, row_height=4.3)
    bins = np.linspace(0, 1, 41)
    for i, (name, c) in enumerate(codes.items()):
        left.hist(c.flatten().numpy(), bins=bins, alpha=0.55, color=f"C{i}", label=name)
        means = np.sort(c.mean(0).numpy())[::-1]
        right.plot(np.arange(1, len(means) + 1), means, "o-", color=f"C{i}", label=name,
                   markersize=4)
    left.set_yscale("log")
    left.set_xlabel("code unit activation (sigmoid output)")
    left.set_ylabel("count (test images × units, log scale)")
    left.set_title("Distribution of code activations")
    left.legend()
    right.axhline(rho, color="black", linestyle=":", label=f"target ρ = {rho:g}")
    right.set_yscale("log")
    right.set_xlabel("code unit (sorted by mean activation)")
    right.set_ylabel("mean activation over test images (log)")
    right.set_title("Mean activation of each code unit")
    right.legend()
    fig.suptitle("Code layer of the sparse vs the compression autoencoder (MNIST test set)")
    save_figure(fig, path)


@torch.no_grad()
def interpolations(model: VAE, a: torch.Tensor, b: torch.Tensor, steps: int = 8):
    """Latent (decode (1−t) μ_a + t μ_b) and pixel ((1−t) a + t b) interpolations, (steps, 784)."""
    t = torch.linspace(0, 1, steps, device=a.device)[:, None]       # (S, 1)
    mu_a, _ = model.encode(a[None])
    mu_b, _ = model.encode(b[None])
    latent = model.decode((1 - t) * mu_a + t * mu_b)
    pixels = (1 - t) * a + t * b
    return latent.cpu(), pixels.cpu()


def plot_loss(histories: dict[str, list[dict]], path):
    ae = {NAMES[k]: h for k, h in histories.items() if k != "vae"}
    panels = (1 if ae else 0) + ("vae" in histories)
    fig, axes = figure(1, panels, width=6.5 * panels, row_height=4.5)
    if ae:
        plot_histories(ae, None, metric="mse", logy=True, ax=axes[0],
                       title="Autoencoders: reconstruction MSE\n(denoising: from noisy input)",
                       ylabel="MSE (pixel values in [0, 1])")
    if "vae" in histories:
        plot_histories({"VAE": histories["vae"]}, None, metric="neg_elbo", ax=axes[-1],
                       title="VAE: negative ELBO per image\n(validation uses z = μ)",
                       ylabel="BCE + KL (nats per image)")
    fig.suptitle("Training curves (solid: training, dashed: validation)")
    save_figure(fig, path)


# ---------------------------------------------------------------------------------------------

def main(argv=None):
    args = parse_args(argv)
    kinds = list(KINDS) if args.kind == "all" else [args.kind]
    device = setup_runtime(args)
    started = time.time()
    data = load_data(args)
    train_x, val_x, test_x, test_labels = data
    if "vae" in kinds and args.mixture_components > len(train_x):
        raise UsageError(f"--mixture-components {args.mixture_components}: more than the "
                         f"{len(train_x):,} training images it is fitted to")
    out_dir = prepare_out_dir(args.out_dir)
    judge_file = Path(args.judge_file) if args.judge_file else default_judge_file(out_dir)
    if "vae" in kinds:
        prepare_out_dir(judge_file.parent, "--judge-file")
    if args.resume and not any((out_dir / k / CHECKPOINT).exists() for k in kinds):
        raise UsageError(f"--resume: no checkpoint under {out_dir}/ ({', '.join(kinds)})")

    # baselines: the training-set mean image, PCA with the code size (fitted on training images)
    mean_image = train_x.mean(0, keepdim=True)                            # (1, 784)
    baselines = {"mean_image": {
        "test_mse": F.mse_loss(mean_image.expand_as(test_x), test_x).item(),
        "test_bce": F.binary_cross_entropy(mean_image.clamp(1e-6, 1 - 1e-6).expand_as(test_x),
                                           test_x, reduction="sum").item() / len(test_x)}}
    pcas = {size: pca_fit(train_x, size) for size in {args.code_size, args.latent_dim}}
    for size, pca in pcas.items():
        baselines[f"pca_{size}"] = {"test_mse": pca_reconstruction_mse(pca, test_x),
                                    "components": size}
    noisy_test = noisy_copy(test_x, args.noise_std, args.seed + 2)
    baselines["noisy_input"] = {"test_mse": F.mse_loss(noisy_test, test_x).item(),
                                "noise_std": args.noise_std}
    baselines["pca_denoising"] = {
        "test_mse": F.mse_loss(pca_reconstruct(pcas[args.code_size], noisy_test), test_x).item()}

    # train every kind, evaluate from the best weights on the test set
    results, histories, models = {}, {}, {}
    mixture_shown = None
    test_dev = test_x.to(device)
    for kind in kinds:
        model, fitted, step = train_kind(kind, args, data, out_dir, device)
        models[kind], histories[kind] = model, fitted.history
        r = {"parameters": count_parameters(model), "epochs_run": len(fitted.history),
             "best_epoch": fitted.best_epoch, "interrupted": fitted.interrupted,
             # from the history, so a resumed run counts every epoch's time, not the last call's
             "train_seconds": float(sum(h["seconds"] for h in fitted.history)),
             "seconds_per_epoch": float(np.mean([h["seconds"] for h in fitted.history]))
             if fitted.history else None, "model": model.config}
        if kind == "vae":
            r.update(vae_test_metrics(model, test_dev, args.kl_weight, args.seed))
            r["mse_vs_pca"] = r["test_mse"] / baselines[f"pca_{args.latent_dim}"]["test_mse"]
            r["judge"], mixture_shown = judge_vae_samples(model, pcas[args.latent_dim], train_x,
                                                          test_x, judge_file, args, device)
        else:
            source = noisy_test if kind == "denoising" else test_x
            recon = reconstruct(model, source.to(device))
            r["test_mse"] = F.mse_loss(recon, test_x).item()
            r["mse_vs_pca"] = r["test_mse"] / baselines[f"pca_{args.code_size}"]["test_mse"]
            codes = codes_of(model, test_dev)
            r["code_mean_activation"] = codes.mean().item()
            r["code_fraction_below_0.05"] = (codes < 0.05).double().mean().item()
        r["mse_vs_mean_image"] = r["test_mse"] / baselines["mean_image"]["test_mse"]
        results[kind] = r
    targets = check_targets(results, baselines, args)

    # figures
    shown = pick_digits(test_labels)
    plot_all(models, results, baselines, pcas, args, test_x, noisy_test, test_labels, shown,
             histories, out_dir, device, mixture_shown)

    metrics = {
        **results,
        "baselines": baselines,
        "targets": targets,
        "mse_units": "pixel values in [0, 1], mean over pixels and images",
        "data": {"n_train": len(train_x), "n_val": len(val_x), "n_test": len(test_x),
                 "digits_shown": shown},
        "run_seconds": time.time() - started,
        **machine_info(device),
        "config": {k: v for k, v in vars(args).items() if k != "debug"},
    }
    write_json(out_dir / "metrics.json", metrics)
    report(results, baselines, targets, args)
    print(f"outputs in {out_dir}/")


def check_targets(results, baselines, args) -> dict:
    """The issue's targets, met or not, from this run's numbers."""
    t = {}
    for kind, r in results.items():
        t[f"{kind}_below_mean_image"] = r["test_mse"] < baselines["mean_image"]["test_mse"]
    if "denoising" in results:
        t["denoised_mse_at_most_third_of_noisy"] = (
            results["denoising"]["test_mse"] <= baselines["noisy_input"]["test_mse"] / 3)
    if "sparse" in results:
        activation = results["sparse"]["code_mean_activation"]
        t["sparse_activation_within_2x_of_rho"] = args.sparsity / 2 <= activation <= 2 * args.sparsity
        if "compression" in results:
            t["sparse_mse_within_1.5x_of_compression"] = (
                results["sparse"]["test_mse"] <= 1.5 * results["compression"]["test_mse"])
    if "vae" in results:                  # the spec's prior, and the mixture over μ(x)
        judged = results["vae"]["judge"]
        t["vae_samples_judged_confidently"] = (
            judged["vae_prior_samples"]["confident_share"] >= CONFIDENT_SHARE_TARGET)
        t["vae_mixture_samples_judged_confidently"] = (
            judged["vae_mixture_samples"]["confident_share"] >= CONFIDENT_SHARE_TARGET)
    return t


def plot_samples(samples: torch.Tensor, path, title: str):
    """64 decoded samples (64, 784) as an 8 × 8 mosaic."""
    plot_image_mosaic([[as_image(samples[r * 8 + c]) for c in range(8)] for r in range(8)], path,
                      title=title, row_labels=[""] * 8, col_labels=None,
                      value_label="pixel intensity (Bernoulli mean)", cell=0.9)


def plot_all(models, results, baselines, pcas, args, test_x, noisy_test, labels, shown,
             histories, out_dir, device, mixture_shown=None):
    pca = pcas[args.code_size]
    rows = [("original", test_x[shown])]
    for kind, model in models.items():
        source = noisy_test if kind == "denoising" else test_x
        if kind == "denoising":
            rows.append((f"noisy input\n(σ = {args.noise_std:g}) "
                         f"{baselines['noisy_input']['test_mse']:.4f}", noisy_test[shown]))
        rows.append((f"{NAMES[kind]}\n{results[kind]['test_mse']:.4f}",
                     reconstruct(model, source[shown].to(device))))
    rows.append((f"PCA-{args.code_size}\n{baselines[f'pca_{args.code_size}']['test_mse']:.4f}",
                 pca_reconstruct(pca, test_x[shown])))
    plot_reconstructions(rows, shown, labels, out_dir / "reconstructions.png")

    if "denoising" in models:
        denoised = reconstruct(models["denoising"], noisy_test[shown].to(device))
        by_pca = pca_reconstruct(pca, noisy_test[shown])
        grid = [[as_image(x) for x in images] for images in
                (test_x[shown], noisy_test[shown], denoised, by_pca)]
        plot_image_mosaic(grid, out_dir / "denoising.png",
                          title=f"Denoising: Gaussian noise σ = {args.noise_std:g}\n(each row's "
                                f"test MSE against the clean images)",
                          row_labels=["clean",
                                      f"noisy input\n{baselines['noisy_input']['test_mse']:.4f}",
                                      f"denoising AE\n{results['denoising']['test_mse']:.4f}",
                                      f"PCA-{args.code_size} of noisy\n"
                                      f"{baselines['pca_denoising']['test_mse']:.4f}"],
                          col_labels=[str(labels[i].item()) for i in shown],
                          value_label="pixel intensity\n(noisy input clipped to [0, 1] for display)",
                          cell=1.0)

    if "sparse" in models:
        codes = {f"sparse AE (mean {results['sparse']['code_mean_activation']:.3f})":
                 codes_of(models["sparse"], test_x.to(device))}
        if "compression" in models:
            codes[f"compression AE (mean {results['compression']['code_mean_activation']:.3f})"] = \
                codes_of(models["compression"], test_x.to(device))
        plot_sparse_codes(codes, args.sparsity, out_dir / "sparse_codes.png")

    if "vae" in models:
        vae = models["vae"]
        samples = vae.sample(64, torch.Generator().manual_seed(args.seed)).cpu()
        judged = results["vae"]["judge"]
        share = {name: f"{judged[name]['confident_share']:.0%}" for name in
                 ("vae_prior_samples", "vae_mixture_samples", "vae_test_reconstructions",
                  "pca_gaussian_samples", "real_test_digits")}
        n = f"{judged['vae_prior_samples']['n_images']:,}"
        plot_samples(samples, out_dir / "vae_samples.png",
                     f"64 VAE samples: z ~ N(0, I) ({args.latent_dim} dimensions), decoded\n"
                     f"the digit judge reads {share['vae_prior_samples']} of {n} with p ≥ "
                     f"{CONFIDENT:g}\n(real digits {share['real_test_digits']}, reconstructions "
                     f"{share['vae_test_reconstructions']}, PCA-{args.latent_dim} "
                     f"{share['pca_gaussian_samples']})")
        plot_samples(mixture_shown, out_dir / "vae_samples_mixture.png",
                     f"64 VAE samples: z from a {judged['mixture_components']}-component Gaussian "
                     f"mixture\nfitted to the training images' posterior means, decoded\n"
                     f"the digit judge reads {share['vae_mixture_samples']} of {n} with p ≥ "
                     f"{CONFIDENT:g}\n(prior samples {share['vae_prior_samples']})")
        pairs = [(shown[a], shown[b]) for a, b in ((1, 7), (3, 8), (4, 9), (0, 6))]
        grid, names = [], []
        for i, j in pairs:
            latent, pixels = interpolations(vae, test_x[i].to(device), test_x[j].to(device))
            grid += [[as_image(x) for x in latent], [as_image(x) for x in pixels]]
            names += [f"{labels[i].item()} → {labels[j].item()}, latent",
                      f"{labels[i].item()} → {labels[j].item()}, pixels"]
        plot_image_mosaic(grid, out_dir / "vae_interpolation.png",
                          title="VAE: interpolating between test digits in latent space\n"
                                "(decoded (1−t) μ_a + t μ_b) vs in pixel space ((1−t) a + t b)",
                          row_labels=names,
                          col_labels=[f"t={t:.2f}" for t in np.linspace(0, 1, 8)],
                          value_label="pixel intensity", cell=0.9)

    plot_loss(histories, out_dir / "loss.png")


def report(results, baselines, targets, args):
    print(f"baselines (test MSE, pixels in [0, 1]): mean image {baselines['mean_image']['test_mse']:.4f}, "
          f"PCA-{args.code_size} {baselines[f'pca_{args.code_size}']['test_mse']:.4f}, noisy input "
          f"{baselines['noisy_input']['test_mse']:.4f}")
    for kind, r in results.items():
        extra = (f", negative ELBO {r['test_neg_elbo']:.1f} nats/image, judge reads "
                 f"{r['judge']['vae_prior_samples']['confident_share']:.1%} of prior samples with "
                 f"p ≥ {CONFIDENT:g}" if kind == "vae" else
                 f", code mean activation {r['code_mean_activation']:.3f}")
        print(f"{NAMES[kind]}: test MSE {r['test_mse']:.4f}{extra}, {r['train_seconds']:.0f} s")
    for name, ok in targets.items():
        print(f"target {name}: {'met' if ok else 'MISSED'}")


if __name__ == "__main__":
    sys.exit(run(main))
