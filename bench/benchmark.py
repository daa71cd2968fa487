"""Training-step speed of every model beside its reference implementation and the machine's limit.

One row per configuration (``configurations``), each measured the same way (``measure``):

- ms per training step: forward + loss + backward + gradient clipping + Adam step on one fixed
  in-memory batch, the median of ``repeats`` timed steps after ``warmup`` untimed ones. The
  product model and its reference (``bench/reference.py``, loaded with the product's weights, so
  both compute the same numbers) are timed alternately, step by step, in the same process on the
  same batch: a change in the machine's load during the run hits both alike.
- sequences per second: batch / (ms per step).
- peak memory (MB): CPU rows, the peak resident set size (``ru_maxrss``) of the process after the
  product's warm-up steps, before the reference runs; by default each configuration is measured
  in a fresh subprocess, so it is that configuration's own peak (it includes Python + torch,
  ``base_rss_mb`` in the JSON). CUDA rows: ``torch.cuda.max_memory_allocated``.
- achieved GFLOP/s: the analytic FLOP count of the LSTM gates (``gate_flops``) / time per step.
- fraction of peak: that figure / the fp32 ``torch.mm`` rate measured in the same run
  (``matmul_peak``), the practical limit of the BLAS the LSTM gates run on.
- speed-up: reference ms per step / product ms per step.

The losses are the scripts' (MSE reconstruction; + ``--class-weight`` × cross-entropy for the
MNIST classifier, lstm_ae_mnist.py; + ``--pred-weight`` × next-step prediction MSE for S&P 500,
lstm_ae_snp500.py; both weights at the scripts' defaults). The data are seeded uniform values of
the right shape (and random labels): the work per step does not depend on the values.
"""
from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models import (AutoencoderWithHead, ClassifierHead, ConvLSTMAutoencoder, LSTMAutoencoder,
                    PredictorHead, ScratchLSTM, count_parameters)
from bench.reference import (ReferenceConvLSTMAutoencoder, ReferenceLSTMAutoencoder,
                             ReferenceLSTMClassifier)
from hardware import cpu_flags, cpu_model
from training import autocast

CONFIG_NAMES = ("toy", "mnist-row-fc", "mnist-row-fc-bf16", "mnist-row-conv", "mnist-pixel-fc",
                "snp500", "palindrome-lstm")
SCRATCH_GOAL = 0.5           # issue 14: the from-scratch LSTM within 2× of nn.LSTM's step time
GRAD_CLIP = 1.0              # every script's --grad-clip default
WORKER_MARK = "BENCH-ROW "   # prefix of the JSON line a worker subprocess prints


class BenchmarkError(Exception):
    """A measurement could not be made (e.g. its subprocess failed); one line, exit 1."""


@dataclass
class Config:
    """One benchmark row: model kind, sequence shape and head."""
    name: str
    label: str
    cell: str                # "fc" (LSTMAutoencoder), "conv" (ConvLSTMAutoencoder) or
    #                          "scratch" (ScratchLSTM classifier; its reference is nn.LSTM)
    steps: int               # T
    input_size: int          # m (fc) or W, the row width (conv)
    hidden: int              # H (fc) or C, hidden channels (conv)
    batch: int
    head: str = "none"       # "none", "classifier" or "predictor"
    kernel_size: int = 0     # conv only
    output: str = "sigmoid"  # fc decoder output
    head_weight: float = 1.0  # weight of the head's loss term (the script's default)
    precision: str = "fp32"  # "bf16": forward under bf16 autocast (--precision bf16)


def configurations(quick: bool = False, batch: int | None = None) -> list[Config]:
    """The five rows of issue 6: toy (T=50, m=1, H=64), MNIST rows F_fc (T=28, m=28, H=128;
    lstm_ae_mnist.py's own default is H=256, used by --time-to-accuracy), MNIST rows F_conv,
    MNIST pixels F_fc (T=784, m=1, H=64), S&P 500 windows; batch 128. A sixth row runs MNIST rows
    F_fc under bf16 autocast (``--precision bf16``); its reference runs under the same autocast,
    so its speed-up compares like with like, and its ms/step beside the fp32 row is the gain of
    bf16. What the issue leaves to the scripts comes from their argparse defaults: F_conv's
    channels and kernel and the class
    weight (lstm_ae_mnist.py; F_conv's row times one forward encoder, as its reference has: the
    script's default bidirectional encoder runs two), the window length, hidden size and prediction weight
    (lstm_ae_snp500.py). The seventh row (issue 14) is rnn_palindrome.py's ScratchLSTM at T=20,
    H=128 (one-hot digits, m=10) beside nn.LSTM holding the same weights. ``quick`` shortens
    pixel mode to 112 steps and uses batch 32."""
    import lstm_ae_mnist
    import lstm_ae_snp500

    mnist = lstm_ae_mnist.parse_args([])
    fc_weight = lstm_ae_mnist.class_weight(mnist, "fc")
    snp = lstm_ae_snp500.parse_args([])
    b = batch or (32 if quick else 128)
    pixel_steps = 112 if quick else 784
    return [
        Config("toy", "toy sines F_fc", "fc", 50, 1, 64, b),
        Config("mnist-row-fc", "MNIST rows F_fc", "fc", 28, 28, 128, b, head="classifier",
               head_weight=fc_weight),
        Config("mnist-row-fc-bf16", "MNIST rows F_fc, bf16 autocast", "fc", 28, 28, 128, b,
               head="classifier", head_weight=fc_weight, precision="bf16"),
        Config("mnist-row-conv", "MNIST rows F_conv", "conv", 28, 28, mnist.conv_channels, b,
               head="classifier", kernel_size=mnist.kernel_size,
               head_weight=lstm_ae_mnist.class_weight(mnist, "conv")),
        Config("mnist-pixel-fc", "MNIST pixels F_fc", "fc", pixel_steps, 1, 64, b,
               head="classifier", head_weight=fc_weight),
        Config("snp500", "S&P 500 F_fc + predictor", "fc", snp.seq_len, len(snp.feature),
               snp.hidden_size[0], b, head="predictor", output="linear",
               head_weight=snp.pred_weight),
        Config("palindrome-lstm", "palindromes: from-scratch LSTM vs nn.LSTM", "scratch", 20, 10,
               128, b, head="classifier"),
    ]


# ---------------------------------------------------------------------------------------------
# FLOPs and the machine's limit

def gate_flops(config: Config) -> float:
    """Analytic FLOPs of the LSTM gates in one training step (forward + backward).

    F_fc: per step and sequence a layer computes its four gates as W [x_t; h_{t-1}], a
    (4H × (n_in + H)) matrix times a vector: 4H·(n_in + H) multiply-adds, 2·4H·(n_in + H) FLOPs.
    The encoder has n_in = m, the repeat decoder n_in = Z = H (it is fed z at every step):

        forward = B · T · 2·4H · [(m + H) + (H + H)]

    F_conv: the gates are a 1-D convolution of [x_t; h_{t-1}] (C_in + C channels, width W) with
    a (4C × (C_in + C) × k) kernel: 4C·(C_in + C)·k·W multiply-adds per step and sequence, with
    C_in = 1 in the encoder and C in the decoder:

        forward = B · T · 2·4C·k·W · [(1 + C) + (C + C)]

    Training = 3 × forward (the backward pass computes two products of the same size per
    forward product: the gradients of the inputs and of the weights). Element-wise gate
    arithmetic, the readout and the head are left out. The count is the textbook formulation's,
    the same for product and reference; a model that skips part of it (the product hoists the
    decoder's constant W_x z out of the loop and skips W_h h_0 = 0) gets an "effective" figure.

    Scratch (one LSTM layer reading T one-hot digits, no decoder):
        forward = B · T · 2·4H · (m + H)
    """
    b, t, h = config.batch, config.steps, config.hidden
    if config.cell == "scratch":
        per_step = 2 * 4 * h * (config.input_size + h)
    elif config.cell == "fc":
        per_step = 2 * 4 * h * ((config.input_size + h) + (h + h))
    else:
        k, w = config.kernel_size, config.input_size
        per_step = 2 * 4 * h * k * w * ((1 + h) + (h + h))
    return 3.0 * b * t * per_step


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device, n: int = 2048, repeats: int = 5) -> float:
    """Best fp32 ``torch.mm`` rate (GFLOP/s) of two n × n matrices: 2n³ FLOPs per product."""
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(n, n, generator=gen).to(device)
    b = torch.rand(n, n, generator=gen).to(device)
    out = torch.empty(n, n, device=device)
    torch.mm(a, b, out=out)                                   # warm-up (allocations, threads)
    best = math.inf
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best / 1e9


# ---------------------------------------------------------------------------------------------
# models, data and the training step

def build_models(config: Config, seed: int = 0) -> tuple[nn.Module, nn.Module]:
    """(product model, reference model with the same weights), both with the config's head."""
    torch.manual_seed(seed)
    if config.cell == "scratch":
        scratch = ScratchLSTM(config.input_size, config.hidden, 10)
        return scratch, ReferenceLSTMClassifier.from_scratch(scratch)
    if config.cell == "fc":
        ae = LSTMAutoencoder(config.input_size, config.hidden, output=config.output)
        ref_ae = ReferenceLSTMAutoencoder.from_product(ae)
        features = config.hidden
    else:
        ae = ConvLSTMAutoencoder(config.input_size, config.hidden, config.kernel_size)
        ref_ae = ReferenceConvLSTMAutoencoder.from_product(ae)
        features = config.hidden * config.input_size
    if config.head == "none":
        return ae, ref_ae
    if config.head == "classifier":
        head, source = ClassifierHead(features), "decoder"
    else:
        head, source = PredictorHead(config.hidden, config.input_size), "encoder"
    return (AutoencoderWithHead(ae, head, source),
            AutoencoderWithHead(ref_ae, copy.deepcopy(head), source))


def make_batch(config: Config, device: torch.device, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """x (B, T, m) uniform in [0, 1) (scratch: one-hot digits) and, for the classifier, labels
    (B,) in 0..9."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(config.batch, config.steps, config.input_size, generator=gen)
    if config.cell == "scratch":
        x = F.one_hot(x.argmax(-1), config.input_size).float()
    if config.head == "classifier":
        return x.to(device), torch.randint(0, 10, (config.batch,), generator=gen).to(device)
    return (x.to(device),)


def loss_fn(config: Config):
    """The script's training loss for this configuration: model, batch → scalar."""
    if config.cell == "scratch":
        def loss(model, batch):                               # rnn_palindrome.py: last step only
            x, y = batch
            return F.cross_entropy(model(x).logits, y)
    elif config.head == "classifier":
        def loss(model, batch):
            x, y = batch
            out, logits = model(x)
            return F.mse_loss(out.recon, x) + config.head_weight * F.cross_entropy(logits, y)
    elif config.head == "predictor":
        def loss(model, batch):
            (x,) = batch
            out, step = model(x)
            predicted = x + step                              # ỹ_t = x_t + head(h_t)
            return (F.mse_loss(out.recon, x)
                    + config.head_weight * F.mse_loss(predicted[:, :-1], x[:, 1:]))
    else:
        def loss(model, batch):
            (x,) = batch
            return F.mse_loss(model(x).recon, x)
    return loss


class Trainer:
    """One model, its Adam optimizer and its loss: ``step()`` is one training step."""

    def __init__(self, model: nn.Module, config: Config, batch, device: torch.device):
        self.model = model.to(device).train()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.loss, self.batch, self.device = loss_fn(config), batch, device
        self.precision = config.precision

    def step(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.device, self.precision):
            loss = self.loss(self.model, self.batch)
        loss.backward()
        nn.utils.clip_grad_norm_(self.model.parameters(), GRAD_CLIP)
        self.optimizer.step()

    def timed_step(self) -> float:
        """Milliseconds of one step, the device synchronised before and after."""
        synchronize(self.device)
        start = time.perf_counter()
        self.step()
        synchronize(self.device)
        return 1e3 * (time.perf_counter() - start)


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    try:
        import resource
    except ImportError:                     # Windows: no getrusage; the column reads "nan"
        return math.nan
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2 ** 20 if sys.platform == "darwin" else rss / 1024   # macOS: bytes; Linux: KiB


def load_average() -> list[float] | None:
    """The 1, 5 and 15 min load averages, or None where the OS has none (Windows)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def measure(config: Config, device: torch.device, repeats: int, warmup: int,
            seed: int = 0) -> dict:
    """Time product and reference on one batch; the raw measurements of one row."""
    base_rss = peak_memory_mb(torch.device("cpu"))
    product, reference = build_models(config, seed)
    batch = make_batch(config, device, seed)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    fast, slow = Trainer(product, config, batch, device), Trainer(reference, config, batch, device)
    for _ in range(warmup):
        fast.step()
    synchronize(device)
    peak = peak_memory_mb(device)
    for _ in range(warmup):
        slow.step()
    product_ms, reference_ms = [], []
    for _ in range(repeats):                                  # alternate: same load for both
        product_ms.append(fast.timed_step())
        reference_ms.append(slow.timed_step())
    return {"config": asdict(config), "device": str(device), "product_ms": product_ms,
            "reference_ms": reference_ms, "peak_mem_mb": peak, "base_rss_mb": base_rss,
            "memory_kind": "CUDA max allocated" if device.type == "cuda" else "peak RSS",
            "parameters": count_parameters(product), "threads": torch.get_num_threads()}


def conv_flop_ratio(config: Config) -> float:
    """The reference's gate-convolution FLOPs over the product's, for F_conv.

    ``gate_flops`` counts what the reference computes: per sequence T convolutions of
    [x_t; h_{t-1}] (1 + C channels) in the encoder and T of [z; h_{t-1}] (2C) in the decoder.
    The product's encoder convolves [x_t; h_{t-1}] at every step as the reference does; its
    decoder convolves z once and h_{t-1} at T - 1 steps (W_h h_0 = 0): weighted by input channels,
        reference  T·(1 + C) + T·2C      product  T·(1 + C) + C + (T - 1)·C.
    At equal convolution speed per FLOP, the product's speed-up cannot exceed this ratio."""
    t, c = config.steps, config.hidden
    return t * (3 * c + 1) / (t * (1 + c) + t * c)


def summarize(raw: dict, peak_gflops: float) -> dict:
    """A table row from ``measure``'s raw numbers and the device's matmul peak."""
    config = Config(**raw["config"])
    ms = statistics.median(raw["product_ms"])
    ref_ms = statistics.median(raw["reference_ms"])
    gflops = gate_flops(config) / (ms / 1e3) / 1e9
    return {
        "config": config.name, "label": config.label, "device": raw["device"],
        "configuration": asdict(config),
        "steps": config.steps, "input_size": config.input_size, "hidden": config.hidden,
        "batch": config.batch, "parameters": raw["parameters"],
        "ms_per_step": ms, "reference_ms_per_step": ref_ms,
        "sequences_per_s": config.batch / (ms / 1e3),
        "peak_mem_mb": raw["peak_mem_mb"], "memory_kind": raw["memory_kind"],
        "base_rss_mb": raw["base_rss_mb"],
        "gflop_per_step": gate_flops(config) / 1e9, "gflops": gflops,
        "fraction_of_peak": gflops / peak_gflops, "matmul_peak_gflops": peak_gflops,
        "speedup": ref_ms / ms,
        "product_ms": raw["product_ms"], "reference_ms": raw["reference_ms"],
        "threads": raw["threads"],
    }


def measure_in_subprocess(config: Config, device: torch.device, repeats: int, warmup: int,
                          seed: int, threads: int | None) -> dict:
    """``measure`` in a fresh Python process, so the peak memory is this configuration's own."""
    cmd = [sys.executable, "-m", "bench", "--worker", json.dumps(asdict(config)),
           "--device", str(device), "--repeats", str(repeats), "--warmup", str(warmup),
           "--seed", str(seed)]
    if threads:
        cmd += ["--threads", str(threads)]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run(cmd, cwd=root, stdout=subprocess.PIPE, text=True)
    rows = [line[len(WORKER_MARK):] for line in done.stdout.splitlines()
            if line.startswith(WORKER_MARK)]
    if done.returncode != 0 or not rows:
        raise BenchmarkError(f"measuring {config.name} on {device} failed in its subprocess "
                           f"(exit {done.returncode}; its error is printed above)")
    return json.loads(rows[-1])


# ---------------------------------------------------------------------------------------------
# the machine, the profile, the table

def machine_info(devices: list[torch.device]) -> dict:
    info = {
        "cpu": cpu_model(), "cpu_flags": cpu_flags(), "cores": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(), "python": platform.python_version(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "load_average": load_average(),
        # allocator settings change CPU step times a lot (page faults on fresh activations)
        "allocator_env": {k: os.environ[k] for k in ("GLIBC_TUNABLES", "LD_PRELOAD",
                                                     "MALLOC_CONF") if k in os.environ},
    }
    if any(d.type == "cuda" for d in devices):
        info["cuda"] = torch.cuda.get_device_name(0)
        info["cuda_version"] = torch.version.cuda
        info["cudnn_tf32"] = torch.backends.cudnn.allow_tf32     # cuDNN RNN/conv may use TF32
    return info


@contextlib.contextmanager
def quiet_stderr():
    """Silence file descriptor 2 for a block: the profiler's C++ backend (Kineto) logs
    "profiler_start/stop" lines there that no setting turns off."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def profile_step(config: Config, device: torch.device, which: str = "product",
                 row_limit: int = 12, seed: int = 0) -> dict:
    """torch.profiler summary of one training step (after two warm-up steps) of the product or
    the reference: the ``key_averages`` table sorted by self CPU time, its top rows, and the
    step's self CPU time per kind of work (``categorize``)."""
    from torch.profiler import ProfilerActivity, profile

    product, reference = build_models(config, seed)
    trainer = Trainer(product if which == "product" else reference, config,
                      make_batch(config, device, seed), device)
    for _ in range(2):
        trainer.step()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with quiet_stderr(), profile(activities=activities) as prof:
        trainer.step()
        synchronize(device)
    averages = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in averages) or 1.0
    top = sorted(averages, key=lambda e: -e.self_cpu_time_total)[:row_limit]
    rows = [{"op": e.key, "calls": e.count, "self_cpu_ms": e.self_cpu_time_total / 1e3,
             "self_cpu_share": e.self_cpu_time_total / total} for e in top]
    shares: dict[str, float] = {}
    for e in averages:
        kind = categorize(e.key)
        shares[kind] = shares.get(kind, 0.0) + e.self_cpu_time_total / total
    return {"table": averages.table(sort_by="self_cpu_time_total", row_limit=row_limit),
            "rows": rows, "shares": dict(sorted(shares.items(), key=lambda kv: -kv[1])),
            "self_cpu_ms": total / 1e3, "which": which}


CATEGORIES = (  # (kind of work, substrings of profiler op names), first match wins
    ("autograd engine", ("autograd::engine",)),
    # the ConvLSTM's LSTMPointwise Function and LSTMCell's aten::lstm_cell: LSTM element-wise
    # work in Python or ATen, not a fused oneDNN layer
    ("element-wise gate arithmetic", ("lstmpointwise", "lstm_cell")),
    ("fused LSTM layers (oneDNN)", ("rnn", "lstm")),
    ("convolutions", ("conv",)),
    ("matrix products", ("mm", "matmul", "linear", "addmm")),
    ("optimizer and clipping", ("optimizer", "foreach", "norm", "clip", "sqrt", "lerp", "adam")),
    ("element-wise gate arithmetic", ("sigmoid", "tanh", "mul", "add", "sub", "div", "neg",
                                      "mse", "loss", "softmax", "exp", "pow", "sum", "mean")),
    ("copies, concatenation, slicing, zero-filling", ("cat", "stack", "copy", "slice", "select",
                                                     "fill", "zero", "empty", "strided", "clone",
                                                     "contiguous", "unbind", "split", "chunk",
                                                     "index", "view", "reshape", "expand",
                                                     "transpose", "permute", "flip")),
)


def categorize(op: str) -> str:
    name = op.lower()
    for kind, keys in CATEGORIES:
        if any(key in name for key in keys):
            return kind
    return "other"


def describe_profile(name: str, prof: dict) -> str:
    shares = ", ".join(f"{kind} {share:.0%}" for kind, share in prof["shares"].items()
                       if share >= 0.01)
    top = ", ".join(f"{r['op']} {r['self_cpu_share']:.0%}" for r in prof["rows"][:4])
    return (f"{name}: {prof['self_cpu_ms']:.1f} ms of self CPU time: {shares}. "
            f"Largest operators: {top}.")


COLUMNS = [  # (key, header, format)
    ("label", "configuration", "{}"),
    ("device", "device", "{}"),
    ("shape", "T × m, hidden", "{}"),
    ("batch", "batch", "{}"),
    ("ms_per_step", "ms/step", "{:.1f}"),
    ("reference_ms_per_step", "reference ms/step", "{:.1f}"),
    ("speedup", "speed-up", "{:.2f}×"),
    ("sequences_per_s", "sequences/s", "{:,.0f}"),
    ("peak_mem_mb", "peak memory MB", "{:,.0f}"),
    ("gflops", "GFLOP/s", "{:.1f}"),
    ("fraction_of_peak", "of matmul peak", "{:.0%}"),
]


def _cells(row: dict) -> list[str]:
    letter = "C" if "conv" in row["config"] else "H"
    shape = f"{row['steps']} × {row['input_size']}, {letter}={row['hidden']}"
    values = {**row, "shape": shape}
    return [fmt.format(values[key]) for key, _, fmt in COLUMNS]


def left_out_lines(left_out: list[dict] | None) -> list[str]:
    """One line per measurement this machine cannot run (e.g. bf16 without a bf16 LSTM)."""
    return [f"{item['what']}: left out, {item['reason']}" for item in left_out or []]


def format_table(rows: list[dict], left_out: list[dict] | None = None) -> str:
    """Plain-text table for the terminal, then a line per configuration left out."""
    lines = [[header for _, header, _ in COLUMNS]] + [_cells(r) for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS))]
    out = ["  ".join(cell.ljust(w) if i < 3 else cell.rjust(w)
                     for i, (cell, w) in enumerate(zip(line, widths))) for line in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out + left_out_lines(left_out))


def markdown_table(rows: list[dict], left_out: list[dict] | None = None) -> str:
    head = "| " + " | ".join(h for _, h, _ in COLUMNS) + " |"
    rule = "|" + "|".join(":---" if i < 3 else "---:" for i in range(len(COLUMNS))) + "|"
    table = [head, rule] + ["| " + " | ".join(_cells(r)) + " |" for r in rows]
    notes = left_out_lines(left_out)
    return "\n".join(table + ([""] + [f"- {line}" for line in notes] if notes else []))


def targets(rows: list[dict], tta: list[dict] | None, profiles: dict | None = None,
            left_out: list[dict] | None = None) -> list[str]:
    """The issue's targets, each with the measured value and whether it is met (CPU rows), with
    what bounds F_conv's speed-up and pixel mode (from ``conv_flop_ratio`` and the profiles);
    a target whose measurement this machine cannot run says so (``left_out``)."""
    lines = []
    for r in rows:
        if r["device"] != "cpu":
            continue
        config = Config(**r["configuration"])
        if config.cell == "scratch":
            ratio = r["ms_per_step"] / r["reference_ms_per_step"]
            lines.append(f"{r['label']}: {r['ms_per_step']:.1f} ms per step, {ratio:.2f}× "
                         f"nn.LSTM's {r['reference_ms_per_step']:.1f} ms on the same weights "
                         f"(target ≤ {1 / SCRATCH_GOAL:g}×: "
                         f"{'met' if r['speedup'] >= SCRATCH_GOAL else 'not met'})")
            continue
        goal = 2.0 if "conv" in r["config"] else 1.3
        line = (f"{r['label']}: speed-up {r['speedup']:.2f}× over its reference "
                f"(target ≥ {goal:g}×: {'met' if r['speedup'] >= goal else 'not met'})")
        if config.cell == "conv":
            line += "; " + conv_bound(r, config, profiles or {})
        lines.append(line)
        if r["config"] == "mnist-row-fc":
            met = "met" if r["fraction_of_peak"] >= 0.5 else "not met"
            lines.append(f"{r['label']}: {r['fraction_of_peak']:.0%} of the matmul peak "
                         f"(target ≥ 50 %: {met})")
        if r["config"] == "mnist-pixel-fc":
            lines.append(pixel_bound(r, config, profiles or {}))
    for run in tta or []:
        what = (f"time to {run['target']:.0%} test accuracy (MNIST rows, F_fc H={run['hidden_size']}"
                f"{', the script default' if run['hidden_size'] == run['default_hidden_size'] else ''}, "
                f"{run['precision']})")
        if run["reached"]:
            lines.append(f"{what}: {run['train_seconds']:.1f} s of training (target ≤ 60 s: "
                         f"{'met' if run['train_seconds'] <= 60 else 'not met'})")
        else:
            lines.append(f"{what}: not reached in {run['epochs']} epochs (best "
                         f"{run['best_accuracy']:.2%})")
    return lines + [f"{line} (not measured)" for line in left_out_lines(left_out)]


def product_profile(row: dict, profiles: dict) -> dict | None:
    """The product's profile of this row's configuration, if the run made one."""
    return next((p for name, p in profiles.items()
                 if name.startswith(row["label"] + " on") and p["which"] == "product"), None)


def conv_bound(row: dict, config: Config, profiles: dict) -> str:
    """What bounds F_conv's speed-up. The product's gate convolutions do 1 / ``conv_flop_ratio``
    of the reference's FLOPs, so at equal speed per FLOP they gain at most that ratio; the rest
    of the step (element-wise gate arithmetic, copies, autograd) must make up the difference to
    2×. With a profile, the product's convolution time is its profiled share of the step."""
    ratio = conv_flop_ratio(config)
    text = (f"the reference's gate convolutions do {ratio:.2f}× the product's FLOPs, so at equal "
            f"speed per FLOP the convolutions gain at most {ratio:.2f}×")
    prof = product_profile(row, profiles)
    if prof:
        budget = row["reference_ms_per_step"] / 2
        share = prof["shares"].get("convolutions", 0.0)
        conv_ms = share * row["ms_per_step"]
        conv_gflops = gate_flops(config) / ratio / (conv_ms / 1e3) / 1e9 if conv_ms else 0.0
        text += (f"; 2× needs a step of at most {budget:.0f} ms, and the product's convolutions "
                 f"take about {conv_ms:.0f} ms of its {row['ms_per_step']:.0f} ({share:.0%} of "
                 f"the profiled step; {conv_gflops:.0f} GFLOP/s, "
                 f"{conv_gflops / row['matmul_peak_gflops']:.0%} of the matmul peak)")
        if conv_ms >= budget:
            text += ", so even a free rest of the step would not reach 2×"
        else:
            text += (f", so the rest of the step would have to fall from "
                     f"{row['ms_per_step'] - conv_ms:.0f} to {budget - conv_ms:.0f} ms")
    return text


def pixel_bound(row: dict, config: Config, profiles: dict) -> str:
    """What bounds pixel mode: 2T time steps that wait for each other, each a small product
    (the recurrent one; oneDNN computes the input products of all steps in one large one)."""
    t, h, b = config.steps, config.hidden, config.batch
    step_us = 1e3 * row["ms_per_step"] / (2 * t)
    product_mflop = 3 * 2 * b * h * 4 * h / 1e6                         # forward + backward
    peak_us = product_mflop * 1e6 / (row["matmul_peak_gflops"] * 1e9) * 1e6
    text = (f"{row['label']}: {row['fraction_of_peak']:.0%} of the matmul peak, bound by its "
            f"{2 * t:,} time steps (encoder, then decoder) that each wait for the previous one: "
            f"{step_us:.0f} µs per time step (forward + backward), whose recurrent product "
            f"h_(t-1) W_hh ({b} × {h} by {h} × {4 * h}, "
            f"{product_mflop:.1f} MFLOP forward + backward) would take {peak_us:.0f} µs at the "
            f"peak: too small a product to keep the cores busy, paid {2 * t:,} times")
    prof = product_profile(row, profiles)
    if prof:
        fused = prof["shares"].get("fused LSTM layers (oneDNN)", 0.0)
        text += f"; the fused LSTM layers take {fused:.0%} of its profiled step"
    return text


def markdown_report(result: dict) -> str:
    """report/performance.md: command, machine, table, targets, time to accuracy, profiles."""
    info, settings = result["machine"], result["settings"]
    allocator = ", ".join(f"{k}={v}" for k, v in info.get("allocator_env", {}).items())
    lines = ["# Performance", "",
             "Generated by `python -m bench` (bench/benchmark.py); every number below comes from "
             "the run of this command:", "", "```", result["command"], "```", "",
             "## Machine", "",
             f"- CPU: {info['cpu']}, {info['cores']} logical cores, {info['cpu_capability']} "
             f"kernels (flags: {' '.join(info.get('cpu_flags', [])) or 'not shown by the OS'}); torch {info['torch']}, threads: {info['threads']} "
             f"(oneDNN {'on' if info['mkldnn'] else 'off'}); Python {info['python']}",
             f"- load average at the start (1, 5, 15 min): "
             f"{', '.join(map(str, info['load_average'] or ['not available']))}",
             f"- allocator environment (GLIBC_TUNABLES, LD_PRELOAD, MALLOC_CONF): "
             f"{allocator or 'none set'}"]
    if "cuda" in info:
        lines.append(f"- GPU: {info['cuda']} (CUDA {info['cuda_version']}; cuDNN may use TF32: "
                     f"{info['cudnn_tf32']}, while the matmul peak below is plain fp32)")
    for device, peak in result["matmul_peak_gflops"].items():
        lines.append(f"- fp32 matmul peak on {device}: {peak:.1f} GFLOP/s (best of "
                     f"{settings['matmul_repeats']} `torch.mm` of two {settings['matmul_n']}² "
                     f"matrices)")
    rows = result["rows"]
    if rows:
        process = ("one subprocess per configuration" if settings["subprocess"]
                   else "one process for all rows, so a running maximum")
        lines += ["", "## Training step", "",
                  f"Median of {settings['repeats']} timed steps after {settings['warmup']} warm-up "
                  f"steps; product and reference alternate step by step in one process on the "
                  f"same batch and the same weights. A step is forward + loss + backward + "
                  f"gradient clipping + Adam. GFLOP/s counts the LSTM gates only (formula in "
                  f"`bench.benchmark.gate_flops`); the bf16 row's fraction is of the fp32 matmul "
                  f"peak. Peak memory: resident set of the process "
                  f"({process}; Python + torch alone take about "
                  f"{min(r['base_rss_mb'] for r in rows):.0f} MB); CUDA rows: the allocator's "
                  f"peak.", "", markdown_table(rows, result.get("left_out"))]
    elif result.get("left_out"):
        lines += ["", "## Training step", ""] + [f"- {t}" for t in left_out_lines(result["left_out"])]
    lines += ["", "## Targets", ""]
    lines += [f"- {t}" for t in targets(rows, result.get("time_to_accuracy"),
                                        result.get("profiles"))]
    tta = result.get("time_to_accuracy")
    if tta:
        lines += ["", "## Time to accuracy", ""] + [f"- {run['summary']}" for run in tta]
    if result.get("grid_backends"):
        lines += ["", "## Grid search: local vs Ray backend", "",
                  f"- {result['grid_backends']['summary']}"]
    if result.get("tsne"):
        lines += ["", "## t-SNE (bench/tsne.py)", "", result["tsne"]["table"], ""]
        lines += [f"- {t}" for t in result["tsne"]["targets"]]
    if result.get("pixel_study"):
        study = result["pixel_study"]
        lines += ["", "## Pixel mode: batch, bf16, torch.compile (bench/pixel.py)", "",
                  f"One training step of `lstm_ae_mnist.py --input-size 1`'s default model "
                  f"(hidden {study['model']['hidden_size']}, decoder input "
                  f"{study['model']['decoder_input']}, init {study['model']['init']}, 784 steps); "
                  f"median of {study['rounds']} round-robin rounds of {study['steps']} steps per "
                  f"variant after {study['warmup']} warm-up steps, all in one process.", "",
                  study["table"], ""]
        lines += [f"- {t}" for t in study["findings"]]
    if result.get("profiles"):
        lines += ["", "## Where the time goes", "",
                  "torch.profiler, one training step after two warm-up steps (self CPU time: "
                  "each operator's own time, without the operators it calls), grouped by kind "
                  "of work, then the top operators:", ""]
        for name, prof in result["profiles"].items():
            if prof["which"] == "product":
                lines += [f"### {name}", "", describe_profile(name, prof), "",
                          "```", prof["table"].rstrip(), "```", ""]
        lines += ["### The references, for comparison", ""]
        lines += [f"- {describe_profile(name, prof)}" for name, prof in result["profiles"].items()
                  if prof["which"] == "reference"]
    return "\n".join(lines).rstrip() + "\n"
