"""One plotting style and the figure types every experiment shares.

Figures are for a page-width report: 150 dpi PNG, a title, axis labels with units, a legend,
fonts readable without zooming. Files are written atomically (see ``outputs``).
"""
from __future__ import annotations

import math

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from outputs import atomic_path  # noqa: E402

STYLE = {
    "figure.dpi": 150, "savefig.dpi": 150, "font.size": 12, "axes.titlesize": 13,
    "axes.labelsize": 12, "legend.fontsize": 10, "xtick.labelsize": 10.5, "ytick.labelsize": 10.5,
    "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False,
    "figure.titlesize": 14, "lines.linewidth": 1.8,
}
COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def figure(rows: int = 1, cols: int = 1, *, width: float = 9.0, row_height: float = 3.0, **kw):
    """A figure in the project style; ``axes`` is always a flat list."""
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(rows, cols, figsize=(width, row_height * rows), squeeze=False, **kw)
    return fig, list(axes.flat)


def save_figure(fig, path) -> None:
    """Tight layout, 150 dpi PNG, written atomically; closes the figure."""
    with plt.rc_context(STYLE):
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=150)
    plt.close(fig)


def plot_panels(panels: list[dict], path, *, title: str, xlabel: str, ylabel: str,
                sharey: bool = False, width: float = 9.0, row_height: float = 2.8) -> None:
    """One panel per entry, stacked; each ``{"title": str, "x": array, "lines": [(label, y,
    style dict), ...]}``. Used for example signals, reconstructions and price series."""
    fig, axes = figure(len(panels), 1, width=width, row_height=row_height, sharey=sharey)
    with plt.rc_context(STYLE):
        for ax, panel in zip(axes, panels):
            for label, y, style in panel["lines"]:
                ax.plot(panel["x"], np.asarray(y), label=label, **(style or {}))
            ax.set_title(panel.get("title", ""))
            ax.set_ylabel(ylabel)
            if len(panel["lines"]) > 1 or panel["lines"][0][0]:
                ax.legend(loc="best", framealpha=0.85)
        axes[-1].set_xlabel(xlabel)
        fig.suptitle(title)
        if panels and hasattr(panels[0]["x"], "dtype") and np.issubdtype(
                np.asarray(panels[0]["x"]).dtype, np.datetime64):
            fig.autofmt_xdate()
    save_figure(fig, path)


def plot_histories(curves: dict[str, list[dict]], path, *, metric: str = "loss", title: str,
                   ylabel: str, logy: bool = False, splits=("train", "val"), ax=None) -> None:
    """``metric`` vs epoch for each named run: train solid, validation dashed, one colour a run.
    With ``ax`` (a panel of a larger figure) it draws there and saves nothing (``path`` unused)."""
    fig = None
    if ax is None:
        fig, (ax,) = figure(1, 1, width=8.0, row_height=4.5)
    names = {"train": "train", "val": "validation"}
    with plt.rc_context(STYLE):
        for i, (name, history) in enumerate(curves.items()):
            epochs = [row["epoch"] for row in history]
            for split, dash in zip(splits, ("-", "--")):
                key = f"{split}_{metric}"
                if history and key in history[0]:
                    ax.plot(epochs, [row[key] for row in history], dash, color=COLORS[i % len(COLORS)],
                            label=f"{name} ({names.get(split, split)})" if name else names[split])
        if logy:
            ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(framealpha=0.85)
    if fig is not None:
        save_figure(fig, path)


def plot_grid(table, path, *, value: str = "best_val_loss", title: str, value_label: str) -> None:
    """Heat map of ``value`` over hidden size × learning rate, one panel per gradient clip."""
    clips = sorted(table["grad_clip"].unique())
    hidden = sorted(table["hidden_size"].unique())
    lrs = sorted(table["lr"].unique())
    fig, axes = figure(1, len(clips), width=min(5.0 * len(clips), 15.0), row_height=4.2)
    values = table[value].to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
    norm = matplotlib.colors.LogNorm(lo, max(hi, lo * 1.0001)) if lo > 0 else None
    with plt.rc_context(STYLE):
        for ax, clip in zip(axes, clips):
            grid = np.full((len(hidden), len(lrs)), np.nan)
            for _, row in table[table["grad_clip"] == clip].iterrows():
                grid[hidden.index(row["hidden_size"]), lrs.index(row["lr"])] = row[value]
            image = ax.imshow(grid, cmap="viridis_r", norm=norm, aspect="auto")
            for (i, j), v in np.ndenumerate(grid):
                if math.isfinite(v):
                    ax.text(j, i, f"{v:.3g}", ha="center", va="center", fontsize=10,
                            color="white" if norm and norm(v) > 0.6 else "black")
            ax.set_xticks(range(len(lrs)), [f"{lr:g}" for lr in lrs])
            ax.set_yticks(range(len(hidden)), [str(h) for h in hidden])
            ax.set_xlabel("learning rate")
            ax.set_ylabel("hidden size")
            ax.set_title(f"gradient clip {clip:g}" if clip else "no gradient clipping")
            ax.grid(False)
        fig.colorbar(image, ax=axes, label=value_label, shrink=0.9)
        fig.suptitle(title)
    with plt.rc_context(STYLE):
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=150, bbox_inches="tight")
    plt.close(fig)


def plot_image_grid(rows: list[list[np.ndarray]], path, *, title: str, row_labels: list[str],
                    col_labels: list[list[str]] | list[str], value_label: str,
                    vmin: float = 0.0, vmax: float = 1.0, cmap: str = "gray",
                    cell: float = 2.1) -> None:
    """A grid of grey-scale images (e.g. digits and their reconstructions) on one colour scale.

    ``rows[r][c]`` is a 2-D array; ``row_labels[r]`` names a row (y label); ``col_labels`` names
    the columns, either once for all rows or per row (list of lists); ``value_label`` (with units)
    labels the shared colour bar. Pixel axes carry no ticks."""
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    fig, axes = figure(n_rows, n_cols, width=cell * n_cols + 1.2, row_height=cell + 0.35)
    per_row = bool(col_labels) and isinstance(col_labels[0], (list, tuple))
    with plt.rc_context(STYLE):
        image = None
        for r, images in enumerate(rows):
            for c in range(n_cols):
                ax = axes[r * n_cols + c]
                ax.grid(False)
                ax.set_xticks([])
                ax.set_yticks([])
                if c >= len(images):
                    ax.axis("off")
                    continue
                image = ax.imshow(np.asarray(images[c]), cmap=cmap, vmin=vmin, vmax=vmax)
                label = col_labels[r][c] if per_row else col_labels[c]
                ax.set_title(label, fontsize=10.5)
                if c == 0:
                    ax.set_ylabel(row_labels[r])
        fig.suptitle(title)
        fig.tight_layout()
        if image is not None:
            fig.colorbar(image, ax=axes, label=value_label, shrink=0.85, pad=0.02)
    with plt.rc_context(STYLE):
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=150, bbox_inches="tight")
    plt.close(fig)


def plot_image_mosaic(rows: list[list[np.ndarray]], path, *, title: str, row_labels: list[str],
                      col_labels: list[str] | None, value_label: str, vmin: float = 0.0,
                      vmax: float = 1.0, cmap: str = "gray", cell: float = 0.75,
                      gap: int = 2) -> None:
    """The content of ``plot_image_grid`` drawn as one image (one axes, one imshow): many small
    images (e.g. 10 digits × 8 models, 64 samples) in a second instead of one axes per image.
    ``rows[r][c]`` are equally sized 2-D arrays; row labels on the left, column labels on top
    (or none), white gaps of ``gap`` pixels between images, one shared colour bar."""
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    h, w = np.asarray(rows[0][0]).shape
    canvas = np.full((n_rows * (h + gap) - gap, n_cols * (w + gap) - gap), np.nan)
    for r, images in enumerate(rows):
        for c, img in enumerate(images):
            canvas[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = img
    label_width = 0.09 * max((len(line) for text in row_labels for line in text.split("\n")),
                             default=0)
    fig, (ax,) = figure(1, 1, width=cell * n_cols + label_width + 1.6,
                        row_height=cell * n_rows + (1.3 if col_labels else 0.9))
    colormap = matplotlib.colormaps[cmap].with_extremes(bad="white")      # the gaps
    with plt.rc_context(STYLE):
        image = ax.imshow(canvas, cmap=colormap, vmin=vmin, vmax=vmax)
        ax.grid(False)
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_yticks([r * (h + gap) + h / 2 - 0.5 for r in range(n_rows)], row_labels,
                      fontsize=9.5)
        ax.tick_params(length=0)
        if col_labels:
            ax.set_xticks([c * (w + gap) + w / 2 - 0.5 for c in range(n_cols)], col_labels,
                          fontsize=9.5)
            ax.xaxis.tick_top()
        else:
            ax.set_xticks([])
        ax.set_title(title)
        fig.colorbar(image, ax=ax, label=value_label, shrink=0.8, pad=0.02)
    save_figure(fig, path)


def plot_code_size_curves(panels: list[dict], path, *, title: str) -> None:
    """Reconstruction error vs code size, one panel per task, side by side: each ``{"title":
    str, "ylabel": str, "curves": [(label, code sizes, test MSEs[, style dict]), ...]}``. Both axes
    logarithmic (code sizes double; errors span decades); the code sizes are the x ticks. An error
    of None is exact (zero up to round-off): a triangle on the bottom edge, named in the legend."""
    fig, axes = figure(1, len(panels), width=5.2 * len(panels), row_height=4.6)
    with plt.rc_context(STYLE):
        for ax, panel in zip(axes, panels):
            ticks, exact = set(), []
            ax.set_yscale("log")
            for i, (label, sizes, errors, *style) in enumerate(panel["curves"]):
                style = {"color": COLORS[i % len(COLORS)], **(style[0] if style else {})}
                shown = [(k, e) for k, e in zip(sizes, errors) if e is not None]
                if shown:
                    ax.plot(*zip(*shown), "o-", label=label, **style)
                exact += [(f"{label}: exact (error 0)", [k for k, e in zip(sizes, errors) if e is None],
                           style["color"])]
                ticks |= set(sizes)
            bottom, top = ax.get_ylim()
            for label, sizes, color in exact:
                if sizes:
                    ax.plot(sizes, [bottom] * len(sizes), "v", color=color, markersize=10,
                            clip_on=False, label=label)
            ax.set_ylim(bottom, top)
            ax.set_xscale("log", base=2)
            ax.set_xticks(sorted(ticks), [str(k) for k in sorted(ticks)])
            ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
            ax.set_title(panel["title"])
            ax.set_xlabel("code size k (numbers in z)")
            ax.set_ylabel(panel["ylabel"])
            ax.legend(loc="best", framealpha=0.85)
        fig.suptitle(title)
    save_figure(fig, path)
