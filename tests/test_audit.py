"""The audit on the real CIFAR-10 sample with duplicates planted across splits: every planted
exact duplicate is found by its pixels, the planted near-duplicates rank above every pair
that is not a duplicate, the cleaned test score leaves them out; the index resumes, rebuilds
when the store changes, and is read by faiss directly; local, S3 and Ray alike."""

from __future__ import annotations

import json
import os
from dataclasses import replace

import faiss
import numpy as np
import pyarrow.parquet as pq
import pytest

from cifar_ray.audit import fanout, search, summary, threshold
from cifar_ray.audit.files import DUPLICATES, INDEX, NEIGHBOURS, IndexFolder
from cifar_ray.audit.index import build
from cifar_ray.audit.run import audit_store
from cifar_ray.config import AuditConfig
from cifar_ray.store.latents import load
from cifar_ray.store.locations import Location
from cifar_ray.store.shards import plan
from tests import audit_data
from tests.conftest import SAMPLE_ARCHIVE, run_cli
from tests.moto_s3 import moto_server

# The sample's own near-duplicates (test id, train id), the same photographs in both splits
# (looked at: a motorboat, a police car, a white bird, a cat's face): the audit finds them
# too; they are duplicates, so never counted as "unplanted pairs".
SAMPLE_DUPLICATES = {(939, 4886), (104, 2304), (149, 3108), (896, 1070)}


@pytest.fixture(scope="module")
def planted(cifar_archive):
    return audit_data.plant(cifar_archive)


def _pixels(p: audit_data.Planted):
    return lambda lat: {"test": p.test, "train": p.train}.get


@pytest.fixture(scope="module")
def audited(planted, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("audit"))
    audit_data.write_store(out, planted, None)
    record = audit_store(Location(out), "pix", AuditConfig(out=out), _pixels(planted))
    return out, record


def _known(planted) -> set[tuple[int, int]]:
    real = SAMPLE_DUPLICATES if SAMPLE_ARCHIVE.exists() else set()
    return set(planted.pairs) | real


def _pairs(out: str) -> dict[tuple[str, int, int], dict]:
    table = IndexFolder(Location(out), "pix").read_table(DUPLICATES).to_pylist()
    return {(r["split"], r["query_id"], r["train_id"]): r for r in table}


def test_every_planted_exact_duplicate_is_found_by_its_pixels(audited, planted):
    out, record = audited
    pairs = _pairs(out)
    exact = {(q, t) for (s, q, t), r in pairs.items() if s == "test" and r["kind"] == "exact"}
    assert exact == {pair for pair, how in planted.pairs.items() if how == "exact"}
    assert pairs[("train", *planted.within)]["kind"] == "exact"
    assert record["exact_duplicates"] == "pixel hash"


@pytest.mark.skipif(not SAMPLE_ARCHIVE.exists(), reason="needs the real CIFAR-10 sample")
def test_planted_near_duplicates_rank_above_every_unplanted_pair(audited, planted):
    out, record = audited
    table = IndexFolder(Location(out), "pix").read_table(NEIGHBOURS).to_pydict()
    ranked = sorted(
        ((sim, q, t) for q, ids, sims in zip(table["test_id"], table["train_ids"],
                                             table["similarities"], strict=True)
         for t, sim in zip(ids, sims, strict=True)),
        reverse=True,
    )  # fmt: skip
    known = _known(planted)
    planted_sims = [s for s, q, t in ranked if (q, t) in planted.pairs]
    assert len(planted_sims) == len(planted.pairs)  # each one is its test image's neighbour
    other = max(s for s, q, t in ranked if (q, t) not in known)
    assert min(planted_sims) > other
    # The threshold from the data's gap keeps every planted pair and no unplanted one.
    found = {(q, t) for (s, q, t) in _pairs(out) if s == "test"}
    assert set(planted.pairs) | SAMPLE_DUPLICATES == found
    assert record["threshold"]["chosen"] == "gap"
    assert other < record["threshold"]["value"] <= min(planted_sims)


def test_the_relabelled_copy_is_a_labelling_error_candidate(audited, planted):
    out, record = audited
    pair = _pairs(out)[("test", *planted.relabelled)]
    assert pair["labels_differ"] and pair["query_label"] != pair["train_label"]
    shown = {(q, t): (a, b) for q, t, _, _, a, b in record["examples"]["pairs"]}
    a, b = shown[planted.relabelled]
    assert a != b and record["examples"]["pixels"]


def test_cleaned_accuracy_leaves_out_the_leaked_test_images(audited, planted):
    _, record = audited
    leaked = {i for i, _ in record["leaked_test"]}
    assert {q for q, _ in planted.pairs} <= leaked
    assert len(leaked) == record["counts"]["test_images_with_duplicate"]
    # A model right on every leaked image and on every other second one.
    y = planted.y_test
    pred = np.where(np.arange(len(y)) % 2 == 0, y, (y + 1) % 10)
    pred[list(leaked)] = y[list(leaked)]
    full = float(np.mean(pred == y))
    keep = np.ones(len(y), bool)
    keep[list(leaked)] = False
    clean = summary.cleaned_accuracy(full, pred.tolist(), len(y), record["leaked_test"])
    assert clean == pytest.approx(np.mean(pred[keep] == y[keep]), abs=1e-6) and clean < full
    assert summary.cleaned_accuracy(full, None, len(y), record["leaked_test"]) is None


def test_per_class_knn_agreement_is_the_1nn_accuracy(audited, planted):
    out, record = audited
    table = IndexFolder(Location(out), "pix").read_table(NEIGHBOURS).to_pydict()
    nn = np.array([labels[0] for labels in table["train_labels"]])
    y = planted.y_test
    for c, score in enumerate(record["knn_agreement"]):
        assert score == pytest.approx(np.mean(nn[y == c] == c), abs=1e-4)


def test_the_index_is_faiss_readable_resumes_and_rebuilds_when_the_store_changes(
    audited, planted, tmp_path
):
    out, first = audited
    index = faiss.read_index(str(Location(out).path("index", "pix", INDEX)))
    assert index.ntotal == len(planted.train)
    again = audit_store(Location(out), "pix", AuditConfig(out=out), _pixels(planted))
    assert again["resumed"] and again["counts"] == first["counts"]
    # Re-extract one training shard (other features): the audit starts over.
    store = audit_data.write_store(out, planted, None)
    shard = plan({"train": len(planted.train), "test": len(planted.test)}, 1024)[0]
    x = audit_data.features(planted.train[shard.start : shard.stop])[::-1].copy()
    store.publish(shard, planted.y_train[shard.start : shard.stop], x,
                  {"fingerprint": "fp-pix", "backbone": "pix"})  # fmt: skip
    rebuilt = audit_store(Location(out), "pix", AuditConfig(out=out), _pixels(planted))
    assert not rebuilt["resumed"]


def test_without_pixels_the_audit_finds_near_duplicates_only_and_says_so(planted, tmp_path):
    small = replace(planted, train=planted.train[:1200], y_train=planted.y_train[:1200])
    audit_data.write_store(str(tmp_path), small, str(tmp_path / "gone"))
    cfg = AuditConfig(out=str(tmp_path), within_train=False)
    from cifar_ray.audit.pixels import cifar_pixels_for

    record = audit_store(Location(str(tmp_path)), "pix", cfg, cifar_pixels_for(None))
    assert record["exact_duplicates"].startswith("unavailable")
    assert record["counts"]["test_pairs"]["exact"] == 0 and not record["examples"]["pixels"]


def test_blocked_search_equals_one_exact_search_and_ivf_reports_its_recall(tmp_path):
    rng = np.random.default_rng(0)
    base = search.normalized(rng.normal(size=(3000, 24)))
    queries = search.normalized(rng.normal(size=(200, 24)))
    whole = search.search(search.exact_index(base), queries, 5, 64)
    blocks = ((o, base[o : o + 700]) for o in range(0, len(base), 700))
    parts = search.search_blocks(blocks, queries, 5, 64)
    np.testing.assert_array_equal(parts[1], whole[1])
    np.testing.assert_allclose(parts[0], whole[0], rtol=1e-5)
    cfg = AuditConfig(out=str(tmp_path), index="approximate", k=5, recall_sample=200)
    built = build(IndexFolder(Location(str(tmp_path)), "r"), base, queries, cfg, None, 200)
    assert built.info["kind"] == "approximate" and 0 < built.info["recall_at_k"] <= 1
    _, ids = built.searcher(queries, 5)
    assert search.recall(whole[1], ids) == pytest.approx(built.info["recall_at_k"], abs=1e-4)


def test_the_threshold_is_the_widest_gap_above_the_floor_or_the_fallback():
    rng = np.random.default_rng(1)
    bulk = rng.uniform(0.5, 0.93, 1000)
    t = threshold.choose(np.concatenate([bulk, [0.991, 0.995, 1.0]]), 0.9, 0.97)
    assert t.chosen == "gap" and bulk.max() < t.value < 0.991
    assert threshold.choose(bulk[bulk < 0.85], 0.9, 0.97).chosen == "fallback"
    assert threshold.choose(bulk, 0.9, 0.97, given=0.5).value == 0.5


def test_the_search_fans_out_as_one_ray_task_per_block(audited, planted, ray_local, tmp_path):
    out, record = audited
    lat = load(Location(out), "pix")
    searcher = fanout.ray_searcher(rows=2048, query_block=512)(lat)
    assert len(fanout.blocks(lat, 2048)) == 3
    queries = search.normalized(lat.features("test"))
    _, ids = searcher(queries, record["k"])
    local = IndexFolder(Location(out), "pix").read_table(NEIGHBOURS).to_pydict()
    assert ids.tolist() == local["train_ids"]
    # The whole audit through the fan-out (forced: this store fits here) finds the same.
    audit_data.write_store(str(tmp_path), planted, None)
    cfg = AuditConfig(out=str(tmp_path), fan_out=True, within_train=False)
    remote = audit_store(Location(str(tmp_path)), "pix", cfg, _pixels(planted),
                         fanout.ray_searcher(rows=2048, query_block=512))  # fmt: skip
    assert remote["index"]["faiss"].endswith("one Ray task each")
    assert remote["leaked_test"] == record["leaked_test"]
    assert remote["counts"]["test_pairs"] == record["counts"]["test_pairs"]


def test_cifar_ray_neighbours_on_s3(cifar_archive, tmp_path):
    """The command on an object store, its pixels from the archive the manifest names; a
    second build (in this process) resumes from what the first wrote there."""
    small = audit_data.plant(cifar_archive, 600, 200)
    archive = audit_data.write_archive(tmp_path / "cifar-10-python.tar.gz", small)
    with moto_server() as env, pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        out = "s3://feats/run"
        audit_data.write_store(out, small, str(archive))
        result = run_cli("neighbours", out, env=env)
        assert result.returncode == 0, result.stderr
        record = IndexFolder(Location(out), "pix").read_json("audit.json")
        assert IndexFolder(Location(out), "pix").read_table(DUPLICATES) is not None
        again = audit_store(Location(out), "pix", AuditConfig(out=out), _pixels(small))
    assert record["exact_duplicates"] == "pixel hash"
    assert again["resumed"] and record["counts"] == again["counts"]
    assert {q for q, _ in small.pairs} <= {i for i, _ in record["leaked_test"]}


def test_cifar_ray_neighbours_on_an_existing_out(cifar_archive, tmp_path):
    """End to end: the command reads the store and, for exact duplicates, the archive the
    store was extracted from (its manifest says where)."""
    small = audit_data.plant(cifar_archive, 400, 120)
    archive = audit_data.write_archive(tmp_path / "cifar-10-python.tar.gz", small)
    out = tmp_path / "out"
    audit_data.write_store(str(out), small, str(archive))
    result = run_cli("neighbours", str(out), "--k", "5")
    assert result.returncode == 0, result.stderr
    assert "pix" in result.stdout and "near-duplicates" in result.stdout  # the table
    record = json.loads((out / "index" / "pix" / "audit.json").read_text())
    assert record["exact_duplicates"] == "pixel hash" and record["k"] == 5
    pairs = pq.read_table(out / "index" / "pix" / DUPLICATES).to_pylist()
    exact = {(r["query_id"], r["train_id"]) for r in pairs if r["kind"] == "exact"}
    assert exact >= {p for p, how in small.pairs.items() if how == "exact"}
    bad = run_cli("neighbours", str(tmp_path / "empty"))
    assert bad.returncode == 2 and "no feature stores" in bad.stderr
    # A --data-dir the user names that is not there: refused, not a warning and exit 0.
    os.mkfifo(tmp_path / "fifo")
    for where, what in (("missing", "no such file"), ("fifo", "is a FIFO")):
        bad = run_cli("neighbours", str(out), "--data-dir", str(tmp_path / where))
        assert bad.returncode == 2 and what in bad.stderr and not bad.stdout


def test_the_report_shows_the_audit_and_every_models_cleaned_score(audited, planted):
    """A 1-NN classifier on the stored neighbours stands in for a trained model: it is right
    on every leaked test image, so leaving them out lowers its score."""
    from cifar_ray.report import writer
    from cifar_ray.train import maps
    from cifar_ray.train.results import HEAD, ModelResult

    out, record = audited
    table = IndexFolder(Location(out), "pix").read_table(NEIGHBOURS).to_pydict()
    pred = np.array([labels[0] for labels in table["train_labels"]])
    y = planted.y_test
    model = ModelResult.scored(HEAD, "dense-head (Ray Train)", {}, {"train": 1.0, "val": 0.3,
                               "test": float(np.mean(pred == y))}, y, pred, 10, fit_s=1.0,
                               infer_s=0.1)  # fmt: skip
    x = audit_data.features(planted.test)
    results = {
        "backbone": "pix", "dataset": "cifar10", "fingerprint": "fp-pix", "dim": x.shape[1],
        "classes": record["classes"], "sizes": {"train": 4500, "val": 500, "test": len(y)},
        "train_config": {}, "extraction": {}, "models": {HEAD: model.to_dict()},
        "embedding_2d": maps.pca_map((x, y), 0, n=60),
    }  # fmt: skip
    path = Location(out).path("models", "pix", "results.json")
    Location(out).fs.create_dir(path.rpartition("/")[0])
    with open(path, "w") as f:
        json.dump(results, f)
    html = writer.write(out)
    with open(Location(out).path("report", "metrics.json")) as f:
        metrics = json.load(f)
    audit = metrics["audit"]["pix"]
    row = metrics["comparison"][0]
    keep = np.ones(len(y), bool)
    keep[[i for i, _ in record["leaked_test"]]] = False
    assert row[f"{HEAD} (clean)"] == pytest.approx(np.mean(pred[keep] == y[keep]), abs=1e-6)
    assert row[f"{HEAD} (clean)"] < row[HEAD]
    assert audit["clean_test_images"] == keep.sum() and "leaked_test" not in audit
    with open(html) as f:
        page = f.read()
    assert '<section id="audit">' in page and "labelling-error" in page
    for name in ("pairs", "nn-similarity", "strips", "knn"):
        assert f'alt="pix {name.replace("-", " ")}"' in page


def test_the_report_says_how_a_given_or_fallback_threshold_was_chosen(audited):
    """`neighbours --duplicate-threshold 0.95`, then `report`: the text named the data's gap
    for every kind of threshold, and a threshold without one was a TypeError traceback."""
    from cifar_ray.report.audit_section import _summary_text

    _, record = audited
    for chosen, said in (("given", "given by --duplicate-threshold"), ("fallback", "fallback")):
        t = {"value": 0.95, "chosen": chosen, "gap_low": None, "gap_high": None}
        text = _summary_text({**record, "threshold": t})
        assert said in text and "0.9500" in text


def test_a_threshold_that_would_call_most_test_images_duplicates_is_not_chosen():
    """Random weights (README's try-it command) put every nearest neighbour at 0.985..1.0: the
    gap from the floor up to them made all 200 test images of the sample "leaked", and every
    cleaned score empty. Duplicates are a minority (3.3% of CIFAR-10's test set)."""
    rng = np.random.default_rng(2)
    sims = rng.uniform(0.985, 0.9999, 200)
    t = threshold.choose(sims, 0.9, 0.97)
    assert t.chosen == "none" and not (sims >= t.value).any()
    bulk = rng.uniform(0.91, 0.95, 500)  # a bulk above the floor, a cluster above it
    t = threshold.choose(np.concatenate([bulk, [0.99, 0.995, 1.0]]), 0.9, 0.97)
    assert t.chosen == "gap" and 0.95 < t.value < 0.99


def test_an_audit_json_of_the_wrong_shape_is_left_out_of_the_report_in_one_line(
    audited, tmp_path, caplog
):
    """An audit.json of this store but not of this shape (another version's, edited): the
    report was a KeyError or IndexError traceback; now that store's audit is left out, with
    one line naming the file and the way back."""
    import logging

    from cifar_ray.audit.files import SUMMARY
    from cifar_ray.report.audit_section import collect

    _, record = audited
    loc = Location(str(tmp_path))
    res = {"fingerprint": record["store_fingerprint"], "sizes": record["sizes"], "models": {}}
    IndexFolder(loc, "s").write_json(SUMMARY, record)
    assert list(collect(loc, {"s": res})) == ["s"]
    no_counts = {k: v for k, v in record.items() if k != "counts"}
    for bad in (no_counts, {**record, "leaked_test": [[10**6, 1]]}, {**record, "threshold": 1}):
        IndexFolder(loc, "s").write_json(SUMMARY, bad)
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            assert collect(loc, {"s": res}) == {}
        assert "audit.json" in caplog.text and "cifar-ray neighbours" in caplog.text


def test_fan_out_without_a_cluster_is_refused(tmp_path):
    """`neighbours OUT --fan-out` without --address searched in this process and said nothing:
    the option the user gave did nothing."""
    from cifar_ray.commands_audit import neighbours_command
    from cifar_ray.errors import UserError

    with pytest.raises(UserError, match="--fan-out needs --address"):
        neighbours_command(str(tmp_path), fan_out=True)
    assert not list(tmp_path.iterdir())
