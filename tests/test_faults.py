"""Faults a long run must survive: SIGKILL mid-epoch then --resume, for a single run and a grid."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--n-seqs", "1500", "--seq-len", "20", "--hidden-size", "16", "--batch-size", "32",
        "--threads", "1"]


def start(out_dir, *extra):
    return subprocess.Popen([sys.executable, str(ROOT / "lstm_ae_toy.py"), *ARGS, "--out-dir",
                             str(out_dir), *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "TQDM_DISABLE": "1"})


def kill_when(proc, ready, timeout=120):
    deadline = time.time() + timeout
    while not ready():
        assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
        assert time.time() < deadline, "the run made no progress"
        time.sleep(0.05)
    time.sleep(0.1)  # land inside the next epoch
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def rows(path):
    return len(pd.read_csv(path)) if path.exists() else 0


def test_sigkill_mid_epoch_then_resume_loses_at_most_that_epoch(tmp_path):
    proc = start(tmp_path, "--epochs", "6")
    kill_when(proc, lambda: rows(tmp_path / "history.csv") >= 2)
    assert proc.returncode == -signal.SIGKILL
    killed_at = rows(tmp_path / "history.csv")
    resumed = start(tmp_path, "--epochs", "6", "--resume")
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err.decode()[-2000:]
    history = pd.read_csv(tmp_path / "history.csv")
    assert list(history["epoch"]) == [1, 2, 3, 4, 5, 6]        # no gap, no duplicate
    assert killed_at >= 2 and (tmp_path / "metrics.json").exists()


def test_killed_grid_resumes_and_skips_finished_trials(tmp_path):
    grid = ["--epochs", "2", "--hidden-size", "8", "16", "--lr", "1e-3", "1e-2"]
    proc = start(tmp_path, *grid)
    kill_when(proc, lambda: rows(tmp_path / "grid.csv") >= 1)
    finished = rows(tmp_path / "grid.csv")
    resumed = start(tmp_path, *grid, "--resume")
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err.decode()[-2000:]
    assert err.decode().count("finished earlier, skipped") == finished
    table = pd.read_csv(tmp_path / "grid.csv")
    assert len(table) == 4 and table["trial"].is_unique
