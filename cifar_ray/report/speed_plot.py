"""The comparison figure: test accuracy against extraction speed, one panel per dataset, each
with its own raw-pixel lines and chance level (a CIFAR-100 pixel line across a CIFAR-10 point,
or chance 0.1 beside 0.01 on one axis, would compare what cannot be compared)."""

from __future__ import annotations

from dataclasses import dataclass, field

from cifar_ray.report.plots import _figure, _png
from cifar_ray.train.results import PIXEL_KIND, models_of

CHANCE_COLOR = "#757575"


@dataclass(frozen=True)
class Panel:
    """One dataset's stores: (store, images/s, backbone models' test accuracy) each, the
    raw-pixel models' accuracy (one value per model: the same for every store of it), chance."""

    dataset: str
    chance: float
    points: list[tuple[str, float, dict[str, float]]] = field(default_factory=list)
    flat: dict[str, float] = field(default_factory=dict)


def speed_panels(metrics: dict) -> list[Panel]:
    panels: dict[str, Panel] = {}
    for b, res in metrics["backbones"].items():
        dataset = res.get("dataset", "cifar10")
        panel = panels.setdefault(dataset, Panel(dataset, 1 / len(res["classes"])))
        scores = {}
        for name, m in models_of(res).items():
            target = panel.flat if m.kind == PIXEL_KIND else scores
            target[name] = m.test_accuracy
        panel.points.append((b, res["extraction"].get("images_per_s") or 0.0, scores))
    return list(panels.values())


def accuracy_vs_speed(panels: list[Panel], colors: dict, title: str) -> bytes:
    """Per panel, per store: each model's accuracy at its extraction speed; raw-pixel models
    and chance as lines. One legend: a model has one colour and marker in every panel."""
    fig, axes = _figure(ncols=len(panels), figsize=(2.0 + 6.5 * len(panels), 5), squeeze=False)
    markers = dict(zip(colors, "osD^vP*Xph", strict=False))
    handles = {}
    for ax, panel in zip(axes[0], panels, strict=True):
        for backbone, speed, scores in panel.points:
            for name, acc in scores.items():
                handles[name] = ax.scatter(speed, acc, s=50, color=colors.get(name), zorder=3,
                                           marker=markers.get(name, "o"), alpha=0.85)  # fmt: skip
            top = max(scores.values(), default=0.0)
            ax.annotate(backbone, (speed, top), textcoords="offset points", xytext=(0, 9),
                        ha="center", fontsize=9, weight="bold")  # fmt: skip
        for name, acc in panel.flat.items():
            handles[f"{name} (raw pixels)"] = ax.axhline(acc, color=colors.get(name),
                                                         linestyle=":")  # fmt: skip
        handles["chance"] = ax.axhline(panel.chance, color=CHANCE_COLOR, linestyle="--", lw=1)
        ax.set(xlabel="feature extraction speed (images/s)", ylabel="test accuracy",
               title=f"{panel.dataset} (chance {panel.chance:.2g})")  # fmt: skip
        ax.set_ylim(0, 1.12)
        ax.margins(x=0.15)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.legend(list(handles.values()), list(handles), fontsize=8, loc="outside right center")
    return _png(fig)
