"""The audit's figures (`report.audit_section`): duplicate pairs side by side, the
nearest-neighbour similarity per split with the threshold, nearest-train strips, and per-class
kNN agreement."""

from __future__ import annotations

import numpy as np

from cifar_ray.report.plots import WRONG, _figure, _png

PAIRS_PER_ROW = 4


def _thumb(ax, image: np.ndarray, title: str, color: str | None = None) -> None:
    ax.imshow(image, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=7.5, color=color or "black")
    for spine in ax.spines.values():
        spine.set_color(color or "#999")
        spine.set_linewidth(2.5 if color else 0.5)


def pairs(images: tuple[np.ndarray, np.ndarray], shown: list, classes: list[str],
          title: str) -> bytes:  # fmt: skip
    """Each test image beside its training twin; a pair whose labels differ is framed red
    and marked as a labelling-error candidate."""
    n = len(shown)
    rows = -(-n // PAIRS_PER_ROW)
    fig, axes = _figure(nrows=rows, ncols=2 * PAIRS_PER_ROW, figsize=(12, 1.9 * rows + 0.5),
                        squeeze=False)  # fmt: skip
    for ax in axes.flat:
        ax.axis("off")
    for n_pair, (q, t, sim, kind, q_label, t_label) in enumerate(shown):
        left = axes[n_pair // PAIRS_PER_ROW][2 * (n_pair % PAIRS_PER_ROW)]
        right = axes[n_pair // PAIRS_PER_ROW][2 * (n_pair % PAIRS_PER_ROW) + 1]
        differ = q_label != t_label
        color = WRONG if differ else None
        left.axis("on")
        right.axis("on")
        _thumb(left, images[0][n_pair], f"test {q}\n{classes[q_label]}", color)
        mark = "\nlabel error?" if differ else ""
        _thumb(right, images[1][n_pair], f"train {t}\n{classes[t_label]}", color)
        right.set_xlabel(f"{kind} {sim:.4f}{mark}", fontsize=7.5, color=color or "black")
    fig.suptitle(title, fontsize=11)
    return _png(fig)


def similarity(hists: dict[str, dict], value: float, chosen: str, title: str) -> bytes:
    """Per split, how many images have their nearest neighbour at each similarity; the
    threshold as a line: what stands right of it is a near-duplicate."""
    fig, ax = _figure(figsize=(8.5, 3.8))
    colors = {"test": "#1565c0", "train": "#6d4c41"}
    labels = {"test": "test -> nearest train", "train": "train -> nearest other train"}
    for split, h in hists.items():
        ax.stairs(np.maximum(h["counts"], 0.8), h["edges"], color=colors.get(split),
                  label=labels.get(split, split), linewidth=1.6)  # fmt: skip
    ax.axvline(value, color=WRONG, linestyle="--", label=f"threshold {value:.4f} ({chosen})")
    ax.set(yscale="log", xlabel="cosine similarity to the nearest training image",
           ylabel="images", title=title)  # fmt: skip
    ax.set_ylim(bottom=0.7)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return _png(fig)


def strips(queries: np.ndarray, neighbours: np.ndarray, shown: list[dict], classes: list[str],
           title: str) -> bytes:  # fmt: skip
    """One row per test image: the image, then its nearest training images, best first,
    each with its similarity; a neighbour of another class is framed red."""
    length = len(shown[0]["train_ids"])
    fig, axes = _figure(nrows=len(shown), ncols=length + 1,
                        figsize=(1.25 * (length + 1) + 0.4, 1.45 * len(shown) + 0.5),
                        squeeze=False)  # fmt: skip
    flat = neighbours.reshape(len(shown), length, *neighbours.shape[1:])
    for row, strip in enumerate(shown):
        q, q_label = strip["test_id"], strip["test_label"]
        _thumb(axes[row][0], queries[row], f"test {q}\n{classes[q_label]}", "#1565c0")
        found = zip(strip["train_ids"], strip["train_labels"], strip["similarities"], strict=True)
        for col, (t, t_label, sim) in enumerate(found, 1):
            ax = axes[row][col]
            if t < 0:
                ax.axis("off")
                continue
            _thumb(ax, flat[row][col - 1], f"{sim:.3f}\n{classes[t_label]}",
                   None if t_label == q_label else WRONG)  # fmt: skip
    fig.suptitle(title, fontsize=11)
    return _png(fig)


def agreement(scores: list[float | None], classes: list[str], title: str) -> bytes:
    """Per class, the share of test images whose nearest training image has their label."""
    values = np.array([np.nan if s is None else s for s in scores], dtype=float)
    fig, ax = _figure(figsize=(8.5, 0.9 + (0.26 if len(classes) <= 20 else 0.14) * len(classes)))
    ax.barh(range(len(classes)), values, color="#1565c0")
    chance = 1 / len(classes)
    ax.axvline(chance, color=WRONG, linestyle="--", label=f"chance {chance:.2f}")
    ax.legend(fontsize=8, loc="lower right")
    ax.set(yticks=range(len(classes)), xlim=(0, 1.08), title=title,
           xlabel="share of test images whose nearest training image has their label")  # fmt: skip
    ax.set_yticklabels(classes, fontsize=8 if len(classes) <= 20 else 5)
    ax.invert_yaxis()
    for i, v in enumerate(values):
        if np.isfinite(v):
            ax.text(v + 0.01, i, f"{v:.2f}", va="center", fontsize=7)
    ax.grid(alpha=0.3, axis="x")
    return _png(fig)
