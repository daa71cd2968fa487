"""LSTM autoencoders on MNIST: reconstruction and classification (spec 000, §3.2).

Trains F_fc (``LSTMAutoencoder``, fully connected gates) and F_conv (``ConvLSTMAutoencoder``,
convolutional gates, Shi et al. 2015; by default its encoder reads the rows both ways,
``--conv-encoder``, and its decoder reads z through a convolution that spans all of z,
``--z-kernel-size``) to reconstruct each image from z = h_T and, from the decoder's last hidden
state, to classify it: loss = MSE(x, x̃) + w · CE(y, ỹ), w = ``--class-weight`` (by default each
cell's own, ``CLASS_WEIGHTS``).
Images are fed row by row (``--input-size 28``, 28 steps, the default) or pixel by pixel
(``--input-size 1``, 784 steps; F_fc only, the default there); any divisor of 784 works for F_fc. Pixel mode has
its own defaults (``MODE_DEFAULTS``) for the flags the user does not set: over 784 steps the
decoder is told which step it is at (``--decoder-input z+time``) and the encoder starts with
memory spans up to 784 steps (``--init chrono``); row mode's defaults are the assignment's.
Baselines trained and evaluated in the same run: the training-set mean image, a fully
connected 784-128-32-128-784 autoencoder trained for the same epochs by the same loop (its code
size follows ``--code-size``), and PCA fitted on the training images with each model's own code
size (z = h_T has 256 numbers for F_fc by default; ``--code-size K`` maps it to K).

MNIST is read with torchvision from ``--data-dir`` (default: $LSTM_AE_DATA_DIR, else data/;
the folder that holds MNIST/raw/), downloaded only with ``--download``. Validation: a seeded
10 % of the 60,000 training images; the 10,000 test images give the final numbers only.

With ``--cell both`` on a CPU with 2 or more threads, F_fc and F_conv train side by side in two
processes, the threads split between them and all of them for the one still training once the
other has finished (``--sequential-cells``: one after the other, each with all threads).

Writes to ``--out-dir`` (default report/mnist/): digits.png, loss.png, accuracy.png,
metrics.json, and per model fc/, conv/, dense/ with history.csv and checkpoint.pt (and, for the
cells trained side by side, train.log: their progress bars and warnings).

    python lstm_ae_mnist.py --data-dir ../shared/data                  # default: both cells
    python lstm_ae_mnist.py --input-size 1 --train-size 2000 --epochs 1   # pixels (F_fc)
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import queue
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
import torch.multiprocessing
import torch.nn.functional as F
from tqdm.auto import tqdm

from baselines import pca_baselines
from cli import (INITS, Parser, add_mnist_flags, common_parser, non_negative_float, positive_int,
                 run, setup_runtime)
from data import as_steps, denormalize, load_mnist, mnist_split, normalize, take_stats
from errors import ProcessFailed, TrainingDiverged, UsageError
from hardware import machine_info
from feedforward import DenseAutoencoder
from models import (DECODER_INPUTS, STEP_ENCODINGS, AutoencoderWithHead, ClassifierHead,
                    ConvLSTMAutoencoder, LSTMAutoencoder, count_parameters)
from outputs import prepare_out_dir, write_json
from plotting import plot_histories, plot_image_grid
from training import (CHECKPOINT, HISTORY, GridBackend, TrainSettings, evaluate, fit,
                      grid_points, run_grid)

TASK = "mnist"
SIDE, PIXELS = 28, 784
DENSE_SIZES = (784, 128, 32)      # the code size follows --code-size
NAMES = {"fc": "F_fc", "conv": "F_conv"}
# Defaults of the flags whose good value depends on the mode: --input-size 1 ("pixel", 784
# steps) or any other ("row"; 28 steps by default). A flag the user sets is never changed.
# Pixel mode: the decoder cannot count 784 steps from a constant z, so it is told the step
# (z+time); the encoder must carry the first pixels over 784 steps (chrono: forget-gate biases up
# to log 783 instead of 1); a smaller, faster model with more, smaller steps (each step of 784
# is costly, so more updates per image seen pay off).
# F_conv needs at least 2 values per step, so pixel mode trains F_fc alone.
# The class-loss weight w of each cell when --class-weight is not set, chosen on validation
# (README): F_conv, whose code is a (2C, W) map, classifies better with more weight on the
# cross-entropy, paying for it in MSE (higher than at 0.02, still at the dense AE's); F_fc
# gained nothing from 0.05.
CLASS_WEIGHTS = {"fc": 0.02, "conv": 0.05}
MODE_DEFAULTS = {
    "row": dict(cell="both", hidden_size=[256], batch_size=128, lr=[3e-3], init="orthogonal",
                decoder_input="z"),
    "pixel": dict(cell="fc", hidden_size=[64], batch_size=32, lr=[1e-2], init="chrono",
                  decoder_input="z+time"),
}


def class_weight(args, cell: str) -> float:
    """w in loss = MSE + w · CE for ``cell`` ("fc" or "conv"): --class-weight, else CLASS_WEIGHTS."""
    return CLASS_WEIGHTS[cell] if args.class_weight is None else args.class_weight


def input_mode(input_size: int) -> str:
    """The MODE_DEFAULTS row for an --input-size: "pixel" for 1, "row" for any other."""
    return "pixel" if input_size == 1 else "row"


def odd_int(text: str) -> int:
    value = positive_int(text)
    if value % 2 == 0:
        raise argparse.ArgumentTypeError(f"must be odd (same padding keeps the row width), got {value}")
    return value


def _describe_mode_defaults(parser: argparse.ArgumentParser) -> None:
    """Flags in MODE_DEFAULTS default to None (filled in by ``fill_mode_defaults`` after
    parsing) and their help names both modes' defaults."""
    def shown(value):
        return " ".join(f"{v:g}" if isinstance(v, float) else str(v)
                        for v in (value if isinstance(value, list) else [value]))

    row, pixel = MODE_DEFAULTS["row"], MODE_DEFAULTS["pixel"]
    parser.set_defaults(**{flag: None for flag in row})
    for action in parser._actions:
        if action.dest in row:
            described = (f"(default {shown(row[action.dest])}; with --input-size 1, pixel mode, "
                         f"{shown(pixel[action.dest])})")
            action.help = action.help.rsplit(" (default", 1)[0] + " " + described


def fill_mode_defaults(args) -> None:
    """Every MODE_DEFAULTS flag the user did not set takes its mode's default."""
    for flag, value in MODE_DEFAULTS[input_mode(args.input_size)].items():
        if getattr(args, flag) is None:
            setattr(args, flag, value)


def parse_args(argv=None):
    common = common_parser(TASK, input_size=SIDE, hidden_size=256, epochs=10, lr=3e-3,
                           grad_clip=1.0, inits=(*INITS, "chrono"))
    parser = Parser(description=__doc__.split("\n\n")[0], parents=[common])
    data = add_mnist_flags(parser)
    data.add_argument("--normalize", action="store_true",
                      help="normalise each image to [0, 1] with mean ½ (spec §2, data.normalize); "
                           "default: raw pixels / 255, already in [0, 1]")
    model = parser.add_argument_group("MNIST models")
    model.add_argument("--cell", choices=("fc", "conv", "both"), default="both",
                       help="fc: LSTM with fully connected gates (F_fc); conv: convolutional LSTM "
                            "(F_conv); both: train both with the same settings and split "
                            "(default both)")
    model.add_argument("--conv-encoder", choices=("bidirectional", "forward"), default="bidirectional",
                       help="F_conv's encoder: bidirectional (a second ConvLSTM reads the rows "
                            "bottom to top and z = both final maps, so no row has to be carried "
                            "across the whole image; chosen on validation, see README) or forward "
                            "(one ConvLSTM, top to bottom, as F_fc's) (default bidirectional)")
    model.add_argument("--conv-channels", type=positive_int, default=14,
                       help="F_conv: channels of the hidden maps; z is channels × input size, "
                            "twice that with the bidirectional encoder (default 14)")
    model.add_argument("--kernel-size", type=odd_int, default=3,
                       help="F_conv: odd 1-D convolution width along the row (default 3)")
    model.add_argument("--z-kernel-size", type=odd_int, default=None,
                       help="F_conv: odd width of the convolution through which the decoder reads "
                            "z, at least --kernel-size; it runs once per image (z does not change "
                            "over the steps); --kernel-size gives the plain ConvLSTM decoder "
                            "(default 2 × input size − 1, 55 for rows: every decoder position "
                            "sees all of z; chosen on validation, see README)")
    model.add_argument("--no-reverse", dest="reverse", action="store_false",
                       help="decode the top row first; by default MNIST is decoded bottom row "
                            "first (--reverse is on here)")
    model.add_argument("--class-weight", type=non_negative_float, default=None,
                       help="weight w of the cross-entropy term in loss = MSE + w·CE, for every "
                            "cell trained; larger values starve the reconstruction (default: "
                            "each cell's own, 0.02 for F_fc and 0.05 for F_conv)")
    model.add_argument("--sequential-cells", action="store_true",
                       help="--cell both: train F_fc, then F_conv, each with all --threads, "
                            "in this process; by default on a CPU with 2 or more threads they "
                            "train side by side in two processes with the threads split "
                            "(F_conv gains little from a second thread) and the one still "
                            "training takes them all when the other has finished, each logging "
                            "its full progress to <out-dir>/<cell>/train.log")
    model.add_argument("--decoder-input", choices=DECODER_INPUTS,
                       help="F_fc: what the decoder reads at every step: z (the assignment) or "
                            "z+time (z and an encoding of the step index, so it knows where it "
                            "is in a long sequence; never a copy of x) (default z)")
    model.add_argument("--step-encoding", choices=STEP_ENCODINGS, default="sinusoid",
                       help="--decoder-input z+time: sinusoid (16 fixed sin/cos features of the "
                            "step index) or learned (a trained vector of 16 per step) "
                            "(default sinusoid)")
    parser.set_defaults(reverse=True)
    for action in parser._actions:                     # the shared flag applies to F_fc here
        if action.dest == "bidirectional":
            action.help = ("F_fc: bidirectional encoder, z = [forward h_T, backward h_1] "
                           "(F_conv: --conv-encoder)")
    _describe_mode_defaults(parser)
    args = parser.parse_args(argv)
    fill_mode_defaults(args)
    return args


def check_args(args) -> list[str]:
    """Flag combinations argparse cannot check; returns the architectures to train."""
    if PIXELS % args.input_size:
        raise UsageError(f"--input-size {args.input_size}: must divide the {PIXELS} pixels of an "
                         f"image (1 = pixel by pixel, 28 = row by row)")
    cells = ["fc", "conv"] if args.cell == "both" else [args.cell]
    if "conv" in cells and args.input_size == 1:
        raise UsageError(f"--cell {args.cell} with --input-size 1: a convolutional LSTM needs "
                         f"at least 2 values per step to convolve over; use --cell fc for "
                         f"pixel-by-pixel input")
    if "conv" in cells and args.decoder != "repeat":
        raise UsageError(f"--decoder {args.decoder}: F_conv has only the repeat decoder; use "
                         f"--cell fc")
    if "conv" in cells and args.decoder_input != "z":
        raise UsageError(f"--decoder-input {args.decoder_input}: F_conv's decoder reads z only; "
                         f"use --cell fc")
    if args.z_kernel_size is None:                       # every decoder position sees all of z
        args.z_kernel_size = max(2 * args.input_size - 1, args.kernel_size)
    if "conv" in cells and args.z_kernel_size < args.kernel_size:
        raise UsageError(f"--z-kernel-size {args.z_kernel_size}: must be at least --kernel-size "
                         f"{args.kernel_size}")
    if "conv" in cells and args.init == "chrono":
        raise UsageError("--init chrono: F_conv has no chrono initialisation; use --cell fc, or "
                         "--init orthogonal")
    if args.init == "chrono" and PIXELS // args.input_size <= 2:
        raise UsageError(f"--init chrono: needs more than 2 steps (--input-size {args.input_size} "
                         f"gives {PIXELS // args.input_size})")
    return cells


def classification_step(class_weight: float):
    """step_fn for (x (B, T, m), y (B,)): loss = MSE(x, x̃) + w · CE(y, ỹ)."""
    def step(model, batch):
        x, y = batch
        out, logits = model(x)                                # AEOutput, (B, 10)
        mse = F.mse_loss(out.recon, x)
        ce = F.cross_entropy(logits, y)
        accuracy = (logits.argmax(1) == y).float().mean()
        return mse + class_weight * ce, {"mse": mse.item(), "ce": ce.item(),
                                         "accuracy": accuracy.item()}
    return step


def reconstruction_step(model, batch):
    """step_fn for the dense baseline: x (B, 784) → MSE(x, x̃)."""
    x = batch[0]
    return F.mse_loss(model(x), x), {}


def first_digits_of_different_classes(labels: torch.Tensor, count: int) -> list[int]:
    """Indices of the first ``count`` images whose labels all differ (the digits shown)."""
    shown, seen = [], set()
    for i, label in enumerate(labels.tolist()):
        if label not in seen:
            shown.append(i)
            seen.add(label)
        if len(shown) == count:
            break
    return shown


def build_model(cell: str, args, params: dict) -> AutoencoderWithHead:
    """F_fc ("fc") or F_conv ("conv") for a grid point, with the classifier on the decoder's
    last hidden state; for F_conv, params["hidden_size"] is the channel count."""
    m = args.input_size
    if cell == "fc":
        ae = LSTMAutoencoder(m, params["hidden_size"], args.num_layers, decoder=args.decoder,
                             reverse=args.reverse, bidirectional=args.bidirectional,
                             teacher_forcing=args.teacher_forcing, init=args.init,
                             code_size=args.code_size, decoder_input=args.decoder_input,
                             step_encoding=args.step_encoding, seq_len=PIXELS // m)
        return AutoencoderWithHead(ae, ClassifierHead(params["hidden_size"]), source="decoder")
    ae = ConvLSTMAutoencoder(m, params["hidden_size"], args.kernel_size, args.num_layers,
                             reverse=args.reverse,
                             bidirectional=args.conv_encoder == "bidirectional",
                             init=args.init, code_size=args.code_size,
                             z_kernel_size=args.z_kernel_size)
    return AutoencoderWithHead(ae, ClassifierHead(params["hidden_size"] * m), source="decoder")


@dataclass
class CellJob:
    """Everything one cell's training and test need; picklable, as it may run in another
    process. Sets are [x (N, T, m), y (N,)] on the CPU."""
    args: argparse.Namespace
    train_set: list[torch.Tensor]
    val_set: list[torch.Tensor]
    test_set: list[torch.Tensor]
    shown: list[int]                  # test images whose reconstructions digits.png shows
    settings: TrainSettings
    identity: dict                    # what every cell's checkpoint must match for --resume
    out_dir: Path
    resume: dict[str, bool]           # per cell: continue from out_dir/<cell>/


@dataclass
class CellRun:
    """What a trained cell leaves for the report: its metrics.json entry, its history, and
    its reconstructions (3, 784) and predicted labels of the shown digits."""
    result: dict
    history: list[dict]
    recon: np.ndarray
    predicted: list[int]


def train_cell(cell: str, job: CellJob, device: torch.device,
               wrap_step: Callable | None = None) -> CellRun:
    """Grid-search (or train) one cell in out_dir/<cell>/ and test its best model.
    ``wrap_step(step_fn)``: a step function to train with instead (see ``_take_all_threads``)."""
    args = job.args
    weight = class_weight(args, cell)
    step = classification_step(weight)
    if wrap_step is not None:
        step = wrap_step(step)
    run_dir = job.out_dir / cell
    run_dir.mkdir(exist_ok=True)
    sizes = args.hidden_size if cell == "fc" else [args.conv_channels]
    build = functools.partial(build_model, cell, args)
    model_config = {k: v for k, v in build({"hidden_size": 1}).autoencoder.config.items()
                    if k not in ("hidden_size", "channels")}
    grid = run_grid(grid_points(sizes, args.lr, args.grad_clip), build, step, job.train_set,
                    job.val_set, job.settings, out_dir=run_dir,
                    identity={**job.identity, "model": model_config, "class_weight": weight},
                    device=device, seed=args.seed, resume=job.resume[cell],
                    backend=GridBackend.from_args(args))
    model = grid.model
    test_set = [t.to(device) for t in job.test_set]
    test = evaluate(model, step, test_set)
    with torch.no_grad():
        model.eval()
        out, logits = model(test_set[0][job.shown])
    result = {
        "test_mse": test["mse"],
        "test_accuracy": test["accuracy"],
        "test_cross_entropy": test["ce"],
        "class_weight": weight,
        "parameters": count_parameters(model),
        "seconds_per_epoch": float(np.mean([r["seconds"] for r in grid.history])),
        "z_size": model.autoencoder.z_size,
        "best_params": grid.params,
        "best_epoch": min(grid.history, key=lambda r: r["val_loss"])["epoch"],
        "epochs_run": len(grid.history),
        "interrupted": grid.interrupted,
        "model": model.autoencoder.config,
    }
    return CellRun(result, grid.history, out.recon.reshape(len(job.shown), PIXELS).cpu().numpy(),
                   logits.argmax(1).tolist())


# Side by side: neither cell's step gains 2× from a second thread (README), so on a
# CPU the two cells finish sooner in two processes with the threads split between them than
# one after the other with all threads each.
def side_by_side(args, cells: list[str], device: torch.device, threads: int) -> bool:
    """Whether the cells train in two processes at once (see --sequential-cells)."""
    return (len(cells) == 2 and threads >= 2 and device.type == "cpu"
            and not args.sequential_cells and args.backend == "local")


def _take_all_threads(alone, threads: int, step: Callable) -> Callable:
    """``step`` that, from the first step after ``alone`` is set (the other cell has finished),
    runs with ``threads`` threads: the cell still training gets the whole machine."""
    def step_with_threads(model, batch):
        if torch.get_num_threads() != threads and alone.is_set():
            torch.set_num_threads(threads)
            print(f"\nthe other cell has finished: {threads} threads from here", file=sys.stderr)
        return step(model, batch)
    return step_with_threads


def _train_cell_in_process(cell: str, job: CellJob, threads: int, all_threads: int, alone,
                           log_path: Path, results) -> None:
    """Worker process: train one cell with ``threads`` threads (``all_threads`` once the
    event ``alone`` is set), its progress bars and warnings in ``log_path``; put (cell,
    CellRun or the one-line error) on ``results``."""
    torch.set_num_threads(threads)
    with open(log_path, "w") as log, contextlib.redirect_stderr(log):
        try:
            outcome = train_cell(cell, job, torch.device("cpu"),
                                 functools.partial(_take_all_threads, alone, all_threads))
        except (UsageError, TrainingDiverged) as err:
            outcome = err
    results.put((cell, outcome))


def epochs_done(run_dir: Path, since: float | None) -> tuple[int, dict | None]:
    """Epochs finished under a cell's folder (its run, or its grid's trials) per history.csv,
    counting only files written after ``since`` (None: all, as with --resume), and the
    last row written."""
    total, last, last_time = 0, None, -1.0
    for path in [run_dir / HISTORY, *run_dir.glob(f"trials/*/{HISTORY}")]:
        try:
            written = path.stat().st_mtime
            if (since is not None and written < since) or (path.parent == run_dir and
                                                            (run_dir / "trials").exists()):
                continue
            rows = pd.read_csv(path)
        except (OSError, pd.errors.EmptyDataError):
            continue                  # not written yet
        total += len(rows)
        if written > last_time and len(rows):
            last, last_time = rows.iloc[-1].to_dict(), written
    return total, last


class CellsSideBySide:
    """Each cell training in its own process (spawned; the threads split between them, and all
    of them for the one still training once the other has finished), started on creation.
    ``wait`` shows one progress line per cell, read from its history.csv (the full progress is
    in out_dir/<cell>/train.log), and returns the cells' runs. Ctrl-C reaches every process:
    each cell saves its checkpoint and tests its best model so far (as fit does), and this
    process waits for them."""

    def __init__(self, cells: list[str], job: CellJob, threads: int):
        context = torch.multiprocessing.get_context("spawn")
        self.cells, self.job, self.results = cells, job, context.Queue()
        share = {"fc": threads // 2, "conv": threads - threads // 2}   # F_conv is the slower
        self.alone = {cell: context.Event() for cell in cells}
        self.started = time.time()
        self.workers = {}
        for cell in cells:
            (job.out_dir / cell).mkdir(exist_ok=True)
            self.workers[cell] = context.Process(
                target=_train_cell_in_process, daemon=True, name=NAMES[cell],
                args=(cell, job, share[cell], threads, self.alone[cell],
                      job.out_dir / cell / "train.log", self.results))
            self.workers[cell].start()
        print(f"F_fc and F_conv train side by side, {share['fc']} + {share['conv']} threads, all "
              f"{threads} for the one still training when the other has finished "
              f"(--sequential-cells: one after the other); their logs: "
              f"{job.out_dir}/fc/train.log, {job.out_dir}/conv/train.log", file=sys.stderr)

    def stop(self) -> None:
        """End the cells' processes (their checkpoints stay) and wait for them."""
        for worker in self.workers.values():
            if worker.is_alive():
                worker.terminate()
            worker.join()

    def _show_progress(self, bars: dict) -> None:
        for cell, bar in bars.items():
            done, last = epochs_done(self.job.out_dir / cell,
                                     None if self.job.resume[cell] else self.started)
            bar.update(max(0, done - bar.n))
            if last:
                bar.set_postfix(train=f"{last['train_loss']:.4g}", val=f"{last['val_loss']:.4g}")

    def wait(self) -> dict[str, CellRun]:
        args, job = self.job.args, self.job
        n_points = {cell: len(args.hidden_size if cell == "fc" else [0]) * len(args.lr)
                    * len(args.grad_clip) for cell in self.cells}
        bars = {cell: tqdm(total=job.settings.epochs * n_points[cell], desc=NAMES[cell],
                           unit="epoch", position=i, smoothing=0, dynamic_ncols=True,
                           file=sys.stderr)
                for i, cell in enumerate(self.cells)}
        runs: dict[str, CellRun] = {}
        try:
            while len(runs) < len(self.cells):
                try:
                    cell, outcome = self.results.get(timeout=2)
                except queue.Empty:
                    self._show_progress(bars)
                    for cell, worker in self.workers.items():
                        if cell not in runs and not worker.is_alive():
                            kept = (job.out_dir / cell / CHECKPOINT).exists()
                            raise ProcessFailed(
                                f"{NAMES[cell]}'s training process ended (exit code "
                                f"{worker.exitcode}) without a result; its log: "
                                f"{job.out_dir}/{cell}/train.log"
                                + ("; --resume continues from its last checkpoint" if kept
                                   else " (it had not finished an epoch)"))
                    continue
                except KeyboardInterrupt:
                    print(f"\ninterrupted: each cell saves its checkpoint and tests its best "
                          f"model so far", file=sys.stderr)
                    continue
                if isinstance(outcome, Exception):
                    raise outcome
                runs[cell] = outcome
                bars[cell].update(max(0, outcome.result["epochs_run"] - bars[cell].n))
                for other in self.cells:
                    self.alone[other].set()
        finally:
            for bar in bars.values():
                bar.close()
            self.stop()                   # on an error, the other cell stops too
        return runs


def main(argv=None):
    args = parse_args(argv)
    cells = check_args(args)
    device = setup_runtime(args)
    started = time.time()

    # data: the whole set as tensors, (N, 784) in [0, 1], optionally per-image normalised
    train_images, train_labels = load_mnist(args.data_dir, train=True, download=args.download)
    test_images, test_labels = load_mnist(args.data_dir, train=False, download=args.download)
    train_idx, val_idx = mnist_split(args.seed, args.train_size, n=len(train_images))
    out_dir = prepare_out_dir(args.out_dir)
    train_flat, test_flat = train_images.flatten(1), test_images.flatten(1)   # (N, 784)
    test_stats = None
    if args.normalize:
        train_flat, _ = normalize(train_flat)
        test_flat, test_stats = normalize(test_flat)
    train_x, val_x = train_flat[train_idx], train_flat[val_idx]
    train_y, val_y = train_labels[train_idx], train_labels[val_idx]
    m = args.input_size

    def steps(x):                                             # (N, 784) → (N, 784 / m, m)
        return as_steps(x, m)

    units = "normalised units" if args.normalize else "pixel values in [0, 1]"
    shown = first_digits_of_different_classes(test_labels, 3)
    resume_any = args.resume
    if args.resume and not any((out_dir / d / CHECKPOINT).exists() or (out_dir / d / "trials").exists()
                               for d in ("dense", *cells)):
        raise UsageError(f"--resume: no checkpoint under {out_dir}/ (dense/, fc/ or conv/)")

    def resume_in(run_dir) -> bool:
        return resume_any and ((run_dir / CHECKPOINT).exists() or (run_dir / "trials").exists())

    settings = TrainSettings.from_args(args)
    data_config = dict(input_size=m, normalize=args.normalize, train_size=args.train_size,
                       seed=args.seed, n_train=len(train_idx), n_val=len(val_idx))
    common_identity = dict(task=TASK, data=data_config, optimizer=args.optimizer,
                           lr_schedule=args.lr_schedule, weight_decay=args.weight_decay,
                           batch_size=args.batch_size)

    # the LSTM autoencoders with a classification head on the decoder's last hidden state;
    # side by side (see side_by_side) they train in their own processes from here on, while
    # this one trains the dense baseline with one thread
    job = CellJob(args=args, train_set=[steps(train_x), train_y], val_set=[steps(val_x), val_y],
                  test_set=[steps(test_flat), test_labels], shown=shown, settings=settings,
                  identity=common_identity, out_dir=out_dir,
                  resume={cell: resume_in(out_dir / cell) for cell in cells})
    threads = args.threads or torch.get_num_threads()
    cells_training = None
    if side_by_side(args, cells, device, threads):
        cells_training = CellsSideBySide(cells, job, threads)
        torch.set_num_threads(1)

    # baselines: the training-set mean image, and the dense 784-128-32-128-784 autoencoder
    mean_image = train_x.mean(0, keepdim=True)                # (1, 784)
    mean_image_mse = F.mse_loss(mean_image.expand_as(test_flat), test_flat).item()
    dense_dir = out_dir / "dense"
    dense_dir.mkdir(exist_ok=True)
    torch.manual_seed(args.seed)
    dense = DenseAutoencoder((*DENSE_SIZES[:-1], args.code_size or DENSE_SIZES[-1]))
    try:
        dense_fit = fit(dense, reconstruction_step, [train_x], [val_x], settings,
                        run_dir=dense_dir,
                        identity={**common_identity, "model": dense.config, "lr": settings.lr,
                                  "grad_clip": settings.grad_clip},
                        device=device, seed=args.seed, resume=resume_in(dense_dir),
                        desc="dense AE")
    except BaseException:
        if cells_training:
            cells_training.stop()
        raise
    dense_mse = evaluate(dense, reconstruction_step, [test_flat.to(device)])["loss"]

    if cells_training:
        runs = cells_training.wait()
        torch.set_num_threads(threads)
    else:
        runs = {cell: train_cell(cell, job, device) for cell in cells}
    results = {cell: runs[cell].result for cell in cells}
    histories = {NAMES[cell]: runs[cell].history for cell in cells}
    for cell in cells:
        results[cell]["mse_vs_dense_ae"] = results[cell]["test_mse"] / dense_mse
        results[cell]["mse_vs_mean_image"] = results[cell]["test_mse"] / mean_image_mse

    # PCA with each model's code size, fitted on the training images as the models see them
    code_sizes = {cell: results[cell]["z_size"] for cell in cells}
    dense_code = dense.config["sizes"][-1]
    pca = pca_baselines(train_x, test_flat, sorted({*code_sizes.values(), dense_code}))
    for cell in cells:
        results[cell]["pca"] = pca[code_sizes[cell]]
        results[cell]["mse_vs_pca"] = results[cell]["test_mse"] / pca[code_sizes[cell]]["test_mse"]

    # digits.png: three test digits of different classes and their reconstructions (pixels)
    def pixels(x, rows):                                      # model units → image (28, 28)
        if test_stats is not None:
            x = denormalize(x, take_stats(test_stats, rows))
        return x.reshape(len(rows), SIDE, SIDE).clamp(0, 1).numpy()

    mode = {1: "pixel by pixel", SIDE: "row by row"}.get(m, f"{m} pixels per step")
    originals = pixels(test_flat[shown], shown)
    recons = {cell: pixels(torch.from_numpy(run.recon), shown) for cell, run in runs.items()}
    grid_rows, col_labels = [], []
    for k, i in enumerate(shown):
        grid_rows.append([originals[k]] + [recons[cell][k] for cell in cells])
        col_labels.append([f"original (label {test_labels[i].item()})"]
                          + [f"{NAMES[cell]} → predicted {runs[cell].predicted[k]}" for cell in cells])
    plot_image_grid(grid_rows, out_dir / "digits.png",
                    title=f"MNIST test digits and their reconstructions ({mode}"
                          f"{'; per-image normalised, shown in pixels' if args.normalize else ''})",
                    row_labels=[f"test image {i}" for i in shown], col_labels=col_labels,
                    value_label="pixel intensity (0 = black, 1 = white)")

    # loss.png and accuracy.png: one curve per architecture, train solid, validation dashed
    plot_histories(histories, out_dir / "loss.png", metric="loss", logy=True,
                   title="Training loss: MSE + w × cross-entropy ("
                         + ", ".join(f"{NAMES[cell]} w = {results[cell]['class_weight']:g}"
                                     for cell in cells) + ")",
                   ylabel=f"loss ({units})")
    percent = {name: [{**row, "train_accuracy": 100 * row["train_accuracy"],
                       "val_accuracy": 100 * row["val_accuracy"]} for row in history]
               for name, history in histories.items()}
    plot_histories(percent, out_dir / "accuracy.png", metric="accuracy",
                   title="Classification accuracy from the decoder's last hidden state",
                   ylabel="accuracy (%)")

    metrics = {
        **{NAMES[cell]: results[cell] for cell in cells},
        "baselines": {
            "mean_image": {"test_mse": mean_image_mse},
            "dense_ae": {"test_mse": dense_mse, "sizes": [*dense.config["sizes"],
                                                          *dense.config["sizes"][-2::-1]],
                         "z_size": dense_code, "pca": pca[dense_code],
                         "mse_vs_pca": dense_mse / pca[dense_code]["test_mse"],
                         "parameters": count_parameters(dense),
                         "seconds_per_epoch": float(np.mean([r["seconds"] for r in dense_fit.history])),
                         "epochs_run": len(dense_fit.history), "best_epoch": dense_fit.best_epoch},
        },
        "mse_units": units,
        "data": {**data_config, "n_test": len(test_flat), "steps": PIXELS // m,
                 "digits_shown": shown},
        "run_seconds": time.time() - started,
        **machine_info(device),            # device, torch_threads, CPU and its flags
        "config": {k: v for k, v in vars(args).items() if k != "debug"},
    }
    write_json(out_dir / "metrics.json", metrics)

    print(f"baselines: mean image MSE {mean_image_mse:.4f}, dense AE (z = {dense_code}) MSE "
          f"{dense_mse:.4f}, PCA-{dense_code} {pca[dense_code]['test_mse']:.4f} ({units})")
    for cell in cells:
        r = results[cell]
        print(f"{NAMES[cell]} (z = {code_sizes[cell]}): test MSE {r['test_mse']:.4f} (PCA-"
              f"{code_sizes[cell]} {r['pca']['test_mse']:.4f}), accuracy {100 * r['test_accuracy']:.2f} %, "
              f"{r['parameters']:,} parameters, {r['seconds_per_epoch']:.1f} s/epoch")
    print(f"outputs in {out_dir}/")


if __name__ == "__main__":
    sys.exit(run(main))
