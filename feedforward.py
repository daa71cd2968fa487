"""Feed-forward (non-recurrent) models: dense autoencoders, VAEs, GANs and the CNN digit judge.

The recurrent sequence models are in ``models.py``; this module holds the networks that see a
whole image at once.

- ``DenseAutoencoder``: a fully connected autoencoder, e.g. the 784-128-32-128-784 baseline of
  the MNIST task (spec 000) and the compression autoencoder of spec 004.
- ``VAE``, ``vae_loss``, ``kl_to_standard_normal``: the variational autoencoder of spec 004
  task 2 (and any other fully connected VAE, e.g. a small-latent one for spec 002's sevens).
- ``DigitJudge``: the small CNN MNIST classifier that scores generated digits (spec 002; its
  training, cache and scores are in ``judge.py``).
- ``ConditionalGenerator``, ``ConditionalDiscriminator`` and the conditioning helpers
  (``one_hot``, ``balanced_labels``, ``centre_patch``): the conditional GAN of spec 002
  problems 3-4 (``cgan_mnist.py``).
- ``sparsity_penalty``: the KL sparsity regulariser of the sparse autoencoder (spec 004 task 1.3).

Shape letters: B batch, D = sizes[0] input values (784 for MNIST), Z = sizes[-1] code size.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


class DenseAutoencoder(nn.Module):
    """Fully connected autoencoder, e.g. 784-128-32-128-784.

    ``activation`` is that of every hidden layer, the code layer included: "relu" (the MNIST
    task's baseline, spec 000) or "sigmoid" (spec 004 task 1: "sigmoid activation functions on
    all layers"); the output layer is a sigmoid either way (pixel values in [0, 1]).
    x: (B, ...) flattened to (B, sizes[0]) → reconstruction of the same shape as x;
    ``encode(x)`` → the code (B, sizes[-1]).
    """

    ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid}

    def __init__(self, sizes: tuple[int, ...] = (784, 128, 32), activation: str = "relu"):
        super().__init__()
        if activation not in self.ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(self.ACTIVATIONS)}, got {activation!r}")
        self.config = dict(sizes=list(sizes), activation=activation)
        act = self.ACTIVATIONS[activation]
        enc, dec = [], []
        for a, b in zip(sizes[:-1], sizes[1:]):
            enc += [nn.Linear(a, b), act()]
        for a, b in zip(sizes[::-1][:-1], sizes[::-1][1:]):
            dec += [nn.Linear(a, b), act()]
        dec[-1] = nn.Sigmoid()
        self.encoder, self.decoder = nn.Sequential(*enc), nn.Sequential(*dec)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x.flatten(1))                          # (B, Z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encode(x)).view_as(x)


class VAEOutput(NamedTuple):
    recon: torch.Tensor        # same shape as x: Bernoulli means, in (0, 1)
    mu: torch.Tensor           # (B, K) posterior mean
    logvar: torch.Tensor       # (B, K) posterior log-variance
    z: torch.Tensor            # (B, K) the sample decoded (μ itself in eval mode)


class VAE(nn.Module):
    """Variational autoencoder with fully connected encoder and decoder (Kingma & Welling 2014,
    "Auto-Encoding Variational Bayes"; spec 004 task 2: sizes (784, 128, 64), latent_dim 10).

    Encoder sizes[0]-…-sizes[-1] with ReLU, then two linear heads to the mean μ and the
    log-variance log σ² of a K-dimensional Gaussian q(z|x) (identity activation). The sample
    z = μ + σ ⊙ ε, ε ~ N(0, I) (the reparameterisation, so gradients reach μ and log σ²) goes
    through the mirrored decoder K-sizes[-1]-…-sizes[0] (ReLU, sigmoid output). In eval mode z = μ,
    so reconstructions are deterministic; ``sample`` decodes draws from the prior N(0, I).
    """

    def __init__(self, sizes: tuple[int, ...] = (784, 128, 64), latent_dim: int = 10):
        super().__init__()
        self.config = dict(sizes=list(sizes), latent_dim=latent_dim)
        self.latent_dim = latent_dim
        enc = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            enc += [nn.Linear(a, b), nn.ReLU()]
        self.encoder = nn.Sequential(*enc)
        self.to_mu = nn.Linear(sizes[-1], latent_dim)
        self.to_logvar = nn.Linear(sizes[-1], latent_dim)
        back = [latent_dim, *sizes[::-1]]
        dec = []
        for a, b in zip(back[:-1], back[1:]):
            dec += [nn.Linear(a, b), nn.ReLU()]
        dec[-1] = nn.Sigmoid()
        self.decoder = nn.Sequential(*dec)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, ...) → (μ (B, K), log σ² (B, K))."""
        h = self.encoder(x.flatten(1))                            # (B, sizes[-1])
        return self.to_mu(h), self.to_logvar(h)

    def reparameterize(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return mu
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z: (B, K) → Bernoulli means (B, sizes[0])."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> VAEOutput:
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar)
        return VAEOutput(self.decode(z).view_as(x), mu, logvar, z)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n draws from the prior, decoded: (n, sizes[0])."""
        device = self.to_mu.weight.device
        z = torch.randn(n, self.latent_dim, generator=generator).to(device)
        return self.decode(z)


def kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, σ²) ‖ N(0, I)) = −½ Σ_k (1 + log σ²_k − μ²_k − σ²_k), one value per image: (B,)."""
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)


def vae_loss(out: VAEOutput, x: torch.Tensor, kl_weight: float = 1.0,
             reconstruction: str = "sum") -> tuple[torch.Tensor, dict]:
    """Loss and its terms for a batch.

    reconstruction="sum": binary cross-entropy summed over pixels (−log p(x|z) in nats), so with
    ``kl_weight`` 1 the loss is the negative ELBO per image. reconstruction="mean": BCE averaged
    over pixels, as spec 004 writes it (``loss = reconstruction_loss + 0.001 * latent_loss``).
    The KL term is summed over latent dimensions either way; both are averaged over the batch.
    The returned metrics always hold the per-image negative ELBO (BCE summed + KL) in nats.
    """
    bce_pixels = F.binary_cross_entropy(out.recon.flatten(1), x.flatten(1), reduction="none")
    bce_sum = bce_pixels.sum(1)                                 # (B,)
    kl = kl_to_standard_normal(out.mu, out.logvar)              # (B,)
    if reconstruction == "sum":
        recon_term = bce_sum.mean()
    elif reconstruction == "mean":
        recon_term = bce_pixels.mean()
    else:
        raise ValueError(f"reconstruction must be 'sum' or 'mean', got {reconstruction!r}")
    loss = recon_term + kl_weight * kl.mean()
    return loss, {"bce": bce_sum.mean().item(), "kl": kl.mean().item(),
                  "neg_elbo": (bce_sum + kl).mean().item()}


# ======================================================================================# Training, caching and the two scores (label agreement, Fréchet distance) are in ``judge.py``.
# =============================================================================================

class DigitJudge(nn.Module):
    """Small LeNet-style CNN MNIST classifier (LeCun et al. 1998) used to judge generated digits.

    conv 5×5 (1→c1) → ReLU → max-pool 2 → conv 5×5 (c1→c2) → ReLU → max-pool 2 → dense
    c2·4·4 → F ("features", ReLU; the penultimate layer whose statistics the Fréchet distance
    compares) → dropout → dense F → 10 logits.

    x: (B, 28, 28) or (B, 1, 28, 28), pixels in [0, 1] (0 = black background, as in MNIST).
    """

    def __init__(self, channels: tuple[int, int] = (16, 32), features: int = 128,
                 dropout: float = 0.25):
        super().__init__()
        self.config = dict(channels=list(channels), features=features, dropout=dropout)
        c1, c2 = channels
        self.conv = nn.Sequential(
            nn.Conv2d(1, c1, 5), nn.ReLU(), nn.MaxPool2d(2),            # (B, c1, 12, 12)
            nn.Conv2d(c1, c2, 5), nn.ReLU(), nn.MaxPool2d(2),           # (B, c2, 4, 4)
        )
        self.embed = nn.Sequential(nn.Flatten(), nn.Linear(c2 * 16, features), nn.ReLU())
        self.classify = nn.Sequential(nn.Dropout(dropout), nn.Linear(features, 10))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer activations: (B, 28, 28) → (B, F)."""
        if x.dim() == 3:
            x = x.unsqueeze(1)                                          # (B, 1, 28, 28)
        return self.embed(self.conv(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 28, 28) → logits (B, 10)."""
        return self.classify(self.features(x))


# =============================================================================================
# Conditional GAN (spec 002 problems 3-4; issue 17): one generator/discriminator pair for both
# conditionings (one-hot label, or the known centre patch). Mirza & Osindero 2014, "Conditional
# Generative Adversarial Nets"; Goodfellow et al. 2014 for the adversarial game itself.
# The training loop is ``adversarial.py``; the experiment is ``cgan_mnist.py``.
# Images here: (B, 784) flattened, pixels in [-1, 1] (-1 = black background), as the tanh
# output of the generator defines them.
# =============================================================================================

SIDE = 28
# The centre 10×10 patch: rows and columns 9..18. The spec writes X[:, 10:19, 10:19], which is
# 9×9 = 81 values; 9:19 is the 10×10 = 100 values its text asks for.
CENTRE = slice(9, 19)


def one_hot(labels: torch.Tensor, classes: int = 10) -> torch.Tensor:
    """(B,) integer labels → (B, classes) float one-hot rows."""
    return F.one_hot(labels, classes).float()


def balanced_labels(n: int, classes: int = 10, device=None) -> torch.Tensor:
    """(n,) labels 0, 1, …, 9, 0, 1, …: a class-balanced fake batch (each class ⌊n/10⌋ or
    ⌈n/10⌉ times), as the spec asks for the generator's conditioning labels."""
    return torch.arange(n, device=device) % classes


def centre_patch(images: torch.Tensor) -> torch.Tensor:
    """(B, 784) or (B, 28, 28) → the centre 10×10 patch flattened, (B, 100)."""
    return images.reshape(-1, SIDE, SIDE)[:, CENTRE, CENTRE].reshape(len(images), -1)


def centre_mask(device=None) -> torch.Tensor:
    """(784,) bool: True on the centre 10×10 pixels (the known part of an imputed image)."""
    mask = torch.zeros(SIDE, SIDE, dtype=torch.bool, device=device)
    mask[CENTRE, CENTRE] = True
    return mask.flatten()


def _mlp(sizes: list[int], activation, dropout: float = 0.0) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), activation()]
        if dropout:
            layers.append(nn.Dropout(dropout))
    return layers


class ConditionalGenerator(nn.Module):
    """G(z, c): noise z (B, noise_dim) ~ N(0, I) and condition c (B, cond_dim) concatenated →
    hidden layers (linear → batch norm → ReLU; Ioffe & Szegedy 2015, as in DCGAN's generator,
    Radford et al. 2016) → tanh → image (B, out_dim) in [-1, 1].

    Spec 002 problem 3: 110-200-400-784 (d = 100 noise + a 10-value one-hot label);
    problem 4: 200-200-400-784 (100 noise + the 100 centre pixels)."""

    def __init__(self, noise_dim: int = 100, cond_dim: int = 10, hidden: tuple[int, ...] = (200, 400),
                 out_dim: int = SIDE * SIDE, batch_norm: bool = True):
        super().__init__()
        self.config = dict(noise_dim=noise_dim, cond_dim=cond_dim, hidden=list(hidden),
                           out_dim=out_dim, batch_norm=batch_norm)
        self.noise_dim = noise_dim
        layers: list[nn.Module] = []
        for a, b in zip([noise_dim + cond_dim, *hidden][:-1], hidden):
            # batch norm before the ReLU keeps every unit alive and the samples diverse (without
            # it this small generator collapsed to one blurred image within an epoch)
            layers += [nn.Linear(a, b), *([nn.BatchNorm1d(b)] if batch_norm else []), nn.ReLU()]
        self.net = nn.Sequential(*layers,
                                 nn.Linear(hidden[-1] if hidden else noise_dim + cond_dim, out_dim),
                                 nn.Tanh())

    def forward(self, z: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z, cond], dim=1))                # (B, out_dim)

    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n noise vectors from N(0, I) on the model's device: (n, noise_dim)."""
        device = self.net[0].weight.device
        return torch.randn(n, self.noise_dim, generator=generator).to(device)


class ConditionalDiscriminator(nn.Module):
    """D(x, c): image (B, in_dim) and condition (B, cond_dim) concatenated → hidden LeakyReLU(0.2)
    layers with dropout → one logit (B,). The logistic output σ(logit) is the probability that
    (x, c) is a real pair; losses use the logit (``binary_cross_entropy_with_logits``, stable).

    Spec 002 problem 3: 794-400-200-100-1 (784 pixels + one-hot label; "dropout helped").

    ``projection`` adds the projection term of Miyato & Koyama 2018 ("cGANs with Projection
    Discriminator") to the logit: ⟨P c, h⟩, h the last hidden layer (B, 100), P a learned
    (cond_dim → 100) matrix (for a one-hot c: a learned vector per class). The concatenated
    input alone left the judge's label agreement at chance (~10 %) after two epochs: the
    discriminator judged realism first and the label hardly at all; the projection makes
    "does this image fit this condition" a direct term of its output."""

    def __init__(self, in_dim: int = SIDE * SIDE, cond_dim: int = 10,
                 hidden: tuple[int, ...] = (400, 200, 100), dropout: float = 0.3,
                 projection: bool = True):
        super().__init__()
        self.config = dict(in_dim=in_dim, cond_dim=cond_dim, hidden=list(hidden), dropout=dropout,
                           projection=projection)
        leaky = lambda: nn.LeakyReLU(0.2)  # noqa: E731  (no dead units: D's gradient reaches G)
        width = hidden[-1] if hidden else in_dim + cond_dim
        self.body = nn.Sequential(*_mlp([in_dim + cond_dim, *hidden], leaky, dropout))
        self.head = nn.Linear(width, 1)
        self.project = nn.Linear(cond_dim, width, bias=False) if projection else None

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.body(torch.cat([x, cond], dim=1))                   # (B, width)
        logits = self.head(h).squeeze(1)                             # (B,)
        if self.project is not None:
            logits = logits + (self.project(cond) * h).sum(1)        # ⟨P c, h⟩
        return logits


# ---------------------------------------------------------------------------------------------
# sparse autoencoder (spec 004 task 1.3)

def sparsity_penalty(codes: torch.Tensor, rho: float, eps: float = 1e-6) -> tuple[torch.Tensor,
                                                                                   torch.Tensor]:
    """KL sparsity penalty of a batch of code activations in (0, 1) (Ng, "Sparse autoencoder",
    CS294A lecture notes, 2011; IN5400 week 12 slides):

        Σ_j KL(ρ ‖ ρ̂_j) = Σ_j [ρ log(ρ/ρ̂_j) + (1 − ρ) log((1 − ρ)/(1 − ρ̂_j))],

    ρ̂_j the mean activation of code unit j over the batch. codes: (B, Z) → (penalty (scalar),
    ρ̂ (Z,)). ρ̂ is kept inside [eps, 1 − eps], so no log 0 when a unit is saturated."""
    rho_hat = codes.mean(0).clamp(eps, 1 - eps)                    # (Z,)
    penalty = (rho * torch.log(rho / rho_hat)
               + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))).sum()
    return penalty, rho_hat
