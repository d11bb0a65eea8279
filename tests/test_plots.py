"""Report figures: each PNG decodes at its intended size, and the figure behind it has the
promised panels, titles, labels and written-in values (read from the matplotlib objects)."""

from __future__ import annotations

import io

import matplotlib
import numpy as np
import pytest
from matplotlib.colors import to_hex
from PIL import Image

from cifar_ray.report import plots, speed_plot
from cifar_ray.train.results import PIXEL_KIND

CLASSES = ["plane", "car", "bird"]
FIGURES: list = []  # every figure pyplot makes while `drawn` is active (rcParams figure.hooks)


@pytest.fixture
def drawn():
    FIGURES.clear()
    with matplotlib.rc_context({"figure.hooks": [f"{__name__}:FIGURES.append"]}):
        yield FIGURES
    FIGURES.clear()


def _png(data: bytes, size_in: tuple[float, float]) -> None:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        assert image.size == (round(size_in[0] * plots.DPI), round(size_in[1] * plots.DPI))


def _texts(ax) -> dict[str, str]:
    return {t.get_text(): t.get_color() for t in ax.texts}


def test_confusion_writes_every_count_and_names_the_classes(drawn):
    data = plots.confusion([[5, 1, 0], [2, 3, 0], [0, 0, 9]], CLASSES, "toy")
    _png(data, (7.5, 6.5))
    (fig,) = drawn
    ax, bar = fig.axes  # the matrix and its colour bar
    assert ax.get_title() == "toy confusion matrix"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted class", "true class")
    assert [t.get_text() for t in ax.get_xticklabels()] == CLASSES
    assert [t.get_text() for t in ax.get_yticklabels()] == CLASSES
    assert [t.get_text() for t in ax.texts] == ["5", "1", "0", "2", "3", "0", "0", "0", "9"]
    colors = [t.get_color() for t in ax.texts]
    assert colors[0] == "white" and colors[-1] == "white" and colors[1] == "black"  # > max/2
    assert bar.get_ylabel() == "test images"


def test_per_class_is_a_model_by_class_grid_on_a_fixed_scale(drawn):
    recalls = {"dense_head": [0.9, 0.5, 0.125], "logreg": [0.3, 0.2, 1.0]}
    _png(plots.per_class(recalls, CLASSES, "per class"), (9.5, 1.4 + 0.45 * 2))
    ax = drawn[0].axes[0]
    assert ax.get_title() == "per class"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["dense_head", "logreg"]
    assert [t.get_text() for t in ax.texts] == ["0.90", "0.50", "0.12", "0.30", "0.20", "1.00"]
    assert ax.images[0].get_clim() == (0, 1)  # colours mean the same in every report


def test_accuracy_bars_best_on_top_with_chance_marked(drawn):
    scores = {"logreg": 0.61, "dense_head": 0.9, "pixel_mlp": 0.2}
    colors = plots.model_colors(["dense_head", "logreg", "pixel_mlp"])
    _png(plots.accuracy_bars(scores, colors, 0.1, "acc"), (8, 1.2 + 0.4 * 3))
    ax = drawn[0].axes[0]
    names = [t.get_text() for t in ax.get_yticklabels()]
    assert names == ["pixel_mlp", "logreg", "dense_head"]  # bottom to top: best on top
    widths = [p.get_width() for p in ax.patches]
    assert widths == [0.2, 0.61, 0.9]
    assert [to_hex(p.get_facecolor()) for p in ax.patches] == [to_hex(colors[n]) for n in names]
    assert [t.get_text() for t in ax.texts] == ["0.200", "0.610", "0.900"]
    (chance,) = ax.lines
    assert list(chance.get_xdata()) == [0.1, 0.1]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["chance (0.10)"]


def test_learning_curves_two_panels_train_solid_validation_dashed(drawn):
    histories = {
        "dense_head": {"loss": [2, 1, 0.5], "val_loss": [2.1, 1.2, 0.9],
                       "accuracy": [0.2, 0.5, 0.7], "val_accuracy": [0.2, 0.4, 0.6]},
        "pixel_cnn": {"loss": [2.2, 1.9], "accuracy": [0.1, 0.3]},
    }  # fmt: skip
    colors = plots.model_colors(list(histories))
    _png(plots.learning_curves(histories, colors, "curves"), (11, 4.2))
    fig = drawn[0]
    assert fig.get_suptitle() == "curves"
    loss, acc = fig.axes
    assert (loss.get_title(), acc.get_title()) == ("loss per epoch", "accuracy per epoch")
    lines = {line.get_label(): line for line in loss.lines}
    assert list(lines["dense_head (train)"].get_ydata()) == [2, 1, 0.5]
    assert list(lines["dense_head (validation)"].get_xdata()) == [1, 2, 3]  # epochs from 1
    assert lines["dense_head (train)"].get_linestyle() == "-"
    assert lines["dense_head (validation)"].get_linestyle() == "--"
    assert to_hex(lines["pixel_cnn (train)"].get_color()) == to_hex(colors["pixel_cnn"])
    assert acc.get_legend() is not None and loss.get_legend() is None


def test_prediction_grid_counts_and_marks_the_wrong_ones(drawn):
    images = np.zeros((5, 32, 32, 3), dtype=np.uint8)
    labels, preds = [0, 1, 2, 1, 0], [0, 2, 2, 0, 0]
    _png(plots.prediction_grid(images, labels, preds, CLASSES, "grid"), (8 * 1.45, 1.75))
    fig = drawn[0]
    assert fig.get_suptitle() == "grid: 2 of 5 wrong (red, with the true class)"
    assert len(fig.axes) == 8
    titles = [(ax.get_title(), ax.title.get_color()) for ax in fig.axes[:5]]
    assert titles[0] == ("plane", plots.RIGHT)
    assert titles[1] == ("✗ bird\ntrue: car", plots.WRONG)
    assert titles[3] == ("✗ plane\ntrue: car", plots.WRONG)
    assert [ax.axison for ax in fig.axes[5:]] == [False] * 3  # empty cells hidden


def test_prediction_grid_shows_at_most_n(drawn):
    images = np.zeros((50, 8, 8, 3), dtype=np.uint8)
    plots.prediction_grid(images, [0] * 50, [0] * 50, CLASSES, "many", n=17)
    fig = drawn[0]
    assert len(fig.axes) == 24 and sum(bool(ax.images) for ax in fig.axes) == 17
    assert fig.get_suptitle() == "many: 0 of 17 wrong (red, with the true class)"


def test_embedding_maps_one_panel_per_method_with_a_class_legend(drawn):
    xy = np.arange(12, dtype=float).reshape(6, 2).tolist()
    maps = {"PCA": (xy, [0, 1, 2, 0, 1, 2]), "t-SNE": (xy[:3], [2, 2, 1])}
    _png(plots.embedding_maps(maps, CLASSES, "maps"), (6.2 * 2 + 1.6, 5.6))
    fig = drawn[0]
    assert [ax.get_title() for ax in fig.axes] == ["PCA (6 points)", "t-SNE (3 points)"]
    assert fig.axes[1].get_xlabel() == "t-SNE 1"
    assert [len(c.get_offsets()) for c in fig.axes[0].collections] == [2, 2, 2]
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == CLASSES


def test_accuracy_vs_speed_labels_backbones_and_draws_pixel_models_flat(drawn):
    colors = plots.model_colors(["dense_head", "logreg", "pixel_cnn"])
    points = [("inceptionv3", 35.0, {"dense_head": 0.8, "logreg": 0.7}),
              ("mobilenetv2", 240.0, {"dense_head": 0.6, "logreg": 0.65})]  # fmt: skip
    panel = speed_plot.Panel("cifar10", 0.1, points, {"pixel_cnn": 0.4})
    speed_plot.accuracy_vs_speed([panel], colors, "speed")
    ax = drawn[0].axes[0]
    notes = {t.get_text(): t.xy for t in ax.texts}
    assert notes == {"inceptionv3": (35.0, 0.8), "mobilenetv2": (240.0, 0.65)}  # above the best
    (legend,) = drawn[0].legends
    assert [t.get_text() for t in legend.get_texts()] == [
        "dense_head", "logreg", "pixel_cnn (raw pixels)", "chance"]  # each once  # fmt: skip
    assert [list(line.get_ydata()) for line in ax.lines] == [[0.4, 0.4], [0.1, 0.1]]


def test_two_datasets_get_a_panel_each_with_their_own_pixel_lines_and_chance(drawn):
    def res(dataset, classes, speed, head, pixel):
        models = {"dense_head": {"kind": "head", "accuracy": {"test": head}},
                  "pixel_mlp": {"kind": PIXEL_KIND, "accuracy": {"test": pixel}}}  # fmt: skip
        return {"dataset": dataset, "classes": list(range(classes)), "models": models,
                "extraction": {"images_per_s": speed}}  # fmt: skip

    metrics = {
        "backbones": {
            "inceptionv3": res("cifar10", 10, 30.0, 0.8, 0.4),
            "resnet50": res("cifar10", 10, 50.0, 0.7, 0.4),
            "inceptionv3@cifar100": res("cifar100", 100, 31.0, 0.5, 0.15),
        }
    }
    panels = speed_plot.speed_panels(metrics)  # fmt: skip
    assert [(p.dataset, p.chance, p.flat) for p in panels] == [
        ("cifar10", 0.1, {"pixel_mlp": 0.4}), ("cifar100", 0.01, {"pixel_mlp": 0.15})]  # fmt: skip
    speed_plot.accuracy_vs_speed(panels, plots.model_colors(["dense_head", "pixel_mlp"]), "t")
    ten, hundred = drawn[0].axes
    assert [ax.get_title() for ax in (ten, hundred)] == ["cifar10 (chance 0.1)",
                                                         "cifar100 (chance 0.01)"]  # fmt: skip
    assert [list(line.get_ydata()) for line in ten.lines] == [[0.4, 0.4], [0.1, 0.1]]
    assert [list(line.get_ydata()) for line in hundred.lines] == [[0.15, 0.15], [0.01, 0.01]]
    assert {t.get_text() for t in hundred.texts} == {"inceptionv3@cifar100"}


def test_embedding_sources_keeps_only_a_tsne_shaped_like_the_pca():
    pca = {"xy": [[0, 0], [1, 1]], "labels": [0, 1], "method": "pca"}
    good = {"xy": [[2, 2], [3, 3]], "labels": [1, 0], "method": "tsne"}
    assert list(plots.embedding_sources({"embedding_2d": pca})) == ["PCA"]
    both = plots.embedding_sources({"embedding_2d": pca, "embedding_tsne": good})
    assert both == {"PCA": (pca["xy"], pca["labels"]), "t-SNE": (good["xy"], good["labels"])}
    for bad in ({**good, "xy": [[1, 2, 3]]}, {**good, "labels": [1]}, {"xy": "x"},
                {**good, "xy": [["a", "b"], [1, 2]]}, [1, 2],
                {"xy": good["xy"], "labels": good["labels"]}):  # fmt: skip
        assert list(plots.embedding_sources({"embedding_2d": pca, "embedding_tsne": bad})) == [
            "PCA"
        ]


def test_model_colors_are_stable_and_distinct_up_to_ten():
    names = [f"m{i}" for i in range(12)]
    colors = plots.model_colors(names)
    assert colors == plots.model_colors(names)
    assert len({colors[n] for n in names[:10]}) == 10
    assert colors["m10"] == colors["m0"]  # tab10 wraps


def _backbone(models: list[str], speed: float) -> dict:
    def model(acc: float) -> dict:
        return {"accuracy": {"test": acc}, "test": {"confusion": np.eye(3, dtype=int).tolist(),
                "recall": [acc] * 3}, "sample_predictions": [0, 1, 2],
                "history": {"loss": [1.0, acc]}}  # fmt: skip

    return {
        "classes": CLASSES, "extraction": {"images_per_s": speed},
        "models": {name: model(0.3 + 0.1 * i) for i, name in enumerate(models)},
        "embedding_2d": {"xy": [[0, 0], [1, 1], [2, 2]], "labels": [0, 1, 2]},
    }  # fmt: skip


def test_a_model_has_one_colour_across_every_backbone_of_a_report(drawn):
    metrics = {"backbones": {"a": _backbone(["dense_head", "knn_cosine", "logreg"], 10.0),
                             "b": _backbone(["logreg", "dense_head"], 20.0)}}  # fmt: skip
    preview = {"images": np.zeros((3, 4, 4, 3), np.uint8), "labels": [0, 1, 1]}
    figures = plots.report_figures(metrics, preview)
    assert set(figures) == {f"{b}-{k}" for b in "ab" for k in ("accuracy", "learning-curves",
                            "confusion", "per-class", "predictions", "embedding")} | {
        "comparison"
    }  # fmt: skip
    bars = {}
    for fig in drawn:
        if fig.axes and fig.axes[0].get_title().endswith(": test accuracy"):
            ax = fig.axes[0]
            for label, patch in zip(ax.get_yticklabels(), ax.patches, strict=True):
                bars.setdefault(label.get_text(), set()).add(to_hex(patch.get_facecolor()))
    assert set(bars) == {"dense_head", "knn_cosine", "logreg"}
    assert all(len(c) == 1 for c in bars.values())  # the same colour in both backbones' bars
    assert len(set().union(*bars.values())) == 3
