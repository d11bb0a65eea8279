"""`--backbone hub:<preset>`: Keras Hub image backbones, loaded through Keras Hub's own preset
code from local preset directories (tiny models saved here: no network)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cifar_ray.embed import backbones, fingerprint, hub
from cifar_ray.embed.embedder import Embedder, EmbedderSpec
from cifar_ray.errors import UserError
from tests.conftest import run_cli

keras_hub = pytest.importorskip("keras_hub")

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _resnet_preset(folder: Path) -> Path:
    """A tiny ResNet with ResNet's ImageNet mean/std converter, as Keras Hub's presets have."""
    model = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3], stackwise_num_filters=[64, 16],
        stackwise_num_blocks=[1, 1], stackwise_num_strides=[1, 2], block_type="basic_block",
        use_pre_activation=False, image_shape=(None, None, 3),
    )  # fmt: skip
    converter = keras_hub.layers.ResNetImageConverter(
        image_size=(32, 32),
        scale=[1 / (255 * s) for s in IMAGENET_STD],
        offset=[-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)],
    )
    model.save_to_preset(str(folder))
    keras_hub.models.ResNetImageClassifierPreprocessor(converter).save_to_preset(str(folder))
    return folder


def _vit_preset(folder: Path) -> Path:
    model = keras_hub.models.ViTBackbone(
        image_shape=(32, 32, 3), patch_size=8, num_layers=1, num_heads=2, hidden_dim=24,
        mlp_dim=32,
    )  # fmt: skip
    model.save_to_preset(str(folder))
    converter = keras_hub.layers.ViTImageConverter(image_size=(32, 32), scale=1 / 127.5, offset=-1)
    converter.save_to_preset(str(folder))
    return folder


@pytest.fixture(scope="module")
def presets(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hubpresets")
    return {
        "resnet": _resnet_preset(root / "resnet_tiny"),
        "vit": _vit_preset(root / "vit_tiny"),
    }


def _images(n: int = 6) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def test_spec_is_read_from_the_preset(presets):
    resnet = backbones.get(f"hub:{presets['resnet']}")
    assert (resnet.name, resnet.application) == (
        "hub-resnet_tiny",
        "keras_hub.models.ResNetBackbone",
    )
    assert (resnet.default_size, resnet.dim, resnet.preprocessing) == (32, 16, "scale_offset")
    scale, offset = resnet.scale_offset
    assert np.allclose(scale, [1 / (255 * s) for s in IMAGENET_STD])
    assert np.allclose(offset, [-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)])

    vit = backbones.get(f"hub:{presets['vit']}")
    assert (vit.name, vit.dim, vit.default_size) == ("hub-vit_tiny", 24, 32)
    assert vit.scale_offset == ((1 / 127.5,) * 3, (-1.0,) * 3)


@pytest.mark.parametrize("family", ["resnet", "vit"])
def test_features_are_keras_hubs_own_pipeline_pooled(presets, family):
    """Our graph (uint8 in, converter's scale/offset, backbone, pooling) gives what Keras Hub's
    own converter and backbone give, pooled as its ImageClassifier pools that family."""
    preset = str(presets[family])
    ours = Embedder(EmbedderSpec(f"hub:{preset}", 32, "imagenet", batch_size=8))(_images())

    converter = keras_hub.layers.ImageConverter.from_preset(preset)
    model = keras_hub.models.Backbone.from_preset(preset)
    out = np.asarray(model(converter(_images().astype("float32"))))
    expected = out[:, 0] if family == "vit" else out.mean(axis=(1, 2))  # CLS token / GAP
    assert ours.shape == expected.shape == (6, 16 if family == "resnet" else 24)
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-4)


def test_weights_none_is_seeded_random_and_deterministic(presets):
    name = f"hub:{presets['resnet']}"
    first = Embedder(EmbedderSpec(name, 48, "none", seed=1, batch_size=8))
    again = Embedder(EmbedderSpec(name, 48, "none", seed=1, batch_size=8))
    other = Embedder(EmbedderSpec(name, 48, "none", seed=2, batch_size=8))
    preset = Embedder(EmbedderSpec(name, 48, "imagenet", seed=1, batch_size=8))
    features = first(_images())
    assert features.shape == (6, 16) and np.isfinite(features).all()
    assert np.array_equal(features, again(_images())) and first.digest == again.digest
    assert first.digest != other.digest
    assert first.digest != preset.digest  # "imagenet" is the preset's own weights


def test_fingerprint_names_the_preset_and_its_files(presets, tmp_path):
    copy = Path(shutil.copytree(presets["resnet"], tmp_path / "resnet_tiny"))
    spec = backbones.get(f"hub:{copy}")
    before = fingerprint.weights_identity("none", 0, spec)
    assert before["hub"]["preset"] == "hub-resnet_tiny"
    assert before["hub"]["keras_hub"] == keras_hub.__version__
    assert fingerprint.weights_identity("imagenet", 0, spec)["hub"] == before["hub"]
    assert fingerprint.weights_identity("none", 0, spec) == before

    weights = copy / "model.weights.h5"
    data = weights.read_bytes()
    weights.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    after = fingerprint.weights_identity("none", 0, spec)
    assert after["hub"]["sha256"] != before["hub"]["sha256"]
    assert fingerprint.differences(before, after) == ["hub.sha256"]


def test_builtin_preset_is_named_by_its_versioned_handle():
    identity = hub.identity("resnet_50_imagenet")  # Keras Hub's own table: no network
    assert identity["preset"] == "resnet_50_imagenet"
    assert identity["handle"].startswith("kaggle://keras/") and identity["handle"][-1].isdigit()
    assert hub.store_name("resnet_50_imagenet") == "hub-resnet_50_imagenet"
    assert hub.store_name("kaggle://keras/dinov2/keras/dinov2_base/1") == (
        "hub-keras-dinov2-keras-dinov2_base-1"
    )


def test_a_fixed_size_preset_at_another_size_names_its_own(presets):
    """A ViT's position embeddings fit only its preset's size: the error says which."""
    with pytest.raises(UserError, match=r"--image-size hub:.*vit_tiny=32"):
        Embedder(EmbedderSpec(f"hub:{presets['vit']}", 48, "imagenet", batch_size=8))


def test_unknown_preset_is_one_line():
    with pytest.raises(UserError, match=r"cannot (load the Keras Hub preset|read the preset)"):
        backbones.get("hub:/nonexistent/preset_dir")


def test_without_keras_hub_the_error_names_the_extra(tmp_path, cifar_archive):
    shim = (
        "import sys; sys.modules['keras_hub'] = None; from cifar_ray.cli import main; "
        "sys.argv[0] = 'cifar-ray'; main()"
    )
    args = ["extract", "--data-dir", str(cifar_archive), "--weights", "none", "--limit", "20",
            "--backbone", "hub:resnet_50_imagenet", "--out", str(tmp_path / "out")]  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-c", shim, *args], capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if "keras-hub" in line]
    assert len(lines) == 1 and 'pip install -e ".[hub]"' in lines[0]
    assert not (tmp_path / "out" / "features").exists()


def test_backbones_lists_keras_hub_families():
    result = run_cli("backbones", env={"COLUMNS": "200"})
    assert result.returncode == 0, result.stderr[-2000:]
    shown = result.stdout + result.stderr  # result tables go to stdout
    assert "inceptionv3" in shown  # the registry, still
    examples = {"ResNetBackbone": "resnet_50_imagenet", "DINOV2Backbone": "dinov2_base",
                "ViTBackbone": "vit_base_patch16_224_imagenet"}  # fmt: skip
    for family, example in examples.items():
        assert family in shown and example in shown


@pytest.mark.ray
def test_run_compares_a_builtin_and_a_hub_backbone(presets, tmp_path, cifar_archive):
    preset = presets["resnet"]
    out = tmp_path / "out"
    result = run_cli("run", "--local", "--data-dir", cifar_archive, "--weights", "none",
                     "--image-size", f"75,hub:{preset}=32", "--limit", "60",
                     "--backbone", f"inceptionv3,hub:{preset}", "--epochs", "1",
                     "--no-pixel-baselines", "--out", out)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("inceptionv3", "hub-resnet_tiny"):
        manifest = json.loads((out / "features" / name / "manifest.json").read_text())
        assert manifest["last_run"]["computed"] > 0
    stored = json.loads((out / "features/hub-resnet_tiny/fingerprint.json").read_text())
    assert stored["image_size"] == 32 and stored["preprocessing"] == "scale_offset"
    assert stored["weights"]["hub"]["sha256"] == hub.directory_sha256(preset)
    metrics = json.loads((out / "report/metrics.json").read_text())
    rows = {row["backbone"]: row for row in metrics["comparison"]}
    assert set(rows) == {"inceptionv3", "hub-resnet_tiny"}
    assert rows["hub-resnet_tiny"]["dim"] == 16 and rows["inceptionv3"]["dim"] == 2048
