"""Grid trials as Ray Tune trials: in parallel on this machine, or on a Ray cluster.

``run_trials`` is what ``training.run_grid`` calls for ``--backend ray``. Each trial runs the same
code as under the local backend (``training.train_trial``: the shared loop with its checkpoints,
history and NaN guard), in the trial's own folder ``<out-dir>/trials/<name>/``; this process
alone writes grid.csv, as each trial finishes, so results land where the local backend puts them.

- Resources: each trial asks Ray for ``threads`` CPUs (default this machine's cores ÷
  ``--parallel``, so trials do not oversubscribe it) and, on CUDA, 1/``--parallel`` of a GPU; at
  most ``--parallel`` trials run at once.
- Faults: a trial whose worker process dies is retried by Ray (``FailureConfig(max_failures=2)``)
  and continues from the checkpoint the shared loop wrote after its last finished epoch, so it
  loses at most the unfinished epoch. A killed driver is resumed like any grid: rerun the same
  command with ``--resume``; finished trials are skipped, the others continue.
- Output: one line per finished trial and an overall tqdm bar; Ray's own output (its banner,
  worker logs) goes to ``<out-dir>/ray.log`` and Ray's session folder, named in the first line.
- Storage: outputs are written to ``--out-dir`` by the workers themselves, so on a cluster of
  several machines ``--out-dir`` must be a folder every node sees at the same path (NFS, a shared
  volume); Tune's own bookkeeping goes to ``<out-dir>/ray_results``.

Reference: Liaw et al. 2018, "Tune: A Research Platform for Distributed Model Selection and
Training"; https://docs.ray.io/en/latest/tune/.
"""
from __future__ import annotations

import contextlib
import socket
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

from tqdm.auto import tqdm

from errors import TrainingDiverged, UsageError
from hardware import available_cores

INSTALL = "pip install -r requirements-ray.txt"
CONNECT_TIMEOUT_S = 3.0


def import_ray():
    """Ray and Ray Tune, or one UsageError line saying how to install them."""
    try:
        import ray
        from ray import tune
    except ImportError:
        raise UsageError(f"--backend ray: Ray is not installed here ({INSTALL})") from None
    return ray, tune


def check_address(address: str | None) -> None:
    """Refuse an unreachable --ray-address in seconds (ray.init would keep retrying)."""
    if not address or address == "auto":
        return
    parsed = urlparse(address if "://" in address else f"ray://{address}")
    host, port = parsed.hostname, parsed.port
    if not host or not port:
        raise UsageError(f"--ray-address {address}: expected HOST:PORT, ray://HOST:PORT or auto")
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as err:
        raise UsageError(f"--ray-address {address}: cannot reach it "
                         f"({err.strerror or type(err).__name__}); is `ray start --head` "
                         f"running there?") from None


def check_backend(backend) -> None:
    """Everything about --backend/--parallel/--ray-address that can be refused before a run
    writes anything."""
    if backend.name != "ray":
        if backend.parallel > 1:
            raise UsageError(f"--parallel {backend.parallel}: the local backend runs trials one "
                             f"after another; use --backend ray to run them in parallel")
        return
    import_ray()
    check_address(backend.ray_address)


def _trainable(config: dict, run=None):
    """The Tune trainable: one grid trial; its grid.csv row is the trial's final result (the
    row's "config" hash renamed: Tune puts the trial's own config under that key)."""
    row = run(config["trial"]["params"], config["trial"]["number"],
              resume_from=config["started"])
    row["grid_config"] = row.pop("config")
    return row


def progress_callback(record, bar, out, errors):
    """A Tune callback: one line per finished trial, the overall bar, grid.csv written at once
    (``record``); failed trials are collected in ``errors``."""
    from ray import tune

    class Progress(tune.Callback):
        # Tune pickles its run configuration (for its own restore, unused here): this callback
        # holds live streams, so it pickles as empty, and its methods close over nothing
        def __getstate__(self):
            return {}

        def __setstate__(self, state):
            pass

        def on_trial_complete(self, iteration, trials, trial, **info):
            row = dict(trial.last_result)
            row["config"] = row["grid_config"]
            self.record({k: row[k] for k in ("trial", "hidden_size", "lr", "grad_clip",
                                             "best_val_loss", "best_epoch", "epochs_run",
                                             "seconds", "grad_norm_max", "clipped_fraction",
                                             "config", "interrupted")})
            self.bar.update(1)
            self.bar.write(f"grid {trial.config['trial']['number']}/{self.bar.total} "
                           f"{row['trial']}: best validation loss {row['best_val_loss']:.4g} "
                           f"after {row['epochs_run']} epochs ({row['seconds']:.0f} s)",
                           file=self.out)

        def on_trial_error(self, iteration, trials, trial, **info):
            self.errors.append(trial.config["trial"]["params"])
            self.bar.update(1)

    callback = Progress()
    callback.record, callback.bar, callback.out, callback.errors = record, bar, out, errors
    return callback


def run_trials(pending: list[tuple[int, dict]], trial, record, backend, *, out_dir: Path,
               total: int, device) -> bool:
    """Run ``trial(params, number, resume_from=...)`` for every pending (number, params) as a
    Ray Tune trial; ``record(row)`` each finished one. Returns whether the run was interrupted."""
    ray, tune = import_ray()
    check_address(backend.ray_address)
    out_dir = Path(out_dir).resolve()
    log_path = out_dir / "ray.log"
    parallel = min(backend.parallel, len(pending))
    threads = backend.threads or max(1, available_cores() // parallel)
    resources = {"cpu": threads}
    if device.type == "cuda":
        resources["gpu"] = 1 / parallel
    out = sys.stderr
    started = time.time()
    errors: list[dict] = []
    with open(log_path, "a") as log, contextlib.redirect_stdout(log), \
            contextlib.redirect_stderr(log):
        where = backend.ray_address or "a local Ray runtime"
        print(f"ray: {len(pending)} trial(s) on {where}, {parallel} at a time, {threads} "
              f"thread(s) each; Ray's output in {log_path}", file=out)
        root = str(Path(__file__).resolve().parent)
        if backend.ray_address:       # the cluster's nodes get this project's code
            runtime_env = {"working_dir": root, "excludes": ["data/", "report/", ".git/", "*.pt"]}
        else:
            runtime_env = {"env_vars": {"PYTHONPATH": root, "OMP_NUM_THREADS": str(threads),
                                        "TQDM_DISABLE": "1"}}
        ray.init(address=backend.ray_address, runtime_env=runtime_env, log_to_driver=False,
                 include_dashboard=False, logging_level="ERROR",
                 **({} if backend.ray_address else {"num_cpus": available_cores()}))
        bar = tqdm(total=total, initial=total - len(pending), desc="grid", unit="trial",
                   dynamic_ncols=True, file=out)
        try:
            tuner = tune.Tuner(
                tune.with_resources(tune.with_parameters(_trainable, run=trial), resources),
                param_space={"trial": tune.grid_search([{"params": p, "number": n}
                                                         for n, p in pending]),
                             "started": started},
                # reused actors keep torch and this project imported between trials: a fresh
                # worker process per trial cost ~10 s of start-up, as much as a short trial
                tune_config=tune.TuneConfig(max_concurrent_trials=parallel, reuse_actors=True),
                run_config=tune.RunConfig(
                    name="grid", storage_path=str(out_dir / "ray_results"), verbose=0,
                    callbacks=[progress_callback(record, bar, out, errors)],
                    failure_config=tune.FailureConfig(max_failures=2)))
            tuner.fit()
        except KeyboardInterrupt:
            return True
        finally:
            bar.close()
            ray.shutdown()
    if errors:
        names = ", ".join(f"h{p['hidden_size']}_lr{p['lr']:g}_clip{p['grad_clip']:g}"
                          for p in errors)
        raise TrainingDiverged(f"grid trial(s) {names} failed under Ray after 2 retries; their "
                               f"errors are in {log_path} and {out_dir / 'ray_results'}")
    return False
