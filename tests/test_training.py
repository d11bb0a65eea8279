"""The dense head and baselines: they learn a planted signal, select on validation only, and
a killed training resumes from Ray Train's last checkpoint."""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import time
from dataclasses import replace

import numpy as np
import psutil
import pytest

from cifar_ray.store import latents, locations
from cifar_ray.store.features import FeatureStore
from cifar_ray.store.locations import Location
from cifar_ray.store.shards import plan
from cifar_ray.train import baselines, head, splits
from tests.conftest import kill_group, run_cli, start_cli
from tests.moto_s3 import moto_server


def _planted(n: int, dim: int = 32, seed: int = 0):
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(7).normal(0, 1, (10, dim))
    y = rng.integers(0, 10, n)
    return (centers[y] + rng.normal(0, 0.8, (n, dim))).astype(np.float32), y


def test_validation_split_is_stratified_seeded_and_disjoint():
    _, y = _planted(500)
    fit, val = splits.train_val_indices(y, 0.2, seed=3)
    assert len(set(fit) & set(val)) == 0 and len(fit) + len(val) == 500
    assert np.array_equal(val, splits.train_val_indices(y, 0.2, seed=3)[1])
    share = np.bincount(y[val], minlength=10) / np.bincount(y, minlength=10)
    assert np.all(np.abs(share - 0.2) < 0.07)


def _toy_store(folder, sizes: dict[str, int], shard_size: int = 16):
    """A complete store of planted features, written the way extraction publishes them."""
    store = FeatureStore(Location(str(folder)), "toy")
    meta = {"fingerprint": "fp", "backbone": "toy"}
    for shard in plan(sizes, shard_size):
        x, y = _planted(shard.rows, seed=shard.index + (100 if shard.split == "test" else 0))
        store.publish(shard, y, x, meta)
    manifest = {"split_sizes": sizes, "shard_size": shard_size, "fingerprint": "fp"}
    store.write_json("manifest.json", {**manifest, "classes": list("abcdefghij")})
    return latents.load(Location(str(folder)), "toy")


def test_latents_parts_read_once_into_views_of_one_array(tmp_path):
    lat = _toy_store(tmp_path, {"train": 100, "test": 40})
    parts = splits.latent_parts(lat, 0.2, seed=3)
    (x_fit, y_fit), (x_val, y_val) = parts["train"], parts["val"]
    assert np.shares_memory(x_fit, x_val) is False  # disjoint rows...
    assert x_fit.base is not None and x_fit.base is x_val.base  # ...of one decoded array
    expected = splits.parts({k: lat.features(k) for k in lat.y}, lat.y, 0.2, seed=3)
    for name in ("train", "val", "test"):
        np.testing.assert_array_equal(parts[name][0], expected[name][0])
        np.testing.assert_array_equal(parts[name][1], expected[name][1])
    assert len(y_fit) == 80 and len(y_val) == 20


def test_dense_head_learns_planted_signal():
    x, y = _planted(600)
    xt, yt = _planted(200, seed=1)
    model = head.build(32, 10, hidden=64, dropout=0.1, learning_rate=1e-2, seed=0)
    seen = []
    state = head.fit(
        model, (x[:500], y[:500], x[500:], y[500:]), epochs=5, batch_size=64, patience=3,
        seed=0, state=head.LoopState(), on_epoch=lambda s, improved: seen.append(s.epoch),
    )  # fmt: skip
    assert seen == [1, 2, 3, 4, 5] and len(state.history["val_loss"]) == 5
    acc = np.mean(np.argmax(model.predict(xt, verbose=0), axis=1) == yt)
    assert acc > 0.6


def test_same_seed_same_numbers():
    x, y = _planted(300)

    def fit_once():
        model = head.build(32, 10, hidden=32, dropout=0.2, learning_rate=1e-2, seed=4)
        data = (x[:250], y[:250], x[250:], y[250:])
        state = head.fit(model, data, epochs=3, batch_size=32, patience=3, seed=4,
                         state=head.LoopState(), on_epoch=lambda s, i: None)  # fmt: skip
        return state.history, model.predict(x[:20], verbose=0)

    (h1, p1), (h2, p2) = fit_once(), fit_once()
    assert h1["val_loss"] == pytest.approx(h2["val_loss"], rel=1e-6)
    np.testing.assert_allclose(p1, p2, atol=1e-6)


@pytest.mark.parametrize("name", sorted(baselines.CANDIDATES))
def test_baselines_beat_chance_and_never_select_on_test(name):
    x, y = _planted(400)
    xt, yt = _planted(150, seed=1)
    parts = ((x[:300], y[:300]), (x[300:], y[300:]))
    honest = baselines.run(name, *parts, (xt, yt), 10)
    assert honest["accuracy"]["test"] > 0.6
    scrambled = baselines.run(name, *parts, (xt, np.roll(yt, 1)), 10)
    assert scrambled["params"] == honest["params"]  # test labels changed nothing chosen
    assert scrambled["accuracy"]["val"] == honest["accuracy"]["val"]


def _runs(out) -> dict[str, dict[int, dict]]:
    """Ray Train run folder -> its checkpoints' loop states by epoch (readable ones only: a
    checkpoint being copied in or deleted is skipped)."""
    runs = {}
    root = out / "train-runs"
    for folder in sorted(root.iterdir()) if root.exists() else []:
        states = {}
        with contextlib.suppress(FileNotFoundError):
            for path in folder.rglob("state.json"):
                with contextlib.suppress(FileNotFoundError, ValueError):
                    state = json.loads(path.read_text())
                    states[state["epoch"]] = state
        runs[folder.name] = states
    return runs


def _registered(out, proc, wanted) -> tuple[str, dict]:
    """Poll until `wanted(name, epoch)` holds for a run whose only checkpoint is epoch >= 2:
    with num_to_keep=1, Ray Train deletes the previous checkpoint only after it registered
    the new one, so that one is what a re-run resumes from."""
    deadline = time.monotonic() + 300
    while True:
        for name, states in _runs(out).items():
            if len(states) == 1 and (epoch := next(iter(states))) >= 2 and wanted(name, epoch):
                return name, states[epoch]
        assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()[-3000:]
        time.sleep(0.2)


def _kill(proc) -> None:
    """The driver dies without cleaning anything up; then its Ray processes go too."""
    family = psutil.Process(proc.pid).children(recursive=True)
    kill_group(proc)
    for p in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()


def test_run_key_covers_what_decides_the_head_only(tmp_path):
    from cifar_ray.config import TrainConfig
    from cifar_ray.train import ray_train

    lat = _toy_store(tmp_path, {"train": 40, "test": 20})
    base = TrainConfig(out=str(tmp_path))
    key = ray_train.run_key(base, lat)
    changed = {"hidden": 8, "dropout": 0.1, "learning_rate": 0.5, "epochs": 3, "seed": 1,
               "batch_size": 7, "patience": 9, "val_fraction": 0.3}  # fmt: skip
    assert set(changed) == set(ray_train.MODEL_FIELDS)
    for field, value in changed.items():
        assert ray_train.run_key(replace(base, **{field: value}), lat) != key, field
    same = {"baselines": False, "pixel_baselines": False, "pixel_epochs": 1, "tsne": True,
            "out": str(tmp_path / "elsewhere")}  # fmt: skip
    for field, value in same.items():
        assert ray_train.run_key(replace(base, **{field: value}), lat) == key, field
    lat.manifest["fingerprint"] = "other features"
    assert ray_train.run_key(base, lat) != key


@pytest.fixture
def moto_out(monkeypatch):
    """An s3:// output on moto's server in this process, stopped afterwards."""
    with moto_server() as env:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        yield "s3://feats/out"


@pytest.mark.parametrize("where", ["local", "s3"])
def test_other_runs_of_the_backbone_are_removed(where, tmp_path, request):
    from cifar_ray.train import ray_train

    loc = Location(str(tmp_path) if where == "local" else request.getfixturevalue("moto_out"))
    names = ["head-toy-aaaa", "head-toy-bbbb", "head-toy-x-cccc", "head-toyx-dddd", "other"]
    for name in names:
        locations.put_atomic(loc, loc.path("train-runs", name, "checkpoint_0", "state.json"), b"{}")
    ray_train._remove_other_runs(loc, "toy", keep="head-toy-bbbb")
    left = {p.split("/train-runs/")[1].split("/")[0]
            for p in locations.list_files(loc, loc.path("train-runs"))}  # fmt: skip
    assert left == {"head-toy-bbbb", "head-toy-x-cccc", "head-toyx-dddd", "other"}


@pytest.mark.ray
def test_ray_train_worker_reads_shared_memory_not_the_feature_files(ray_local, tmp_path):
    from cifar_ray.config import TrainConfig
    from cifar_ray.train import ray_train, runner

    lat = _toy_store(tmp_path, {"train": 200, "test": 40})
    refs = runner._share(splits.latent_parts(lat, 0.2, seed=0))
    for path in (tmp_path / "features").rglob("*.parquet"):
        path.unlink()  # read once, by the driver: the worker must not need them
    cfg = TrainConfig(out=str(tmp_path), epochs=2, batch_size=32, hidden=16, baselines=False)
    state = ray_train.fit(cfg, Location(str(tmp_path)), lat, refs["train"], refs["val"])
    assert state["epoch"] == 2
    assert (tmp_path / "models/toy/head.keras").stat().st_size > 0


@pytest.fixture
def short_ray_tmp():
    """Ray's files for a run given its own TMPDIR: a short path (socket paths have a limit)."""
    folder = tempfile.mkdtemp(prefix="crt-", dir="/tmp")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.ray
def test_killed_training_resumes_only_under_the_same_config(tmp_path, cifar_archive,
                                                            short_ray_tmp):  # fmt: skip
    out = tmp_path / "out"
    extract = run_cli("extract", "--local", "--data-dir", cifar_archive, "--weights", "none",
                      "--image-size", "75", "--limit", "60", "--out", out)  # fmt: skip
    assert extract.returncode == 0, extract.stderr[-2000:]
    train = ["train", "--local", "--out", out, "--epochs", "8", "--no-baselines",
             "--no-pixel-baselines"]  # fmt: skip
    staging = tmp_path / "tmp"  # the runs' temporary folder: a killed run's staging stays there
    staging.mkdir()
    here = {"TMPDIR": str(staging), "RAY_TMPDIR": short_ray_tmp}
    slow = {"CIFAR_RAY_TEST_EPOCH_DELAY_S": "6", **here}

    proc = start_cli(*train, env=slow)  # seed 0, killed after a registered checkpoint
    try:
        first, state = _registered(out, proc, lambda name, epoch: True)
    finally:
        _kill(proc)

    # Another seed: another split and init. It must not continue seed 0's model.
    killed_at = state["epoch"]
    proc = start_cli(*train, "--seed", "1", env=slow)
    try:
        second, state = _registered(
            out, proc, lambda name, epoch: name != first or epoch > killed_at
        )
        runs = _runs(out)
    finally:
        _kill(proc)
    assert second != first and first not in runs  # the stale run's checkpoints are gone
    assert state["resumed_from"] is None and len(state["history"]["loss"]) == state["epoch"]

    # The same config again: it resumes the killed seed-1 run.
    resumable = set(_runs(out)[second])
    assert list(staging.glob("cifar-ray-head-*"))  # what the killed runs could not remove
    again = run_cli(*train, "--seed", "1", env=here)
    assert again.returncode == 0, again.stderr[-3000:]
    result = json.loads((out / "models/inceptionv3/results.json").read_text())
    params = result["models"]["dense_head"]["params"]
    assert params["resumed_from"] in resumable and params["resumed_from"] >= 2
    assert second.endswith(params["run_key"]) and result["train_config"]["seed"] == 1
    assert params["epochs_run"] == 8 or params["stopped_early"]
    assert len(result["models"]["dense_head"]["history"]["loss"]) == params["epochs_run"]
    assert _runs(out) == {}  # finished: the next run starts fresh
    assert list(staging.iterdir()) == []  # its own staging and the killed runs' are gone


def test_training_runs_in_the_callers_ray_session_and_opens_none(tmp_path):
    """The command layer opens Ray once (`run`: for extraction and training); a plan with
    nothing to train returns no results and leaves Ray as it found it."""
    import ray

    from cifar_ray.config import TrainConfig
    from cifar_ray.train import runner

    cfg = TrainConfig(out=str(tmp_path), backbone="", pixel_baselines=False)
    plan = runner.TrainingPlan(cfg, Location(str(tmp_path)), {}, {})
    before = ray.is_initialized()  # a session-wide test Ray may be up already
    assert runner.train_all(plan) == {} and ray.is_initialized() == before
