"""The report from a fake but realistic OUT tree: every section, self-contained, readable."""

from __future__ import annotations

import base64
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cifar_ray.config import TrainConfig, as_dict
from cifar_ray.extract import job
from cifar_ray.report import writer
from cifar_ray.train import baselines, maps, metrics
from tests import cifar_files

CLASSES = [c.decode() for c in cifar_files.CLASSES]
SECTION_IDS = {"accuracy", "learning-curves", "confusion", "per-class", "predictions",
               "embedding", "audit", "comparison", "run"}  # fmt: skip
VOID = {"meta", "img", "br", "hr", "link", "input", "source", "col", "area", "base", "wbr"}
SIZES = {"train": 270, "val": 30, "test": 100}


def _history(epochs: int, rng) -> dict[str, list[float]]:
    loss = np.sort(rng.uniform(0.3, 2.2, epochs))[::-1]
    acc = np.sort(rng.uniform(0.2, 0.9, epochs))
    return {"loss": loss.tolist(), "accuracy": acc.tolist(), "val_loss": (loss + 0.1).tolist(),
            "val_accuracy": (acc - 0.05).tolist()}  # fmt: skip


def _fake_model(name: str, kind: str, splits: dict, skill: float, rng, history=None) -> dict:
    """Shaped like ray_train.evaluate / pixel_baselines.run: right with chance `skill`."""
    preds = {}
    for k, (_, y) in splits.items():
        wrong = rng.random(len(y)) > skill
        preds[k] = np.where(wrong, rng.integers(0, 10, len(y)), y)
    test_y = splits["test"][1]
    return {
        "name": name, "kind": kind, "params": {"best_epoch": 2, "epochs_run": 4},
        "accuracy": {k: metrics.accuracy(splits[k][1], p) for k, p in preds.items()},
        "test": metrics.evaluate(test_y, preds["test"], 10), "history": history or {},
        "fit_s": float(rng.uniform(1, 30)), "infer_s": float(rng.uniform(0.01, 1)),
        "sample_predictions": preds["test"][:64].tolist(),
    }  # fmt: skip


def _results(out: Path, backbone: str, dim: int, speed: float, seed: int, test_y) -> dict:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (10, dim))
    labels = {k: rng.integers(0, 10, n) for k, n in SIZES.items()}
    labels["test"] = test_y
    splits = {k: (centres[y] + rng.normal(0, 1.2, (len(y), dim)), y) for k, y in labels.items()}
    models = {"dense_head": _fake_model("dense_head", "dense-head (Ray Train)", splits, 0.8, rng,
                                        {**_history(4, rng), "seconds": [1.0] * 4})}  # fmt: skip
    for name in ("logreg", "knn_cosine"):
        models[name] = baselines.run(name, splits["train"], splits["val"], splits["test"], 10)
    for name, skill in (("pixel_mlp", 0.3), ("pixel_cnn", 0.45)):
        models[name] = _fake_model(name, "raw-pixel baseline", splits, skill, rng, _history(5, rng))
    summary = job.ExtractionSummary(backbone, 4, 4, 0, 400, 400 / speed, speed, 1.5)
    return {
        "backbone": backbone, "fingerprint": f"{seed:016x}", "dim": dim, "classes": CLASSES,
        "sizes": SIZES, "train_config": as_dict(TrainConfig(out=str(out), backbone="")),
        "extraction": summary.__dict__, "models": models,
        "embedding_2d": maps.pca_map(splits["test"], seed, n=80),
        "_test": splits["test"],
    }  # fmt: skip


def _write(out: Path, results: dict) -> None:
    folder = out / "models" / results["backbone"]
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(results, indent=1))


def _preview(out: Path, images, labels) -> None:
    """As store_meta.write_preview writes it."""
    buffer = io.BytesIO()
    np.savez(buffer, images=images[:64], labels=labels[:64], classes=np.array(CLASSES))
    (out / "samples").mkdir(parents=True)
    (out / "samples" / "test-preview.npz").write_bytes(buffer.getvalue())


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("out")
    batch = cifar_files.planted_batch(SIZES["test"], 7)
    images = batch[b"data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    test_y = np.asarray(batch[b"labels"], dtype=np.int64)
    written = {}
    for backbone, dim, speed, seed in (("inceptionv3", 64, 35.5, 1), ("mobilenetv2", 32, 240.0, 2)):
        res = _results(out, backbone, dim, speed, seed, test_y)
        x, y = res.pop("_test")
        if backbone == "mobilenetv2":
            res["embedding_tsne"] = maps.tsne_map(x, y, seed, n=80)
        _write(out, res)
        written[backbone] = json.loads((out / "models" / backbone / "results.json").read_text())
    fp = {
        "id": f"{1:016x}",
        "backbone": "inceptionv3",
        "image_size": 75,
        "weights": {"name": "none", "seed": 0},
    }
    (out / "features" / "inceptionv3").mkdir(parents=True)
    (out / "features" / "inceptionv3" / "fingerprint.json").write_text(json.dumps(fp))
    _preview(out, images, test_y)
    writer.write(str(out))
    return out / "report", written


class _Checker(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.stack, self.errors, self.ids, self.refs, self.tags = [], [], set(), [], set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        self.refs += [(tag, k, v) for k, v in attrs.items() if k in ("src", "href", "srcset")]
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:]}")
        else:
            self.stack.pop()


def test_html_is_well_formed_self_contained_and_has_every_section(built):
    folder, _ = built
    text = (folder / "report.html").read_text()
    checker = _Checker()
    checker.feed(text)
    checker.close()
    assert not checker.errors and not checker.stack, (checker.errors, checker.stack)
    assert checker.ids >= SECTION_IDS
    assert not checker.tags & {"script", "link", "iframe", "object", "embed"}
    assert "url(" not in text and "@import" not in text
    for tag, _, value in checker.refs:
        assert value.startswith("data:image/png;base64," if tag == "img" else "#"), (tag, value)
        if tag == "img":
            png = Image.open(io.BytesIO(base64.b64decode(value.split(",", 1)[1])))
            assert png.format == "PNG"
    assert {v[1:] for t, a, v in checker.refs if t == "a"} == SECTION_IDS


def test_every_figure_opens_at_a_readable_size(built):
    folder, _ = built
    pngs = sorted(folder.glob("*.png"))
    per_backbone = ("accuracy", "learning-curves", "confusion", "per-class", "predictions",
                    "embedding")  # fmt: skip
    expected = {f"{b}-{k}.png" for b in ("inceptionv3", "mobilenetv2") for k in per_backbone}
    assert {p.name for p in pngs} == expected | {"comparison.png"}
    for path in pngs:
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            assert image.width >= 400 and image.height >= 200, (path.name, image.size)
    html = (folder / "report.html").read_text()
    assert html.count("<img ") == len(pngs)


def test_metrics_json_repeats_results_and_the_tables_agree(built):
    folder, written = built
    data = json.loads((folder / "metrics.json").read_text())
    assert data["backbones"] == written
    markdown = (folder / "report.md").read_text()
    for row in data["comparison"]:
        res = written[row["backbone"]]
        assert row["dim"] == res["dim"]
        assert row["images_per_s"] == res["extraction"]["images_per_s"]
        for name, model in res["models"].items():
            assert row[name] == model["accuracy"]["test"]
            assert f"| {name} | {model['kind']} | {model['accuracy']['train']:.4f} |" in markdown
    assert data["feature_fingerprints"]["inceptionv3"]["image_size"] == 75
    assert data["feature_fingerprints"]["mobilenetv2"] == {}
    assert set(data["versions"]) >= {"tensorflow", "keras", "numpy"}


def test_report_names_what_it_shows(built):
    folder, _ = built
    markdown = (folder / "report.md").read_text()
    assert "PCA, t-SNE of 80" in markdown and "PCA of 80" in markdown  # t-SNE where present
    assert "No per-epoch history (fitted in one go): logreg, knn_cosine." in markdown
    run = markdown.split("## Run", 1)[1]
    assert "| train learning_rate | 0.0001 | 0.0001 |" in run
    assert "| fingerprint | 0000000000000001 | 0000000000000002 |" in run
    assert re.search(r"\| keras \| \d+\.\d+", run)


def test_one_backbone_without_preview_still_reports(tmp_path, built):
    _, written = built
    out = tmp_path / "out"
    _write(out, written["inceptionv3"])
    writer.write(str(out))
    names = {p.name for p in (out / "report").glob("*.png")}
    assert "comparison.png" not in names and "inceptionv3-predictions.png" not in names
    markdown = (out / "report" / "report.md").read_text()
    assert "One backbone only" in markdown and "No test preview" in markdown


def test_tsne_map_is_seeded_and_shaped_like_the_pca_map():
    rng = np.random.default_rng(0)
    x, y = rng.normal(0, 1, (60, 8)).astype(np.float32), rng.integers(0, 10, 60)
    first, again = maps.tsne_map(x, y, 3, n=40), maps.tsne_map(x, y, 3, n=40)
    pca = maps.pca_map((x, y), 3, n=40)
    assert set(first) == set(pca) and first["method"] == "tsne"
    assert np.asarray(first["xy"]).shape == (40, 2) and len(first["labels"]) == 40
    assert first == again
