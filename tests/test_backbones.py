"""The backbone registry: every entry builds and gives its dim, preprocessing matches Keras,
the table's weights files are the ones Keras asks for, custom factories and entry points."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from cifar_ray.embed import backbones
from cifar_ray.embed.embedder import Embedder, EmbedderSpec, _preprocessing_layers, build_model
from cifar_ray.errors import UserError

BUILT_IN = sorted(backbones._REGISTRY)
PIXELS = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)


@pytest.fixture(autouse=True)
def _fresh_session():
    """Dozens of models in one process: drop each test's graph state."""
    yield
    import keras

    keras.backend.clear_session()


@pytest.mark.parametrize("name", BUILT_IN)
def test_builds_at_min_size_with_the_claimed_dim_and_params(name):
    b = backbones.get(name)
    model = build_model(EmbedderSpec(name, b.min_size, "none"))
    feats = np.asarray(model(PIXELS, training=False))
    assert feats.shape == (2, b.dim) and feats.dtype == np.float32
    assert np.isfinite(feats).all()
    inner = model.layers[-1]  # the backbone; params do not depend on the input size
    assert inner.count_params() / 1e6 == pytest.approx(b.params_m, abs=0.006)
    assert not model.trainable and not inner.trainable


@pytest.mark.parametrize("name", BUILT_IN)
def test_weights_file_and_hash_are_the_ones_keras_asks_for(name, monkeypatch):
    """Keras builds the model, then asks get_file for the no-top file: intercept that call."""
    from keras.src.utils import file_utils

    asked = {}

    def get_file(fname=None, origin=None, file_hash=None, **kwargs):
        asked.update(fname=fname, origin=origin, file_hash=file_hash)
        raise _Intercepted

    monkeypatch.setattr(file_utils, "get_file", get_file)
    b = backbones.get(name)
    with pytest.raises(_Intercepted):
        b.build((b.default_size,) * 2 + (3,), "imagenet")
    assert asked["fname"] == b.weights_file
    assert asked["origin"].endswith("/" + b.weights_file)
    assert asked["file_hash"] == b.weights_hash


class _Intercepted(Exception):
    pass


@pytest.mark.parametrize("name", BUILT_IN)
def test_preprocessing_matches_keras_preprocess_input(name):
    """The in-graph layers give what keras.applications.<family>.preprocess_input gives
    (the identity for the "raw" families, whose models preprocess themselves)."""
    import keras

    b = backbones.get(name)
    family = getattr(keras.applications, b.application).__module__.rsplit(".", 1)[1]
    preprocess_input = getattr(keras.applications, family).preprocess_input
    pixels = np.random.default_rng(1).integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    expected = np.asarray(preprocess_input(pixels.astype("float32")))  # a copy: it works in place
    x = keras.ops.convert_to_tensor(pixels)
    for layer in _preprocessing_layers(b.preprocessing):
        x = layer(x)
    assert keras.backend.standardize_dtype(x.dtype) == "float32"
    np.testing.assert_allclose(np.asarray(x), expected, rtol=1e-5, atol=1e-4)
    if b.preprocessing == "raw":
        np.testing.assert_array_equal(expected, pixels)


def test_registry_entries_are_consistent():
    for b in (backbones.get(n) for n in BUILT_IN):
        assert b.preprocessing in backbones.PREPROCESSING
        assert 1 <= b.min_size <= b.default_size and b.dim > 0
        assert b.params_m > 0 and b.gmacs > 0 and b.weights_file.endswith(".h5")
    assert backbones.get("EfficientNet-B0") is backbones.get("efficientnetb0")


def test_custom_factory_builds_and_embeds():
    ref = "tests.custom_backbone:small_cnn"
    b = backbones.get(ref)
    assert (b.name, b.application, b.min_size, b.dim) == ("smallcnn", ref, 16, 16)
    embedder = Embedder(EmbedderSpec(ref, 24, "none", seed=5, batch_size=1))
    feats = embedder(PIXELS)
    assert feats.shape == (2, 16) and np.isfinite(feats).all()
    assert Embedder(EmbedderSpec(ref, 24, "none", seed=5)).digest == embedder.digest


def test_custom_factory_name_defaults_to_its_attribute():
    assert backbones.get("tests.custom_backbone:no_pooling").name == "no_pooling"


@pytest.mark.parametrize(
    ("attr", "weights", "match"),
    [
        ("no_pooling", "none", r"must map images to float vectors .* \(None, 30, 30, 4\)"),
        ("int_output", "none", "must map images to float vectors.*int32"),
        ("fails", "none", "failed: RuntimeError: boom"),
        ("not_a_model", "none", "returned function, not a keras.Model"),
        ("wrong_dim", "none", "gives 16 features; its spec says 99"),
        ("small_cnn", "imagenet", "failed: ValueError: small_cnn has no pretrained weights"),
        ("bad_spec", "none", "preprocessing 'imagenet' is not one of"),
        ("NOT_CALLABLE", "none", "NOT_CALLABLE is a int, not callable"),
        ("missing", "none", "cannot import .*AttributeError"),
    ],
)
def test_bad_factories_are_user_errors_naming_the_factory(attr, weights, match):
    ref = f"tests.custom_backbone:{attr}"
    with pytest.raises(UserError, match=match) as caught:
        build_model(EmbedderSpec(ref, 32, weights))
    assert ref in str(caught.value)


def test_factory_module_in_the_working_directory(tmp_path, monkeypatch):
    """`cifar-ray` is a console script: the working directory is not on sys.path by itself."""
    (tmp_path / "cwd_backbone.py").write_text("from tests.custom_backbone import small_cnn\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, "cwd_backbone", raising=False)
    assert backbones.get("cwd_backbone:small_cnn").name == "smallcnn"
    assert sys.path[-1] == str(tmp_path)
    sys.modules.pop("cwd_backbone")


@pytest.mark.parametrize("ref", ["tests.no_such_module:factory", ":factory", "tests"])
def test_unimportable_or_malformed_references(ref):
    with pytest.raises(UserError, match=r"cannot import|unknown backbone"):
        backbones.get(ref)


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """An installed distribution that registers backbones, seen through importlib.metadata."""
    info = tmp_path / "fake_backbones-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-backbones\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[cifar_ray.backbones]\n"
        "tiny-cnn = tests.custom_backbone:small_cnn\n"
        "tiny_spec = tests.custom_backbone:SMALL_SPEC\n"
        "broken = tests.no_such_module:factory\n"
        "number = tests.custom_backbone:NOT_CALLABLE\n"
        "resnet50 = tests.custom_backbone:small_cnn\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    _clear_plugin_caches()
    yield
    monkeypatch.undo()
    _clear_plugin_caches()


def _clear_plugin_caches():
    backbones._entry_points.cache_clear()
    backbones._load_entry_point.cache_clear()


def test_entry_points_are_listed_lazily_and_loaded_once(plugin):
    assert {"tinycnn", "tinyspec", "broken", "number"} <= set(backbones.names())  # none loaded
    assert backbones.names().count("resnet50") == 1
    assert backbones.get("resnet50").application == "ResNet50"  # built-ins win
    tiny = backbones.get("tiny-cnn")
    assert backbones.get("tinycnn") is tiny
    assert (tiny.name, tiny.application, tiny.dim) == (
        "tinycnn",
        "tests.custom_backbone:small_cnn",
        16,
    )
    assert backbones.get("tiny_spec").name == "tinyspec"  # the name typed names the store
    model = build_model(EmbedderSpec("tiny-cnn", 32, "none"))
    assert np.asarray(model(PIXELS)).shape == (2, 16)


def test_entry_points_that_do_not_load_are_user_errors(plugin):
    with pytest.raises(UserError, match=r"'broken' \(entry point tests.no_such_module:factory\)"):
        backbones.get("broken")
    with pytest.raises(UserError, match="neither a Backbone nor a factory"):
        backbones.get("number")
    assert "tests.no_such_module" not in sys.modules


@pytest.mark.parametrize("spelling", ["ResNet50", "resnet_50", "Res-Net-50", "RESNET50"])
def test_one_key_for_every_spelling_of_a_backbone(spelling):
    """The registry, entry points and `--image-size name=N` all compare names by `key`."""
    from cifar_ray.config import ExtractConfig, parse_image_sizes
    from cifar_ray.extract import configs

    assert backbones.key(spelling) == "resnet50"
    assert backbones.get(spelling) is backbones.get("resnet50")
    default, overrides = parse_image_sizes(f"75,{spelling}=224")
    cfg = ExtractConfig(image_size=default, image_size_overrides=overrides)
    assert configs.cfg_for(cfg, "resnet-50").image_size == 224
    assert configs.cfg_for(cfg, "inceptionv3").image_size == 75
