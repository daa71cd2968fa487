"""Pixel-mode speed study (``python -m bench --pixel-study``): what one training step of
``lstm_ae_mnist.py --input-size 1`` costs, and what a larger batch, bf16 autocast and
``torch.compile`` buy.

The model is the pixel-mode default exactly as the script builds it (``lstm_ae_mnist.parse_args``
with ``--input-size 1``: F_fc with hidden 64, ``--decoder-input z+time``, ``--init chrono``, the
classifier head on the decoder's last state, loss = MSE + class weight × cross-entropy), trained
by the steps the shared loop takes (forward under ``training.autocast``, backward, gradient clip
at the script's default, Adam). The batch is seeded uniform pixels and random labels: the work
of a step does not depend on the values.

Every variant is timed in the same process, round-robin (each round times a few steps of every
variant in turn), so a change in the machine's load during the run reaches them all alike; the
figure per variant is the median step time over all rounds, after untimed warm-up steps (for
``torch.compile`` its compile time is the first step's, reported apart). Images per second =
batch / step time; the gain is relative to the default (eager fp32, the default batch).

What none of these can change: a step runs 1,568 LSTM steps one after another (784 encoding, then
784 decoding), each waiting for the last; ``nn.LSTM`` already runs each 784-step recurrence as one
fused ATen call with the input projections of all steps in one matrix product, so there is no
per-step Python work left to compile away, and a "chunked" form that splits the sequence cannot
start a chunk before the previous one's final state exists (it would only re-express the same
chain, or change the model by truncating its gradient).
"""
from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from hardware import bf16_unsupported_reason
from models import AutoencoderWithHead, ClassifierHead, LSTMAutoencoder
from training import autocast

PIXELS = 784


def pixel_defaults(extra=()):
    """lstm_ae_mnist.py's arguments with --input-size 1 (and ``extra`` flags, for tests): the
    pixel defaults."""
    import lstm_ae_mnist

    args = lstm_ae_mnist.parse_args(["--input-size", "1", *extra])
    args.class_weight = lstm_ae_mnist.class_weight(args, "fc")
    return args


def build_pixel_model(args, seed: int = 0) -> nn.Module:
    """F_fc with the classifier head, built from the script's arguments as its main builds it."""
    torch.manual_seed(seed)
    hidden = args.hidden_size[0]
    ae = LSTMAutoencoder(args.input_size, hidden, args.num_layers, decoder=args.decoder,
                         reverse=args.reverse, bidirectional=args.bidirectional,
                         teacher_forcing=args.teacher_forcing, init=args.init,
                         code_size=args.code_size, decoder_input=args.decoder_input,
                         step_encoding=args.step_encoding, seq_len=PIXELS // args.input_size)
    return AutoencoderWithHead(ae, ClassifierHead(hidden), source="decoder")


class PixelTrainer:
    """One variant: its own copy of the model (same initial weights), Adam, and one batch."""

    def __init__(self, args, batch: int, precision: str, compiled: bool, device, seed: int):
        self.model = build_pixel_model(args, seed).to(device).train()
        self.forward = torch.compile(self.model) if compiled else self.model
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=args.lr[0])
        gen = torch.Generator().manual_seed(seed)
        self.x = torch.rand(batch, PIXELS // args.input_size, args.input_size, generator=gen).to(device)
        self.y = torch.randint(0, 10, (batch,), generator=gen).to(device)
        self.class_weight, self.grad_clip = args.class_weight, args.grad_clip[0]
        self.precision, self.device = precision, device

    def step(self) -> float:
        """One training step; returns its seconds."""
        start = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.device, self.precision):
            out, logits = self.forward(self.x)                     # AEOutput, (B, 10)
            loss = F.mse_loss(out.recon.float(), self.x) + self.class_weight * F.cross_entropy(
                logits.float(), self.y)
        loss.backward()
        if self.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.optimizer.step()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - start


def variants(default_batch: int, batches, device, compile_: bool = True) -> list[dict]:
    """The variants measured: the default, larger batches, bf16 autocast (where this machine
    can train in it; else left out with the reason) and torch.compile."""
    chosen = [dict(name=f"eager fp32, batch {default_batch} (the default)", batch=default_batch,
                   precision="fp32", compiled=False)]
    chosen += [dict(name=f"eager fp32, batch {b}", batch=b, precision="fp32", compiled=False)
               for b in batches if b != default_batch]
    reason = bf16_unsupported_reason(device)
    for b in (default_batch, max(batches)):
        chosen.append(dict(name=f"bf16 autocast, batch {b}", batch=b, precision="bf16",
                           compiled=False, left_out=reason or None))
    if compile_:
        chosen.append(dict(name=f"torch.compile, fp32, batch {default_batch}",
                           batch=default_batch, precision="fp32", compiled=True))
    return chosen


def run_pixel_study(device, *, batches=(64, 128, 256), rounds: int = 3, steps: int = 3,
                    warmup: int = 2, seed: int = 0, compile_: bool = True, extra=(),
                    log=print) -> dict:
    """Time every variant round-robin; returns {"rows": [...], "left_out": [...], "table",
    "findings"}. ``extra``: more lstm_ae_mnist.py flags (tests shrink the model with them)."""
    args = pixel_defaults(extra)
    trainers, rows, left_out = {}, [], []
    for v in variants(args.batch_size, batches, device, compile_):
        if v.get("left_out"):
            left_out.append({"what": v["name"], "reason": v["left_out"]})
            continue
        log(f"pixel study: warming up {v['name']} ...")
        trainer = PixelTrainer(args, v["batch"], v["precision"], v["compiled"], device, seed)
        try:
            first = trainer.step()                 # compile happens here for torch.compile
        except Exception as err:                   # e.g. no C++ compiler for inductor
            if not v["compiled"]:
                raise                              # an eager failure is a bug, not a finding
            left_out.append({"what": v["name"], "reason": f"{type(err).__name__}: "
                                                          f"{str(err).splitlines()[0][:200]}"})
            continue
        for _ in range(warmup - 1):
            trainer.step()
        trainers[v["name"]] = (v, trainer, first)
    times = {name: [] for name in trainers}
    for round_ in range(rounds):
        for name, (_, trainer, _) in trainers.items():
            times[name] += [trainer.step() for _ in range(steps)]
        log(f"pixel study: round {round_ + 1}/{rounds} done")
    default_name = next(iter(trainers))
    default_rate = None
    for name, (v, _, first) in trainers.items():
        seconds = statistics.median(times[name])
        rate = v["batch"] / seconds
        default_rate = default_rate or rate
        rows.append({"variant": name, "batch": v["batch"], "precision": v["precision"],
                     "compiled": v["compiled"], "ms_per_step": 1e3 * seconds,
                     "images_per_second": rate, "gain": rate / default_rate,
                     "first_step_seconds": first, "epoch_minutes": 54_000 / rate / 60,
                     "step_seconds": times[name]})
    result = {"model": build_pixel_model(args).autoencoder.config, "extra_flags": list(extra), "batch_default": args.batch_size,
              "rows": rows, "left_out": left_out, "rounds": rounds, "steps": steps,
              "warmup": warmup, "default": default_name}
    result["table"] = format_table(result)
    result["findings"] = findings(result)
    return result


def format_table(result: dict) -> str:
    lines = ["| variant | batch | ms / step | images / s | vs default | one epoch of 54,000 images "
             "| first step (compile) |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        lines.append(f"| {r['variant']} | {r['batch']} | {r['ms_per_step']:.0f} | "
                     f"{r['images_per_second']:.0f} | {r['gain']:.2f}× | "
                     f"{r['epoch_minutes']:.1f} min | {r['first_step_seconds']:.1f} s |")
    lines += [f"| {x['what']} | – | – | – | – | – | left out: {x['reason']} |"
              for x in result["left_out"]]
    return "\n".join(lines)


def findings(result: dict) -> list[str]:
    """What each lever buys in throughput, and which the pixel defaults keep."""
    rows = {r["variant"]: r for r in result["rows"]}
    default = rows[result["default"]]
    out = []
    batch_rows = [r for r in result["rows"] if not r["compiled"] and r["precision"] == "fp32"
                  and r is not default]
    if batch_rows:
        best = max(batch_rows, key=lambda r: r["gain"])
        out.append(
            f"larger batch: at best {best['gain']:.2f}× the default's images per second (batch "
            f"{best['batch']}), with {best['batch'] // default['batch']}× fewer updates per "
            f"epoch; over 784 steps the updates are what is scarce, so the default keeps batch "
            f"{default['batch']} (its 10-epoch run: README, pixel mode)")
    for r in result["rows"]:
        if r["precision"] == "bf16":
            out.append(f"{r['variant']}: {r['gain']:.2f}× the default's images per second "
                       f"(`--precision bf16` where the CPU trains in bf16; fp32 stays the "
                       f"default, as in row mode)")
        if r["compiled"]:
            saved = (default["ms_per_step"] - r["ms_per_step"]) / 1e3       # seconds per step
            overhead = r["first_step_seconds"] - default["first_step_seconds"]
            steps_per_epoch = 54_000 / r["batch"]
            if saved > 0:
                payback = (f"its compile time is paid back after {overhead / saved:,.0f} steps "
                           f"({overhead / saved / steps_per_epoch:.1f} epochs of 54,000 images)")
            else:
                payback = "it never pays back its compile time"
            out.append(f"torch.compile: {r['gain']:.2f}× the default's images per second after a "
                       f"{r['first_step_seconds']:.0f} s first step; {payback}. The scripts run "
                       f"eager")
    for x in result["left_out"]:
        out.append(f"{x['what']}: not measured here ({x['reason']})")
    return out
