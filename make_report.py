"""Regenerate every report figure and the written report from real runs, with one command.

    python make_report.py                    # all experiments, report settings, into report/
    python make_report.py --quick --out-dir /tmp/report-quick   # same pipeline, tiny settings
    python make_report.py --backend ray --parallel 2 --threads 1  # grid trials two at a time
    python make_report.py --jobs 2 --threads 1    # two experiments at a time, one thread each

Each experiment runs its script's ``main`` with the script's own command line (shown in the
report, so any section can be reproduced by hand), writing its figures, metrics.json, history
and grid/cv tables under ``--out-dir``. A run whose command line and code (its script and the
project modules it imports, ``project_imports``) are unchanged since it last finished is reused,
not run again (``--force`` reruns everything). With ``--jobs N`` experiments run N at a time,
each in its own process with its output in ``<out-dir>/logs/<name>.log``, the longest first
(by their last run times, ``longest_path_first``); an experiment starts after those it reads
from (``Experiment.after``: the digit judge's checkpoint). Then
``report.py`` writes ``<out-dir>/README.md``, reading every number from the runs' metrics.json /
grid.csv / cv.csv.
"""
from __future__ import annotations

import ast
import contextlib
import hashlib
import importlib
import json
import multiprocessing
import os
import shlex
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from cli import Parser, positive_int, resolve_device, run
from errors import UsageError
from hardware import bf16_unsupported_reason, check_threads, cpu_flags, cpu_model
from outputs import prepare_out_dir, write_json
from ray_grid import check_backend
from report import CODE_VERSIONS, SKIPPED, write_report
from training import GRID, GridBackend
from vae_sevens import EFFECTS as SEVENS_EFFECTS

ROOT = Path(__file__).resolve().parent
CODE_SIZES = {"toy": (4, 8, 16, 32), "mnist": (8, 16, 32, 64, 128), "snp500": (4, 8, 16, 32)}
MNIST_SWEEP = ("--train-size", "20000", "--epochs", "6")   # a third of the default run's steps
SNP_SWEEP = ("--folds", "2", "--pred-epochs", "1")           # the sweep compares reconstructions
# F_fc vs F_conv at equal compute (the report's frontier section): more sizes of each architecture
# at the MNIST section's budget (all training images, 10 epochs); the "mnist" run itself gives F_fc
# with 256 hidden units and the default F_conv (14 channels, kernel 3, bidirectional encoder,
# decoder reading z through a 55-wide convolution)
FRONTIER = {
    "fc-32": ["--cell", "fc", "--hidden-size", "32"],
    "fc-64": ["--cell", "fc", "--hidden-size", "64"],
    "fc-128": ["--cell", "fc", "--hidden-size", "128"],
    "conv-8-k3": ["--cell", "conv", "--conv-channels", "8"],
    "conv-14-k5": ["--cell", "conv", "--kernel-size", "5"],
    "conv-14-k3-forward": ["--cell", "conv", "--conv-encoder", "forward"],   # the design ablations:
    "conv-14-k3-zk3": ["--cell", "conv", "--z-kernel-size", "3"],            # encoder, decoder
}


@dataclass
class Experiment:
    name: str              # sub-directory of --out-dir, e.g. "toy" or "toy/dip"
    script: str
    full: list[str]        # report settings
    quick: list[str]       # tiny settings for --quick
    data: bool = False     # needs --data-dir
    bf16: bool = False     # runs --precision bf16: skipped where this machine cannot
    grid: bool = False     # a grid search: --backend and --parallel are passed on
    after: tuple[str, ...] = ()   # experiments whose outputs it reads (run first with --jobs)


def experiments(quick: bool = False) -> list[Experiment]:
    """Every experiment of the report, in order; ``quick`` keeps two points of each code-size
    sweep and of the F_fc vs F_conv frontier (the pipeline is the same at every point)."""
    sizes = {task: ks[:2] if quick else ks for task, ks in CODE_SIZES.items()}
    tiny_toy = ["--n-seqs", "200", "--epochs", "2", "--hidden-size", "8"]
    tiny_snp = ["--symbols", "AMZN", "GOOGL", "AAPL", "MSFT", "IBM", "ORCL", "INTC", "CSCO",
                "--folds", "2", "--epochs", "1", "--pred-epochs", "1", "--hidden-size", "8"]
    tiny_gan = ["--train-size", "600", "--epochs", "1", "--eval-samples", "200", "--test-size", "500"]
    return [
        Experiment("toy", "lstm_ae_toy.py",
                   ["--hidden-size", "32", "64", "--lr", "3e-3", "1e-2", "--grad-clip", "0", "0.25"],
                   [*tiny_toy[:4], "--hidden-size", "4", "8", "--lr", "1e-2", "--grad-clip", "0", "0.25"],
                   grid=True),
        Experiment("toy/plateau", "lstm_ae_toy.py", ["--init", "torch"], [*tiny_toy, "--init", "torch"]),
        Experiment("toy/plateau-reverse", "lstm_ae_toy.py", ["--init", "torch", "--reverse"],
                   [*tiny_toy, "--init", "torch", "--reverse"]),
        Experiment("toy/sines", "lstm_ae_toy.py", ["--signal", "sines"],
                   [*tiny_toy, "--signal", "sines"]),
        Experiment("toy/dip", "lstm_ae_toy.py",
                   ["--signal", "dip", "--input-size", "10", "--hidden-size", "128", "--code-size",
                    "none", "--reverse", "--epochs", "60"],
                   [*tiny_toy, "--signal", "dip", "--input-size", "10", "--reverse"]),
        Experiment("toy/dip-z32", "lstm_ae_toy.py",
                   ["--signal", "dip", "--input-size", "10", "--hidden-size", "32", "--code-size",
                    "none", "--reverse", "--epochs", "60"],
                   [*tiny_toy, "--signal", "dip", "--input-size", "10", "--reverse"]),
        Experiment("toy/uniform", "lstm_ae_toy.py",
                   ["--signal", "uniform", "--input-size", "10", "--hidden-size", "128",
                    "--code-size", "none", "--reverse", "--epochs", "60"],
                   [*tiny_toy, "--signal", "uniform", "--input-size", "10", "--reverse"]),
        # reconstruction vs code size (report's code-size section): the same settings at each K
        *[Experiment(f"toy/code-{k}", "lstm_ae_toy.py", ["--code-size", str(k)],
                     [*tiny_toy, "--code-size", str(k)]) for k in sizes["toy"]],
        Experiment("mnist", "lstm_ae_mnist.py", [],
                   ["--train-size", "600", "--epochs", "1", "--hidden-size", "16",
                    "--conv-channels", "4"], data=True),
        Experiment("mnist/bf16", "lstm_ae_mnist.py", ["--cell", "fc", "--precision", "bf16"],
                   ["--train-size", "600", "--epochs", "1", "--hidden-size", "16", "--cell", "fc",
                    "--precision", "bf16"], data=True, bf16=True),
        Experiment("mnist/pixel", "lstm_ae_mnist.py",
                   ["--input-size", "1", "--epochs", "2"],                   # pixel-mode defaults
                   ["--input-size", "1", "--hidden-size", "8", "--train-size", "200",
                    "--epochs", "1"], data=True),
        *[Experiment(f"mnist/frontier/{name}", "lstm_ae_mnist.py", flags,
                     [*flags, "--train-size", "600", "--epochs", "1"], data=True)
          for name, flags in FRONTIER.items() if not quick or name in ("fc-32", "conv-8-k3")],
        Experiment("palindrome", "rnn_palindrome.py", ["--workers", "2"],
                   ["--length", "5", "8", "--seeds", "2", "--steps", "100", "--eval-every", "50",
                    "--hidden-size", "16", "--val-size", "200", "--test-size", "500"]),
        Experiment("palindrome/plain-rnn", "rnn_palindrome.py",
                   ["--model", "rnn", "--init", "plain", "--workers", "2"],
                   ["--model", "rnn", "--init", "plain", "--length", "5", "8", "--seeds", "2",
                    "--steps", "100", "--eval-every", "50", "--hidden-size", "16",
                    "--val-size", "200", "--test-size", "500"]),
        Experiment("snp500", "lstm_ae_snp500.py", [], tiny_snp, data=True),
        *[Experiment(f"mnist/code-{k}", "lstm_ae_mnist.py",
                     ["--cell", "fc", "--code-size", str(k), *MNIST_SWEEP],
                     ["--cell", "fc", "--code-size", str(k), "--train-size", "600", "--epochs", "1",
                      "--hidden-size", "16"], data=True) for k in sizes["mnist"]],
        # the MNIST target point (F_fc with a 32-number code below PCA-32) at the MNIST
        # section's full budget (all training images, 10 epochs), beside the cheaper sweep
        Experiment("mnist/code-32-full", "lstm_ae_mnist.py", ["--cell", "fc", "--code-size", "32"],
                   ["--cell", "fc", "--code-size", "32", "--train-size", "600", "--epochs", "1",
                    "--hidden-size", "16"], data=True),
        *[Experiment(f"snp500/code-{k}", "lstm_ae_snp500.py", ["--code-size", str(k), *SNP_SWEEP],
                     [*tiny_snp, "--code-size", str(k)], data=True) for k in sizes["snp500"]],
        # spec 002: the digit judge first (the patch experiment reuses its checkpoint), the
        # next-patch LSTM, and the VAE on sevens, one run per hidden effect
        Experiment("judge", "judge.py", [], ["--train-size", "3000", "--epochs", "1"], data=True),
        Experiment("patches", "lstm_mnist_patches.py", [],
                   ["--train-size", "600", "--test-size", "500", "--per-digit", "3", "--epochs", "1",
                    "--hidden-size", "8"], data=True, after=("judge",)),
        *[Experiment(f"sevens/{effect}", "vae_sevens.py", ["--effect", effect],
                     # the probe and the restarts are tested in tests/test_sevens.py; here
                     # they would take 40 s of the suite's quick report
                     ["--effect", effect, "--epochs", "2", "--sizes", "32", "--probe-epochs", "0",
                      "--restarts", "1"],
                     data=True)
          for effect in SEVENS_EFFECTS],
        Experiment("autoencoders", "autoencoders_mnist.py", [],
                   ["--train-size", "600", "--epochs", "1", "--vae-epochs", "1"], data=True,
                   after=("judge",)),
        Experiment("tsne", "tsne_mnist.py", [],
                   ["--n-images", "200", "--iterations", "50"], data=True),
        # spec 002 problems 3-4: the conditional GAN, conditioned on the label and on the centre
        # (both score with the judge's checkpoint, so they come after it)
        Experiment("cgan", "cgan_mnist.py", [], tiny_gan, data=True, after=("judge",)),
        # the imputation GANs use the spec's plain discriminator (--no-projection), as problem 4
        Experiment("imputation", "cgan_mnist.py", ["--condition", "centre", "--no-projection",
                                                   "--epochs", "5"],
                   ["--condition", "centre", "--no-projection", *tiny_gan], data=True,
                   after=("judge",)),
    ]


def project_imports(script: str) -> list[str]:
    """The script and every module of this project it imports, directly or through another
    (top-level ``*.py`` files found by reading the ``import`` statements), sorted."""
    seen, todo = set(), [script]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for node in ast.walk(ast.parse((ROOT / name).read_text(), filename=name)):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                modules = [node.module]
            else:
                continue
            todo += [f"{m.split('.')[0]}.py" for m in modules
                     if (ROOT / f"{m.split('.')[0]}.py").is_file()]
    return sorted(seen)


def code_version(script: str) -> str:
    """Hash of the code an experiment runs: its script and the project modules it imports, so
    a change elsewhere (another task's script or model module) leaves its finished run valid."""
    digest = hashlib.sha1()
    for name in project_imports(script):
        digest.update(name.encode() + b"\0" + (ROOT / name).read_bytes())
    return digest.hexdigest()[:12]


def command_line(exp: Experiment, out_dir: Path, quick: bool, data_dir: str | None) -> list[str]:
    args = list(exp.quick if quick else exp.full)
    if exp.data:
        args += ["--data-dir", data_dir]
    return ["python", exp.script, *args, "--out-dir", str(out_dir / exp.name)]


def run_experiment(exp: Experiment, out_dir: Path, *, quick: bool, data_dir: str | None,
                   force: bool, threads: int | None, backend: list[str] = ()) -> dict:
    """Run one experiment (or reuse its finished run, or skip one this machine cannot run);
    returns its stamp."""
    run_dir = out_dir / exp.name
    command = command_line(exp, out_dir, quick, data_dir)
    skip_path = run_dir / SKIPPED
    reason = exp.bf16 and bf16_unsupported_reason(resolve_device("auto"))
    if reason:
        # an earlier run from a machine that could is left as it is; the report says both
        print(f"[{exp.name}] skipped: --precision bf16 is not supported here ({reason})",
              file=sys.stderr)
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(skip_path, {"command": shlex.join(command), "reason": reason,
                               "cpu": cpu_model(), "cpu_flags": cpu_flags()})
        return {"skipped": reason}
    skip_path.unlink(missing_ok=True)
    stamp_path = run_dir / "run.json"
    key = {"command": shlex.join(command), "code": code_version(exp.script)}
    if not force and stamp_path.exists() and (run_dir / "metrics.json").exists():
        stamp = json.loads(stamp_path.read_text())
        if {k: stamp.get(k) for k in key} == key:
            print(f"[{exp.name}] unchanged since its last run ({stamp['seconds']:.0f} s): reused",
                  file=sys.stderr)
            return {**stamp, "reused": True}
        # A finished run of other code or another command: its grid trials are stale too,
        # though the script would skip them as "finished earlier". The stamp goes with them,
        # so an interrupted rerun still resumes its own new trials.
        for path in (run_dir / GRID, stamp_path):
            path.unlink(missing_ok=True)
        print(f"[{exp.name}] changed since its last run: every trial reruns", file=sys.stderr)
    elif force:
        (run_dir / GRID).unlink(missing_ok=True)
    print(f"[{exp.name}] {key['command']}", file=sys.stderr)
    # how the run is executed, not what it computes: not part of the command that stamps it
    extra = (["--threads", str(threads)] if threads else []) + (list(backend) if exp.grid else [])
    started = time.time()
    script = importlib.import_module(Path(exp.script).stem)
    status = run(script.main, [*command[2:], *extra])
    if status != 0:
        raise UsageError(f"experiment {exp.name} failed (exit {status}): {key['command']}")
    stamp = {**key, "seconds": round(time.time() - started, 1), "quick": quick}
    write_json(stamp_path, stamp)
    return {**stamp, "reused": False}


def _run_logged(exp: Experiment, out_dir: Path, log_path: Path, kwargs: dict) -> dict:
    """``run_experiment`` in a worker process, its output (progress bars too) in ``log_path``."""
    with open(log_path, "w") as log, contextlib.redirect_stdout(log), \
            contextlib.redirect_stderr(log):
        try:
            return run_experiment(exp, out_dir, **kwargs)
        except UsageError as error:
            raise UsageError(f"{error} (its output: {log_path})") from None


def longest_path_first(chosen: list[Experiment], out_dir: Path) -> list[Experiment]:
    """``chosen`` ordered by how long each keeps the machine busy: its last run's time (run.json;
    one never run, or whose stamp went with a code change, counts as long as the longest known
    run, so an unknown is not left to make a long tail) plus the longest chain of chosen
    experiments that wait for it. Started in this order, N at a time, the long runs and the
    judge that others wait for go first and short ones fill the gaps at the end (list order
    breaks ties)."""
    known = {}
    for exp in chosen:
        stamp = out_dir / exp.name / "run.json"
        if stamp.exists():
            known[exp.name] = json.loads(stamp.read_text()).get("seconds", 0.0)
    unknown = max(known.values(), default=0.0)

    def seconds(exp):
        return known.get(exp.name, unknown)

    chain: dict[str, float] = {}
    for exp in reversed(chosen):           # an experiment comes after everything it waits for
        followers = [chain[e.name] for e in chosen if exp.name in e.after and e.name in chain]
        chain[exp.name] = seconds(exp) + max(followers, default=0.0)
    return sorted(chosen, key=lambda e: -chain[e.name])


def run_in_parallel(chosen: list[Experiment], out_dir: Path, jobs: int, kwargs: dict) -> dict:
    """Run ``chosen`` ``jobs`` at a time in fresh processes, longest path first
    (``longest_path_first``) as far as each experiment's ``after`` (among the chosen) allows;
    returns the stamps by name."""
    log_dir = out_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    names = {e.name for e in chosen}
    waiting, running, stamps = longest_path_first(chosen, out_dir), {}, {}
    # spawn, not fork: the parent has imported torch, whose thread pools do not survive a fork
    with ProcessPoolExecutor(max_workers=jobs,
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        while waiting or running:
            for exp in [e for e in waiting if all(a in stamps or a not in names for a in e.after)]:
                if len(running) == jobs:
                    break
                waiting.remove(exp)
                log = log_dir / f"{exp.name.replace('/', '--')}.log"
                print(f"== {exp.name}: started (output in {log})", file=sys.stderr)
                running[pool.submit(_run_logged, exp, out_dir, log, kwargs)] = exp
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                exp = running.pop(future)
                try:
                    stamps[exp.name] = future.result()
                except BaseException:
                    pool.shutdown(cancel_futures=True)
                    raise
                took = ("reused" if stamps[exp.name].get("reused") else
                        "skipped" if "skipped" in stamps[exp.name] else
                        f"{stamps[exp.name]['seconds']:.0f} s")
                print(f"== {exp.name}: done ({took}); {len(stamps)}/{len(chosen)}", file=sys.stderr)
    return stamps


def parse_args(argv=None):
    parser = Parser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", default="report",
                        help="where every experiment's outputs and README.md go (default report/)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny settings for every experiment (a check of the pipeline, "
                             "under 2 minutes; its numbers mean nothing)")
    parser.add_argument("--data-dir", default=os.environ.get("LSTM_AE_DATA_DIR", "data"),
                        help="folder with MNIST/raw/ and sp500/ (default $LSTM_AE_DATA_DIR or data/)")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help="run only these experiments (e.g. toy mnist); the report still "
                             "covers every finished one")
    parser.add_argument("--force", action="store_true",
                        help="rerun experiments even when a finished run is unchanged")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="CPU threads for each experiment (default: torch's choice)")
    parser.add_argument("--backend", choices=("local", "ray"), default="local",
                        help="where grid experiments run their trials (the scripts' --backend; "
                             "default local)")
    parser.add_argument("--parallel", type=positive_int, default=1, metavar="N",
                        help="grid trials at once with --backend ray (default 1)")
    parser.add_argument("--jobs", type=positive_int, default=1, metavar="N",
                        help="experiments at once, each in its own process with its output in "
                             "<out-dir>/logs/ (default 1: one after another, output here); give "
                             "--threads too, so that N × threads fits the cores")
    parser.add_argument("--ray-address", default=None, metavar="ADDRESS",
                        help="--backend ray: the Ray cluster to join (default: a local runtime)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    check_threads(args.threads)
    backend = GridBackend(args.backend, args.parallel, args.ray_address, args.threads)
    check_backend(backend)
    backend_flags = ["--backend", args.backend, "--parallel", str(args.parallel)] + (
        ["--ray-address", args.ray_address] if args.ray_address else [])
    out_dir = prepare_out_dir(args.out_dir)
    chosen = experiments(args.quick)
    if args.only:
        names = {e.name for e in chosen}
        unknown = [n for n in args.only if n not in names]
        if unknown:
            raise UsageError(f"--only {' '.join(unknown)}: unknown; choose from {', '.join(sorted(names))}")
        chosen = [e for e in chosen if e.name in args.only]
    started = time.time()
    kwargs = dict(quick=args.quick, data_dir=args.data_dir, force=args.force,
                  threads=args.threads, backend=backend_flags)
    if args.jobs > 1:
        run_in_parallel(chosen, out_dir, args.jobs, kwargs)
    else:
        for number, exp in enumerate(chosen, 1):
            print(f"== experiment {number}/{len(chosen)}: {exp.name}", file=sys.stderr)
            run_experiment(exp, out_dir, **kwargs)
    every = experiments(args.quick)
    write_json(out_dir / CODE_VERSIONS, {e.name: code_version(e.script) for e in every})
    path = write_report(out_dir, [e.name for e in every], quick=args.quick)
    print(f"report written to {path} ({time.time() - started:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(run(main))
