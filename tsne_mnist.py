"""t-SNE of MNIST digits, written in PyTorch (spec 004, task 3), beside scikit-learn and PCA.

The first ``--n-images`` MNIST training images (the spec's loader, shuffle=False) are mapped to 2-D
by ``tsne.py``: Gaussian neighbour probabilities with the spec's fixed σ (``--sigma 10``), Student-t
map similarities, KL(P‖Q) minimised from y ~ N(0, I) by plain gradient descent (``sgd``, lr 10)
and by Adam (lr 0.1), as the spec asks; then, beyond the spec and each beside its plain version,
per-point σ_i calibrated to ``--perplexity`` (Newton steps in a bisection bracket), a PCA
initialisation, early exaggeration and momentum (``--settings``; the learning rates of calibrated
maps: ``--calibrated-lr``).

Quality is measured, not eyeballed: final KL, trustworthiness (k = 10,
``sklearn.manifold.trustworthiness``) and the leave-one-out 10-nearest-neighbour digit accuracy in
the 2-D map, for every setting, beside scikit-learn's ``TSNE`` on the same images and a 2-D PCA.

Writes to ``--out-dir`` (default report/tsne/): kl.png, maps.png, metrics.json.

    python tsne_mnist.py --data-dir ../shared/data                      # every setting
    python tsne_mnist.py --optimizer adam --lr 0.5 --settings spec      # the spec's fixed σ only
"""
from __future__ import annotations

import sys
import time

import torch

from cli import (Parser, add_mnist_flags, add_run_flags, positive_float, positive_int,
                 probability, run, setup_runtime)
from data import MNIST_TRAIN_SIZE, load_mnist
from errors import UsageError
from hardware import machine_info
from outputs import prepare_out_dir, write_json
from plotting import COLORS, figure, save_figure
from tsne import GRADIENTS, embed, joint_probabilities, knn_accuracy

TASK = "tsne"
SPEC_LR = {"sgd": 10.0, "adam": 0.1}
SETTINGS = ("spec", "perplexity", "pca-init", "exaggeration", "momentum", "all")
K = 10                     # neighbours for trustworthiness and the kNN accuracy


def parse_args(argv=None):
    parser = Parser(description=__doc__.split("\n\n")[0])
    add_mnist_flags(parser, train_size=False)
    t = parser.add_argument_group("t-SNE")
    t.add_argument("--n-images", type=positive_int, default=1000,
                   help="the first N MNIST training images (10 to 60,000; default 1000)")
    t.add_argument("--iterations", type=positive_int, default=1000,
                   help="gradient steps per map (default 1000)")
    t.add_argument("--optimizer", choices=("sgd", "adam", "both"), default="both",
                   help="sgd: plain gradient descent y ← y − lr ∇KL (the spec's update); adam: "
                        "torch.optim.Adam; both (default): one map per optimiser")
    t.add_argument("--lr", type=positive_float, default=None,
                   help="learning rate (default: the spec's, 10 for sgd and 0.1 for adam; "
                        "only with one --optimizer)")
    t.add_argument("--sigma", type=positive_float, default=10.0,
                   help="the spec's fixed Gaussian width σ for every point, in pixel units of "
                        "images scaled to [0, 1] (default 10)")
    t.add_argument("--perplexity", type=positive_float, default=30.0,
                   help="option: per-point σ_i found (Newton steps in a bisection bracket) so "
                        "that each point's neighbour distribution has this perplexity (default 30, "
                        "scikit-learn's); must be below --n-images")
    t.add_argument("--exaggeration", type=positive_float, default=4.0,
                   help="option: early exaggeration factor α on P (default 4, van der Maaten & "
                        "Hinton 2008's)")
    t.add_argument("--exaggeration-iters", type=positive_int, default=100,
                   help="iterations with exaggerated P (default 100)")
    t.add_argument("--momentum", type=probability, default=0.8,
                   help="option: heavy-ball momentum m of the sgd update, with the learning rate "
                        "scaled by (1 − m) so that the steady step matches plain sgd's (default 0.8)")
    t.add_argument("--calibrated-lr", type=positive_float, nargs=2, default=(1000.0, 1.0),
                   metavar=("SGD", "ADAM"),
                   help="learning rates of the sgd and adam maps on perplexity-calibrated P "
                        "(default 1000 1)")
    t.add_argument("--settings", nargs="+", choices=SETTINGS, default=list(SETTINGS),
                   help="which maps to make, each one option away from the one before: spec "
                        "(fixed σ, y ~ N(0, I)), perplexity (σ_i calibrated), pca-init (and map "
                        "initialised by the 2-D PCA scaled to unit variance), exaggeration "
                        "(pca-init + early exaggeration), momentum (sgd only: pca-init + "
                        "momentum), all (sgd only: pca-init + exaggeration + momentum) "
                        "(default: all of them)")
    t.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                   help="precision of the map iterations (P is always computed in float64; "
                        "default float32)")
    t.add_argument("--gradient", choices=GRADIENTS, default="compiled",
                   help="compiled: KL value and analytic gradient from one torch.compile'd pass "
                        "over the pairs (fastest; where this machine cannot compile, it says so "
                        "and runs fused); fused: the same in one eager pass over row blocks; "
                        "autograd: the whole N × N matrix through autograd, the spec's "
                        "loss.backward() (same numbers; tested) (default compiled)")
    t.add_argument("--no-sklearn", dest="sklearn", action="store_false",
                   help="skip the scikit-learn TSNE reference map")
    add_run_flags(parser, TASK, resume=False)
    return parser.parse_args(argv)


def check_args(args, n_available: int) -> list[str]:
    """Flag combinations argparse cannot check; returns the optimisers to run."""
    if not 10 <= args.n_images <= n_available:
        raise UsageError(f"--n-images {args.n_images}: must be between 10 and {n_available:,} "
                         f"(the MNIST training images)")
    if args.perplexity >= args.n_images:
        raise UsageError(f"--perplexity {args.perplexity:g}: must be below --n-images "
                         f"{args.n_images} (a point cannot have more effective neighbours than "
                         f"there are other points)")
    optimizers = ["sgd", "adam"] if args.optimizer == "both" else [args.optimizer]
    if args.lr is not None and len(optimizers) > 1:
        raise UsageError("--lr: give one --optimizer (sgd or adam) with it; with both, each uses "
                         "the spec's rate (sgd 10, adam 0.1)")
    return optimizers


def plan(args, optimizers) -> list[dict]:
    """The maps to make: name, how P is built, and the optimiser's settings."""
    runs = []
    for opt in optimizers:
        spec_lr = args.lr if args.lr is not None else SPEC_LR[opt]
        calibrated_lr = args.lr if args.lr is not None else args.calibrated_lr[opt == "adam"]
        exaggerate = dict(exaggeration=args.exaggeration, exaggeration_iters=args.exaggeration_iters)
        momentum = dict(lr=calibrated_lr * (1 - args.momentum), momentum=args.momentum)
        perp = f"perplexity {args.perplexity:g}"
        options = {   # setting: (map name, P, initialisation, optimiser settings)
            "spec": (f"{opt}, fixed σ = {args.sigma:g} (spec)", "sigma", "random", dict(lr=spec_lr)),
            "perplexity": (f"{opt}, {perp}", "perplexity", "random", dict(lr=calibrated_lr)),
            "pca-init": (f"{opt}, {perp}, PCA init", "perplexity", "pca", dict(lr=calibrated_lr)),
            "exaggeration": (f"{opt}, {perp}, PCA init, exaggeration", "perplexity", "pca",
                             dict(lr=calibrated_lr, **exaggerate)),
            "momentum": (f"{opt}, {perp}, PCA init, momentum", "perplexity", "pca", momentum),
            "all": (f"{opt}, {perp}, PCA init, exaggeration, momentum", "perplexity", "pca",
                    dict(**momentum, **exaggerate)),
        }
        for setting in args.settings:
            if setting in ("momentum", "all") and opt != "sgd":
                continue                     # Adam has its own momentum terms
            name, affinity, init, kw = options[setting]
            runs.append(dict(name=name, setting=setting, affinity=affinity, init=init,
                             optimizer=opt, **kw))
    return runs


def map_quality(points: torch.Tensor, images: torch.Tensor, labels: torch.Tensor) -> dict:
    from sklearn.manifold import trustworthiness

    return {"trustworthiness": float(trustworthiness(images.numpy(), points.double().numpy(),
                                                     n_neighbors=K)),
            "knn_accuracy": knn_accuracy(points, labels, K)}


def sklearn_reference(images, labels, args) -> dict:
    from sklearn.manifold import TSNE

    started = time.perf_counter()
    model = TSNE(n_components=2, perplexity=args.perplexity, random_state=args.seed,
                 max_iter=max(250, args.iterations))      # as many iterations (≥ its minimum)
    points = torch.from_numpy(model.fit_transform(images.numpy()))
    kl = float(model.kl_divergence_)          # not set (huge) if it stopped while exaggerating
    return {"name": "scikit-learn TSNE (defaults, Barnes-Hut)", "Y": points,
            "kl": kl if kl < 1e100 else None, "seconds": time.perf_counter() - started,
            "iterations": int(model.n_iter_), "perplexity": args.perplexity}


def pca_map(images) -> torch.Tensor:
    from baselines import pca_encode, pca_fit

    return pca_encode(pca_fit(images, 2), images).float()


# ---------------------------------------------------------------------------------------------
# figures

def plot_kl(runs: list[dict], reference: dict | None, path, n_images: int):
    """KL against iteration: the spec's fixed-σ maps (left) and the perplexity-calibrated ones
    (right; a different P, so a different scale), scikit-learn's final KL as a line."""
    groups = [("fixed σ (the spec's P)", [r for r in runs if r["affinity"] == "sigma"]),
              ("σ_i calibrated to the perplexity", [r for r in runs if r["affinity"] != "sigma"])]
    groups = [g for g in groups if g[1]]
    fig, axes = figure(1, len(groups), width=7.5 * len(groups), row_height=5.2)
    colour = 0
    for ax, (label, group) in zip(axes, groups):
        for r in group:
            its, kls = zip(*r["kl"])
            style = "-" if r["optimizer"] == "adam" else "--"
            ax.plot(its, kls, style, color=COLORS[colour % len(COLORS)],
                    label=f"{r['name']}: {kls[-1]:.3g}")
            colour += 1
        if group[0]["affinity"] != "sigma" and reference is not None and reference["kl"] is not None:
            ax.axhline(reference["kl"], color="black", linestyle=":",
                       label=f"scikit-learn TSNE, final: {reference['kl']:.3g}")
        ax.set_yscale("log")
        ax.set_xlabel("iteration")
        ax.set_ylabel("KL(P ‖ Q) (nats, log scale)")
        ax.set_title(label)
        ax.legend(fontsize=8.5, framealpha=0.85)
    fig.suptitle(f"t-SNE cost on {n_images:,} MNIST images (sgd dashed, adam solid)")
    save_figure(fig, path)


def plot_maps(maps: list[dict], labels: torch.Tensor, path):
    cols = 3
    rows = -(-len(maps) // cols)
    fig, axes = figure(rows, cols, width=15.0, row_height=4.6)
    lab = labels.numpy()
    for ax, m in zip(axes, maps):
        y = m["Y"].numpy()
        for digit in range(10):
            sel = lab == digit
            ax.scatter(y[sel, 0], y[sel, 1], s=4, color=plt_color(digit), label=str(digit))
        ax.set_title(f"{m['name']}\ntrust. {m['trustworthiness']:.3f}, 10-NN acc. "
                     f"{100 * m['knn_accuracy']:.1f} %", fontsize=10)
        ax.set_xlabel("map dimension 1")
        ax.set_ylabel("map dimension 2")
    for ax in axes[len(maps):]:
        ax.axis("off")
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, title="digit", loc="center right", markerscale=3)
    fig.suptitle(f"2-D maps of {len(labels):,} MNIST training images, coloured by digit")
    fig.tight_layout(rect=(0, 0, 0.95, 1))
    save_figure(fig, path)


def plt_color(digit: int):
    import matplotlib

    return matplotlib.colormaps["tab10"](digit)


# ---------------------------------------------------------------------------------------------

def main(argv=None):
    args = parse_args(argv)
    device = setup_runtime(args)
    optimizers = check_args(args, MNIST_TRAIN_SIZE)
    images, labels = load_mnist(args.data_dir, train=True, download=args.download)
    out_dir = prepare_out_dir(args.out_dir)
    started = time.time()
    images = images[:args.n_images].flatten(1)                   # (N, 784) in [0, 1]
    labels = labels[:args.n_images]
    dtype = getattr(torch, args.dtype)

    # P: the spec's fixed σ, and per-point σ_i calibrated to the perplexity, on the device
    runs = plan(args, optimizers)
    affinities = {}
    if any(r["affinity"] == "sigma" for r in runs):
        affinities["sigma"] = joint_probabilities(images.to(device), sigma=args.sigma)
    if any(r["affinity"] == "perplexity" for r in runs):
        affinities["perplexity"] = joint_probabilities(images.to(device), perplexity=args.perplexity)

    # the maps; "PCA init": the 2-D PCA scaled to unit variance along its first axis
    pca_points = pca_map(images)                                # (N, 2)
    pca_init = pca_points / pca_points[:, 0].std()
    results = []
    for number, r in enumerate(runs, 1):
        print(f"[{number}/{len(runs)}] {r['name']} ...", file=sys.stderr, flush=True)
        kw = {k: r[k] for k in ("optimizer", "lr", "momentum", "exaggeration",
                                "exaggeration_iters") if k in r}
        init = pca_init if r["init"] == "pca" else None          # None: y ~ N(0, I)
        e = embed(affinities[r["affinity"]].P, iterations=args.iterations, seed=args.seed,
                  dtype=dtype, gradient=args.gradient, init=init, **kw)
        results.append({**r, "Y": e.Y.cpu(), "kl": e.kl, "final_kl": e.kl[-1][1],
                        "seconds": e.seconds, "iterations_per_second": args.iterations / e.seconds,
                        "gradient": e.settings["gradient"], "compile_seconds": e.compile_seconds,
                        **map_quality(e.Y.cpu(), images, labels)})

    # references: scikit-learn's TSNE on the same images, and a 2-D PCA
    references = []
    sk = None
    if args.sklearn:
        print("scikit-learn TSNE ...", file=sys.stderr, flush=True)
        sk = sklearn_reference(images, labels, args)
        references.append({**sk, **map_quality(sk["Y"], images, labels)})
    pca = {"name": "PCA, 2 components", "Y": pca_points}
    references.append({**pca, **map_quality(pca["Y"], images, labels)})

    plot_kl(results, sk, out_dir / "kl.png", args.n_images)
    plot_maps(results + references, labels, out_dir / "maps.png")
    metrics = summarise(results, references, affinities, args, images, labels, started, device)
    write_json(out_dir / "metrics.json", metrics)
    for m in [*metrics["maps"], *metrics["references"]]:
        print(f"{m['name']}: trustworthiness {m['trustworthiness']:.4f}, 10-NN accuracy "
              f"{100 * m['knn_accuracy']:.2f} %" + (f", KL {m['final_kl']:.4f}" if "final_kl" in m else ""))
    print(f"outputs in {out_dir}/")


def summarise(results, references, affinities, args, images, labels, started, device) -> dict:
    keep = ("name", "setting", "init", "optimizer", "lr", "momentum", "exaggeration", "exaggeration_iters",
            "final_kl", "seconds", "iterations_per_second", "gradient", "compile_seconds",
            "trustworthiness", "knn_accuracy")
    maps = [{k: r[k] for k in keep if k in r} | {"kl_curve": r["kl"]} for r in results]
    refs = [{k: v for k, v in r.items() if k != "Y"} for r in references]
    metrics = {
        "maps": maps,
        "references": refs,
        "affinities": {name: {"seconds": a.seconds,
                              "sigma_median": float(a.sigma.median()),
                              "sigma_range": [float(a.sigma.min()), float(a.sigma.max())],
                              "perplexity_median": float(a.perplexity.median()),
                              "perplexity_range": [float(a.perplexity.min()),
                                                   float(a.perplexity.max())]}
                       for name, a in affinities.items()},
        "knn_accuracy_784d": knn_accuracy(images, labels, K),
        "compile_seconds": sum(m["compile_seconds"] for m in maps),   # torch.compile, once
        "data": {"n_images": args.n_images, "source": "first MNIST training images"},
        "run_seconds": time.time() - started,
        **machine_info(device),
        "config": {k: v for k, v in vars(args).items() if k != "debug"},
    }
    sk = next((r for r in refs if r["name"].startswith("scikit-learn")), None)
    if sk is not None:
        calibrated = [m for m in maps if m["setting"] != "spec"]
        if calibrated:
            best = max(calibrated, key=lambda m: m["trustworthiness"])
            metrics["target"] = {
                "best_calibrated_map": best["name"],
                "trustworthiness_gap": best["trustworthiness"] - sk["trustworthiness"],
                "knn_accuracy_gap": best["knn_accuracy"] - sk["knn_accuracy"],
                "met": (best["trustworthiness"] >= sk["trustworthiness"] - 0.01
                        and best["knn_accuracy"] >= sk["knn_accuracy"] - 0.01),
            }
    return metrics


if __name__ == "__main__":
    sys.exit(run(main))
