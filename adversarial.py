"""The adversarial training loop: alternating discriminator and generator steps (GANs).

A GAN trains two networks against each other, so ``training.fit`` (one model, one loss, one
optimizer, best-by-validation weights) does not fit it; ``fit_adversarial`` is the same loop for
two networks and keeps everything else the same: mini-batches from ``training.batches``,
optimizers from ``training.make_optimizer``, the learning-rate schedule ``training.learning_rate``,
tqdm progress, ``history.csv`` rewritten after every epoch (``training.write_history``), a
checkpoint written atomically after every epoch (``training.save_checkpoint``: both networks'
``state_dict`` and config, both optimizers, RNG states, history; loaded with ``weights_only=True``
by ``training.load_checkpoint``), ``--resume`` that continues both networks and both optimizers,
and Ctrl-C that stops training but keeps the last finished epoch's networks for evaluation.

Each step (Goodfellow et al. 2014, "Generative Adversarial Nets", Algorithm 1, k = 1):
1. discriminator: ``objective.discriminator_loss(G, D, batch)`` on real pairs and detached fakes;
2. generator: ``objective.generator_loss(G, D, fakes)`` on the same fakes, through the updated D.

GAN training fails in ways a loss value does not show, so after every epoch ``collapse_reason``
checks the history for the three usual failures and the run stops with one line
(``TrainingDiverged``) before that epoch's checkpoint is written, keeping the last good one:
- a NaN/Inf loss (checked at every step);
- the discriminator wins: ≥ ``acc_limit`` accuracy on both real and fake pairs for
  ``collapse_epochs`` epochs in a row (the generator no longer gets a useful gradient);
- the generator collapses: the per-pixel standard deviation of its samples across noise and
  conditions (``gen_std``, reported by the epoch-end evaluation) falls below ``min_std``.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from errors import TrainingDiverged
from training import (CHECKPOINT, HISTORY, batches, check_identity, learning_rate, load_checkpoint,
                      make_optimizer, save_checkpoint, write_history)


@dataclass
class AdversarialSettings:
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5                 # Adam's β1; 0.5 is the usual GAN choice (Radford et al. 2016)
    optimizer: str = "adam"
    lr_schedule: str = "constant"
    grad_clip: float = 0.0
    batch_size: int = 100
    epochs: int = 20
    collapse_epochs: int = 5           # epochs of a perfect discriminator that count as a collapse
    acc_limit: float = 0.99
    min_std: float = 1e-3              # generator samples' per-pixel std below this: collapsed


class Objective(Protocol):
    def discriminator_loss(self, generator: nn.Module, discriminator: nn.Module,
                           batch: tuple) -> tuple[torch.Tensor, dict, object]: ...

    def generator_loss(self, generator: nn.Module, discriminator: nn.Module,
                       fakes: object) -> tuple[torch.Tensor, dict]: ...


@dataclass
class AdversarialResult:
    history: list[dict]
    interrupted: bool = False
    seconds: float = 0.0


def collapse_reason(history: list[dict], settings: AdversarialSettings) -> str | None:
    """Why the run described by ``history`` (one dict per epoch) has failed, or None.

    Reads ``d_accuracy_real``, ``d_accuracy_fake`` and, when present, ``gen_std``."""
    if not history:
        return None
    last = history[-1]
    std = last.get("gen_std")
    if std is not None and std < settings.min_std:
        return (f"the generator collapsed at epoch {last['epoch']}: its samples vary by "
                f"{std:.2g} per pixel (< {settings.min_std:g}) across noise and conditions")
    recent = history[-settings.collapse_epochs:]
    if len(recent) == settings.collapse_epochs and all(
            min(r["d_accuracy_real"], r["d_accuracy_fake"]) >= settings.acc_limit for r in recent):
        return (f"the discriminator won: ≥ {100 * settings.acc_limit:g} % accurate on real and fake "
                f"examples for {settings.collapse_epochs} epochs up to epoch {last['epoch']}, so the "
                f"generator gets no useful gradient (try a lower --d-lr or a higher --d-dropout)")
    return None


def _clone(module: nn.Module) -> dict:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def fit_adversarial(generator: nn.Module, discriminator: nn.Module, objective: Objective,
                    train: Sequence[torch.Tensor], settings: AdversarialSettings, *, run_dir,
                    identity: dict, device: torch.device, seed: int = 0, resume: bool = False,
                    epoch_end: Callable[[nn.Module, nn.Module], dict] | None = None,
                    desc: str = "GAN") -> AdversarialResult:
    """Train ``generator`` and ``discriminator`` in place; they end holding the last finished
    epoch's weights.

    ``train``: aligned tensors (first dimension = examples), batched and shuffled here.
    ``epoch_end(G, D)``: the per-epoch evaluation (scores of generated samples, ``gen_std``...),
    merged into the epoch's history row. ``identity``: what must match for ``resume``.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path, hist_path = run_dir / CHECKPOINT, run_dir / HISTORY
    nets = {"generator": generator.to(device), "discriminator": discriminator.to(device)}
    lrs = {"generator": settings.lr_g, "discriminator": settings.lr_d}
    optimizers = {name: make_optimizer(settings.optimizer, net.parameters(), lrs[name],
                                       betas=(settings.beta1, 0.999)) for name, net in nets.items()}
    train = [t.to(device) for t in train]
    shuffle_gen = torch.Generator().manual_seed(seed)
    history: list[dict] = []
    start_epoch = 0
    if resume:
        state = load_checkpoint(ckpt_path)
        check_identity(state, identity, ckpt_path)
        for name, net in nets.items():
            net.load_state_dict(state["model"][name])
            optimizers[name].load_state_dict(state["optimizer"][name])
        shuffle_gen.set_state(state["rng"]["shuffle"])
        torch.set_rng_state(state["rng"]["torch"])
        history, start_epoch = state["history"], state["epoch"]
        write_history(hist_path, history)  # drop rows of an epoch that did not finish
    elif ckpt_path.exists():
        print(f"note: starting a new run; {ckpt_path} will be replaced after the first epoch "
              f"(use --resume to continue it)", file=sys.stderr)
    last_good = {name: _clone(net) for name, net in nets.items()}

    steps_per_epoch = math.ceil(len(train[0]) / settings.batch_size)
    total_steps = settings.epochs * steps_per_epoch
    interrupted = False
    t_start = time.perf_counter()
    epoch_bar = tqdm(total=settings.epochs, initial=start_epoch, desc=desc, unit="epoch",
                     dynamic_ncols=True, file=sys.stderr)
    try:
        for epoch in range(start_epoch + 1, settings.epochs + 1):
            t0 = time.perf_counter()
            for net in nets.values():
                net.train()
            sums: dict[str, float] = {}
            count = 0
            step_bar = tqdm(batches(train, settings.batch_size, shuffle=True, generator=shuffle_gen),
                            total=steps_per_epoch, desc=f"epoch {epoch}", leave=False,
                            dynamic_ncols=True, file=sys.stderr)
            for i, batch in enumerate(step_bar):
                step = (epoch - 1) * steps_per_epoch + i
                for name, opt in optimizers.items():
                    for group in opt.param_groups:
                        group["lr"] = learning_rate(step, total_steps, lrs[name], settings.lr_schedule)
                d_loss, d_metrics, fakes = objective.discriminator_loss(generator, discriminator, batch)
                _step(d_loss, "discriminator", optimizers["discriminator"], discriminator, settings,
                      epoch, i, ckpt_path)
                discriminator.requires_grad_(False)       # G's step needs no D gradients
                g_loss, g_metrics = objective.generator_loss(generator, discriminator, fakes)
                discriminator.requires_grad_(True)
                _step(g_loss, "generator", optimizers["generator"], generator, settings, epoch, i,
                      ckpt_path)
                n = len(batch[0])
                count += n
                values = {"d_loss": d_loss.item(), "g_loss": g_loss.item(), **d_metrics, **g_metrics}
                for key, value in values.items():
                    sums[key] = sums.get(key, 0.0) + float(value) * n
                if i % 10 == 0:
                    step_bar.set_postfix(d=f"{sums['d_loss'] / count:.3g}",
                                         g=f"{sums['g_loss'] / count:.3g}")
            step_bar.close()

            row = {"epoch": epoch, **{k: v / count for k, v in sums.items()}}
            if epoch_end is not None:
                for net in nets.values():
                    net.eval()
                with torch.no_grad():
                    row.update(epoch_end(generator, discriminator))
            row.update({"lr_g": optimizers["generator"].param_groups[0]["lr"],
                        "lr_d": optimizers["discriminator"].param_groups[0]["lr"],
                        "seconds": time.perf_counter() - t0})
            reason = collapse_reason([*history, row], settings)
            if reason:
                raise TrainingDiverged(f"{reason}; training stopped, last good checkpoint kept at "
                                       f"{ckpt_path}")
            history.append(row)
            last_good = {name: _clone(net) for name, net in nets.items()}
            save_checkpoint(ckpt_path, {
                "format": 1, "identity": identity, "epoch": epoch, "history": history,
                "config": {name: net.config for name, net in nets.items()},
                "model": {name: net.state_dict() for name, net in nets.items()},
                "optimizer": {name: opt.state_dict() for name, opt in optimizers.items()},
                "rng": {"torch": torch.get_rng_state(), "shuffle": shuffle_gen.get_state()},
            })
            write_history(hist_path, history)
            epoch_bar.update(1)
            epoch_bar.set_postfix(d=f"{row['d_loss']:.3g}", g=f"{row['g_loss']:.3g}")
    except KeyboardInterrupt:
        interrupted = True
        print(f"\ninterrupted: evaluating the networks of the last finished epoch "
              f"({len(history)})", file=sys.stderr)
        for name, net in nets.items():          # an unfinished epoch is not in the history
            net.load_state_dict(last_good[name])
    finally:
        epoch_bar.close()
    for net in nets.values():
        net.eval()
    return AdversarialResult(history, interrupted, time.perf_counter() - t_start)


def _step(loss: torch.Tensor, name: str, optimizer, net: nn.Module, settings: AdversarialSettings,
          epoch: int, i: int, ckpt_path: Path) -> None:
    """One optimizer step of one network; a NaN/Inf loss stops the run with one line."""
    value = loss.item()
    if not math.isfinite(value):
        raise TrainingDiverged(
            f"the {name} loss became {value} at epoch {epoch}, step {i + 1}; training stopped, "
            f"last good checkpoint kept at {ckpt_path} (try lower learning rates)")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if settings.grad_clip > 0:
        nn.utils.clip_grad_norm_(net.parameters(), settings.grad_clip)
    optimizer.step()
