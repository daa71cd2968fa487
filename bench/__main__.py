"""python -m bench: training-step speed of every model beside its reference implementation.

Prints the torch version, thread count and device, the fp32 matmul peak measured in this run,
then one row per configuration (toy, MNIST rows F_fc in fp32 and under bf16 autocast, MNIST rows
F_conv, MNIST pixels F_fc, S&P 500 windows, and the palindrome task's from-scratch LSTM beside
nn.LSTM on the same weights; where ``hardware.bf16_support`` says this machine cannot train the
models under bf16, the bf16 row and bf16 time-to-accuracy runs are left out with a line saying
why): ms per training step, the reference's ms per step
and the speed-up, sequences per second, peak memory, achieved GFLOP/s of the LSTM gates and its
fraction of the matmul peak (see bench/benchmark.py for how each is measured), and the issue's targets, met or not, with
what bounds the rows that miss them. ``--time-to-accuracy`` trains row-mode MNIST F_fc until 98 %
test accuracy once per ``--hidden-size`` (128 and the script's 256) and ``--precision``.
``--tsne`` times tsne.py beside scikit-learn's exact t-SNE and against the number of images
(bench/tsne.py). ``--pixel-study`` times the pixel-mode default model against larger batches,
bf16 autocast and torch.compile (bench/pixel.py).

    python -m bench --quick                       # under a minute, smaller batch and pixel mode
    python -m bench --threads 2 --device cpu --time-to-accuracy --json report/performance.json \\
        --markdown report/performance.md            # the full run behind report/performance.md
    python -m bench --time-to-accuracy --no-table --device cpu --threads 2 --precision fp32 \\
        --hidden-size 128                           # one time-to-accuracy run
    python -m bench --tsne --no-table --threads 2 --json report/tsne-performance.json \\
        --markdown report/tsne-performance.md      # t-SNE vs scikit-learn, and its scaling
    python -m bench --pixel-study --no-table --threads 2 --json report/pixel-speed.json \\
        --markdown report/pixel-speed.md           # pixel mode: batch, bf16, torch.compile
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import shlex
import sys
from pathlib import Path

import torch

from bench import benchmark
from bench.benchmark import CONFIG_NAMES, WORKER_MARK, Config
from cli import Parser, positive_int, probability, resolve_device, run, setup_runtime
from errors import UsageError
from hardware import bf16_unsupported_reason
from outputs import prepare_out_dir, write_json, write_text

DATA_ENV = "LSTM_AE_DATA_DIR"


def parse_args(argv=None):
    parser = Parser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    what = parser.add_argument_group("what to measure")
    what.add_argument("--quick", action="store_true",
                      help="a run under a minute: batch 32, pixel mode shortened to 112 steps, "
                           "3 repeats, 1 warm-up step, a 1024² matmul peak")
    what.add_argument("--configs", nargs="+", choices=CONFIG_NAMES, default=list(CONFIG_NAMES),
                      metavar="NAME", help=f"configurations to measure, any of "
                                           f"{', '.join(CONFIG_NAMES)} (default: all)")
    what.add_argument("--no-table", action="store_true",
                      help="skip the table (e.g. with --time-to-accuracy alone)")
    what.add_argument("--repeats", type=positive_int, default=None,
                      help="timed training steps per model; the median is reported "
                           "(default 10, --quick 3)")
    what.add_argument("--warmup", type=positive_int, default=None,
                      help="untimed training steps per model before timing (default 2, --quick 1)")
    what.add_argument("--batch-size", type=positive_int, default=None,
                      help="sequences per training step (default 128, --quick 32)")
    what.add_argument("--matmul-size", type=positive_int, default=None,
                      help="n of the n × n fp32 matmul whose rate is the peak (default 2048, "
                           "--quick 1024)")
    what.add_argument("--no-subprocess", action="store_true",
                      help="measure every configuration in this process (faster start-up; the "
                           "peak-memory column is then a running maximum over the rows); default: "
                           "one fresh subprocess per configuration")
    what.add_argument("--profile", action="store_true",
                      help="print a torch.profiler summary of one training step of MNIST rows "
                           "F_fc and F_conv and of MNIST pixels F_fc (always done with "
                           "--markdown unless --no-table)")
    what.add_argument("--seed", type=int, default=0,
                      help="seed of the weights and the synthetic batch (default 0)")

    tta = parser.add_argument_group("time to accuracy")
    tta.add_argument("--time-to-accuracy", action="store_true",
                     help="also train row-mode MNIST F_fc with lstm_ae_mnist.py's default "
                          "settings until --target-accuracy on the test set and print the "
                          "training seconds (on --device; auto = cuda when present)")
    tta.add_argument("--precision", nargs="+", choices=("fp32", "bf16"),
                     default=["fp32", "bf16"], help="run --time-to-accuracy once per precision "
                                                    "(lstm_ae_mnist.py --precision; default: both)")
    tta.add_argument("--hidden-size", type=positive_int, nargs="+", default=None, metavar="H",
                     help="run --time-to-accuracy once per hidden size (default: 128, the MNIST "
                          "rows F_fc row's size and issue 6's setting, and lstm_ae_mnist.py's "
                          "default, 256)")
    tta.add_argument("--target-accuracy", type=probability, default=0.98,
                     help="test accuracy that stops --time-to-accuracy (default 0.98)")
    tta.add_argument("--eval-every", type=positive_int, default=None, metavar="STEPS",
                     help="training steps between test evaluations (clock paused during them; "
                          "default a quarter of an epoch)")
    tta.add_argument("--train-size", type=positive_int, default=None, metavar="N",
                     help="train on a seeded subset of N images (default: all 54,000, the "
                          "script's default)")
    tta.add_argument("--test-size", type=positive_int, default=None, metavar="N",
                     help="evaluate on the first N test images only (default: all 10,000; "
                          "fewer only for a quick check, the accuracy is then noisier)")
    tta.add_argument("--data-dir", default=os.environ.get(DATA_ENV, "../shared/data"),
                     help=f"folder holding MNIST/raw/ (default ${DATA_ENV} if set, "
                          f"else ../shared/data)")

    grid = parser.add_argument_group("grid backends")
    grid.add_argument("--grid-backends", action="store_true",
                      help="also time the toy report grid (8 trials) with --backend local and 2 "
                           "threads against --backend ray --parallel 2 with 1 thread each "
                           "(needs requirements-ray.txt)")
    grid.add_argument("--grid-epochs", type=positive_int, default=None,
                      help="--grid-backends: epochs per trial (default: the script's 30)")
    grid.add_argument("--grid-n-seqs", type=positive_int, default=None,
                      help="--grid-backends: sequences generated (default: the script's 10,000)")
    ts = parser.add_argument_group("t-SNE (tsne.py)")
    ts.add_argument("--tsne", action="store_true",
                    help="also time tsne.py beside scikit-learn's exact t-SNE on the same "
                         "images, and its time against the number of images (bench/tsne.py; "
                         "reads MNIST from --data-dir)")
    ts.add_argument("--tsne-sizes", type=positive_int, nargs="+",
                    default=[1000, 2000, 5000, 10000], metavar="N",
                    help="image counts of the scaling rows (default 1000 2000 5000 10000)")
    ts.add_argument("--tsne-iterations", type=positive_int, default=20,
                    help="timed iterations per scaling row (default 20)")
    ts.add_argument("--tsne-reference-images", type=positive_int, default=1000, metavar="N",
                    help="images of the comparison with scikit-learn (default 1000)")
    ts.add_argument("--tsne-sklearn-iterations", type=positive_int, default=250,
                    help="iterations of both in the comparison (scikit-learn's minimum is 250; "
                         "default 250)")

    px = parser.add_argument_group("pixel-mode speed (bench/pixel.py)")
    px.add_argument("--pixel-study", action="store_true",
                    help="also time one training step of lstm_ae_mnist.py's pixel-mode default "
                         "model (--input-size 1) against larger batches, bf16 autocast and "
                         "torch.compile, round-robin in this process")
    px.add_argument("--pixel-batches", type=positive_int, nargs="+", default=[64, 128, 256],
                    metavar="B", help="--pixel-study: the larger batches (default 64 128 256)")
    px.add_argument("--pixel-rounds", type=positive_int, default=3,
                    help="--pixel-study: round-robin rounds of --repeats steps per variant "
                         "(default 3)")

    out = parser.add_argument_group("run and outputs")
    out.add_argument("--device", default="auto",
                     help="auto (the CPU, and CUDA too when present), cpu, cuda or cuda:N "
                          "(default auto)")
    out.add_argument("--threads", type=positive_int, default=None,
                     help="CPU threads for torch (default: torch's choice, one per core)")
    out.add_argument("--json", default=None, metavar="FILE",
                     help="write the rows, the machine and every raw timing to FILE (JSON)")
    out.add_argument("--markdown", default=None, metavar="FILE",
                     help="write the report (command, machine, table, targets, profiles) to "
                          "FILE, e.g. report/performance.md")
    out.add_argument("--worker", default=None, metavar="CONFIG_JSON",
                     help="internal: measure the one configuration given as JSON and print its "
                          "raw row (how each configuration gets its own process)")
    out.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    return parser.parse_args(argv)


def devices_of(name: str) -> list[torch.device]:
    if name == "auto":
        return [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    return [resolve_device(name)]


def check_output(path: str | None, flag: str) -> None:
    if path is not None:
        prepare_out_dir(Path(path).parent if Path(path).parent != Path("") else Path("."), flag)
        if Path(path).is_dir():
            raise UsageError(f"{flag} {path}: is a folder; give a file name")


def worker(args) -> None:
    try:
        config = Config(**json.loads(args.worker))
    except (ValueError, TypeError) as err:
        raise UsageError(f"--worker: not a configuration ({err})") from None
    raw = benchmark.measure(config, resolve_device(args.device), args.repeats, args.warmup,
                            args.seed)
    print(WORKER_MARK + json.dumps(raw), flush=True)


def main(argv=None):
    args = parse_args(argv)
    # the scripts' runtime setup (thread count, and whatever else cli.setup_runtime applies), so
    # the models are timed as the scripts run them
    setup_runtime(argparse.Namespace(threads=args.threads, device="cpu"))
    quick = args.quick
    args.repeats = args.repeats or (3 if quick else 10)
    args.warmup = args.warmup or (1 if quick else 2)
    if args.worker is not None:
        return worker(args)
    matmul_n = args.matmul_size or (1024 if quick else 2048)
    devices = devices_of(args.device)
    check_output(args.json, "--json")
    check_output(args.markdown, "--markdown")
    for flag, wanted in (("--time-to-accuracy", args.time_to_accuracy), ("--tsne", args.tsne)):
        if wanted and not (Path(args.data_dir) / "MNIST" / "raw").is_dir():
            raise UsageError(f"--data-dir {args.data_dir}: no MNIST/raw/ there (needed by "
                             f"{flag}; set --data-dir or ${DATA_ENV})")
    if args.tsne and args.tsne_sklearn_iterations < 250:
        raise UsageError(f"--tsne-sklearn-iterations {args.tsne_sklearn_iterations}: "
                         f"scikit-learn's TSNE runs at least 250")
    command = "python -m bench " + shlex.join(sys.argv[1:] if argv is None else argv)

    info = benchmark.machine_info(devices)
    load = info["load_average"][0] if info["load_average"] else None
    print(f"torch {info['torch']}, threads: {info['threads']}; CPU: {info['cpu']} "
          f"({info['cores']} cores, {info['cpu_capability']}"
          + (f", load average {load:.2f})" if load is not None else ")")
          + (f"; GPU: {info['cuda']}" if "cuda" in info else ""))
    if load is not None and load + info["threads"] > info["cores"] + 0.5:
        print(f"warning: load average {load:.1f} on {info['cores']} cores with "
              f"{info['threads']} torch thread(s): other processes compete for the CPU, so the "
              f"timings are pessimistic and noisy (and threads may spin-wait on each other)",
              file=sys.stderr)
    result = {"command": command, "machine": info, "rows": [], "matmul_peak_gflops": {},
              "settings": {"quick": quick, "repeats": args.repeats, "warmup": args.warmup,
                           "matmul_n": matmul_n, "matmul_repeats": 5, "seed": args.seed,
                           "subprocess": not args.no_subprocess}}

    configs = [c for c in benchmark.configurations(quick, args.batch_size)
               if c.name in args.configs]
    # what this machine cannot run is left out with its reason, never attempted
    result["left_out"] = []
    if not args.no_table:
        for device in devices:
            peak = benchmark.matmul_peak(device, matmul_n)
            result["matmul_peak_gflops"][str(device)] = peak
            print(f"{device}: fp32 matmul peak {peak:.1f} GFLOP/s ({matmul_n}² torch.mm)")
        for device in devices:
            for config in configs:
                reason = config.precision == "bf16" and bf16_unsupported_reason(device)
                if reason:
                    result["left_out"].append({"what": f"{config.label} on {device}",
                                               "reason": reason})
                    continue
                print(f"measuring {config.label} on {device} ...", file=sys.stderr, flush=True)
                if args.no_subprocess:
                    raw = benchmark.measure(config, device, args.repeats, args.warmup, args.seed)
                else:
                    try:
                        raw = benchmark.measure_in_subprocess(config, device, args.repeats,
                                                              args.warmup, args.seed, args.threads)
                    except benchmark.BenchmarkError as err:
                        raise SystemExit(f"python -m bench: error: {err}") from None
                result["rows"].append(
                    benchmark.summarize(raw, result["matmul_peak_gflops"][str(device)]))
        print()
        print(benchmark.format_table(result["rows"], result["left_out"]))

    if args.profile or (args.markdown and not args.no_table):   # profiles go with the table
        result["profiles"] = {}
        by_name = {c.name: c for c in benchmark.configurations(quick, args.batch_size)}
        for device in devices:
            for name in ("mnist-row-fc", "mnist-row-conv", "mnist-pixel-fc"):
                config = by_name[name]
                for which in ("product", "reference"):
                    prof = benchmark.profile_step(config, device, which, seed=args.seed)
                    key = (f"{config.label}{' reference' if which == 'reference' else ''} on "
                           f"{device} (T={config.steps}, batch {config.batch})")
                    result["profiles"][key] = prof
                    if args.profile:
                        print(f"\nprofile of one training step: {key}\n{prof['table']}")
                    print(benchmark.describe_profile(key, prof))

    if args.time_to_accuracy:
        from bench.accuracy import time_to_accuracy
        device = resolve_device("auto" if args.device == "auto" else args.device)
        result["time_to_accuracy"] = []
        # default: the MNIST rows F_fc row's hidden size, then the script's default (None)
        row_hidden = next(c.hidden for c in benchmark.configurations() if c.name == "mnist-row-fc")
        for hidden, precision in itertools.product(args.hidden_size or (row_hidden, None),
                                                   args.precision):
            reason = precision == "bf16" and bf16_unsupported_reason(device)
            if reason:
                size = f"H={hidden}" if hidden else "the script's default hidden size"
                result["left_out"].append({"what": f"time to accuracy, {size}, bf16, on {device}",
                                           "reason": reason})
                continue
            tta = time_to_accuracy(args.data_dir, device, args.target_accuracy, args.eval_every,
                                   args.train_size, args.seed, args.test_size, precision, hidden,
                                   log=lambda text: print(text, file=sys.stderr, flush=True))
            result["time_to_accuracy"].append(tta)
            print(tta["summary"])

    if args.grid_backends:
        from bench.grid import compare_backends
        from ray_grid import import_ray
        import_ray()
        print("timing the toy grid under both backends ...", file=sys.stderr, flush=True)
        result["grid_backends"] = compare_backends(args.grid_epochs, args.grid_n_seqs)
        print(result["grid_backends"]["summary"])
    if args.tsne:
        from bench.tsne import run_tsne_bench
        result["tsne"] = run_tsne_bench(
            args.data_dir, reference_n=args.tsne_reference_images, sizes=args.tsne_sizes,
            iterations=args.tsne_iterations, sklearn_iterations=args.tsne_sklearn_iterations,
            seed=args.seed, threads=args.threads,
            log=lambda text: print(text, file=sys.stderr, flush=True))
        print()
        print(result["tsne"]["table"])

    if args.pixel_study:
        from bench.pixel import run_pixel_study
        device = resolve_device("auto" if args.device == "auto" else args.device)
        result["pixel_study"] = run_pixel_study(
            device, batches=args.pixel_batches, rounds=args.pixel_rounds,
            steps=3 if quick else args.repeats // 3 or 1, warmup=args.warmup, seed=args.seed,
            log=lambda text: print(text, file=sys.stderr, flush=True))
        print()
        print(result["pixel_study"]["table"])
        for line in result["pixel_study"]["findings"]:
            print(f"- {line}")

    print()
    for line in benchmark.targets(result["rows"], result.get("time_to_accuracy"),
                                  result.get("profiles"), result["left_out"]):
        print(line)
    for line in result.get("tsne", {}).get("targets", []):
        print(line)
    if args.json:
        write_json(args.json, result)
    if args.markdown:
        write_text(args.markdown, benchmark.markdown_report(result))
        print(f"report written to {args.markdown}")


if __name__ == "__main__":
    sys.exit(run(main))
