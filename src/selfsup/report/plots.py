"""The report's figures, each rendered with matplotlib's Agg backend to a base64 PNG."""

from __future__ import annotations

import base64
import io
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: no display is ever needed to write a report
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

PROBES = (("knn_top1", "kNN"), ("linear_top1", "linear"), ("nb_top1", "naive Bayes"),
          ("raw_pixels_knn_top1", "raw-pixel kNN"))


def to_png(fig: Figure) -> str:
    """The figure as a base64 PNG (for a data: URI); the figure is closed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def curve(rows: list[dict[str, Any]], key: str, title: str, ylabel: str,
          log: bool = False) -> Figure:
    """``key`` against the training step, one point per metrics.jsonl row holding it."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    steps = [r["step"] for r in rows]
    ax.plot(steps, [r[key] for r in rows], marker="o" if len(rows) < 30 else None, ms=3)
    if log and all(r[key] > 0 for r in rows):
        ax.set_yscale("log")
    ax.set(title=title, xlabel="step", ylabel=ylabel)
    ax.grid(alpha=0.3)
    return fig


def probe_bars(ev: dict[str, Any]) -> Figure:
    names = [(label, ev[key]) for key, label in PROBES if key in ev]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    bars = ax.bar([n for n, _ in names], [100 * v for _, v in names],
                  color=["C0", "C1", "C2", "0.6"][: len(names)])
    ax.bar_label(bars, fmt="%.1f")
    ax.set(title="Probe accuracy", ylabel="test top-1 (%)", ylim=(0, 105))
    return fig


def layer_bars(layers: dict[str, dict[str, Any]]) -> Figure:
    names = list(layers)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    x = np.arange(len(names))
    for i, (key, label) in enumerate((("knn_top1", "kNN"), ("linear_top1", "linear"),
                                      ("nb_top1", "naive Bayes"))):
        ax.bar(x + (i - 1) * 0.27, [100 * layers[n][key] for n in names], 0.27, label=label)
    ax.set_xticks(x, [f"{n}\n({layers[n]['dim']}-d)" for n in names], fontsize=8)
    ax.set(title="Probe accuracy by layer", ylabel="test top-1 (%)", ylim=(0, 105))
    ax.legend(fontsize=8)
    return fig


def fewshot_plot(fewshot: dict[str, Any]) -> Figure:
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for probe, label in (("linear", "linear"), ("nb", "naive Bayes")):
        if probe not in fewshot:
            continue
        rows = fewshot[probe]
        ax.errorbar([100 * r["fraction"] for r in rows], [100 * r["mean"] for r in rows],
                    yerr=[100 * r["std"] for r in rows], marker="o", capsize=3, label=label)
    ax.set_xscale("log")
    ax.set(title="Few-shot accuracy", xlabel="labels used (% of training set, log scale)",
           ylabel=f"test top-1 (%), mean ± std over {len(fewshot['seeds'])} subsets")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def embedding_map(points: np.ndarray, labels: np.ndarray, how: str,
                  class_names: list[str] | None = None) -> Figure:
    """A 2-D map (N, 2) of embeddings, one colour per label (a colour scale for the float
    labels of a regression target)."""
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    if np.issubdtype(labels.dtype, np.floating):
        dots = ax.scatter(points[:, 0], points[:, 1], s=4, c=labels, cmap="viridis")
        fig.colorbar(dots, ax=ax, label="target")
        ax.set(title=f"Embedding map ({how})", xticks=[], yticks=[])
        return fig
    classes = np.unique(labels)
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for i, c in enumerate(classes):
        m = labels == c
        name = class_names[c] if class_names and 0 <= c < len(class_names) else str(c)
        ax.scatter(points[m, 0], points[m, 1], s=4, color=cmap(i % cmap.N), label=name)
    ax.set(title=f"Embedding map ({how})", xticks=[], yticks=[])
    if len(classes) <= 20:
        ax.legend(fontsize=7, markerscale=3, loc="center left", bbox_to_anchor=(1, 0.5))
    return fig


def neighbour_grid(queries: np.ndarray, query_labels: np.ndarray, neighbours: np.ndarray,
                   neighbour_labels: np.ndarray) -> Figure:
    """Rows: a query image (first column) and its nearest training images; a neighbour with the
    query's label is framed green, another label red. Images are uint8 (.., C, H, W)."""
    rows, k = neighbours.shape[:2]
    fig, axes = plt.subplots(rows, k + 1, figsize=(1.1 * (k + 1), 1.1 * rows), squeeze=False)

    def show(ax, img, colour=None):
        img = img.transpose(1, 2, 0)
        ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=255)
        ax.set_xticks([])
        ax.set_yticks([])
        if colour:
            for side in ax.spines.values():
                side.set(color=colour, linewidth=2.5)

    for r in range(rows):
        show(axes[r, 0], queries[r])
        for j in range(k):
            same = neighbour_labels[r, j] == query_labels[r]
            show(axes[r, j + 1], neighbours[r, j], "tab:green" if same else "tab:red")
    axes[0, 0].set_title("query", fontsize=8)
    fig.suptitle("Nearest neighbours", y=1.0)
    return fig


def _show(ax, image: np.ndarray) -> None:
    """One float image (C, H, W) in [0, 1] on ``ax``, gray for one channel."""
    img = np.clip(image, 0, 1)
    ax.imshow(img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0),
              cmap="gray" if img.shape[0] == 1 else None, vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])


def reconstruction_grid(rows: dict[str, np.ndarray]) -> Figure:
    """Masked-image modelling at a glance: one row per entry of ``rows`` (original, masked
    input, reconstruction), one column per test image; each (n, C, H, W) in [0, 1]."""
    names = list(rows)
    n = len(rows[names[0]])
    fig, axes = plt.subplots(len(names), n, figsize=(1.1 * n, 1.2 * len(names)), squeeze=False)
    for r, name in enumerate(names):
        for c in range(n):
            _show(axes[r][c], rows[name][c])
        axes[r][0].set_ylabel(name, fontsize=8)
    return fig


def finetune_plot(finetune: dict[str, Any]) -> Figure:
    """Fine-tuned top-1 against the fraction of labels, pretrained vs from scratch, mean ± std
    over seeds."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    rows = finetune["rows"]
    x = [100 * r["fraction"] for r in rows]
    for arm, label in (("pretrained", "pretrained"), ("scratch", "from scratch")):
        if any(r[arm] is None for r in rows):
            continue  # the baseline arm was skipped
        mean = [100 * r[arm]["mean"] for r in rows]
        std = [100 * r[arm]["std"] for r in rows]
        ax.errorbar(x, mean, yerr=std, marker="o", capsize=3, label=label)
    ax.set_xscale("log")
    ax.set(title="Fine-tuning", xlabel="labels used (%)", ylabel="test top-1 (%)")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig
