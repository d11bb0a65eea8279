"""OUT/report/: metrics.json (the truth), report.md, and a self-contained report.html."""

from __future__ import annotations

import base64
import html
import io
import json
import time

import numpy as np

from cifar_ray import fingerprint, plots, storage
from cifar_ray.errors import UserError
from cifar_ray.storage import Location


def collect(loc: Location) -> dict:
    found = sorted(
        p for p in storage.list_files(loc, loc.path("models")) if p.endswith("/results.json")
    )
    if not found:
        raise UserError(f"{loc.uri}: no trained models; run `cifar-ray train` first")
    results = {}
    for path in found:
        res = json.loads(storage.get_bytes(loc, path))
        results[res["backbone"]] = res
    return results


def comparison(results: dict) -> list[dict]:
    rows = []
    for backbone, res in results.items():
        row = {
            "backbone": backbone,
            "dim": res["dim"],
            "images_per_s": res["extraction"].get("images_per_s"),
            "extraction_s": res["extraction"].get("seconds"),
        }
        row.update({name: m["accuracy"]["test"] for name, m in res["models"].items()})
        rows.append(row)
    return rows


def write(out: str) -> str:
    loc = Location(out)
    results = collect(loc)
    folder = loc.path("report")
    metrics = {
        "generated_unix": int(time.time()),
        "versions": fingerprint.versions(),
        "backbones": results,
        "comparison": comparison(results),
    }
    storage.put_atomic(loc, f"{folder}/metrics.json", json.dumps(metrics, indent=1).encode())
    figures = _figures(loc, results)
    for name, png in figures.items():
        storage.put_atomic(loc, f"{folder}/{name}.png", png)
    storage.put_atomic(loc, f"{folder}/report.md", _markdown(results, figures).encode())
    storage.put_atomic(loc, f"{folder}/report.html", _html(results, figures).encode())
    return f"{folder}/report.html"


def _figures(loc: Location, results: dict) -> dict[str, bytes]:
    preview = _preview(loc)
    figures = {}
    for backbone, res in results.items():
        classes, models = res["classes"], res["models"]
        head = models["dense_head"]
        figures[f"{backbone}-confusion"] = plots.confusion(
            head["test"]["confusion"], classes, f"{backbone}: dense head, test confusion"
        )
        figures[f"{backbone}-per-class"] = plots.per_class(
            {n: m["test"]["recall"] for n, m in models.items()}, classes,
            f"{backbone}: per-class test accuracy",
        )  # fmt: skip
        figures[f"{backbone}-learning-curves"] = plots.learning_curves(
            head["history"], f"{backbone} dense head"
        )
        emb = res["embedding_2d"]
        figures[f"{backbone}-embedding-pca"] = plots.embedding_map(
            emb["xy"], emb["labels"], classes, f"{backbone}: test embedding, PCA"
        )
        if preview is not None:
            figures[f"{backbone}-predictions"] = plots.prediction_grid(
                preview["images"], preview["labels"], head["sample_predictions"], classes,
                f"{backbone}: dense head on test images",
            )  # fmt: skip
    points = [
        (
            b,
            r["extraction"].get("images_per_s") or 0.0,
            r["models"]["dense_head"]["accuracy"]["test"],
        )
        for b, r in results.items()
    ]
    figures["comparison"] = plots.accuracy_vs_speed(points, "accuracy against extraction speed")
    return figures


def _head_test_accuracy(result: dict) -> float:
    return result["models"]["dense_head"]["accuracy"]["test"]


def _preview(loc: Location) -> dict | None:
    raw = storage.get_bytes(loc, loc.path("samples", "test-preview.npz"))
    if raw is None:
        return None
    with np.load(io.BytesIO(raw), allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def _table_rows(results: dict) -> tuple[list[str], list[list[str]]]:
    header = ["backbone", "model", "train acc", "val acc", "test acc", "fit s", "infer s"]
    rows = []
    for backbone, res in results.items():
        for name, m in sorted(res["models"].items(), key=lambda kv: -kv[1]["accuracy"]["test"]):
            acc = m["accuracy"]
            scores = [f"{acc[k]:.4f}" for k in ("train", "val", "test")]
            rows.append([backbone, name, *scores, f"{m['fit_s']:.1f}", f"{m['infer_s']:.2f}"])
    return header, rows


def _markdown(results: dict, figures: dict[str, bytes]) -> str:
    header, rows = _table_rows(results)
    lines = ["# cifar-ray report", "", "## Accuracy", ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += [
        "",
        "## Extraction",
        "",
        "| backbone | dim | images/s | seconds |",
        "|---|---|---|---|",
    ]
    for row in comparison(results):
        lines.append(
            f"| {row['backbone']} | {row['dim']} | {row['images_per_s']} | {row['extraction_s']} |"
        )
    lines += ["", "## Figures", ""]
    lines += [f"![{name}]({name}.png)" for name in figures]
    lines += ["", "Every number here comes from `metrics.json` beside this file."]
    return "\n".join(lines) + "\n"


def _html(results: dict, figures: dict[str, bytes]) -> str:
    header, rows = _table_rows(results)
    table = "<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"
    table += "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows
    )
    table += "</table>"
    sections = [f"<h2>Accuracy</h2>{table}"]
    for name, png in figures.items():
        data = base64.b64encode(png).decode()
        title = html.escape(name.replace("-", " "))
        sections.append(f'<h2>{title}</h2><img alt="{title}" src="data:image/png;base64,{data}">')
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 10px;"
        "text-align:right}th{background:#f3f3f3}img{max-width:100%}"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>cifar-ray report</title><style>{style}</style></head><body>"
        "<h1>cifar-ray report</h1>" + "".join(sections) + "</body></html>\n"
    )
