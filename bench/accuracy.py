"""Time to a test accuracy: row-mode MNIST, F_fc with lstm_ae_mnist.py's default settings.

``hidden_size`` may replace the script's default hidden size (256, chosen in issue 4 for the
reconstruction target) by another, e.g. 128, the size of the benchmark's MNIST rows F_fc row and
of the setting issue 6 states its time target for; everything else stays the script's default.

The model, loss and training settings are the script's own: ``lstm_ae_mnist.parse_args`` gives
the defaults (``--cell fc``: hidden size, epochs, learning rate and one-cycle schedule, gradient
clip, batch size, class weight, seed), ``lstm_ae_mnist.classification_step`` the loss, and the
model is built as the script builds it (``LSTMAutoencoder`` + ``ClassifierHead`` on the decoder).
The loop is ``training.fit``'s (same optimizer, learning-rate schedule, shuffling and clipping)
without its checkpoints and validation passes, and with a test-set evaluation every
``eval_every`` steps; training stops at the first evaluation that reaches the target.

The clock counts training steps only and is paused while the test set is evaluated; the wall
time including the evaluations is reported beside it. The test set is used here to measure
speed, never to choose a model.
"""
from __future__ import annotations

import math
import time

import torch
from torch import nn

from models import AutoencoderWithHead, ClassifierHead, LSTMAutoencoder
from training import TrainSettings, autocast, batches, evaluate, learning_rate, make_optimizer


def time_to_accuracy(data_dir: str, device: torch.device, target: float = 0.98,
                     eval_every: int | None = None, train_size: int | None = None,
                     seed: int = 0, test_size: int | None = None, precision: str = "fp32",
                     hidden_size: int | None = None, log=print) -> dict:
    """Train until the test accuracy reaches ``target`` or the script's epochs run out;
    ``precision`` is the script's ``--precision`` (training forward passes; the test accuracy
    is computed as the script computes its test numbers, in fp32); ``hidden_size`` None keeps
    the script's default."""
    import lstm_ae_mnist
    from data import as_steps, load_mnist, mnist_split

    argv = ["--cell", "fc", "--data-dir", str(data_dir), "--seed", str(seed),
            "--precision", precision]
    if train_size:
        argv += ["--train-size", str(train_size)]
    default_hidden = lstm_ae_mnist.parse_args([]).hidden_size[0]
    if hidden_size:
        argv += ["--hidden-size", str(hidden_size)]
    args = lstm_ae_mnist.parse_args(argv)
    lstm_ae_mnist.check_args(args)

    t_load = time.perf_counter()
    train_images, train_labels = load_mnist(args.data_dir, train=True)
    test_images, test_labels = load_mnist(args.data_dir, train=False)
    train_idx, _ = mnist_split(args.seed, args.train_size, n=len(train_images))
    m = args.input_size
    train = [as_steps(train_images.flatten(1)[train_idx], m).to(device),
             train_labels[train_idx].to(device)]                        # (N, T, m), (N,)
    test_images, test_labels = test_images[:test_size], test_labels[:test_size]   # all: None
    test = [as_steps(test_images.flatten(1), m).to(device), test_labels.to(device)]
    load_seconds = time.perf_counter() - t_load

    torch.manual_seed(args.seed)
    hidden = args.hidden_size[0]
    ae = LSTMAutoencoder(m, hidden, args.num_layers, decoder=args.decoder, reverse=args.reverse,
                         bidirectional=args.bidirectional, teacher_forcing=args.teacher_forcing,
                         init=args.init)
    model = AutoencoderWithHead(ae, ClassifierHead(hidden), source="decoder").to(device)
    weight = lstm_ae_mnist.class_weight(args, "fc")
    step_fn = lstm_ae_mnist.classification_step(weight)
    settings = TrainSettings.from_args(args)
    optimizer = make_optimizer(settings.optimizer, model.parameters(), settings.lr,
                               settings.weight_decay)
    shuffle_gen = torch.Generator().manual_seed(args.seed)
    steps_per_epoch = math.ceil(len(train[0]) / settings.batch_size)
    total_steps = settings.epochs * steps_per_epoch
    eval_every = eval_every or max(1, steps_per_epoch // 4)

    train_seconds, eval_seconds, step, checks = 0.0, 0.0, 0, []
    reached = False
    wall_start = time.perf_counter()
    for epoch in range(1, settings.epochs + 1):
        model.train()
        start = time.perf_counter()
        for i, batch in enumerate(batches(train, settings.batch_size, shuffle=True,
                                          generator=shuffle_gen)):
            lr = learning_rate(step, total_steps, settings.lr, settings.lr_schedule)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with autocast(device, settings.precision):
                loss, _ = step_fn(model, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if settings.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
            optimizer.step()
            step += 1
            if step % eval_every == 0 or i == steps_per_epoch - 1:
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                train_seconds += time.perf_counter() - start
                t_eval = time.perf_counter()
                accuracy = evaluate(model, step_fn, test, batch_size=1024)["accuracy"]
                eval_seconds += time.perf_counter() - t_eval
                checks.append({"step": step, "epoch": round(step / steps_per_epoch, 3),
                               "train_seconds": train_seconds, "test_accuracy": accuracy})
                log(f"step {step} (epoch {step / steps_per_epoch:.2f}): test accuracy "
                    f"{accuracy:.2%} after {train_seconds:.1f} s of training")
                model.train()
                if accuracy >= target:
                    reached = True
                    break
                start = time.perf_counter()
        if reached:
            break

    best = max(c["test_accuracy"] for c in checks)
    hidden_text = (f"hidden {hidden}" if hidden == default_hidden
                   else f"hidden {hidden} instead of the default {default_hidden}")
    settings_text = (f"--precision {settings.precision}, {hidden_text}, batch "
                     f"{settings.batch_size}, {settings.optimizer} lr {settings.lr:g} "
                     f"({settings.lr_schedule} over {settings.epochs} epochs), "
                     f"grad clip {settings.grad_clip:g}, class weight {weight:g}, "
                     f"{len(train[0]):,} training images")
    if reached:
        summary = (f"Row-mode MNIST, F_fc with lstm_ae_mnist.py's defaults ({settings_text}): "
                   f"{target:.0%} test accuracy after {checks[-1]['epoch']:.2f} epochs and "
                   f"{train_seconds:.1f} s of training ({time.perf_counter() - wall_start:.1f} s "
                   f"wall including {len(checks)} test evaluations; data loading "
                   f"{load_seconds:.1f} s more). Test accuracy checked every {eval_every} steps.")
    else:
        summary = (f"Row-mode MNIST, F_fc with lstm_ae_mnist.py's defaults ({settings_text}): "
                   f"{target:.0%} test accuracy not reached in {settings.epochs} epochs "
                   f"({train_seconds:.1f} s of training; best {best:.2%}).")
    return {"target": target, "reached": reached, "train_seconds": train_seconds,
            "eval_seconds": eval_seconds, "wall_seconds": time.perf_counter() - wall_start,
            "load_seconds": load_seconds, "epochs": settings.epochs, "eval_every": eval_every,
            "best_accuracy": best, "checks": checks, "hidden_size": hidden,
            "train_images": len(train[0]), "test_images": len(test[0]), "device": str(device),
            "threads": torch.get_num_threads(), "precision": settings.precision,
            "default_hidden_size": default_hidden,
            "summary": summary}
