"""What the report says, section by section, as blocks of text, tables and figure names:
the one content both report.md and report.html render (`report.render`)."""

from __future__ import annotations

import time

from cifar_ray.report import groups, plots
from cifar_ray.store.layout import DEFAULT_DATASET, SAMPLES, Layout
from cifar_ray.train.results import HEAD, SPLITS, models_of

Block = tuple  # ("h3", text) | ("p", text) | ("table", header, rows) | ("fig", figure name)
EXTRACTION_ROWS = ("weights", "image_size", "preprocessing", "versions", "images", "seconds",
                   "images_per_s", "actors_replaced")  # fmt: skip
CHOSEN = ("C", "alpha", "k", "best_epoch")  # what validation chose, of each model's params
SECTIONS = {  # HTML id -> heading, in report order
    "accuracy": "Accuracy against the baselines",
    "learning-curves": "Learning curves",
    "confusion": "Confusion matrix (dense head)",
    "per-class": "Per-class accuracy",
    "predictions": "Predictions on test images",
    "embedding": "Embedding map",
    "comparison": "Backbone comparison",
    "run": "Run",
}


def dataset_of(res: dict) -> str:
    """The dataset a results.json was trained on."""
    return res.get("dataset", DEFAULT_DATASET)  # results written before datasets: CIFAR-10


def _fmt(value, digits: int | None = 4) -> str:
    """Table text: fixed decimals for scores and timings, shortest form for settings."""
    if value is None or value == "":
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if digits is not None else f"{value:g}"
    if isinstance(value, dict):  # settings: "train 36, val 4", not JSON
        return ", ".join(f"{k} {_fmt(v, digits)}" for k, v in value.items()) or "n/a"
    if isinstance(value, list):
        return ", ".join(_fmt(v, digits) for v in value) or "n/a"
    return str(value)


def build_sections(metrics: dict, figures: dict) -> list[tuple[str, str, list[Block]]]:
    """(id, title, blocks) for each section; the per-backbone ones get a subheading each."""
    builders = {
        "accuracy": _accuracy_blocks,
        "learning-curves": _learning_blocks,
        "confusion": _confusion_blocks,
        "per-class": _per_class_blocks,
        "predictions": _prediction_blocks,
        "embedding": _embedding_blocks,
    }
    sections = []
    for sid, build in builders.items():
        blocks = []
        for b, res in metrics["backbones"].items():
            blocks += [("h3", b), *build(b, res, figures)]
        sections.append((sid, SECTIONS[sid], blocks))
    sections.append(("comparison", SECTIONS["comparison"], _comparison_blocks(metrics)))
    sections.append(("run", SECTIONS["run"], _run_blocks(metrics)))
    return sections


def _accuracy_blocks(b: str, res: dict, figures: dict) -> list[Block]:
    ranked = sorted(models_of(res).items(), key=lambda kv: -kv[1].test_accuracy)
    header = ["model", "kind", "train acc", "val acc", "test acc", "fit s", "infer s"]
    rows = [
        [n, m.kind, *(_fmt(m.accuracy[k]) for k in SPLITS), _fmt(m.fit_s, 1), _fmt(m.infer_s, 2)]
        for n, m in ranked
    ]
    counts = ", ".join(f"{k} {v}" for k, v in res["sizes"].items())
    note = (
        f"Dataset: {dataset_of(res)}, {len(res['classes'])} classes. Images: {counts}. Chance: "
        f"{1 / len(res['classes']):.3f}. Model selection and early stopping see validation "
        "only; test is scored once."
    )
    if groups.has_superclasses(res):
        header.append("superclass acc")
        supers = len(res["superclasses"])
        for row, (_, m) in zip(rows, ranked, strict=True):
            matrix = m.test.get("confusion")
            score = matrix and groups.superclass_accuracy(matrix, res["fine_to_coarse"], supers)
            row.append(_fmt(score))
        note += (
            f" Superclass acc: the share of test images whose predicted class is in their "
            f"true superclass (of {supers}; chance {1 / supers:.3f})."
        )
    header.append("chosen on validation")
    for row, (_, m) in zip(rows, ranked, strict=True):
        row.append(_chosen(m.params))
    warning = [("p", f"Warning: {res['feature_warning']}.")] if res.get("feature_warning") else []
    return [*warning, ("p", note), ("table", header, rows), ("fig", f"{b}-accuracy")]


def _chosen(params: dict) -> str:
    """A model's chosen hyper-parameters (C, alpha, k; the head's best epoch), as text."""
    shown = {k: v for k, v in params.items() if k in CHOSEN}
    return ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}"
                     for k, v in shown.items()) or "n/a"  # fmt: skip


def _confusion_blocks(b: str, res: dict, figures: dict) -> list[Block]:
    """CIFAR-10: the class matrix. CIFAR-100: the superclass matrix (its 100x100 class matrix
    is in metrics.json) and the class pairs the dense head mixes up most."""
    if not groups.has_superclasses(res):
        return [("fig", f"{b}-confusion")]
    classes, supers = res["classes"], res["superclasses"]
    mapping = res["fine_to_coarse"]
    matrix = models_of(res)[HEAD].test["confusion"]
    note = (
        f"{len(supers)} superclasses: each prediction is mapped to its superclass. The "
        f"{len(classes)}x{len(classes)} class matrix is in metrics.json; the class pairs "
        "confused most often follow."
    )
    header = ["true class", "predicted class", "test images", "share of true class",
              "same superclass"]  # fmt: skip
    rows = [
        [classes[i], classes[j], n, _fmt(share, 3),
         supers[mapping[i]] if mapping[i] == mapping[j] else "no"]
        for i, j, n, share in groups.confused_pairs(matrix)
    ]  # fmt: skip
    pairs = [("table", header, rows)] if rows else [("p", "The dense head confused no pair.")]
    return [("p", note), ("fig", f"{b}-confusion"), ("h3", f"{b}: most-confused class pairs"),
            *pairs]  # fmt: skip


def _learning_blocks(b: str, res: dict, figures: dict) -> list[Block]:
    flat = [n for n, m in models_of(res).items() if not m.history]
    note = [("p", f"No per-epoch history (fitted in one go): {', '.join(flat)}.")] if flat else []
    return [("fig", f"{b}-learning-curves"), *note]


def _per_class_blocks(b: str, res: dict, figures: dict) -> list[Block]:
    models = models_of(res)
    if groups.has_superclasses(res):
        return _per_superclass_blocks(b, res, models)
    rows = [
        [c, *(_fmt(m.per_class[i], 3) for m in models.values())]
        for i, c in enumerate(res["classes"])
    ]
    return [("fig", f"{b}-per-class"), ("table", ["class", *models], rows)]


def _per_superclass_blocks(b: str, res: dict, models: dict) -> list[Block]:
    """CIFAR-100: fine-label accuracy over each superclass's test images, every model."""
    supers, mapping = res["superclasses"], res["fine_to_coarse"]
    scored = {n: groups.per_superclass(m.test["confusion"], mapping, len(supers))
              for n, m in models.items() if m.test.get("confusion")}  # fmt: skip
    members = [[] for _ in supers]
    for fine, coarse in enumerate(mapping):
        members[coarse].append(res["classes"][fine])
    rows = [
        [s, *(_fmt(v[i], 3) for v in scored.values()), ", ".join(members[i])]
        for i, s in enumerate(supers)
    ]
    note = (
        "Per superclass: the share of its test images whose class (of "
        f"{len(res['classes'])}) each model got right. Per-class values are in metrics.json."
    )
    return [("p", note), ("fig", f"{b}-per-class"),
            ("table", ["superclass", *scored, "classes"], rows)]  # fmt: skip


def _prediction_blocks(b: str, res: dict, figures: dict) -> list[Block]:
    if f"{b}-predictions" in figures:
        return [("fig", f"{b}-predictions")]
    preview = Layout.preview_name(dataset_of(res))
    return [("p", f"No test preview (OUT/{SAMPLES}/{preview}) was found.")]


def _embedding_blocks(b: str, res: dict, figures: dict) -> list[Block]:
    n = len(res["embedding_2d"]["xy"])
    methods = ", ".join(plots.embedding_sources(res))
    by = "superclass" if groups.has_superclasses(res) else "true class"
    note = f"{methods} of {n} test images' features, coloured by their {by}."
    return [("fig", f"{b}-embedding"), ("p", note)]


def _comparison_blocks(metrics: dict) -> list[Block]:
    rows = metrics["comparison"]
    if len(rows) < 2:
        return [("p", "One backbone only; extract and train several to compare them here.")]
    fixed = ["backbone", "dim", "images_per_s", "extraction_s"]
    shown = ["backbone", "feature dim", "images/s", "extraction s"]
    if any("dataset" in r for r in rows):  # more than one dataset under OUT
        fixed, shown = ["dataset", *fixed], ["dataset", *shown]
    names = [HEAD, *sorted({k for r in rows for k in r} - {HEAD, *fixed})]
    header = [*shown, *names]
    table = [[_fmt(r[k], 1) for k in fixed] + [_fmt(r.get(n)) for n in names] for r in rows]
    return [("table", header, table), ("fig", "comparison")]


def _settings(res: dict, feature_fingerprint: dict) -> dict:
    """One backbone's run settings, by row label, in table order."""
    extraction = {**feature_fingerprint, **res["extraction"]}
    rows = {"dataset": dataset_of(res), "fingerprint": res["fingerprint"], "dim": res["dim"],
            "sizes": res["sizes"]}  # fmt: skip
    rows.update({f"extraction {k}": extraction.get(k) for k in EXTRACTION_ROWS})
    rows.update({f"train {k}": v for k, v in res["train_config"].items() if k != "backbone"})
    return rows


def _run_blocks(metrics: dict) -> list[Block]:
    prints = metrics["feature_fingerprints"]
    per = {b: _settings(res, prints.get(b, {})) for b, res in metrics["backbones"].items()}
    labels = list(dict.fromkeys(label for rows in per.values() for label in rows))
    table = [[label, *(_fmt(rows.get(label), None) for rows in per.values())] for label in labels]
    generated = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(metrics["generated_unix"]))
    return [
        ("p", f"Generated {generated}. Every number comes from metrics.json beside this file."),
        ("table", ["setting", *per], table),
        ("h3", "Library versions"),
        ("table", ["library", "version"], [[k, v] for k, v in metrics["versions"].items()]),
    ]
