"""OUT/report/: metrics.json (the truth), then report.md and a self-contained report.html."""

from __future__ import annotations

import base64
import html
import json
import time

from cifar_ray.embed import fingerprint
from cifar_ray.errors import UserError, first_line
from cifar_ray.report import groups, plots
from cifar_ray.store import locations, samples
from cifar_ray.store.features import FeatureStore
from cifar_ray.store.layout import (
    DEFAULT_DATASET,
    FINGERPRINT,
    SAMPLES,
    Layout,
    backbone_of,
)
from cifar_ray.store.locations import Location
from cifar_ray.store.records import corrupt
from cifar_ray.train.results import HEAD, SPLITS, models_of

Block = tuple  # ("h3", text) | ("p", text) | ("table", header, rows) | ("fig", figure name)
EXTRACTION_ROWS = ("weights", "image_size", "preprocessing", "versions", "images", "seconds",
                   "images_per_s", "actors_replaced")  # fmt: skip
# What every results.json has (`train.runner`) and the report reads, with its JSON type.
RESULT_KEYS = {"backbone": str, "fingerprint": str, "dim": int, "classes": list, "sizes": dict,
               "train_config": dict, "extraction": dict, "models": dict,
               "embedding_2d": dict}  # fmt: skip
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


def collect(loc: Location) -> dict:
    layout = Layout(loc)
    found = sorted(
        p for p in locations.list_files(loc, layout.models_dir()) if layout.is_results(p)
    )
    if not found:
        raise UserError(f"{loc.uri}: no trained models; run `cifar-ray train` first")
    results = {}
    for path in found:
        res = _read_results(loc, path)
        results[res["backbone"]] = res
    return results


def _dataset(res: dict) -> str:
    return res.get("dataset", DEFAULT_DATASET)  # results written before datasets: CIFAR-10


def _read_results(loc: Location, path: str) -> dict:
    """One results.json, checked for what the report reads first: a file that is not JSON,
    or not one backbone's results with at least one model, is one line naming it."""
    recover = "re-run `cifar-ray train` to rewrite it"
    raw = locations.get_bytes(loc, path)
    try:
        res = json.loads(raw) if raw is not None else None
    except ValueError as exc:
        raise corrupt(path, f"not JSON ({first_line(exc, typed=False)})", recover) from None
    if not isinstance(res, dict):
        raise corrupt(path, f"expected a JSON object, got {type(res).__name__}", recover)
    missing = [k for k, t in RESULT_KEYS.items() if not isinstance(res.get(k), t)]
    if missing:
        raise corrupt(path, f"missing or wrong type: {', '.join(missing)}", recover)
    try:
        models = models_of(res)
        scores = [m.test_accuracy for m in models.values()]
    except (AttributeError, KeyError, TypeError) as exc:
        raise corrupt(path, f"a model record lacks {first_line(exc)}", recover) from None
    if not models or not all(isinstance(a, int | float) for a in scores):
        raise corrupt(path, "no model with a test accuracy", recover)
    return res


def comparison(results: dict) -> list[dict]:
    """One row per store. Where OUT holds more than one dataset, rows gain a "dataset" column
    (first), name the backbone alone, and are ordered by dataset."""
    several = len({_dataset(res) for res in results.values()}) > 1
    rows = []
    for backbone, res in results.items():
        row = {"dataset": _dataset(res), "backbone": backbone_of(backbone)} if several else {}
        row |= {
            "backbone": row.get("backbone", backbone),
            "dim": res["dim"],
            "images_per_s": res["extraction"].get("images_per_s"),
            "extraction_s": res["extraction"].get("seconds"),
        }
        row.update({name: m.test_accuracy for name, m in models_of(res).items()})
        rows.append(row)
    return sorted(rows, key=lambda r: r["dataset"]) if several else rows


def write(out: str) -> str:
    loc = Location(out)
    results = collect(loc)
    metrics = {
        "generated_unix": int(time.time()),
        "versions": fingerprint.versions(),
        "backbones": results,
        "comparison": comparison(results),
        "feature_fingerprints": {b: _feature_fingerprint(loc, b) for b in results},
    }
    put = Layout(loc).report_file
    locations.put_atomic(loc, put("metrics.json"), json.dumps(metrics, indent=1).encode())
    datasets = dict.fromkeys(_dataset(res) for res in results.values())
    previews = {name: samples.read_preview(loc, name) for name in datasets}
    figures = plots.report_figures(metrics, None, previews)
    for name, png in figures.items():
        locations.put_atomic(loc, put(f"{name}.png"), png)
    sections = _sections(metrics, figures)
    locations.put_atomic(loc, put("report.md"), _markdown(sections).encode())
    locations.put_atomic(loc, put("report.html"), _html(sections, figures).encode())
    return put("report.html")


def _feature_fingerprint(loc: Location, backbone: str) -> dict:
    """What the report shows of the extraction settings: a corrupt file shows nothing
    (`inspect` and `extract` name it) rather than stopping the report."""
    try:
        return FeatureStore(loc, backbone).read_json(FINGERPRINT) or {}
    except UserError:
        return {}


def _fmt(value, digits: int | None = 4) -> str:
    """Table text: fixed decimals for scores and timings, shortest form for settings."""
    if value is None or value == "":
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if digits is not None else f"{value:g}"
    return json.dumps(value) if isinstance(value, dict | list) else str(value)


def _sections(metrics: dict, figures: dict) -> list[tuple[str, str, list[Block]]]:
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
        f"Dataset: {_dataset(res)}, {len(res['classes'])} classes. Images: {counts}. Chance: "
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
    return [("p", note), ("table", header, rows), ("fig", f"{b}-accuracy")]


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
    preview = Layout.preview_name(_dataset(res))
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
    rows = {"dataset": _dataset(res), "fingerprint": res["fingerprint"], "dim": res["dim"],
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


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|")


def _markdown(sections: list) -> str:
    lines = ["# cifar-ray report", ""]
    for _, title, blocks in sections:
        lines += [f"## {title}", ""]
        for kind, *args in blocks:
            if kind == "table":
                header, rows = args
                lines += ["| " + " | ".join(map(_cell, header)) + " |", "|" + "---|" * len(header)]
                lines += ["| " + " | ".join(map(_cell, r)) + " |" for r in rows]
            else:
                text = args[0]
                lines.append(
                    {"h3": f"### {text}", "p": text, "fig": f"![{text}]({text}.png)"}[kind]
                )
            lines.append("")
    return "\n".join(lines)


def _html_block(kind: str, args: list, figures: dict) -> str:
    esc = html.escape
    if kind == "table":
        header, rows = args
        head = "".join(f"<th>{esc(str(h))}</th>" for h in header)
        body = "".join(
            "<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in r) + "</tr>" for r in rows
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    if kind == "fig":
        data = base64.b64encode(figures[args[0]]).decode()
        title = esc(args[0].replace("-", " "))
        return f'<figure><img alt="{title}" src="data:image/png;base64,{data}"></figure>'
    return f"<{kind}>{esc(args[0])}</{kind}>"


def _html(sections: list, figures: dict) -> str:
    nav = "".join(f'<li><a href="#{sid}">{html.escape(t)}</a></li>' for sid, t, _ in sections)
    body = "".join(
        f'<section id="{sid}"><h2>{html.escape(title)}</h2>'
        + "".join(_html_block(kind, args, figures) for kind, *args in blocks)
        + "</section>"
        for sid, title, blocks in sections
    )
    style = (
        "body{font-family:sans-serif;max-width:1150px;margin:2em auto;color:#222;padding:0 1em}"
        "table{border-collapse:collapse;margin:.5em 0 1em}td,th{border:1px solid #ccc;"
        "padding:3px 9px;text-align:right}td:first-child,th:first-child{text-align:left}"
        "th{background:#f3f3f3}img{max-width:100%}figure{margin:.5em 0 1.5em}"
        "nav ul{display:flex;flex-wrap:wrap;gap:.3em 1.2em;list-style:none;padding:0}"
        "section{border-top:1px solid #ddd;margin-top:1.5em}"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>cifar-ray report</title><style>{style}</style></head><body>"
        f"<h1>cifar-ray report</h1><nav><ul>{nav}</ul></nav>{body}</body></html>\n"
    )
