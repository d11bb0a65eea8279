"""OUT/report/: metrics.json (the truth), then report.md and a self-contained report.html."""

from __future__ import annotations

import json
import time

from cifar_ray.embed import fingerprint
from cifar_ray.errors import UserError, first_line
from cifar_ray.report import audit_section, plots, render
from cifar_ray.report.sections import build_sections, dataset_of
from cifar_ray.store import locations, samples
from cifar_ray.store.claims import read_claim
from cifar_ray.store.features import FeatureStore
from cifar_ray.store.layout import Layout, backbone_of
from cifar_ray.store.locations import Location
from cifar_ray.store.records import corrupt
from cifar_ray.train.results import models_of

# What every results.json has (`train.runner`) and the report reads, with its JSON type.
RESULT_KEYS = {"backbone": str, "fingerprint": str, "dim": int, "classes": list, "sizes": dict,
               "train_config": dict, "extraction": dict, "models": dict,
               "embedding_2d": dict}  # fmt: skip


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


def comparison(results: dict, audits: dict | None = None) -> list[dict]:
    """One row per store. Where OUT holds more than one dataset, rows gain a "dataset" column
    (first), name the backbone alone, and are ordered by dataset. With `audits`, each model's
    test accuracy without the leaked test images follows it ("<model> (clean)")."""
    several = len({dataset_of(res) for res in results.values()}) > 1
    rows = []
    for backbone, res in results.items():
        row = {"dataset": dataset_of(res), "backbone": backbone_of(backbone)} if several else {}
        row |= {
            "backbone": row.get("backbone", backbone),
            "dim": res["dim"],
            "images_per_s": res["extraction"].get("images_per_s"),
            "extraction_s": res["extraction"].get("seconds"),
        }
        row.update({name: m.test_accuracy for name, m in models_of(res).items()})
        row.update(audit_section.clean_columns((audits or {}).get(backbone)))
        rows.append(row)
    return sorted(rows, key=lambda r: r["dataset"]) if several else rows


def write(out: str) -> str:
    loc = Location(out)
    results = collect(loc)
    audits = audit_section.collect(loc, results)
    metrics = {
        "generated_unix": int(time.time()),
        "versions": fingerprint.versions(),
        "backbones": results,
        "comparison": comparison(results, audits),
        "audit": audits,
        "feature_fingerprints": {b: _feature_fingerprint(loc, b) for b in results},
    }
    put = Layout(loc).report_file
    locations.put_atomic(loc, put("metrics.json"), json.dumps(metrics, indent=1).encode())
    datasets = dict.fromkeys(dataset_of(res) for res in results.values())
    previews = {name: samples.read_preview(loc, name) for name in datasets}
    figures = plots.report_figures(metrics, None, previews)
    figures.update(audit_section.figures(loc, audits))
    for name, png in figures.items():
        locations.put_atomic(loc, put(f"{name}.png"), png)
    blocks = build_sections(metrics, figures)
    ids = [sid for sid, _, _ in blocks]
    at = ids.index("comparison") if "comparison" in ids else len(blocks)
    blocks.insert(at, audit_section.section(metrics, figures))
    locations.put_atomic(loc, put("report.md"), render.markdown(blocks).encode())
    locations.put_atomic(loc, put("report.html"), render.html_page(blocks, figures).encode())
    return put("report.html")


def _feature_fingerprint(loc: Location, backbone: str) -> dict:
    """What the report shows of the extraction settings, read as every command reads a
    store: a corrupt or mismatched fingerprint is refused in one line, not reported on."""
    return read_claim(FeatureStore(loc, backbone))[1] or {}
