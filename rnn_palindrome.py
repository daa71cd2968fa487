"""How far back a vanilla RNN and an LSTM remember: the last digit of a palindrome (spec 003, tasks 2–3).

A palindrome of length T over the digits 0–9 is fed one digit a step (one-hot, the first T − 1
digits); the network must output the last digit, which equals the first, so it has to carry one
digit across T − 2 steps of distracting input. Both models are written from tensors
(``models.ScratchRNN``, ``models.ScratchLSTM``). For every ``--length`` and each of ``--seeds``
seeds a fresh model is trained on palindromes generated on the fly (``data.palindrome_batches``)
with RMSprop by default, and stops early once its training accuracy has been 100 % for
``--stop-after`` evaluation periods (or gives up when it is still at chance on validation after
``--give-up-after`` steps). Each is scored on a fixed test set of 10,000 palindromes of its
length, generated apart from the training stream; a model whose median fell to chance at one
length is not run at longer ones. ``--workers N`` trains N runs at once in separate processes
(small recurrent steps use one core badly; processes use several well). Writes to ``--out-dir``:
accuracy_vs_length.png, gradient_norms.png (‖∂L/∂h_t‖ against t, at initialisation and after
training, at a length where the RNN fails and the LSTM does not), results.csv, metrics.json and
runs/<model>_T<T>_seed<s>/history.csv.

    python rnn_palindrome.py                                  # both models, default lengths, 3 seeds
    python rnn_palindrome.py --model lstm --length 5 20 40 --seeds 1 --steps 2000

References: Bengio et al. 1994 and Pascanu et al. 2013 (why gradients through many steps vanish
or explode); Hochreiter & Schmidhuber 1997 (the LSTM); Tieleman & Hinton 2012 (RMSprop).
"""
from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import statistics
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

try:
    import resource
except ImportError:                    # Windows
    resource = None

import pandas as pd
import torch
import torch.nn.functional as F

from cli import Parser, common_parser, non_negative_int, positive_int, run, setup_runtime
from data import (PALINDROME_DIGITS, expected_seen_fraction, palindrome_batches, palindrome_count,
                  palindrome_set)
from errors import UsageError
from hardware import machine_info
from models import SCRATCH_INITS, ScratchLSTM, ScratchRNN, count_parameters, scratch_parameter_count
from outputs import prepare_out_dir, write_csv, write_json
from plotting import COLORS, figure, save_figure
from training import CHECKPOINT, Stream, TrainSettings, evaluate, fit, load_model_weights

TASK = "palindrome"
MODELS = {"rnn": ScratchRNN, "lstm": ScratchLSTM}
LABELS = {"rnn": "vanilla RNN", "lstm": "LSTM"}
MODEL_COLORS = {"rnn": COLORS[0], "lstm": COLORS[1]}  # the same in every figure
MAX_LENGTH = 1000
CHANCE = 1 / PALINDROME_DIGITS
CHANCE_MARGIN = 0.05          # "at chance": median test accuracy below CHANCE + this
SOLVED = 0.99                 # "holds" a length: median test accuracy at least this
DEFAULT_LENGTHS = [5, 10, 15, 20, 30, 40, 60, 90]


def parse_args(argv=None):
    common = common_parser(TASK, epochs=None, lr=1e-3, grad_clip=10.0, batch_size=128,
                           lr_schedule="constant", optimizer="rmsprop", model_flags=(),
                           grid=False)
    parser = Parser(description=__doc__.split("\n\n")[0], parents=[common])
    exp = parser.add_argument_group("experiment")
    exp.add_argument("--model", choices=("rnn", "lstm", "both"), default="both",
                     help="which network(s) to train: the vanilla RNN, the LSTM or both "
                          "(default both)")
    exp.add_argument("--length", type=positive_int, nargs="+", default=DEFAULT_LENGTHS,
                     metavar="T", help=f"palindrome lengths T (input T − 1 digits, target the "
                                       f"last); each runs a fresh model, one after the other "
                                       f"(3 ≤ T ≤ {MAX_LENGTH}; default "
                                       f"{' '.join(map(str, DEFAULT_LENGTHS))})")
    exp.add_argument("--seeds", type=positive_int, default=3,
                     help="runs per model and length, with seeds --seed, --seed + 1, ...; the "
                          "figures show their median and spread (default 3)")
    exp.add_argument("--hidden-size", type=positive_int, default=64,
                     help="hidden units n of both networks (default 64)")
    exp.add_argument("--init", choices=SCRATCH_INITS, default="orthogonal",
                     help="orthogonal: orthogonal recurrent weights, Xavier input weights, zero "
                          "biases but the LSTM's forget-gate bias 1; plain: PyTorch's default "
                          "for nn.RNN/nn.LSTM, every parameter U(-1/sqrt(n), 1/sqrt(n)) "
                          "(default orthogonal)")
    exp.add_argument("--steps", type=positive_int, default=1000,
                     help="most training steps (batches) per run, rounded up to a multiple of "
                          "--eval-every (default 1000)")
    exp.add_argument("--eval-every", type=positive_int, default=50, metavar="STEPS",
                     help="training steps between validations, checkpoints and early-stop "
                          "checks: the 'epoch' of the shared training loop (default 50)")
    exp.add_argument("--stop-after", type=non_negative_int, default=1, metavar="N",
                     help="stop a run once the training accuracy has been 100 %% over N "
                          "consecutive periods of --eval-every fresh batches (0 = never; "
                          "default 1)")
    exp.add_argument("--give-up-after", type=non_negative_int, default=300, metavar="STEPS",
                     help="stop a run whose validation accuracy is still at chance (below "
                          "15 %%) after this many steps, rounded up to a multiple of "
                          "--eval-every; it counts as failed (0 = never; default 300)")
    exp.add_argument("--val-size", type=positive_int, default=1000,
                     help="fixed validation palindromes per length, for choosing the best "
                          "checkpoint and for tuning (default 1000)")
    exp.add_argument("--test-size", type=positive_int, default=10_000,
                     help="fixed test palindromes per length (default 10000)")
    exp.add_argument("--run-past-chance", action="store_true",
                     help="also run a model at the lengths after one where its median test "
                          "accuracy was at chance (default: skip them, they cost the most and "
                          "a longer palindrome is no easier)")
    exp.add_argument("--workers", type=positive_int, default=1,
                     help="runs trained at once, each in its own process with --threads "
                          "threads (CPU only; progress bars are then replaced by a line per "
                          "finished run) (default 1)")
    exp.add_argument("--gradient-length", type=positive_int, default=None, metavar="T",
                     help="length of gradient_norms.png, one of --length (default: the "
                          "shortest length where the RNN fails and the LSTM holds 99 %%)")
    return parser.parse_args(argv)


def check_args(args) -> None:
    bad = [t for t in args.length if not 3 <= t <= MAX_LENGTH]
    if bad:
        raise UsageError(f"--length {bad[0]}: must be between 3 and {MAX_LENGTH} (the input is "
                         f"the first T - 1 digits, the target the last)")
    for flag, values in (("--lr", args.lr), ("--grad-clip", args.grad_clip)):
        if len(values) > 1:
            raise UsageError(f"{flag}: one value (this script runs no grid search)")
    if args.workers > 1 and args.device not in ("auto", "cpu"):
        raise UsageError(f"--workers {args.workers}: worker processes run on the CPU; use "
                         f"--workers 1 with --device {args.device}")
    if args.gradient_length is not None and args.gradient_length not in args.length:
        raise UsageError(f"--gradient-length {args.gradient_length}: must be one of --length")


def classification_step(model, batch):
    """Cross-entropy of the last step's output (spec eq. 3) and the accuracy of its argmax."""
    x, y = batch
    logits = model(x).logits                                    # (B, K)
    return F.cross_entropy(logits, y), {"accuracy": (logits.argmax(1) == y).float().mean()}


def build(kind: str, args, seed: int):
    torch.manual_seed(seed)
    return MODELS[kind](PALINDROME_DIGITS, args.hidden_size, PALINDROME_DIGITS, init=args.init)


def stop_when_perfect(periods: int):
    """fit's stop hook: the last ``periods`` epochs all had 100 % training accuracy."""
    def stop(history: list[dict]) -> bool:
        recent = history[-periods:]
        return periods > 0 and len(recent) == periods and all(
            row["train_accuracy"] >= 1.0 for row in recent)
    return stop


def hopeless(history: list[dict], give_up_epochs: int) -> bool:
    """The validation accuracy is still at chance after ``give_up_epochs`` epochs (0 = never)."""
    return (0 < give_up_epochs <= len(history)
            and history[-1]["val_accuracy"] < CHANCE + CHANCE_MARGIN)


def stop_rule(args):
    """Stop a run once it is perfect (``--stop-after``) or hopeless (``--give-up-after``)."""
    perfect = stop_when_perfect(args.stop_after)
    give_up_epochs = math.ceil(args.give_up_after / args.eval_every) if args.give_up_after else 0
    return lambda history: perfect(history) or hopeless(history, give_up_epochs)


# ---------------------------------------------------------------------------------------------
# stage 1: one training run per model, length and seed

def train_run(kind: str, length: int, seed: int, args, device, out_dir: Path, val, test) -> dict:
    """Train a fresh model on the palindrome stream of ``length``; its row of results.csv."""
    run_dir = out_dir / "runs" / f"{kind}_T{length}_seed{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    cpu_start = time.process_time()
    model = build(kind, args, seed)
    settings = TrainSettings(optimizer=args.optimizer, lr=args.lr[0], lr_schedule=args.lr_schedule,
                             weight_decay=args.weight_decay, grad_clip=args.grad_clip[0],
                             batch_size=args.batch_size, epochs=math.ceil(args.steps / args.eval_every),
                             patience=args.patience, precision=args.precision)
    stream = Stream(lambda epoch: palindrome_batches(length, args.batch_size, args.eval_every,
                                                     seed, epoch), args.eval_every)
    identity = dict(task=TASK, model=model.config, length=length, seed=seed,
                    eval_every=args.eval_every, settings=vars(settings))
    result = fit(model, classification_step, stream, val, settings, run_dir=run_dir,
                 identity=identity, device=device, seed=seed,
                 resume=args.resume and (run_dir / CHECKPOINT).exists(),
                 desc=f"{kind} T={length} seed {seed}", stop=stop_rule(args))
    scores = evaluate(model, classification_step, test)
    last = result.history[-1] if result.history else {}
    steps = len(result.history) * args.eval_every
    return {"model": kind, "T": length, "seed": seed, "test_accuracy": scores["accuracy"],
            "test_loss": scores["loss"], "val_accuracy": last.get("val_accuracy", math.nan),
            "best_val_loss": result.best_val_loss,
            "train_accuracy": last.get("train_accuracy", math.nan), "steps": steps,
            "stopped_early": steps < settings.epochs * args.eval_every,
            "gave_up": steps < settings.epochs * args.eval_every and last.get(
                "val_accuracy", 1.0) < CHANCE + CHANCE_MARGIN,
            "seconds": round(result.seconds, 2),
            "cpu_seconds": round(time.process_time() - cpu_start, 2),
            "interrupted": result.interrupted,
            "test_seen_in_training": expected_seen_fraction(length, steps * args.batch_size)}


def _train_quietly(kind: str, length: int, seed: int, args, out_dir: Path) -> dict:
    """``train_run`` in a worker process: one CPU device, no progress bars (the parent prints a
    line per finished run instead)."""
    torch.set_num_threads(args.threads or 1)
    val = list(palindrome_set("val", args.val_size, length))
    test = list(palindrome_set("test", args.test_size, length))
    with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink):
        return train_run(kind, length, seed, args, torch.device("cpu"), out_dir, val, test)


def report_row(row: dict) -> None:
    print(f"{LABELS[row['model']]:>11} T={row['T']:<3} seed {row['seed']}: test accuracy "
          f"{row['test_accuracy']:.2%} after {row['steps']} steps ({row['seconds']:.0f} s)",
          file=sys.stderr)


def at_chance(group: list[dict], dropped: dict, args) -> bool:
    """Whether the model of ``group`` (all seeds of one model and length) has a median test
    accuracy at chance; if so, and unless ``--run-past-chance``, it is recorded in ``dropped``
    and the sweep runs it at no longer length."""
    kind, length = group[0]["model"], group[0]["T"]
    median = statistics.median(row["test_accuracy"] for row in group)
    if median >= CHANCE + CHANCE_MARGIN or args.run_past_chance:
        return False
    dropped[kind] = length
    print(f"{LABELS[kind]} is at chance at T={length}: not run at longer lengths "
          f"(--run-past-chance runs them)", file=sys.stderr)
    return True


def sweep(args, kinds, device, out_dir: Path) -> tuple[pd.DataFrame, dict, bool]:
    """Every (length, model, seed) run, each model's lengths in order. Unless
    ``--run-past-chance``, a model whose median test accuracy fell to chance at one length is
    not run at longer ones. Returns the rows, the length at which each such model was
    dropped, and whether Ctrl-C stopped the sweep (the finished rows are kept)."""
    if args.workers == 1:
        rows, dropped, interrupted = sweep_here(args, kinds, device, out_dir)
    else:
        with ProcessPoolExecutor(args.workers,
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            rows, dropped, interrupted = sweep_on_workers(args, kinds, out_dir, pool)
    results = pd.DataFrame(rows)
    if len(results):
        order = {kind: i for i, kind in enumerate(kinds)}
        results = results.sort_values(["T", "model", "seed"], key=lambda col: col.map(order)
                                      if col.name == "model" else col, ignore_index=True)
    return results, dropped, interrupted


def sweep_here(args, kinds, device, out_dir: Path) -> tuple[list[dict], dict, bool]:
    """The runs one after the other in this process, with progress bars."""
    rows, dropped, active = [], {}, list(kinds)
    for length in args.length:
        val = list(palindrome_set("val", args.val_size, length))
        test = [t.to(device) for t in palindrome_set("test", args.test_size, length)]
        for kind in list(active):
            group = []
            for seed in range(args.seed, args.seed + args.seeds):
                group.append(train_run(kind, length, seed, args, device, out_dir, val, test))
                report_row(group[-1])
                if group[-1]["interrupted"]:
                    return rows + group, dropped, True
            rows += group
            if at_chance(group, dropped, args):
                active.remove(kind)
    return rows, dropped, False


def sweep_on_workers(args, kinds, out_dir: Path, pool) -> tuple[list[dict], dict, bool]:
    """The runs on the ``pool`` of worker processes. Each model walks through the lengths on
    its own (its next length is submitted once every seed of the current one has finished),
    so one model's runs fill the workers the other leaves idle."""
    seeds = list(range(args.seed, args.seed + args.seeds))
    next_length = {kind: iter(args.length) for kind in kinds}
    pending, groups, rows, dropped = {}, {}, [], {}

    def submit_next(kind):
        length = next(next_length[kind], None)
        if length is not None:
            groups[kind, length] = []
            for seed in seeds:
                pending[pool.submit(_train_quietly, kind, length, seed, args, out_dir)] = \
                    (kind, length)

    for kind in reversed(kinds):                   # the LSTM's long runs first
        submit_next(kind)
    try:
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                kind, length = pending.pop(future)
                rows.append(future.result())
                report_row(rows[-1])
                group = groups[kind, length]
                group.append(rows[-1])
                if len(group) == len(seeds) and not at_chance(group, dropped, args):
                    submit_next(kind)
    except KeyboardInterrupt:                      # the workers got it too: their fit returns
        for future in pending:
            if not future.cancel():
                rows.append(future.result())
        return rows, dropped, True
    except BaseException:
        for future in pending:
            future.cancel()
        raise
    return rows, dropped, any(row["interrupted"] for row in rows)


def summarize(results: pd.DataFrame) -> dict:
    """Per model and length: median, min and max test accuracy over seeds, median steps."""
    summary = {}
    for kind, by_kind in results.groupby("model"):
        per_length = {}
        for length, runs in by_kind.groupby("T"):
            acc = runs["test_accuracy"]
            per_length[int(length)] = {
                "median": float(acc.median()), "min": float(acc.min()), "max": float(acc.max()),
                "seeds": int(len(runs)), "median_steps": float(runs["steps"].median()),
                "median_seconds": float(runs["seconds"].median())}
        held = [t for t, s in per_length.items() if s["median"] >= SOLVED]
        chance = [t for t, s in per_length.items() if s["median"] < CHANCE + CHANCE_MARGIN]
        summary[kind] = {"by_length": per_length,
                         "longest_length_99": max(held) if held else None,
                         "holds_99_up_to": _holds_up_to(per_length),
                         "first_length_at_chance": min(chance) if chance else None}
    return summary


def _holds_up_to(per_length: dict) -> int | None:
    """The longest T such that every measured length up to it has median ≥ 99 %."""
    held = None
    for length in sorted(per_length):
        if per_length[length]["median"] < SOLVED:
            break
        held = length
    return held


# ---------------------------------------------------------------------------------------------
# stage 2: the gradient of the loss with respect to each hidden state

def choose_gradient_length(summary: dict, lengths: list[int]) -> int:
    """The shortest length where the RNN is near chance (then: below 99 %) and the LSTM holds
    99 %; failing both, the length of the largest LSTM − RNN gap."""
    if set(summary) != {"rnn", "lstm"}:
        return lengths[len(lengths) // 2]
    rnn, lstm = summary["rnn"]["by_length"], summary["lstm"]["by_length"]
    common = [t for t in lengths if t in rnn and t in lstm]
    for rnn_limit in (CHANCE + 0.1, SOLVED):
        found = [t for t in common if rnn[t]["median"] < rnn_limit and lstm[t]["median"] >= SOLVED]
        if found:
            return min(found)
    return max(common, key=lambda t: lstm[t]["median"] - rnn[t]["median"])


def hidden_gradient_norms(model, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """‖∂L_i/∂h_t‖ averaged over the examples i, for t = 1..T−1 (L_i: example i's loss)."""
    out = model(x)
    loss = F.cross_entropy(out.logits, y, reduction="sum")   # per-example gradients, not / B
    grads = torch.autograd.grad(loss, out.hidden)
    return [float(g.norm(dim=1).mean()) for g in grads]


def gradient_study(args, kinds, length: int, device, out_dir: Path, n: int = 1000) -> dict:
    """Gradient norms of each model at initialisation and after training (seed --seed's run)."""
    x, y = (t[:n].to(device) for t in palindrome_set("val", n, length))
    norms = {}
    for kind in kinds:
        model = build(kind, args, args.seed).to(device)
        at_init = hidden_gradient_norms(model, x, y)
        load_model_weights(out_dir / "runs" / f"{kind}_T{length}_seed{args.seed}" / CHECKPOINT,
                           model)
        norms[kind] = {"init": at_init, "trained": hidden_gradient_norms(model.to(device), x, y)}
    first_over_last = {kind: {stage: values[0] / values[-1] for stage, values in by_stage.items()}
                       for kind, by_stage in norms.items()}
    return {"length": length, "last_step": length - 1, "examples": n, "norms": norms,
            "first_over_last": first_over_last}


# ---------------------------------------------------------------------------------------------
# stage 3: figures and metrics

def plot_accuracy(results: pd.DataFrame, summary: dict, path: Path, seeds: int,
                  test_size: int) -> None:
    fig, (ax,) = figure(width=9.0, row_height=5.0)
    for kind in (k for k in MODELS if k in summary):
        stats, color = summary[kind], MODEL_COLORS[kind]
        lengths = sorted(stats["by_length"])
        med = [100 * stats["by_length"][t]["median"] for t in lengths]
        low = [100 * stats["by_length"][t]["min"] for t in lengths]
        high = [100 * stats["by_length"][t]["max"] for t in lengths]
        ax.fill_between(lengths, low, high, color=color, alpha=0.2)
        ax.plot(lengths, med, marker="o", color=color,
                label=f"{LABELS[kind]}: median of {seeds} seeds (band: min–max)")
        runs = results[results["model"] == kind]
        ax.scatter(runs["T"], 100 * runs["test_accuracy"], color=color, s=10, alpha=0.6)
    ax.axhline(100 * CHANCE, color="gray", linestyle=":", label="chance (10 %)")
    ax.axhline(100 * SOLVED, color="gray", linestyle="--", linewidth=1, label="99 %")
    ax.set_xlabel("palindrome length T (digits; the first digit must be kept T − 2 steps)")
    ax.set_ylabel("test accuracy, last digit (%)")
    ax.set_ylim(0, 102)
    ax.set_title(f"Palindrome memory: test accuracy vs length ({test_size:,} test palindromes each)")
    ax.legend(loc="best", framealpha=0.9)
    save_figure(fig, path)


def plot_gradients(study: dict, summary: dict, path: Path) -> None:
    length = study["length"]
    fig, axes = figure(1, 2, width=11.0, row_height=4.5, sharey=True)
    for ax, stage, title in zip(axes, ("init", "trained"), ("at initialisation", "after training")):
        for kind, norms in study["norms"].items():
            color = MODEL_COLORS[kind]
            acc = summary[kind]["by_length"][length]["median"]
            label = LABELS[kind] + (f" (median test accuracy {acc:.0%})" if stage == "trained" else "")
            ax.semilogy(range(1, len(norms[stage]) + 1), norms[stage], marker=".", color=color,
                        label=label)
        ax.set_title(title)
        ax.set_xlabel(f"time step t (of {length - 1} inputs)")
        ax.legend(loc="best", framealpha=0.9)
    axes[0].set_ylabel("‖∂L/∂h_t‖ (mean over examples)")
    fig.suptitle(f"How much the loss at the last step reaches back to h_t (T = {length}, "
                 f"{study['examples']:,} validation palindromes)")
    save_figure(fig, path)


def palindrome_facts(args, results: pd.DataFrame) -> dict:
    """Per length: how many palindromes exist, how many distinct ones the test set holds (for
    T ≤ 12), and the expected share of the test set that the longest run also drew in training."""
    facts = {}
    for t in args.length:
        runs = results[results["T"] == t] if len(results) else results
        facts[str(t)] = {
            "distinct": palindrome_count(t),
            "test_distinct": int(torch.unique(palindrome_set("test", args.test_size, t)[0].argmax(-1),
                                              dim=0).shape[0]) if t <= 12 else None,
            "test_seen_in_training": float(runs["test_seen_in_training"].max()) if len(runs) else None}
    return facts


def cpu_seconds() -> float:
    """CPU time of this process and its finished child processes (the workers), user + system;
    where ``resource`` is missing (Windows), this process's only."""
    if resource is None:
        return time.process_time()
    return sum(getattr(resource.getrusage(who), field) for who in
               (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN) for field in ("ru_utime", "ru_stime"))


def load_average() -> float | None:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def main(argv=None):
    args = parse_args(argv)
    check_args(args)
    device = setup_runtime(args)
    out_dir = prepare_out_dir(args.out_dir)
    started, cpu_started = time.time(), cpu_seconds()
    load_before = load_average()
    kinds = ["rnn", "lstm"] if args.model == "both" else [args.model]

    results, dropped, interrupted = sweep(args, kinds, device, out_dir)
    write_csv(out_dir / "results.csv", results)
    summary = summarize(results)
    plot_accuracy(results, summary, out_dir / "accuracy_vs_length.png", args.seeds, args.test_size)

    finished = [t for t in args.length if all(t in summary[k]["by_length"] for k in kinds)]
    study = None
    if finished:
        length = args.gradient_length if args.gradient_length in finished else \
            choose_gradient_length(summary, finished)
        study = gradient_study(args, kinds, length, device, out_dir)
        plot_gradients(study, summary, out_dir / "gradient_norms.png")

    metrics = {
        "summary": summary,
        "chance_accuracy": CHANCE,
        "solved_accuracy": SOLVED,
        "palindromes": palindrome_facts(args, results),
        "gradient_norms": study,
        "not_run_past_chance": dropped,
        "parameters": {kind: {"count": count_parameters(build(kind, args, 0)),
                              "formula": scratch_parameter_count(kind, PALINDROME_DIGITS,
                                                                 args.hidden_size,
                                                                 PALINDROME_DIGITS)}
                       for kind in kinds},
        "run_seconds": time.time() - started,
        # wall time on a shared machine says little; CPU time / workers is the time on idle cores
        "cpu_seconds": cpu_seconds() - cpu_started,
        "cpu_seconds_per_worker": (cpu_seconds() - cpu_started) / args.workers,
        "load_average": {"start": load_before, "end": load_average()},
        "interrupted": interrupted,
        **machine_info(device),
        "config": {k: v for k, v in vars(args).items() if k != "debug"},
    }
    write_json(out_dir / "metrics.json", metrics)
    for kind in kinds:
        s = summary[kind]
        print(f"{LABELS[kind]}: median test accuracy ≥ {SOLVED:.0%} at every length up to "
              f"T = {s['holds_99_up_to'] or '-'} (longest such T: {s['longest_length_99'] or '-'}; "
              f"chance {CHANCE:.0%})")
    print(f"outputs in {out_dir}/ ({metrics['run_seconds']:.0f} s)")


if __name__ == "__main__":
    sys.exit(run(main))
