"""The report's audit section: near-duplicates across splits, nearest neighbours, and every
model's test accuracy without the leaked test images (from OUT/index/<store>/, written by
`cifar-ray neighbours`)."""

from __future__ import annotations

import logging

from cifar_ray.audit.files import EXAMPLES, SUMMARY, IndexFolder
from cifar_ray.audit.summary import cleaned_accuracy
from cifar_ray.audit.threshold import NO_CLUSTER
from cifar_ray.report import audit_plots
from cifar_ray.store.locations import Location
from cifar_ray.train.results import models_of

log = logging.getLogger(__name__)

SECTION = ("audit", "Near-duplicates and nearest neighbours")
CLEAN = " (clean)"  # a comparison column: the model's test accuracy without leaked images
DROPPED = ("leaked_test",)  # in audit.json, not repeated in metrics.json


def collect(loc: Location, results: dict) -> dict:
    """store -> its audit, with every model's cleaned test accuracy; a store without an
    audit, or with one of other features (a re-extracted store), has none."""
    audits = {}
    for store, res in results.items():
        found = IndexFolder(loc, store).read_json(SUMMARY)
        if not found or found.get("store_fingerprint") != res["fingerprint"]:
            continue
        n_test = res["sizes"].get("test", 0)
        problem = _shape_problem(found, n_test)
        if problem:
            log.warning("%s: not an audit this report can read (%s); re-run `cifar-ray "
                        "neighbours` to rewrite it", IndexFolder(loc, store).path(SUMMARY),
                        problem)  # fmt: skip
            continue
        leaked = found.get("leaked_test", [])
        clean = {name: cleaned_accuracy(m.test_accuracy, m.test_predictions, n_test, leaked)
                 for name, m in models_of(res).items()}  # fmt: skip
        audits[store] = {
            **{k: v for k, v in found.items() if k not in DROPPED},
            "clean_test_accuracy": clean,
            "clean_test_images": n_test - len(leaked),
        }
    return audits


# What the report reads of audit.json, by type; nested keys too ("a.b").
SHAPE = {
    "classes": list, "sizes": dict, "k": int, "exact_duplicates": str, "leaked_test": list,
    "counts": dict, "counts.test_pairs": dict, "counts.train_pairs": dict,
    "counts.test_images_with_duplicate": int, "counts.test_share_with_duplicate": (int, float),
    "threshold": dict, "threshold.value": (int, float), "threshold.chosen": str,
    "index": dict, "index.kind": str, "nn_similarity": dict, "knn_agreement": list,
    "examples": dict, "examples.pairs": list, "examples.strips": list,
}  # fmt: skip


def _shape_problem(found: dict, n_test: int) -> str | None:
    """Why an audit.json (another version's, or edited) cannot be drawn; None when it can."""
    for key, kind in SHAPE.items():
        value: object = found
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if not isinstance(value, kind):
            return f"{key} missing or of the wrong type"
    for pair in found["leaked_test"]:
        ok = isinstance(pair, list) and len(pair) == 2 and all(isinstance(v, int) for v in pair)
        if not ok or not 0 <= pair[0] < n_test:
            return f"leaked_test holds {pair!r}, not a test image of this store"
    return None


def clean_columns(audit: dict | None) -> dict:
    """A comparison row's cleaned scores, each beside the model's full one."""
    clean = (audit or {}).get("clean_test_accuracy", {})
    return {f"{name}{CLEAN}": value for name, value in clean.items()}


def figures(loc: Location, audits: dict) -> dict[str, bytes]:
    figs = {}
    for store, a in audits.items():
        classes, t = a["classes"], a["threshold"]
        figs[f"{store}-nn-similarity"] = audit_plots.similarity(
            a["nn_similarity"], t["value"], t["chosen"], f"{store}: nearest-neighbour similarity"
        )
        figs[f"{store}-knn"] = audit_plots.agreement(
            a["knn_agreement"], classes, f"{store}: kNN label agreement per class"
        )
        shown = a["examples"]
        px = IndexFolder(loc, store).read_arrays(EXAMPLES) if shown.get("pixels") else None
        if px is None:
            continue
        if shown["pairs"]:
            figs[f"{store}-pairs"] = audit_plots.pairs(
                (px["pair_test"], px["pair_train"]), shown["pairs"], classes,
                f"{store}: the most similar test/train pairs",
            )  # fmt: skip
        if shown["strips"]:
            figs[f"{store}-strips"] = audit_plots.strips(
                px["strip_test"], px["strip_train"], shown["strips"], classes,
                f"{store}: nearest training images of test images",
            )  # fmt: skip
    return figs


def section(metrics: dict, figs: dict) -> tuple[str, str, list]:
    audits = metrics.get("audit", {})
    if not audits:
        text = "No audit for these stores: run `cifar-ray neighbours OUT`."
        return (*SECTION, [("p", text)])
    blocks = []
    for store, a in audits.items():
        blocks += [("h3", store), ("p", _summary_text(a)), _clean_table(metrics, store, a)]
        blocks += [
            ("fig", f"{store}-{name}")
            for name in ("pairs", "nn-similarity", "strips", "knn")
            if f"{store}-{name}" in figs
        ]
    return (*SECTION, blocks)


def _summary_text(a: dict) -> str:
    c, t, index = a["counts"], a["threshold"], a["index"]
    chosen = {
        "given": "given by --duplicate-threshold",
        "fallback": "the fallback: the data showed no gap above the floor",
        "none": f"none: {NO_CLUSTER}",
    }.get(t["chosen"]) or (
        f"chosen from the data (the gap between {t['gap_low']:.4f} and "
        f"{t['gap_high']:.4f} in the nearest-neighbour similarities)"
    )
    how = index.get("faiss", index["kind"])
    if index["kind"] == "approximate":
        how += f", recall@{index['k']} {index['recall_at_k']:.3f} against exact search"
    return (
        f"{c['test_images_with_duplicate']} of {a['sizes']['test']} test images "
        f"({100 * c['test_share_with_duplicate']:.1f}%) have a duplicate in train: "
        f"{c['test_pairs']['exact']} exact pairs (same pixels), {c['test_pairs']['near']} near "
        f"(cosine similarity >= {t['value']:.4f}, {chosen}). Within train: "
        f"{c['train_pairs']['exact']} exact and {c['train_pairs']['near']} near pairs. "
        f"Exact duplicates: {a['exact_duplicates']}. Index: {how}; {a['k']} neighbours per "
        "test image in OUT/index/. Pairs framed red have different labels: labelling-error "
        "candidates. The cleaned score leaves out every test image with a duplicate in train."
    )  # fmt: skip


def _clean_table(metrics: dict, store: str, a: dict) -> tuple:
    models = models_of(metrics["backbones"][store])
    header = ["model", "test acc", f"clean test acc ({a['clean_test_images']} images)",
              "difference"]  # fmt: skip
    rows = []
    for name, m in sorted(models.items(), key=lambda kv: -kv[1].test_accuracy):
        clean = a["clean_test_accuracy"].get(name)
        diff = "n/a" if clean is None else f"{clean - m.test_accuracy:+.4f}"
        rows.append([name, f"{m.test_accuracy:.4f}", "n/a" if clean is None else f"{clean:.4f}",
                     diff])  # fmt: skip
    return ("table", header, rows)
