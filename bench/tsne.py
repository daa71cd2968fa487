"""t-SNE speed (``python -m bench --tsne``): ``tsne.py`` beside scikit-learn's exact t-SNE, and
how its time grows with the number of images.

- Against scikit-learn: the same first ``reference_n`` MNIST training images (default 1,000),
  perplexity 30, the same number of iterations (``sklearn_iterations``, default 250, the least
  scikit-learn allows), random initialisation, the same thread count. scikit-learn's
  ``TSNE(method="exact")`` is timed from ``fit`` to the end (P, then the iterations); ours is
  P (``joint_probabilities``) plus ``embed`` with the KL value computed where scikit-learn's
  exact t-SNE computes it: its gradient descent asks its objective for the value only every
  ``TSNE._N_ITER_CHECK`` iterations (50 in scikit-learn 1.9) and at the last (``compute_error``),
  read from the installed version (``sklearn_error_every``); the gradient every iteration.
  Iterations per second = iterations / total seconds of each; the speed-up is their ratio.
  Each of our gradients is timed: compiled (the default), the eager fused pass, and the
  spec-faithful autograd. torch.compile works once per process
  (shapes are dynamic, so once for every N): ``warm_up`` runs it on a small problem first and
  its seconds are reported apart, not in the speed-up.
- Scaling: for each size N, the seconds to compute P by perplexity calibration, and the median
  seconds of one iteration (compiled gradient, KL value every 10th, as ``tsne_mnist.py`` runs)
  over ``iterations`` timed iterations; the projected time of a 1,000-iteration map is
  P + 1,000 × that median (a projection from timed iterations, said so in the table).
"""
from __future__ import annotations

import statistics
import time

import torch

from tsne import GRADIENTS, embed, joint_probabilities

PERPLEXITY = 30.0
SGD_LR = 200.0           # plain gradient descent, as scikit-learn's default learning rate range


def _thread_limit(threads: int | None):
    """scikit-learn's numpy/BLAS threads limited like torch's (threadpoolctl comes with it)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=threads or torch.get_num_threads())


def warm_up(images: torch.Tensor, seed: int) -> float:
    """Seconds to compile (torch.compile) what P and the compiled gradient run, on 64 images."""
    started = time.perf_counter()
    affinities = joint_probabilities(images[:64].flatten(1), perplexity=PERPLEXITY / 2)
    embed(affinities.P, iterations=2, optimizer="sgd", lr=SGD_LR, seed=seed, record_every=1)
    return time.perf_counter() - started


def sklearn_error_every() -> int:
    """How often scikit-learn's exact t-SNE computes the KL value (its gradient descent passes
    compute_error only every _N_ITER_CHECK iterations; 50 where the attribute is missing)."""
    from sklearn.manifold import TSNE

    return int(getattr(TSNE, "_N_ITER_CHECK", 50))


def versus_sklearn(images: torch.Tensor, n: int, iterations: int, seed: int,
                   threads: int | None) -> dict:
    from sklearn.manifold import TSNE

    x = images[:n].flatten(1)
    every = sklearn_error_every()
    result = {"n_images": n, "iterations": iterations, "perplexity": PERPLEXITY,
              "kl_every": every, "compile_seconds": warm_up(images, seed)}
    for gradient in GRADIENTS:
        started = time.perf_counter()
        affinities = joint_probabilities(x, perplexity=PERPLEXITY)
        run = embed(affinities.P, iterations=iterations, optimizer="sgd", lr=SGD_LR, seed=seed,
                    gradient=gradient, record_every=every)
        total = time.perf_counter() - started
        result[gradient] = {"seconds": total, "p_seconds": affinities.seconds,
                            "iteration_seconds": run.seconds,
                            "gradient_used": run.settings["gradient"],
                            "iterations_per_s": iterations / total, "final_kl": run.kl[-1][1]}
    with _thread_limit(threads):
        model = TSNE(method="exact", perplexity=PERPLEXITY, max_iter=iterations, init="random",
                     learning_rate=SGD_LR, random_state=seed)
        started = time.perf_counter()
        model.fit(x.numpy().astype("float64"))
        total = time.perf_counter() - started
    kl = float(model.kl_divergence_)     # left unset (huge) when it ends while exaggerating
    result["sklearn_exact"] = {"seconds": total, "iterations": int(model.n_iter_),
                               "iterations_per_s": int(model.n_iter_) / total,
                               "final_kl": kl if kl < 1e100 else None}
    for gradient in GRADIENTS:
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
             f"{v['iterations']} iterations, the gradient every iteration and the KL value every "
             f"{v['kl_every']}th and at the last, as scikit-learn's exact t-SNE computes them:",
             "| implementation | total s | P s | iterations / s | speed-up | final KL |",
             "|---|---|---|---|---|---|",
             f"| scikit-learn TSNE(method='exact') | {sk['seconds']:.2f} | – | "
             f"{sk['iterations_per_s']:.1f} | 1.0× | "
             f"{'–' if sk['final_kl'] is None else format(sk['final_kl'], '.3f')} |"]
    for gradient, what in (("compiled", "tsne.py, compiled gradient (default)"),
                           ("fused", "tsne.py, fused gradient (eager)"),
                           ("autograd", "tsne.py, autograd (spec's loss.backward())")):
        r = v[gradient]
        if r["gradient_used"] != gradient:
            what += f" — could not compile here: ran {r['gradient_used']}"
        lines.append(f"| {what} | {r['seconds']:.2f} | {r['p_seconds']:.2f} | "
                     f"{r['iterations_per_s']:.1f} | {r['speedup_vs_sklearn']:.1f}× | "
                     f"{r['final_kl']:.3f} |")
    lines += ["", f"torch.compile before the timed runs (once per process, on 64 images; not in the "
                  f"times above): {v['compile_seconds']:.1f} s.",
              "", "t-SNE time against the number of images (compiled gradient; P by perplexity "
                  "calibration; 1,000-iteration time projected from the timed iterations):",
              "| images | P s | ms / iteration | projected 1,000 iterations (min) |",
              "|---|---|---|---|"]
    for row in result["scaling"]:
        lines.append(f"| {row['n_images']:,} | {row['p_seconds']:.1f} | "
                     f"{1000 * row['iteration_seconds']:.1f} | "
                     f"{row['projected_1000_iterations_s'] / 60:.2f} |")
    return "\n".join(lines)


def targets(result: dict) -> list[str]:
    fastest = result["versus_sklearn"]["compiled"]["speedup_vs_sklearn"]
    lines = [f"t-SNE: {fastest:.1f}× scikit-learn's exact t-SNE in iterations per second "
             f"(target ≥ 10×): {'met' if fastest >= 10 else 'MISSED'}"]
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
