"""Report figures as PNG bytes: titled, labelled, class names spelled out, nothing overlapping."""

from __future__ import annotations

import io
from collections.abc import Iterator

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from cifar_ray.report import groups
from cifar_ray.train.results import HEAD, models_of

DPI = 110
WRONG, RIGHT = "#c62828", "#2e7d32"
NEAR = "#ef6c00"  # CIFAR-100: the wrong class, but in the right superclass


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, facecolor="white")
    plt.close(fig)
    return buffer.getvalue()


def _figure(**kwargs):
    return plt.subplots(layout="constrained", **kwargs)


def model_colors(names: list[str]) -> dict[str, tuple]:
    """One colour per model name, the same in every figure of a report."""
    cmap = plt.get_cmap("tab10")
    return {name: cmap(i % 10) for i, name in enumerate(names)}


def confusion(
    matrix: list[list[int]], classes: list[str], title: str, what: str = "class"
) -> bytes:
    """Counts with every cell written in; grows with the classes (CIFAR-100's 20 superclasses
    get a larger figure and smaller digits, still legible)."""
    m = np.asarray(matrix)
    side = max(7.5, 0.48 * len(classes) + 3.5)
    fig, ax = _figure(figsize=(side, side - 1.0))
    im = ax.imshow(m, cmap="Blues")
    ax.set(xticks=range(len(classes)), yticks=range(len(classes)), xlabel=f"predicted {what}",
           ylabel=f"true {what}", title=f"{title} confusion matrix")  # fmt: skip
    ax.set_xticklabels(classes, rotation=45, ha="right")
    ax.set_yticklabels(classes)
    for (i, j), v in np.ndenumerate(m):
        color = "white" if v > m.max() / 2 else "black"
        ax.text(j, i, str(v), ha="center", va="center", color=color,
                fontsize=8 if len(classes) <= 12 else 6.5)  # fmt: skip
    fig.colorbar(im, ax=ax, fraction=0.046, label="test images")
    return _png(fig)


def per_class(
    recalls: dict[str, list[float]], classes: list[str], title: str, what: str = "true class"
) -> bytes:
    """A models x classes heat map of per-class test accuracy, each cell's value written in."""
    names = list(recalls)
    m = np.asarray([recalls[n] for n in names], dtype=float)
    wide = len(classes) > 12  # CIFAR-100's superclasses: wider cells, long names slanted more
    size = (max(9.5, 0.62 * len(classes) + 3), 1.4 + 0.45 * len(names) + (1.6 if wide else 0))
    fig, ax = _figure(figsize=size)
    im = ax.imshow(m, cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
    ax.set(xticks=range(len(classes)), yticks=range(len(names)), title=title,
           xlabel=what, ylabel="model")  # fmt: skip
    ax.set_xticklabels(classes, rotation=45 if wide else 30, ha="right")
    ax.set_yticklabels(names)
    for (i, j), v in np.ndenumerate(m):
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.03, label="test accuracy (recall)")
    return _png(fig)


def accuracy_bars(
    scores: dict[str, float], colors: dict[str, tuple], chance: float, title: str
) -> bytes:
    """Test accuracy of every model, best first, with chance level marked."""
    names = sorted(scores, key=lambda n: scores[n])
    fig, ax = _figure(figsize=(8, 1.2 + 0.4 * len(names)))
    bars = ax.barh(names, [scores[n] for n in names], color=[colors[n] for n in names])
    ax.bar_label(bars, fmt="%.3f", padding=3, fontsize=8)
    ax.axvline(chance, color="black", linestyle=":", zorder=0, label=f"chance ({chance:.2f})")
    ax.set(xlim=(0, 1.08), xlabel="test accuracy", ylabel="model", title=title)
    ax.legend(loc="lower right", fontsize=8)
    return _png(fig)


def learning_curves(
    histories: dict[str, dict[str, list[float]]], colors: dict, title: str
) -> bytes:
    """Loss and accuracy per epoch: one colour per model, train solid, validation dashed."""
    fig, axes = _figure(ncols=2, figsize=(11, 4.2))
    for key, ax in zip(("loss", "accuracy"), axes, strict=True):
        for name, history in histories.items():
            for prefix, style in (("", "-"), ("val_", "--")):
                values = history.get(f"{prefix}{key}", [])
                which = "validation" if prefix else "train"
                ax.plot(np.arange(1, len(values) + 1), values, style, marker="o", markersize=3,
                        color=colors.get(name), label=f"{name} ({which})")  # fmt: skip
        ax.set(xlabel="epoch", ylabel=key, title=f"{key} per epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle(title)
    return _png(fig)


def prediction_grid(
    images, labels, preds, classes: list[str], title: str, n: int = 40,
    fine_to_coarse: list[int] | None = None,
) -> bytes:  # fmt: skip
    """Test images titled with their prediction; wrong ones framed and titled in red. With
    CIFAR-100's `fine_to_coarse`, a wrong class in the right superclass is orange instead."""
    n = min(len(images), len(preds), n)
    cols = 8
    rows = max(1, -(-n // cols))
    fig, axes = _figure(nrows=rows, ncols=cols, figsize=(cols * 1.45, rows * 1.75))
    wrong = 0
    for i, ax in enumerate(np.atleast_1d(axes).ravel()):
        ax.set(xticks=[], yticks=[])
        if i >= n:
            ax.axis("off")
            continue
        ok = int(preds[i]) == int(labels[i])
        wrong += not ok
        ax.imshow(images[i], interpolation="nearest")
        near = fine_to_coarse and fine_to_coarse[int(preds[i])] == fine_to_coarse[int(labels[i])]
        color = RIGHT if ok else NEAR if near else WRONG
        text = classes[preds[i]] if ok else f"✗ {classes[preds[i]]}\ntrue: {classes[labels[i]]}"
        ax.set_title(text, fontsize=7.5, color=color)
        for spine in ax.spines.values():
            spine.set(color=color, linewidth=1 if ok else 3)
    legend = "red, with the true class" + ("; orange: right superclass" if fine_to_coarse else "")
    fig.suptitle(f"{title}: {wrong} of {n} wrong ({legend})")
    return _png(fig)


def embedding_maps(maps: dict[str, tuple[list, list]], classes: list[str], title: str) -> bytes:
    """One scatter panel per method (PCA, t-SNE), points coloured by true class."""
    wide = len(classes) > 10  # CIFAR-100's 20 superclasses: 20 colours, a longer legend
    fig, axes = _figure(ncols=len(maps), figsize=(6.2 * len(maps) + (3.2 if wide else 1.6), 5.6),
                        squeeze=False)  # fmt: skip
    cmap, ncolors = (plt.get_cmap("tab20"), 20) if wide else (plt.get_cmap("tab10"), 10)
    for ax, (method, (xy, labels)) in zip(axes[0], maps.items(), strict=True):
        pts, lab = np.asarray(xy, dtype=float).reshape(-1, 2), np.asarray(labels)
        for c, name in enumerate(classes):
            sel = lab == c
            ax.scatter(pts[sel, 0], pts[sel, 1], s=6, color=cmap(c % ncolors), label=name,
                       alpha=0.7)  # fmt: skip
        ax.set(xlabel=f"{method} 1", ylabel=f"{method} 2", title=f"{method} ({len(lab)} points)")
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, markerscale=3, fontsize=8, loc="outside right center")
    fig.suptitle(title)
    return _png(fig)


def embedding_sources(res: dict) -> dict[str, tuple[list, list]]:
    """PCA always; t-SNE when the results carry one shaped like the PCA map."""
    maps = {"PCA": (res["embedding_2d"]["xy"], res["embedding_2d"]["labels"])}
    tsne = res.get("embedding_tsne")
    if isinstance(tsne, dict) and _same_shape(tsne, res["embedding_2d"]):
        maps["t-SNE"] = (tsne["xy"], tsne["labels"])
    return maps


def _same_shape(a: dict, b: dict) -> bool:
    try:
        xy = np.asarray(a["xy"], dtype=float)
        return (
            xy.ndim == 2 and xy.shape[1] == 2 and len(a["labels"]) == len(xy) and set(a) == set(b)
        )
    except (KeyError, TypeError, ValueError):
        return False


def _report_colors(metrics: dict) -> dict[str, tuple]:
    names = [HEAD]
    for res in metrics["backbones"].values():
        names += [n for n in res["models"] if n not in names]
    return model_colors(names)


def report_figures(
    metrics: dict, preview: dict | None, previews: dict[str, dict | None] | None = None
) -> dict[str, bytes]:
    """Every figure of the report, by file stem, from metrics.json and the test preview
    (`previews`: one per dataset, where OUT holds more than CIFAR-10)."""
    colors, figures = _report_colors(metrics), {}
    for b, res in metrics["backbones"].items():
        shown = preview if previews is None else previews.get(res.get("dataset", "cifar10"))
        figures.update({f"{b}-{k}": v for k, v in _backbone_figures(b, res, colors, shown)})
    if len(metrics["backbones"]) > 1:
        from cifar_ray.report import speed_plot

        figures["comparison"] = speed_plot.accuracy_vs_speed(
            speed_plot.speed_panels(metrics), colors, "test accuracy against extraction speed"
        )
    return figures


def _backbone_figures(
    b: str, res: dict, colors: dict, preview: dict | None
) -> Iterator[tuple[str, bytes]]:
    classes, models = res["classes"], models_of(res)
    head = models[HEAD]
    scores = {n: m.test_accuracy for n, m in models.items()}
    yield "accuracy", accuracy_bars(scores, colors, 1 / len(classes), f"{b}: test accuracy")
    histories = {n: m.history for n, m in models.items() if m.history}
    yield "learning-curves", learning_curves(histories, colors, f"{b}: learning curves")
    if groups.has_superclasses(res):
        yield from _superclass_figures(b, res, preview)
        return
    yield "confusion", confusion(head.test["confusion"], classes, f"{b}: dense head, test")
    recalls = {n: m.per_class for n, m in models.items()}
    yield "per-class", per_class(recalls, classes, f"{b}: per-class test accuracy")
    if preview is not None:
        yield "predictions", prediction_grid(
            preview["images"], preview["labels"], head.sample_predictions, classes,
            f"{b}: dense head on the first test images",
        )  # fmt: skip
    maps = embedding_sources(res)
    yield "embedding", embedding_maps(maps, classes, f"{b}: test features coloured by true class")


def _superclass_figures(b: str, res: dict, preview: dict | None) -> Iterator[tuple[str, bytes]]:
    """CIFAR-100: the confusion matrix and per-class accuracy over the 20 superclasses, the
    prediction grid framed by superclass, the embedding coloured by superclass."""
    supers, mapping, models = res["superclasses"], res["fine_to_coarse"], models_of(res)
    n = len(supers)
    head = models[HEAD]
    matrix = groups.superclass_confusion(head.test["confusion"], mapping, n)
    yield "confusion", confusion(matrix, supers, f"{b}: dense head, test, superclass",
                                 what="superclass")  # fmt: skip
    recalls = {name: groups.per_superclass(m.test["confusion"], mapping, n)
               for name, m in models.items() if m.test.get("confusion")}  # fmt: skip
    yield "per-class", per_class(recalls, supers, f"{b}: test accuracy per superclass",
                                 what="superclass (fine-label accuracy of its images)")  # fmt: skip
    if preview is not None:
        yield "predictions", prediction_grid(
            preview["images"], preview["labels"], head.sample_predictions, res["classes"],
            f"{b}: dense head on the first test images", fine_to_coarse=list(mapping),
        )  # fmt: skip
    to_super = np.asarray(mapping)
    maps = {k: (xy, to_super[np.asarray(lab, dtype=np.int64)].tolist())
            for k, (xy, lab) in embedding_sources(res).items()}  # fmt: skip
    yield "embedding", embedding_maps(maps, supers, f"{b}: test features coloured by superclass")
