"""Wall time of a grid search under each backend: the toy report grid (8 trials) run one trial
after another with 2 threads (``--backend local``) and two trials at a time with one thread
each (``--backend ray --parallel 2``), each in a fresh subprocess, as a user would run them.

The results should agree (same seed, same trials; one thread instead of two may round matrix
products differently, so the largest relative difference is reported); the speed-up is the ratio of the
wall times; Ray's overhead per trial is the Ray run's wall time beyond its trials' own training
time (each trial's ``seconds`` in grid.csv), divided by the number of trials and multiplied by
the trials running at once.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
# the toy report grid (make_report.py's "toy" experiment)
TOY_GRID = ["--hidden-size", "32", "64", "--lr", "3e-3", "1e-2", "--grad-clip", "0", "0.25"]


def _run(args: list[str], out_dir: Path) -> tuple[float, pd.DataFrame]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(ROOT / "lstm_ae_toy.py"), *args, "--out-dir",
                           str(out_dir)], capture_output=True, text=True,
                          env={**os.environ, "TQDM_DISABLE": "1"})
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"lstm_ae_toy.py {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return wall, pd.read_csv(out_dir / "grid.csv").sort_values("trial").reset_index(drop=True)


def compare_backends(epochs: int | None = None, n_seqs: int | None = None,
                     parallel: int = 2, grid: list[str] = TOY_GRID) -> dict:
    """Time the toy grid under both backends; ``epochs``/``n_seqs`` shrink it (default: the
    script's 30 epochs on 10,000 sequences, as in the report); ``grid``: the grid flags."""
    extra = list(grid) + (["--epochs", str(epochs)] if epochs else []) + (
        ["--n-seqs", str(n_seqs)] if n_seqs else [])
    with tempfile.TemporaryDirectory() as tmp:
        local_s, local = _run([*extra, "--threads", str(parallel)], Path(tmp) / "local")
        ray_s, ray = _run([*extra, "--threads", "1", "--backend", "ray", "--parallel",
                           str(parallel)], Path(tmp) / "ray")
    assert list(local["trial"]) == list(ray["trial"])
    # 2 threads vs 1 may round matrix products differently: report how far the results differ
    difference = float(((local["best_val_loss"] - ray["best_val_loss"]).abs()
                        / local["best_val_loss"]).max())
    trials = len(ray)
    overhead = (ray_s - ray["seconds"].sum() / parallel) * parallel / trials
    result = {"command_args": extra, "trials": trials, "parallel": parallel,
              "local_wall_s": local_s, "ray_wall_s": ray_s, "speedup": local_s / ray_s,
              "max_relative_difference": difference, "ray_overhead_per_trial_s": overhead,
              "local_trial_seconds": local["seconds"].tolist(),
              "ray_trial_seconds": ray["seconds"].tolist()}
    result["summary"] = (
        f"toy grid, {trials} trials ({' '.join(extra)}): --backend local with {parallel} "
        f"threads {local_s:.0f} s; --backend ray --parallel {parallel} with 1 thread each "
        f"{ray_s:.0f} s: {result['speedup']:.2f}× (target ≥ 1.5×: "
        f"{'met' if result['speedup'] >= 1.5 else 'not met'}); best validation losses differ "
        f"by at most {difference:.1e} (relative); Ray's overhead {overhead:.1f} s per trial "
        f"(start-up, scheduling, reporting)")
    return result
