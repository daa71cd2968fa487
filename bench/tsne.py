"""t-SNE speed (``python -m bench --tsne``): ``tsne.py`` beside scikit-learn's exact t-SNE, and
how its time grows with the number of images.

- Against scikit-learn: the same first ``reference_n`` MNIST training images (default 1,000),
  perplexity 30, the same number of iterations (``sklearn_iterations``, default 250, the least
  scikit-learn allows), random initialisation, the same thread count. scikit-learn's
  ``TSNE(method="exact")`` is timed from ``fit`` to the end (P, then the iterations); ours is
  P (``joint_probabilities``) plus ``embed`` with the KL value computed at every iteration, as
  scikit-learn's exact objective does. Iterations per second = iterations / total seconds of
  each; the speed-up is their ratio. Our spec-faithful autograd gradient is timed too.
- Scaling: for each size N, the seconds to compute P by perplexity calibration, and the median
  seconds of one iteration (fused gradient, KL value every 10th, as ``tsne_mnist.py`` runs)
  over ``iterations`` timed iterations; the projected time of a 1,000-iteration map is
  P + 1,000 × that median (a projection from timed iterations, said so in the table).
"""
from __future__ import annotations

import statistics
import time

import torch

from tsne import embed, joint_probabilities

PERPLEXITY = 30.0
SGD_LR = 200.0           # plain gradient descent, as scikit-learn's default learning rate range


def _thread_limit(threads: int | None):
    """scikit-learn's numpy/BLAS threads limited like torch's (threadpoolctl comes with it)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=threads or torch.get_num_threads())


def versus_sklearn(images: torch.Tensor, n: int, iterations: int, seed: int,
                   threads: int | None) -> dict:
    from sklearn.manifold import TSNE

    x = images[:n].flatten(1)
    result = {"n_images": n, "iterations": iterations, "perplexity": PERPLEXITY}
    for gradient in ("fused", "autograd"):
        started = time.perf_counter()
        affinities = joint_probabilities(x, perplexity=PERPLEXITY)
        run = embed(affinities.P, iterations=iterations, optimizer="sgd", lr=SGD_LR, seed=seed,
                    gradient=gradient, record_every=1)
        total = time.perf_counter() - started
        result[gradient] = {"seconds": total, "p_seconds": affinities.seconds,
                            "iteration_seconds": run.seconds,
                            "iterations_per_s": iterations / total, "final_kl": run.kl[-1][1]}
    with _thread_limit(threads):
        model = TSNE(method="exact", perplexity=PERPLEXITY, max_iter=iterations, init="random",
                     learning_rate=SGD_LR, random_state=seed)
        started = time.perf_counter()
        model.fit(x.numpy().astype("float64"))
        total = time.perf_counter() - started
    result["sklearn_exact"] = {"seconds": total, "iterations": int(model.n_iter_),
                               "iterations_per_s": int(model.n_iter_) / total,
                               "final_kl": float(model.kl_divergence_)}
    for gradient in ("fused", "autograd"):
        result[gradient]["speedup_vs_sklearn"] = (result[gradient]["iterations_per_s"]
                                                  / result["sklearn_exact"]["iterations_per_s"])
    return result


def scaling(images: torch.Tensor, sizes, iterations: int, seed: int, log=print) -> list[dict]:
    rows = []
    for n in sizes:
        log(f"t-SNE scaling: {n:,} images ...")
        affinities = joint_probabilities(images[:n].flatten(1), perplexity=min(PERPLEXITY, n / 4))
        P, p_seconds = affinities.P.float(), affinities.seconds
        del affinities                                   # the float64 P: 800 MB at 10,000
        times: list[float] = []
        last = [time.perf_counter()]

        def tick(_, __):
            now = time.perf_counter()
            times.append(now - last[0])
            last[0] = now

        embed(P, iterations=iterations, optimizer="sgd", lr=SGD_LR, seed=seed, callback=tick)
        per_iteration = statistics.median(times)
        rows.append({"n_images": n, "p_seconds": p_seconds,
                     "iteration_seconds": per_iteration, "timed_iterations": iterations,
                     "projected_1000_iterations_s": p_seconds + 1000 * per_iteration})
    return rows


def format_results(result: dict) -> str:
    v = result["versus_sklearn"]
    sk = v["sklearn_exact"]
    lines = [f"t-SNE, {v['n_images']:,} MNIST images, perplexity {v['perplexity']:g}, "
             f"{v['iterations']} iterations, KL value every iteration:",
             "| implementation | total s | P s | iterations / s | speed-up | final KL |",
             "|---|---|---|---|---|---|",
             f"| scikit-learn TSNE(method='exact') | {sk['seconds']:.2f} | – | "
             f"{sk['iterations_per_s']:.1f} | 1.0× | {sk['final_kl']:.3f} |"]
    for gradient, what in (("fused", "tsne.py, fused gradient"),
                           ("autograd", "tsne.py, autograd (spec's loss.backward())")):
        r = v[gradient]
        lines.append(f"| {what} | {r['seconds']:.2f} | {r['p_seconds']:.2f} | "
                     f"{r['iterations_per_s']:.1f} | {r['speedup_vs_sklearn']:.1f}× | "
                     f"{r['final_kl']:.3f} |")
    lines += ["", "t-SNE time against the number of images (fused gradient; P by perplexity "
                  "calibration; 1,000-iteration time projected from the timed iterations):",
              "| images | P s | ms / iteration | projected 1,000 iterations (min) |",
              "|---|---|---|---|"]
    for row in result["scaling"]:
        lines.append(f"| {row['n_images']:,} | {row['p_seconds']:.1f} | "
                     f"{1000 * row['iteration_seconds']:.1f} | "
                     f"{row['projected_1000_iterations_s'] / 60:.2f} |")
    return "\n".join(lines)


def targets(result: dict) -> list[str]:
    fused = result["versus_sklearn"]["fused"]["speedup_vs_sklearn"]
    lines = [f"t-SNE: {fused:.1f}× scikit-learn's exact t-SNE in iterations per second "
             f"(target ≥ 10×): {'met' if fused >= 10 else 'MISSED'}"]
    biggest = max(result["scaling"], key=lambda r: r["n_images"])
    minutes = biggest["projected_1000_iterations_s"] / 60
    lines.append(f"t-SNE: {biggest['n_images']:,} images, 1,000 iterations projected at "
                 f"{minutes:.1f} min (target ≤ 10 min for 10,000): "
                 f"{'met' if minutes <= 10 else 'MISSED'}"
                 + ("" if biggest["n_images"] >= 10_000 else " (fewer images than the target's)"))
    return lines


def run_tsne_bench(data_dir: str, *, reference_n: int, sizes, iterations: int,
                   sklearn_iterations: int, seed: int, threads: int | None, log=print) -> dict:
    from data import load_mnist

    images, _ = load_mnist(data_dir, train=True)
    log(f"t-SNE against scikit-learn on {reference_n:,} images ...")
    result = {"versus_sklearn": versus_sklearn(images, reference_n, sklearn_iterations, seed,
                                               threads),
              "scaling": scaling(images, sizes, iterations, seed, log)}
    result["table"] = format_results(result)
    result["targets"] = targets(result)
    return result
