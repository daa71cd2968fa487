"""One training loop for every experiment, with checkpoints, resume and grid search.

``fit`` trains any model given a ``step_fn(model, batch) -> (loss, metrics)``: the script says what
a batch means and what the loss is, the loop does the rest (optimizer by name, one-cycle or
constant learning rate, gradient-norm clipping, early stopping, tqdm progress, ``history.csv``
rewritten as each epoch ends, a checkpoint written atomically after every epoch, ``--resume``,
NaN/Inf detection, Ctrl-C that stops training but still returns the best model). The training
data are in-memory tensors shuffled each epoch, or a ``Stream`` of batches made on the fly
(an "epoch" is then a fixed number of fresh batches); a ``stop(history)`` hook may end training
after any epoch (e.g. once the training accuracy has been 100 %).

``run_grid`` runs ``fit`` over every combination of hidden size, learning rate and gradient clip,
records each finished trial in ``grid.csv`` and skips finished trials when run again; its trials
run one after another here or, with ``GridBackend("ray", parallel=N)``, as Ray Tune trials
(``ray_grid.py``) on this machine or a cluster.

Checkpoints are plain dicts of tensors and built-in types (model ``state_dict``, optimizer state,
RNG states, history, the best weights so far), loaded with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Sequence

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from errors import TrainingDiverged, UsageError
from outputs import atomic_path, write_csv

CHECKPOINT = "checkpoint.pt"
HISTORY = "history.csv"
GRID = "grid.csv"
GRID_KEYS = ("hidden_size", "lr", "grad_clip")


@dataclass
class TrainSettings:
    optimizer: str = "adam"
    lr: float = 1e-3
    lr_schedule: str = "onecycle"
    weight_decay: float = 0.0
    grad_clip: float = 0.0
    batch_size: int = 128
    epochs: int = 10
    patience: int = 0
    precision: str = "fp32"

    @classmethod
    def from_args(cls, args, **overrides) -> "TrainSettings":
        """Settings from the common parser's flags (first value of the grid flags)."""
        values = dict(optimizer=args.optimizer, lr=args.lr[0], lr_schedule=args.lr_schedule,
                      weight_decay=args.weight_decay, grad_clip=args.grad_clip[0],
                      batch_size=args.batch_size, epochs=args.epochs, patience=args.patience,
                      precision=args.precision)
        values.update(overrides)
        return cls(**values)


@dataclass
class FitResult:
    history: list[dict]
    best_epoch: int
    best_val_loss: float
    interrupted: bool = False
    seconds: float = 0.0


StepFn = Callable[[nn.Module, tuple], tuple[torch.Tensor, dict]]


@dataclass
class Stream:
    """Training batches generated on the fly instead of read from tensors.

    ``batches(epoch)`` yields the ``steps_per_epoch`` batch tuples of epoch ``epoch`` (1-based);
    it should be a pure function of the epoch number (e.g. seeded with it), so a resumed run
    sees the same data as an uninterrupted one.
    """
    batches: Callable[[int], Iterable[tuple]]
    steps_per_epoch: int


# ---------------------------------------------------------------------------------------------
# building blocks

def batches(tensors: Sequence[torch.Tensor], batch_size: int, *, shuffle: bool = False,
            generator: torch.Generator | None = None):
    """Yield tuples of aligned mini-batches from in-memory tensors (no per-item Dataset calls)."""
    n = len(tensors[0])
    order = torch.randperm(n, generator=generator).to(tensors[0].device) if shuffle else None
    for start in range(0, n, batch_size):
        if order is None:
            yield tuple(t[start:start + batch_size] for t in tensors)
        else:
            idx = order[start:start + batch_size]
            yield tuple(t[idx] for t in tensors)


def make_optimizer(name: str, params, lr: float, weight_decay: float = 0.0,
                   betas: tuple[float, float] = (0.9, 0.999)):
    """Optimizer by name; ``betas`` are Adam's/AdamW's moment decays (GANs use β1 = 0.5)."""
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, betas=betas)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=betas)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, weight_decay=weight_decay)
    raise UsageError(f"--optimizer {name!r}: expected one of adam, adamw, sgd, rmsprop")


def learning_rate(step: int, total_steps: int, peak: float, schedule: str) -> float:
    """One-cycle: linear warm-up over the first 20 % from peak/25, then cosine decay to peak/1e3.

    A pure function of the step, so a resumed run follows the same schedule without saving a
    scheduler object.
    """
    if schedule == "constant":
        return peak
    warmup = max(1, int(0.2 * total_steps))
    if step < warmup:
        return peak / 25 + (peak - peak / 25) * step / warmup
    progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
    low = peak / 1e3
    return low + 0.5 * (peak - low) * (1 + math.cos(math.pi * progress))


def autocast(device: torch.device, precision: str):
    """The context every forward pass runs in: bf16 autocast for ``--precision bf16``, else a
    no-op. Parameters, gradients and optimizer state stay fp32 either way."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


@torch.no_grad()
def evaluate(model: nn.Module, step_fn: StepFn, tensors: Sequence[torch.Tensor],
             batch_size: int = 512, precision: str = "fp32") -> dict[str, float]:
    """Mean of the loss and of every metric ``step_fn`` returns, weighted by batch size."""
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    count = 0
    for batch in batches(tensors, batch_size):
        with autocast(batch[0].device, precision):
            loss, metrics = step_fn(model, batch)
        n = len(batch[0])
        count += n
        for key, value in {"loss": loss, **metrics}.items():
            sums[key] = sums.get(key, 0.0) + float(value) * n
    model.train(was_training)
    return {key: value / count for key, value in sums.items()}


def stable_hash(data) -> str:
    """Short hash of JSON-able data, to tell whether two runs had the same configuration."""
    return hashlib.sha1(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:12]


# ---------------------------------------------------------------------------------------------
# checkpoints

def save_checkpoint(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path) -> dict:
    """Load a checkpoint written by ``fit``; a missing or damaged file is a UsageError."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"--resume: no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, bad pickle, ... all mean the same to the user
        raise UsageError(f"{path}: corrupt or truncated checkpoint ({type(err).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != 1 or "model" not in state:
        raise UsageError(f"{path}: not a checkpoint written by this project")
    return state


def identity_mismatch(saved: dict, current: dict) -> list[str]:
    keys = sorted(set(saved) | set(current))
    return [k for k in keys if saved.get(k) != current.get(k)]


def check_identity(state: dict, identity: dict, path: Path) -> None:
    """``--resume`` continues only the same configuration: a UsageError naming what differs."""
    diff = identity_mismatch(state.get("identity", {}), identity)
    if diff:
        raise UsageError(f"--resume: {path} is from a different configuration "
                         f"(differs in: {', '.join(diff)})")


def load_model_weights(path: Path, model: nn.Module, which: str = "best") -> dict:
    """Load the best (or last) weights of a finished run into ``model``; returns the checkpoint."""
    state = load_checkpoint(path)
    weights = state["best"]["model"] if which == "best" and state.get("best") else state["model"]
    model.load_state_dict(weights)
    return state


# ---------------------------------------------------------------------------------------------
# the loop

def fit(model: nn.Module, step_fn: StepFn, train: Sequence[torch.Tensor] | Stream,
        val: Sequence[torch.Tensor], settings: TrainSettings, *, run_dir, identity: dict,
        device: torch.device, seed: int = 0, resume: bool = False, desc: str = "train",
        eval_batch_size: int = 1024,
        stop: Callable[[list[dict]], bool] | None = None) -> FitResult:
    """Train ``model`` in place and leave it holding its best-by-validation weights.

    ``train``/``val``: aligned tensors, first dimension = sequences (moved to ``device`` here);
    ``train`` may instead be a ``Stream`` (``settings.batch_size`` is then the stream's affair).
    ``step_fn(model, batch)`` returns the mean loss of the batch and a dict of extra batch-mean
    metrics (logged as ``train_<name>``/``val_<name>`` in the history).
    ``identity``: everything that must match for ``--resume`` to continue this run (model
    config, data settings, optimizer...): a checkpoint with another identity is refused.
    ``stop(history)``: called before each epoch with the rows so far; True ends training (like
    ``settings.patience``, which it does not replace).
    """
    run_dir = Path(run_dir)
    ckpt_path, hist_path = run_dir / CHECKPOINT, run_dir / HISTORY
    model.to(device)
    val = [t.to(device) for t in val]
    optimizer = make_optimizer(settings.optimizer, model.parameters(), settings.lr,
                               settings.weight_decay)
    shuffle_gen = torch.Generator().manual_seed(seed)
    if not isinstance(train, Stream):
        tensors = [t.to(device) for t in train]
        train = Stream(lambda epoch: batches(tensors, settings.batch_size, shuffle=True,
                                             generator=shuffle_gen),
                       math.ceil(len(tensors[0]) / settings.batch_size))
    history: list[dict] = []
    best: dict | None = None
    start_epoch = 0

    if resume:
        state = load_checkpoint(ckpt_path)
        check_identity(state, identity, ckpt_path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        shuffle_gen.set_state(state["rng"]["shuffle"])
        torch.set_rng_state(state["rng"]["torch"])
        history, best, start_epoch = state["history"], state["best"], state["epoch"]
        write_history(hist_path, history)  # drop rows of an epoch that did not finish
    elif ckpt_path.exists():
        print(f"note: starting a new run; {ckpt_path} will be replaced after the first epoch "
              f"(use --resume to continue it)", file=sys.stderr)

    steps_per_epoch = train.steps_per_epoch
    total_steps = settings.epochs * steps_per_epoch
    best_val = best["val_loss"] if best else math.inf
    best_epoch = best["epoch"] if best else 0
    interrupted = False
    t_start = time.perf_counter()
    epoch_bar = tqdm(total=settings.epochs, initial=start_epoch, desc=desc, unit="epoch",
                     dynamic_ncols=True, file=sys.stderr)
    try:
        for epoch in range(start_epoch + 1, settings.epochs + 1):
            if settings.patience and epoch - 1 - best_epoch >= settings.patience:
                break
            if stop is not None and history and stop(history):
                break
            t0 = time.perf_counter()
            model.train()
            sums: dict[str, float] = {}
            count = 0
            # with clipping on, record how often it acts: a clip that never triggers is a grid
            # axis that changes nothing, and the report says so with this evidence
            grad_norm_max, clipped_steps = 0.0, 0
            step_bar = tqdm(train.batches(epoch), total=steps_per_epoch, desc=f"epoch {epoch}", leave=False,
                            dynamic_ncols=True, file=sys.stderr)
            for i, batch in enumerate(step_bar):
                batch = tuple(t.to(device) for t in batch)   # a no-op for in-memory tensors
                lr = learning_rate((epoch - 1) * steps_per_epoch + i, total_steps, settings.lr,
                                   settings.lr_schedule)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                with autocast(device, settings.precision):
                    loss, metrics = step_fn(model, batch)
                loss_value = loss.item()
                if not math.isfinite(loss_value):
                    raise TrainingDiverged(
                        f"loss became {loss_value} at epoch {epoch}, step {i + 1}; training "
                        f"stopped, last good checkpoint kept at {ckpt_path} (try a lower --lr "
                        f"or --grad-clip 1)")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if settings.grad_clip > 0:
                    grad_norm = float(nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip))
                    grad_norm_max = max(grad_norm_max, grad_norm)
                    clipped_steps += grad_norm > settings.grad_clip
                optimizer.step()
                n = len(batch[0])
                count += n
                for key, value in {"loss": loss_value, **metrics}.items():
                    sums[key] = sums.get(key, 0.0) + float(value) * n
                if i % 10 == 0:
                    step_bar.set_postfix(loss=f"{sums['loss'] / count:.4g}")
            step_bar.close()

            val_metrics = evaluate(model, step_fn, val, eval_batch_size, settings.precision)
            if not math.isfinite(val_metrics["loss"]):
                raise TrainingDiverged(f"validation loss became {val_metrics['loss']} at epoch "
                                       f"{epoch}; last good checkpoint kept at {ckpt_path}")
            row = {"epoch": epoch}
            row.update({f"train_{k}": v / count for k, v in sums.items()})
            row.update({f"val_{k}": v for k, v in val_metrics.items()})
            if settings.grad_clip > 0:
                row.update({"grad_norm_max": grad_norm_max, "clipped_fraction": clipped_steps / (i + 1)})
            row.update({"lr": lr, "seconds": time.perf_counter() - t0})
            history.append(row)
            if val_metrics["loss"] < best_val:
                best_val, best_epoch = val_metrics["loss"], epoch
                best = {"epoch": epoch, "val_loss": best_val,
                        "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
            save_checkpoint(ckpt_path, {
                "format": 1, "identity": identity, "epoch": epoch, "history": history,
                "model": model.state_dict(), "optimizer": optimizer.state_dict(), "best": best,
                "rng": {"torch": torch.get_rng_state(), "shuffle": shuffle_gen.get_state()},
            })
            write_history(hist_path, history)
            epoch_bar.update(1)
            epoch_bar.set_postfix(train=f"{row['train_loss']:.4g}", val=f"{row['val_loss']:.4g}",
                                  best=f"{best_val:.4g}")
    except KeyboardInterrupt:
        interrupted = True
        print(f"\ninterrupted: evaluating the best model so far (epoch {best_epoch})",
              file=sys.stderr)
    finally:
        epoch_bar.close()

    if best is not None:
        model.load_state_dict(best["model"])
    return FitResult(history, best_epoch, best_val, interrupted, time.perf_counter() - t_start)


def write_history(path: Path, history: list[dict]) -> None:
    """Rewrite ``history.csv`` (one row per finished epoch) atomically; none yet: no file."""
    if history:
        write_csv(path, pd.DataFrame(history))
    elif path.exists():
        path.unlink()


# ---------------------------------------------------------------------------------------------
# grid search

@dataclass
class GridResult:
    model: nn.Module
    params: dict
    fit: FitResult | None
    history: list[dict]
    table: pd.DataFrame | None
    run_dir: Path
    interrupted: bool = False
    trials: dict = field(default_factory=dict)


def grid_points(hidden_sizes, lrs, grad_clips) -> list[dict]:
    return [dict(zip(GRID_KEYS, values)) for values in itertools.product(hidden_sizes, lrs, grad_clips)]


def trial_name(params: dict) -> str:
    return f"h{params['hidden_size']}_lr{params['lr']:g}_clip{params['grad_clip']:g}"


def read_grid(path: Path) -> pd.DataFrame:
    """Read ``grid.csv``; a damaged file is named in a UsageError rather than silently redone."""
    columns = ["trial", *GRID_KEYS, "best_val_loss", "best_epoch", "epochs_run", "seconds", "config"]
    if not path.exists():
        return pd.DataFrame(columns=columns)
    try:
        # An all-digit config hash (e.g. "0123456789ab" without letters) would otherwise be read
        # as a number and never match the text hash again, so every trial would rerun.
        table = pd.read_csv(path, dtype={"trial": str, "config": str})
    except Exception as err:
        raise UsageError(f"{path}: unreadable grid file ({type(err).__name__}); delete it to "
                         f"rerun every trial") from None
    missing = [c for c in columns if c not in table.columns]
    if missing or table[["best_val_loss", *GRID_KEYS]].isna().any().any():
        what = f"missing columns {', '.join(missing)}" if missing else "empty cells"
        raise UsageError(f"{path}: damaged grid file ({what}); delete it to rerun every trial")
    return table


@dataclass
class GridBackend:
    """How a grid's trials run: ``local`` (one after another in this process) or ``ray`` (Ray
    Tune trials, ``parallel`` at a time, on a local runtime or the cluster at ``ray_address``).
    ``threads``: CPU threads of each Ray trial (default: this machine's cores / ``parallel``)."""
    name: str = "local"
    parallel: int = 1
    ray_address: str | None = None
    threads: int | None = None

    @classmethod
    def from_args(cls, args) -> "GridBackend":
        return cls(args.backend, args.parallel, args.ray_address, args.threads)


def train_trial(params: dict, build: Callable[[dict], nn.Module], step_fn: StepFn, train, val,
                settings: TrainSettings, *, run_dir: Path, identity: dict, device: torch.device,
                seed: int, resume: bool, desc: str, config: str) -> dict:
    """One grid trial: a fresh model for ``params`` trained by ``fit`` in ``run_dir``; returns
    its grid.csv row (plus "interrupted"). The same code whichever backend runs it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = build(params)
    trial_settings = replace(settings, lr=params["lr"], grad_clip=params["grad_clip"])
    result = fit(model, step_fn, train, val, trial_settings, run_dir=run_dir,
                 identity={**identity, **params}, device=device, seed=seed, resume=resume,
                 desc=desc)
    clipped = [row for row in result.history if "grad_norm_max" in row]   # only with a clip
    return {"trial": trial_name(params), **params, "best_val_loss": result.best_val_loss,
            "best_epoch": result.best_epoch, "epochs_run": len(result.history),
            "seconds": round(result.seconds, 2),
            # how much the clip acted: the largest gradient norm of any step (before clipping)
            # and the share of steps it clipped (epochs have equal steps)
            "grad_norm_max": max(r["grad_norm_max"] for r in clipped) if clipped else float("nan"),
            "clipped_fraction": (sum(r["clipped_fraction"] for r in clipped) / len(clipped)
                                 if clipped else float("nan")),
            "config": config, "interrupted": result.interrupted}


def run_grid(points: list[dict], build: Callable[[dict], nn.Module], step_fn: StepFn,
             train, val, settings: TrainSettings, *, out_dir, identity: dict,
             device: torch.device, seed: int = 0, resume: bool = False,
             backend: GridBackend | None = None) -> GridResult:
    """Train one model per grid point and return the best by validation loss.

    ``build(params)`` returns a fresh model for a point (``params`` has hidden_size, lr,
    grad_clip). With one point the run lives in ``out_dir`` itself and no ``grid.csv`` is
    written (whatever the backend); with several, each trial has ``out_dir/trials/<name>/`` and
    finished trials are recorded in ``out_dir/grid.csv`` and skipped when the same configuration
    runs again. ``backend`` says where the unfinished trials run (``GridBackend``; default: one
    after another here); grid.csv is written by this process alone, as each trial finishes.
    """
    out_dir = Path(out_dir)
    backend = backend or GridBackend()
    if len(points) == 1:
        params = points[0]
        torch.manual_seed(seed)
        model = build(params)
        trial_settings = replace(settings, lr=params["lr"], grad_clip=params["grad_clip"])
        result = fit(model, step_fn, train, val, trial_settings, run_dir=out_dir,
                     identity={**identity, **params}, device=device, seed=seed, resume=resume)
        return GridResult(model, params, result, result.history, None, out_dir, result.interrupted)

    grid_path = out_dir / GRID
    table = read_grid(grid_path)
    config = stable_hash({"identity": identity, "settings": asdict(settings), "seed": seed})
    results: dict[str, dict] = {}
    pending = []
    for number, params in enumerate(points, 1):
        name = trial_name(params)
        run_dir = out_dir / "trials" / name
        done = table[(table["trial"] == name) & (table["config"] == config)]
        if len(done) and (run_dir / CHECKPOINT).exists():
            print(f"grid {number}/{len(points)} {name}: finished earlier, skipped", file=sys.stderr)
            results[name] = {"params": params, "val": float(done["best_val_loss"].iloc[-1]),
                             "run_dir": run_dir}
        else:
            pending.append((number, params))

    def record(row: dict) -> None:
        nonlocal table
        results[row["trial"]] = {"params": {k: row[k] for k in GRID_KEYS},
                                 "val": row["best_val_loss"],
                                 "run_dir": out_dir / "trials" / row["trial"]}
        if row["interrupted"]:
            return
        row = {k: v for k, v in row.items() if k != "interrupted"}
        table = table[~((table["trial"] == row["trial"]) & (table["config"] == config))]
        table = pd.concat([table, pd.DataFrame([row])], ignore_index=True)
        write_csv(grid_path, table)

    def trial(params: dict, number: int, resume_from: float | None = None) -> dict:
        """Runs one pending trial. ``resume_from``: a checkpoint written after this time (by an
        earlier attempt of the same trial, e.g. on a worker that died) is continued."""
        run_dir = out_dir / "trials" / trial_name(params)
        ckpt = run_dir / CHECKPOINT
        can_resume = ckpt.exists() and (resume or (resume_from is not None
                                                   and ckpt.stat().st_mtime >= resume_from))
        return train_trial(params, build, step_fn, train, val, settings, run_dir=run_dir,
                           identity=identity, device=device, seed=seed, resume=can_resume,
                           desc=f"grid {number}/{len(points)} {trial_name(params)}",
                           config=config)

    interrupted = False
    if backend.name == "ray" and pending:
        from ray_grid import run_trials
        interrupted = run_trials(pending, trial, record, backend, out_dir=out_dir,
                                 total=len(points), device=device)
    else:
        for number, params in pending:
            row = trial(params, number)
            record(row)
            if row["interrupted"]:
                interrupted = True
                break

    finite = {k: v for k, v in results.items() if math.isfinite(v["val"])}
    if not finite:
        raise TrainingDiverged("no grid trial finished an epoch")
    best_name = min(finite, key=lambda k: finite[k]["val"])
    best = finite[best_name]
    model = build(best["params"])
    state = load_model_weights(best["run_dir"] / CHECKPOINT, model)
    model.to(device)
    write_history(out_dir / HISTORY, state["history"])
    current = table[table["config"] == config] if len(table) else table
    return GridResult(model, best["params"], None, state["history"], current, best["run_dir"],
                      interrupted, trials=results)
