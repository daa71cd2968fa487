"""--backend ray: grid trials as Ray Tune trials on a local runtime (2 CPUs). The same trials give
the same grid.csv as the local backend, a worker killed mid-trial is retried from the trial's
checkpoint, a killed run resumes with --resume, and bad input is one line."""
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import lstm_ae_toy
from cli import run

ROOT = Path(__file__).resolve().parents[1]
GRID = ["--n-seqs", "1500", "--seq-len", "20", "--hidden-size", "8", "16", "--lr", "1e-2",
        "--batch-size", "32", "--threads", "1", "--seed", "3"]


def start(out_dir, *extra):
    return subprocess.Popen([sys.executable, str(ROOT / "lstm_ae_toy.py"), *GRID, "--out-dir",
                             str(out_dir), *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "TQDM_DISABLE": "1"}, start_new_session=True)


def finish(proc, timeout=600):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err.decode()[-3000:]
    return err.decode()


def wait_for(proc, ready, timeout=300):
    deadline = time.time() + timeout
    while not ready():
        assert proc.poll() is None, proc.communicate()[1].decode()[-3000:]
        assert time.time() < deadline, "the run made no progress"
        time.sleep(0.05)


def rows(path):
    try:
        return len(pd.read_csv(path))
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return 0


def trial_workers():
    """PIDs of Ray worker processes running a Tune trial (process title ray::ImplicitFunc...)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes().startswith(
                    b"ray::ImplicitFunc"):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def test_ray_matches_local_and_retries_a_killed_worker_from_its_checkpoint(tmp_path,
                                                                          ray_installed):
    local, distributed = tmp_path / "local", tmp_path / "ray"
    proc = start(distributed, "--epochs", "8", "--backend", "ray", "--parallel", "2")
    trial = distributed / "trials" / "h16_lr0.01_clip1"
    wait_for(proc, lambda: rows(trial / "history.csv") >= 2 and trial_workers())
    for pid in trial_workers():                      # both running trials lose their worker
        os.kill(pid, signal.SIGKILL)
    err = finish(proc)
    assert "ray: 2 trial(s) on a local Ray runtime, 2 at a time, 1 thread(s) each" in err
    assert err.count("best validation loss") == 2     # one line per finished trial
    assert (distributed / "ray.log").stat().st_size > 0
    history = pd.read_csv(trial / "history.csv")
    assert list(history["epoch"]) == list(range(1, 9))       # retried: no gap, no duplicate

    finish(start(local, "--epochs", "8"))
    ours, theirs = (pd.read_csv(d / "grid.csv").sort_values("trial").reset_index(drop=True)
                    for d in (distributed, local))
    assert list(ours["trial"]) == list(theirs["trial"]) and list(ours["config"]) == list(
        theirs["config"])
    pd.testing.assert_series_equal(ours["best_val_loss"], theirs["best_val_loss"], rtol=1e-4)
    assert (distributed / "metrics.json").exists() and (distributed / "grid.png").exists()


def test_killed_ray_run_resumes_and_skips_finished_trials(tmp_path, ray_installed):
    args = ["--epochs", "3", "--hidden-size", "4", "8", "--backend", "ray", "--parallel", "1"]
    proc = start(tmp_path, *args)
    wait_for(proc, lambda: rows(tmp_path / "grid.csv") >= 1)
    os.killpg(proc.pid, signal.SIGKILL)                # the driver and what it started
    proc.wait()
    finished = rows(tmp_path / "grid.csv")
    err = finish(start(tmp_path, *args, "--resume"))
    assert err.count("finished earlier, skipped") == finished >= 1
    table = pd.read_csv(tmp_path / "grid.csv")
    assert len(table) == 2 and table["trial"].is_unique


@pytest.mark.parametrize("flags, expected", [
    (["--parallel", "2"], "--parallel 2: the local backend runs trials one after another"),
    (["--parallel", "0"], "argument --parallel: must be > 0, got 0"),
    (["--backend", "ray", "--ray-address", "127.0.0.1:1"], "--ray-address 127.0.0.1:1: cannot "
                                                           "reach it"),
    (["--backend", "ray", "--ray-address", "nonsense"], "--ray-address nonsense: expected "
                                                        "HOST:PORT"),
])
def test_bad_backend_flags_are_one_line(tmp_path, flags, expected, capsys, request):
    if "ray" in flags:
        request.getfixturevalue("ray_installed")
    started = time.time()
    try:
        status = run(lstm_ae_toy.main, ["--out-dir", str(tmp_path / "r"), *flags])
    except SystemExit as exit_info:                  # argparse's own errors
        status = exit_info.code
    assert status == 2
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1
    assert time.time() - started < 30 and not (tmp_path / "r").exists()


def test_ray_missing_says_how_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    assert run(lstm_ae_toy.main, ["--out-dir", str(tmp_path / "r"), "--backend", "ray"]) == 2
    assert "Ray is not installed here (pip install -r requirements-ray.txt)" in \
        capsys.readouterr().err


def test_one_point_grid_under_ray_just_runs(tmp_path, ray_installed):
    assert run(lstm_ae_toy.main, ["--n-seqs", "60", "--seq-len", "10", "--hidden-size", "4",
                                  "--epochs", "1", "--threads", "1", "--backend", "ray",
                                  "--out-dir", str(tmp_path)]) == 0
    assert (tmp_path / "metrics.json").exists() and not (tmp_path / "ray.log").exists()



def test_bench_times_the_grid_under_both_backends(ray_installed):
    """bench.grid on a 2-trial grid (the bench's default is the report's 8-trial toy grid)."""
    from bench.grid import compare_backends
    grid = compare_backends(epochs=1, n_seqs=40, grid=["--hidden-size", "4", "8"])
    assert grid["trials"] == 2 and grid["parallel"] == 2
    assert grid["local_wall_s"] > 0 and grid["ray_wall_s"] > 0
    assert math.isfinite(grid["max_relative_difference"])
    assert "Ray's overhead" in grid["summary"] and "2 trials" in grid["summary"]
