"""The embedder: in-graph resize and preprocessing, seeded weights, weights files."""

from __future__ import annotations

import numpy as np
import pytest

from cifar_ray.embed import backbones
from cifar_ray.embed.embedder import Embedder, EmbedderSpec, build_model
from cifar_ray.errors import UserError

SPEC = EmbedderSpec("inceptionv3", 75, "none", seed=3, batch_size=8)


@pytest.fixture(scope="module")
def embedder():
    return Embedder(SPEC)


def test_uint8_in_float_features_out(embedder):
    images = np.random.default_rng(0).integers(0, 256, (11, 32, 32, 3), dtype=np.uint8)
    feats = embedder(images)
    assert feats.shape == (11, 2048) and feats.dtype == np.float32
    assert np.isfinite(feats).all() and feats.std() > 0
    assert embedder.model.input.dtype == "uint8"


def test_batching_does_not_change_values(embedder):
    images = np.random.default_rng(1).integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
    np.testing.assert_allclose(embedder(images)[3:5], embedder(images[3:5]), atol=1e-5)


def test_seeded_random_weights_are_identical_across_builds(embedder):
    again = Embedder(SPEC)
    assert again.digest == embedder.digest
    other = Embedder(EmbedderSpec("inceptionv3", 75, "none", seed=4))
    assert other.digest != embedder.digest


def test_weights_file_round_trip_matches_direct_predict(tmp_path, embedder):
    """A `.weights.h5` saved from keras.applications loads and reproduces the features."""
    import keras

    inner = next(x for x in embedder.model.layers if x.name.startswith("inception"))
    path = tmp_path / "inception.weights.h5"
    inner.save_weights(path)
    loaded = Embedder(EmbedderSpec("inceptionv3", 75, str(path), seed=99))
    assert loaded.digest == embedder.digest
    images = np.random.default_rng(2).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    x = keras.ops.image.resize(images.astype("float32") / 127.5 - 1.0, (75, 75))
    direct = inner.predict(x, verbose=0)
    np.testing.assert_allclose(loaded(images), direct, atol=1e-4)


def test_weights_that_do_not_fit_are_user_errors(tmp_path):
    import keras

    path = tmp_path / "small.weights.h5"
    keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]).save_weights(path)
    with pytest.raises(UserError, match="does not fit inceptionv3"):
        build_model(EmbedderSpec("inceptionv3", 75, str(path)))


def test_image_size_below_minimum_and_unknown_backbone():
    with pytest.raises(UserError, match="below inceptionv3's minimum of 75"):
        backbones.check_image_size(backbones.get("inceptionv3"), 74)
    with pytest.raises(UserError, match="unknown backbone 'nope'"):
        backbones.get("nope")


@pytest.mark.parametrize(
    ("precision", "xla"),
    [("float32", True), ("mixed_bfloat16", False), ("mixed_float16", False)],
)
def test_precision_and_xla_stay_close_to_float32(embedder, precision, xla):
    """The GPU options run on CPU too; a partial last batch exercises XLA's padding."""
    images = np.random.default_rng(4).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    fast = Embedder(EmbedderSpec("inceptionv3", 75, "none", seed=3, batch_size=8,
                                 precision=precision, xla=xla))  # fmt: skip
    got, ref = fast(images), embedder(images)
    assert got.dtype == np.float32 and got.shape == ref.shape
    cosine = np.sum(got * ref, axis=1) / np.linalg.norm(got, axis=1) / np.linalg.norm(ref, axis=1)
    assert cosine.min() > 0.999
    assert fast.digest == embedder.digest  # same weights, only the arithmetic differs


def _tiny(input_shape, weights=None):
    """Two convolutions, pooled: enough to carry each preprocessing's output through."""
    import keras

    conv = keras.layers.Conv2D(8, 3, strides=2, activation="relu")
    return keras.Sequential([keras.Input(input_shape), conv, keras.layers.GlobalAveragePooling2D()])


@pytest.mark.parametrize("precision", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("kind", [*backbones.PREPROCESSING, "scale_offset"])
def test_every_preprocessing_runs_in_mixed_precision(monkeypatch, kind, precision):
    """Each preprocessing kind (caffe's mean subtraction among them) under each mixed policy
    gives the float32 features, up to the reduced precision."""
    name = f"tiny{kind.replace('_', '')}"
    spec = backbones.Backbone(
        name, "tests", 32, 16, kind, 8, factory=_tiny,
        scale_offset=((0.02, 0.01, 0.03), (-1.0, -0.5, 0.0)) if kind == "scale_offset" else (),
    )  # fmt: skip
    monkeypatch.setitem(backbones._REGISTRY, name, spec)
    images = np.random.default_rng(5).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    ref = np.asarray(build_model(EmbedderSpec(name, 40, "none", seed=1))(images))
    got = build_model(EmbedderSpec(name, 40, "none", seed=1, precision=precision))(images)
    got = np.asarray(got, dtype=np.float32)
    assert got.shape == ref.shape == (4, 8)
    cosine = np.sum(got * ref, axis=1) / np.linalg.norm(got, axis=1) / np.linalg.norm(ref, axis=1)
    assert cosine.min() >= 0.99


@pytest.fixture
def offline_keras_home(tmp_path, monkeypatch):
    """An empty KERAS_HOME, and any download Keras would start fails at once (no network)."""
    for var in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    (tmp_path / "keras/models").mkdir(parents=True)
    return tmp_path / "keras/models"


def test_a_cached_imagenet_file_that_fails_keras_hash_is_refused(offline_keras_home):
    """The fingerprint names ImageNet weights by the registry's hash: the file must have it.
    Refused with the file named; not downloaded again, not deleted."""
    b = backbones.get("mobilenetv3small")
    cached = offline_keras_home / b.weights_file
    cached.write_bytes(b"a partial download")
    with pytest.raises(UserError, match=r"Keras expects d3e8ec802a04.* for mobilenetv3small"):
        build_model(EmbedderSpec("mobilenetv3small", 32, "imagenet"))
    assert cached.read_bytes() == b"a partial download"


def test_keras_hash_check_takes_md5_or_sha256_as_keras_does(offline_keras_home):
    import hashlib
    from dataclasses import replace

    from cifar_ray.embed.embedder import verify_keras_cache

    data = b"the right file"
    spec = replace(backbones.get("resnet50"), weights_file="mine.h5")
    verify_keras_cache(spec)  # not there yet: left to Keras, which checks what it downloads
    (offline_keras_home / "mine.h5").write_bytes(data)
    verify_keras_cache(replace(spec, weights_hash=hashlib.md5(data).hexdigest()))
    verify_keras_cache(replace(spec, weights_hash=hashlib.sha256(data).hexdigest()))
    verify_keras_cache(replace(spec, weights_hash=None))  # no hash in Keras: nothing to check
    with pytest.raises(UserError, match="sha256"):
        verify_keras_cache(replace(spec, weights_hash=hashlib.sha256(b"other").hexdigest()))
