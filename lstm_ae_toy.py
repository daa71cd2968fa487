"""LSTM autoencoder on synthetic 1-D signals (spec 000, §3.1).

Generates 10,000 sequences of length 50 (``--signal`` family, see ``data.py``), normalises each to
[0, 1] with mean ½, splits 60/20/20, trains an LSTM AE to reconstruct them (a grid search when
``--hidden-size``, ``--lr`` or ``--grad-clip`` get several values) and writes to ``--out-dir``:
examples.png, reconstructions.png, loss.png, history.csv, metrics.json, and grid.csv + grid.png
when a grid ran.

    python lstm_ae_toy.py                                   # default: 'tones', z of 8 numbers
    python lstm_ae_toy.py --signal dip --hidden-size 64 128 --lr 1e-3 1e-2 --grad-clip 0 1
"""
from __future__ import annotations

import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from baselines import linear_rank, pca_baseline
from cli import Parser, common_parser, positive_int, run, setup_runtime
from data import SIGNALS, as_steps, denormalize, normalize, split_indices, synthetic_signals, take_stats
from errors import UsageError
from hardware import machine_info
from models import LSTMAutoencoder, count_parameters
from outputs import prepare_out_dir, write_json
from plotting import plot_grid, plot_histories, plot_panels
from training import GridBackend, TrainSettings, evaluate, grid_points, run_grid

TASK = "toy"


def parse_args(argv=None):
    common = common_parser(TASK, input_size=1, hidden_size=64, code_size=8, epochs=30, lr=1e-2,
                           grad_clip=1.0)
    parser = Parser(description=__doc__.split("\n\n")[0], parents=[common])
    data = parser.add_argument_group("data")
    data.add_argument("--signal", choices=SIGNALS, default="tones",
                      help="synthetic signal family: " + "; ".join(
                          f"{name} ({words})" for name, words in SIGNALS.items()).replace("%", "%%")
                      + " (default tones, with a code of 8 numbers: see data.py)")
    data.add_argument("--n-seqs", type=positive_int, default=10_000,
                      help="number of sequences generated (default 10000)")
    data.add_argument("--seq-len", type=positive_int, default=50,
                      help="values per sequence (default 50)")
    data.add_argument("--output", choices=("sigmoid", "linear"), default="sigmoid",
                      help="decoder output: sigmoid (data in [0,1], the assignment) or linear "
                           "(default sigmoid)")
    return parser.parse_args(argv)


def reconstruction_step(model, batch):
    """MSE between each sequence and its reconstruction (normalised units)."""
    (x,) = batch
    return F.mse_loss(model(x).recon, x), {}


def main(argv=None):
    args = parse_args(argv)
    device = setup_runtime(args)
    if args.n_seqs < 10:
        raise UsageError(f"--n-seqs {args.n_seqs}: need at least 10 sequences for a 60/20/20 split")
    if args.seq_len % args.input_size:
        raise UsageError(f"--input-size {args.input_size} does not divide --seq-len {args.seq_len}")
    out_dir = prepare_out_dir(args.out_dir)
    started = time.time()

    # data: raw signals → per-sequence normalisation → (N, T/m, m) steps → 60/20/20 split
    raw = synthetic_signals(args.signal, args.n_seqs, args.seq_len, seed=args.seed)  # (N, L)
    x, stats = normalize(raw)                                                       # (N, L)
    steps = as_steps(x, args.input_size)                                            # (N, T, m)
    train_idx, val_idx, test_idx = split_indices(len(x), seed=args.seed)
    plot_panels(
        [{"title": f"training sequence {i + 1}", "x": np.arange(1, args.seq_len + 1),
          "lines": [("", x[j].numpy(), {"marker": ".", "markersize": 4})]}
         for i, j in enumerate(train_idx[:3].tolist())],
        out_dir / "examples.png", title=f"Synthetic '{args.signal}' signals (normalised: "
                                        f"values in [0, 1], mean ½)",
        xlabel="time step", ylabel="value (normalised)", sharey=True)

    # model(s): one per grid point; the best by validation loss is evaluated
    def build(params):
        return LSTMAutoencoder(args.input_size, params["hidden_size"], args.num_layers,
                               decoder=args.decoder, reverse=args.reverse,
                               bidirectional=args.bidirectional, output=args.output,
                               teacher_forcing=args.teacher_forcing, init=args.init,
                               code_size=args.code_size)

    settings = TrainSettings.from_args(args)
    data_config = dict(signal=args.signal, n_seqs=args.n_seqs, seq_len=args.seq_len, seed=args.seed,
                       input_size=args.input_size)
    model_config = {k: v for k, v in build({"hidden_size": 1}).config.items() if k != "hidden_size"}
    identity = dict(task=TASK, data=data_config, model=model_config, optimizer=args.optimizer,
                    lr_schedule=args.lr_schedule, weight_decay=args.weight_decay,
                    batch_size=args.batch_size)
    grid = run_grid(grid_points(args.hidden_size, args.lr, args.grad_clip), build,
                    reconstruction_step, [steps[train_idx]], [steps[val_idx]], settings,
                    out_dir=out_dir, identity=identity, device=device, seed=args.seed,
                    resume=args.resume, backend=GridBackend.from_args(args))
    model = grid.model

    # evaluation on the test set, in normalised and original units, beside the mean predictor
    test = steps[test_idx].to(device)
    test_mse = evaluate(model, reconstruction_step, [test])["loss"]
    with torch.no_grad():
        model.eval()
        recon = torch.cat([model(chunk).recon for chunk in test.split(1024)]).cpu()
    recon_flat = recon.reshape(len(test_idx), -1)                                   # (N_test, L)
    test_stats = take_stats(stats, test_idx)
    recon_raw = denormalize(recon_flat, test_stats)
    raw_test = raw[test_idx]
    baseline_mse = F.mse_loss(x[test_idx], torch.full_like(x[test_idx], 0.5)).item()
    # PCA with the model's code size, fitted on the training split in the normalisation the model
    # sees; a code at least as large as the linear rank compresses nothing PCA cannot reproduce
    pca = pca_baseline(x[train_idx], x[test_idx], model.z_size,
                       units={"original": lambda r: F.mse_loss(denormalize(r, test_stats),
                                                              raw[test_idx]).item()})
    metrics = {
        "test_mse": test_mse,
        "baseline_mse": baseline_mse,
        "relative_mse": test_mse / baseline_mse,
        "test_mse_original": F.mse_loss(recon_raw, raw_test).item(),
        "baseline_mse_original": F.mse_loss(raw_test, raw_test.mean(1, keepdim=True).expand_as(raw_test)).item(),
        "pca": pca,
        "mse_vs_pca": None if pca["exact"] else test_mse / pca["test_mse"],
        "linear_rank": {"tolerance": 1e-6, "components": linear_rank(x[train_idx])},
        "best_params": grid.params,
        "best_epoch": max(grid.history, key=lambda r: -r["val_loss"])["epoch"],
        "epochs_run": len(grid.history),
        "parameters": count_parameters(model),
        "z_size": model.z_size,
        "seconds_per_epoch": float(np.mean([r["seconds"] for r in grid.history])),
        "run_seconds": time.time() - started,
        "interrupted": grid.interrupted,
        **machine_info(device),            # device, torch_threads, CPU and its flags
        "config": {k: v for k, v in vars(args).items() if k not in ("debug",)},
    }
    metrics["relative_mse_original"] = metrics["test_mse_original"] / metrics["baseline_mse_original"]
    write_json(out_dir / "metrics.json", metrics)

    # figures
    shown = [0, 1]
    plot_panels(
        [{"title": f"test sequence {i + 1}", "x": np.arange(1, args.seq_len + 1),
          "lines": [("original", raw_test[i].numpy(), {"color": "black"}),
                    ("reconstruction", recon_raw[i].numpy(), {"color": "C1", "linestyle": "--"})]}
         for i in shown],
        out_dir / "reconstructions.png",
        title=f"LSTM AE reconstructions ('{args.signal}', hidden {grid.params['hidden_size']}, "
              f"z of {model.z_size})\ntest MSE {metrics['test_mse_original']:.3g}, PCA-{model.z_size} "
              f"{pca['test_mse_original']:.3g}, sequence mean {metrics['baseline_mse_original']:.3g}",
        xlabel="time step", ylabel="value (original units)", sharey=True)
    plot_histories({"": grid.history}, out_dir / "loss.png", title=f"Reconstruction loss ('{args.signal}')",
                   ylabel="MSE (normalised units)", logy=True)
    if grid.table is not None and len(grid.table) > 1:
        plot_grid(grid.table, out_dir / "grid.png", title=f"Grid search on '{args.signal}': best "
                  f"validation MSE", value_label="validation MSE (normalised)")

    print(f"test MSE {test_mse:.4g} (normalised; mean predictor {baseline_mse:.4g}, relative "
          f"{metrics['relative_mse']:.3f}; PCA-{pca['components']} {pca['test_mse']:.4g}); original units {metrics['test_mse_original']:.4g} vs "
          f"{metrics['baseline_mse_original']:.4g}; outputs in {out_dir}/")
    if metrics["relative_mse"] > 0.9:
        print("warning: the model collapsed to each sequence's mean (relative MSE > 0.9). Usually "
              "cured by: more epochs, --lr-schedule onecycle with a higher --lr and --grad-clip 1, "
              "a larger --hidden-size, --reverse, --bidirectional, or --decoder autoregressive.",
              file=sys.stderr)


if __name__ == "__main__":
    sys.exit(run(main))
