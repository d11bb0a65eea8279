"""Report figures as PNG bytes: titled, labelled, class names spelled out."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

DPI = 100


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def confusion(matrix: list[list[int]], classes: list[str], title: str) -> bytes:
    m = np.asarray(matrix)
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    im = ax.imshow(m, cmap="Blues")
    ax.set(xticks=range(len(classes)), yticks=range(len(classes)), title=title,
           xlabel="predicted", ylabel="true")  # fmt: skip
    ax.set_xticklabels(classes, rotation=45, ha="right")
    ax.set_yticklabels(classes)
    for (i, j), v in np.ndenumerate(m):
        color = "white" if v > m.max() / 2 else "black"
        ax.text(j, i, str(v), ha="center", va="center", color=color, fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.046)
    return _png(fig)


def per_class(recalls: dict[str, list[float]], classes: list[str], title: str) -> bytes:
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / max(1, len(recalls))
    for i, (name, values) in enumerate(recalls.items()):
        ax.bar(np.arange(len(classes)) + i * width, values, width, label=name)
    ax.set_xticks(np.arange(len(classes)) + 0.4 - width / 2)
    ax.set_xticklabels(classes, rotation=30, ha="right")
    ax.set(ylim=(0, 1), ylabel="test accuracy (recall)", title=title)
    ax.legend(fontsize=8, ncol=min(4, len(recalls)))
    return _png(fig)


def learning_curves(history: dict[str, list[float]], title: str) -> bytes:
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = np.arange(1, len(history.get("loss", [])) + 1)
    for key, ax in (("loss", left), ("accuracy", right)):
        ax.plot(epochs, history.get(key, []), marker="o", label="train")
        ax.plot(epochs, history.get(f"val_{key}", []), marker="o", label="validation")
        ax.set(xlabel="epoch", ylabel=key, title=f"{title}: {key}")
        ax.legend()
    return _png(fig)


def prediction_grid(images, labels, preds, classes: list[str], title: str) -> bytes:
    n = min(len(images), len(preds), 36)
    cols = 6
    rows = max(1, (n + cols - 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.9, rows * 2.1))
    for i, ax in enumerate(np.atleast_1d(axes).ravel()):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(images[i], interpolation="nearest")
        ok = preds[i] == labels[i]
        ax.set_title(
            f"{classes[preds[i]]}\n(true: {classes[labels[i]]})" if not ok else classes[preds[i]],
            fontsize=8, color="green" if ok else "red",
        )  # fmt: skip
    fig.suptitle(f"{title} (red: wrong)")
    return _png(fig)


def embedding_map(xy: list[list[float]], labels: list[int], classes: list[str], title: str):
    pts, lab = np.asarray(xy), np.asarray(labels)
    fig, ax = plt.subplots(figsize=(7.5, 6))
    cmap = plt.get_cmap("tab10")
    for c, name in enumerate(classes):
        sel = lab == c
        ax.scatter(pts[sel, 0], pts[sel, 1], s=6, color=cmap(c), label=name, alpha=0.7)
    ax.set(xlabel="component 1", ylabel="component 2", title=title)
    ax.legend(markerscale=3, fontsize=8, bbox_to_anchor=(1.02, 1), loc="upper left")
    return _png(fig)


def accuracy_vs_speed(points: list[tuple[str, float, float]], title: str) -> bytes:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, speed, acc in points:
        ax.scatter(speed, acc, s=40)
        ax.annotate(name, (speed, acc), textcoords="offset points", xytext=(5, 5), fontsize=9)
    ax.set(xlabel="extraction images/s", ylabel="dense head test accuracy", title=title)
    ax.grid(alpha=0.3)
    return _png(fig)
