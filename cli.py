"""The command line every experiment script shares.

``common_parser(task)`` is an argparse *parent* parser with the model, training and grid-search
flags of the assignment (§3: input size, hidden size, epochs, optimizer, learning rate, gradient
clipping, batch size); each script adds its own flags on top. ``run(main)`` turns the project's
errors into one line on stderr and an exit status (2 for bad input), so a user never sees a raw
traceback unless they pass ``--debug``.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import traceback

import torch

from errors import ProcessFailed, TrainingDiverged, UsageError
from hardware import check_device, check_precision, check_threads

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
DATA_ENV = "LSTM_AE_DATA_DIR"     # default --data-dir


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line (argparse prints the usage block too)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def code_size_value(text: str) -> int | None:
    """--code-size: a positive whole number, or "none" (no map: z = h_T)."""
    if text.strip().lower() == "none":
        return None
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError as error:
        raise argparse.ArgumentTypeError(f"{error} (or none: z = h_T)") from None


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"must be finite, got {text!r}")
    return value


def positive_float(text: str) -> float:
    value = _float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value:g}")
    return value


def non_negative_float(text: str) -> float:
    value = _float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value:g}")
    return value


def probability(text: str) -> float:
    value = _float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {value:g}")
    return value


INITS = ("orthogonal", "torch")   # --init values every LSTM model here supports

MODEL_FLAGS = ("--input-size", "--hidden-size", "--num-layers", "--code-size", "--decoder",
               "--teacher-forcing", "--reverse", "--bidirectional", "--init")


def common_parser(task: str, *, input_size: int = 1, hidden_size: int = 64, num_layers: int = 1,
                  code_size: int | None = None, epochs: int | None, lr: float, grad_clip: float,
                  batch_size: int = 128, patience: int = 0, lr_schedule: str = "onecycle",
                  optimizer: str = "adam", model_flags: tuple[str, ...] = MODEL_FLAGS,
                  inits: tuple[str, ...] = INITS, grid: bool = True) -> argparse.ArgumentParser:
    """Parent parser with the flags every script shares; defaults are the script's own.

    ``model_flags``: which of the LSTM autoencoder's model flags (``MODEL_FLAGS``) the script
    has; a script whose model is not an LSTM AE keeps only those that mean something for it
    (e.g. ``("--hidden-size", "--num-layers", "--init")``, or none) and adds its own.
    ``epochs=None`` leaves out ``--epochs`` (a script that counts steps); ``grid=False`` leaves
    out --backend, --parallel and --ray-address (a script without grid search). ``inits``: the
    --init choices the script's models support (``INITS``, plus "chrono" where the script builds
    ``models.LSTMAutoencoder`` with its sequence length)."""
    p = Parser(add_help=False)
    if model_flags:
        _autoencoder_flags(p, model_flags, input_size, hidden_size, num_layers, code_size, inits)
    add_training_flags(p, epochs=epochs, lr=lr, grad_clip=grad_clip, batch_size=batch_size,
                       patience=patience, lr_schedule=lr_schedule, optimizer=optimizer)
    add_run_flags(p, task, grid=grid)
    return p


def _autoencoder_flags(p: argparse.ArgumentParser, model_flags: tuple[str, ...], input_size: int,
                       hidden_size: int, num_layers: int, code_size: int | None,
                       inits: tuple[str, ...] = INITS) -> None:
    model = p.add_argument_group("model")
    unknown = set(model_flags) - set(MODEL_FLAGS)
    if unknown:
        raise ValueError(f"unknown model flags {sorted(unknown)}; expected some of {MODEL_FLAGS}")

    def add_model_flag(flag, **kwargs):        # only the model flags this script asked for
        if flag in model_flags:
            model.add_argument(flag, **kwargs)

    add_model_flag("--input-size", type=positive_int, default=input_size,
                   help=f"values fed per time step; must divide the sequence length "
                        f"(default {input_size})")
    add_model_flag("--hidden-size", type=positive_int, nargs="+", default=[hidden_size],
                   metavar="H", help=f"LSTM hidden state size; several values run a grid "
                                     f"search (default {hidden_size})")
    add_model_flag("--num-layers", type=positive_int, default=num_layers,
                   help=f"stacked LSTM layers (in encoder and decoder) (default {num_layers})")
    add_model_flag("--code-size", type=code_size_value, default=code_size, metavar="K",
                   help=f"numbers in the code z: a learned linear map from the encoder's final "
                        f"state to K numbers, which are all the decoder receives (compare with "
                        f"PCA-K); none: no map, z = h_T, as many numbers as the hidden state "
                        f"(the assignment's z) (default {code_size or 'none'})")
    add_model_flag("--decoder", choices=("repeat", "autoregressive"), default="repeat",
                   help="repeat: the assignment's decoder, fed z at every step; "
                        "autoregressive: fed z and its own previous output (default repeat)")
    add_model_flag("--teacher-forcing", type=probability, default=0.0, metavar="P",
                   help="autoregressive decoder only: probability of feeding the true "
                        "previous value during training; never used at evaluation (default 0)")
    add_model_flag("--reverse", action="store_true",
                   help="decode the sequence in reverse order (x_T first)")
    add_model_flag("--bidirectional", action="store_true",
                   help="bidirectional encoder: z = [forward h_T, backward h_1]")
    chrono = ("; chrono: orthogonal, then the encoder's forget-gate biases log U(1, T-1) and "
              "input-gate biases their negative, for memory over all T steps (Tallec & Ollivier "
              "2018)" if "chrono" in inits else "")
    add_model_flag("--init", choices=inits, default="orthogonal",
                   help=f"LSTM initialisation: orthogonal (recurrent weights orthogonal, forget "
                        f"bias 1; leaves the 'predict the mean' plateau) or torch (PyTorch's "
                        f"default uniform){chrono} (default orthogonal)")


def add_training_flags(p: argparse.ArgumentParser, *, epochs: int | None, lr: float,
                       grad_clip: float, batch_size: int = 128, patience: int = 0,
                       lr_schedule: str = "onecycle", optimizer: str = "adam") -> None:
    """Optimiser and training-loop flags (``training.TrainSettings.from_args`` reads them);
    ``epochs=None`` leaves out --epochs."""
    train = p.add_argument_group("training")
    if epochs is not None:
        train.add_argument("--epochs", type=positive_int, default=epochs,
                           help=f"maximum training epochs (default {epochs})")
    train.add_argument("--optimizer", choices=OPTIMIZERS, default=optimizer,
                       help=f"optimizer (default {optimizer})")
    train.add_argument("--lr", type=positive_float, nargs="+", default=[lr], metavar="LR",
                       help=f"peak learning rate; several values run a grid search (default {lr:g})")
    train.add_argument("--lr-schedule", choices=("onecycle", "constant"), default=lr_schedule,
                       help=f"onecycle: warm up to --lr then cosine decay; constant: --lr "
                            f"throughout (default {lr_schedule})")
    train.add_argument("--weight-decay", type=non_negative_float, default=0.0,
                       help="weight decay (default 0)")
    train.add_argument("--grad-clip", type=non_negative_float, nargs="+", default=[grad_clip],
                       metavar="C", help=f"clip the gradient norm to C (0 = off); several values "
                                         f"run a grid search (default {grad_clip:g})")
    train.add_argument("--batch-size", type=positive_int, default=batch_size,
                       help=f"sequences per training step (default {batch_size})")
    train.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                       help="bf16: training and validation forward passes under torch.autocast "
                            "in bfloat16 (weights, gradients and optimizer stay fp32; test numbers "
                            "are computed in fp32); faster on CPUs with AVX512-BF16 or AMX and on "
                            "GPUs, see report/performance.md; refused where this machine cannot "
                            "run it (hardware.bf16_support) (default fp32)")
    train.add_argument("--patience", type=non_negative_int, default=patience,
                       help=f"stop after this many epochs without a better validation loss "
                            f"(0 = never; default {patience})")


def add_run_flags(p: argparse.ArgumentParser, task: str, *, resume: bool = True,
                  grid: bool = False) -> None:
    """Run control: seed, device, threads, output folder, --resume (when the script keeps
    checkpoints), the grid backend (when it runs grid searches), --debug."""
    run = p.add_argument_group("run")
    run.add_argument("--seed", type=int, default=0,
                     help="seed for data generation, splits, initialisation and shuffling "
                          "(default 0)")
    run.add_argument("--device", default="auto",
                     help="auto (cuda if available, else cpu), cpu, cuda or cuda:N (default auto)")
    run.add_argument("--threads", type=positive_int, default=None,
                     help="CPU threads for torch (default: torch's choice, one per core)")
    run.add_argument("--out-dir", default=os.path.join("report", task),
                     help=f"where figures, metrics, history and checkpoints go "
                          f"(default report/{task}/)")
    if resume:
        run.add_argument("--resume", action="store_true",
                         help="continue an interrupted run from the checkpoint in --out-dir")
    if grid:
        _grid_flags(run)
    run.add_argument("--debug", action="store_true",
                     help="show the full traceback on errors")


def _grid_flags(run) -> None:
    run.add_argument("--backend", choices=("local", "ray"), default="local",
                     help="where a grid's trials run: local (one after another in this process) "
                          "or ray (Ray Tune trials, --parallel at a time, on a local Ray runtime "
                          "or the cluster at --ray-address; pip install -r requirements-ray.txt) "
                          "(default local)")
    run.add_argument("--parallel", type=positive_int, default=1, metavar="N",
                     help="--backend ray: grid trials run at once, each with --threads threads "
                          "(default: cores / N) (default 1)")
    run.add_argument("--ray-address", default=None, metavar="ADDRESS",
                     help="--backend ray: join this Ray cluster (HOST:PORT of `ray start "
                          "--head`, ray://HOST:PORT, or auto); default: start a local Ray "
                          "runtime on this machine")


def add_mnist_flags(p: argparse.ArgumentParser, *, train_size: bool = True):
    """Where MNIST is read from (--data-dir, --download) and, for the trained models,
    --train-size (a seeded subset of the training split, ``data.mnist_split``). Returns the
    "data" argument group, for the script's own data flags."""
    data = p.add_argument_group("data")
    data.add_argument("--data-dir", default=os.environ.get(DATA_ENV, "data"),
                      help=f"folder holding MNIST/raw/ (torchvision layout); default "
                           f"${DATA_ENV} if set, else data/")
    data.add_argument("--download", action="store_true",
                      help="download MNIST into --data-dir if it is not there (needs internet)")
    if train_size:
        data.add_argument("--train-size", type=positive_int, default=None, metavar="N",
                          help="train on a seeded subset of N of the 54,000 training images (the "
                               "validation 6,000 and test 10,000 are unchanged; default: all)")
    return data


def resolve_device(name: str) -> torch.device:
    """'auto' picks cuda when available; asking for an absent cuda is a UsageError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"--device {name!r}: expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"--device {name}: CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s)")
    elif device.type != "cpu":
        raise UsageError(f"--device {name!r}: expected auto, cpu, cuda or cuda:N")
    return device


def setup_runtime(args) -> torch.device:
    """Check --threads, --device, --precision and the grid backend against what this machine
    can do (one UsageError line each, before anything is written), apply them, and return the
    device."""
    check_threads(args.threads)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    check_device(device)
    check_precision(getattr(args, "precision", "fp32"), device)
    if hasattr(args, "backend"):
        from ray_grid import check_backend
        from training import GridBackend
        check_backend(GridBackend.from_args(args))
    return device


# Keep freed activation buffers in the process instead of returning them to the kernel after
# every step and page-faulting them back in the next (glibc's default for blocks over 128 KiB-32 MiB).
# Measured (bench/, pixel-mode F_fc step): 810 → 390-440 ms, page faults per step ~210,000 → ~2,
# for a higher peak RSS. Only settable before the process starts, hence the re-exec.
FAST_MALLOC = "glibc.malloc.mmap_threshold=1073741824:glibc.malloc.trim_threshold=1073741824"


def reexec_with_fast_malloc() -> None:
    """Re-run this command with GLIBC_TUNABLES=FAST_MALLOC (glibc Linux only; once; opt out by
    setting GLIBC_TUNABLES yourself, e.g. to an empty string).

    Anywhere else (macOS, Windows, musl or another C library, an interpreter that cannot say how
    it was started) and if the re-exec itself fails, the command simply goes on in this process
    with the C library's default allocator: slower on long sequences, never an error."""
    if sys.platform != "linux" or "GLIBC_TUNABLES" in os.environ or platform.libc_ver()[0] != "glibc":
        return
    argv = getattr(sys, "orig_argv", None)         # Python ≥ 3.10: the interpreter's own argv
    if not argv or not sys.executable:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, [sys.executable, *argv[1:]],
                  {**os.environ, "GLIBC_TUNABLES": FAST_MALLOC})
    except OSError:
        return


def run(main, argv=None) -> int:
    """Call ``main(argv)``; map project errors to one stderr line and an exit status.

    Called from the command line (``argv`` None), it first re-executes the command with the
    faster allocator settings (see ``reexec_with_fast_malloc``)."""
    if argv is None:
        reexec_with_fast_malloc()
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    prog = os.path.basename(sys.argv[0]) or "lstm-ae-lab"
    try:
        main(argv)
        return 0
    except UsageError as err:
        if debug:
            traceback.print_exc()
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except (TrainingDiverged, ProcessFailed) as err:
        if debug:
            traceback.print_exc()
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
