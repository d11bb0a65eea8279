"""Run configuration: every rule refuses its bad value with a UserError naming the flag, accepts
the boundary values, and local paths become absolute before any Ray worker sees them."""

from __future__ import annotations

from pathlib import Path

import pytest

from cifar_ray.config import (
    WEIGHTS_KEYWORDS,
    BenchConfig,
    ExtractConfig,
    TrainConfig,
    absolute,
    backbone_names,
    parse_image_sizes,
)
from cifar_ray.errors import UserError

EXTRACT_BAD = {
    "limit zero": ({"limit": 0}, "--limit must be a positive"),
    "batch negative": ({"batch_size": -1}, "--batch-size must be positive"),
    "shard size zero": ({"shard_size": 0}, "--shard-size must be positive, got 0"),
    "in flight zero": ({"in_flight": 0}, "--in-flight must be positive, got 0"),
    "precision": ({"precision": "float16"}, "--precision must be one of float32, mixed_float16"),
    "actors zero": ({"actors": 0}, "--actors must be positive, got 0"),
    "retries negative": ({"max_retries": -1}, "--max-retries must be 0 or more, got -1"),
    "gpus zero": ({"gpus_per_actor": 0.0}, r"--gpus-per-actor must be in \(0, 8\], got 0.0"),
    "gpus above 8": ({"gpus_per_actor": 8.5}, r"--gpus-per-actor must be in \(0, 8\], got 8.5"),
}
TRAIN_BAD = {
    "pixel epochs zero": ({"pixel_epochs": 0}, "--pixel-epochs must be positive, got 0"),
    "val fraction zero": ({"val_fraction": 0.0}, r"--val-fraction must be in \(0, 1\), got 0.0"),
    "val fraction one": ({"val_fraction": 1.0}, r"--val-fraction must be in \(0, 1\), got 1.0"),
    "epochs zero": ({"epochs": 0}, "--epochs, --batch-size and --hidden must be positive"),
    "batch zero": ({"batch_size": 0}, "--epochs, --batch-size and --hidden must be positive"),
    "hidden zero": ({"hidden": 0}, "--epochs, --batch-size and --hidden must be positive"),
    "dropout one": ({"dropout": 1.0}, r"--dropout must be in \[0, 1\), got 1.0"),
    "dropout negative": ({"dropout": -0.1}, r"--dropout must be in \[0, 1\), got -0.1"),
    "learning rate nan": ({"learning_rate": float("nan")}, "--learning-rate must be finite and"),
    "learning rate inf": ({"learning_rate": float("inf")}, "--learning-rate must be finite and"),
    "learning rate zero": ({"learning_rate": 0.0}, "--learning-rate must be finite and > 0"),
    "learning rate negative": ({"learning_rate": -1e-3}, "--learning-rate must be finite and"),
}


BENCH_BAD = {
    "images zero": ({"images": 0}, "--images and --rounds must be positive, got 0 and 2"),
    "rounds zero": ({"rounds": 0}, "--images and --rounds must be positive, got 300 and 0"),
    "rounds negative": ({"rounds": -1}, "--images and --rounds must be positive"),
}


@pytest.mark.parametrize("case", sorted(BENCH_BAD))
def test_bench_config_refuses(case):
    """The bench's checks live with its defaults, as the other configs' do, not in the CLI."""
    kwargs, message = BENCH_BAD[case]
    with pytest.raises(UserError, match=message):
        BenchConfig(**kwargs)
    assert BenchConfig(images=1, rounds=1).images == 1


@pytest.mark.parametrize("case", sorted(EXTRACT_BAD))
def test_extract_config_refuses(case):
    kwargs, message = EXTRACT_BAD[case]
    with pytest.raises(UserError, match=message):
        ExtractConfig(**kwargs)


@pytest.mark.parametrize("case", sorted(TRAIN_BAD))
def test_train_config_refuses(case):
    kwargs, message = TRAIN_BAD[case]
    with pytest.raises(UserError, match=message):
        TrainConfig(**kwargs)


def test_boundary_values_are_accepted():
    cfg = ExtractConfig(limit=1, batch_size=0, shard_size=1, in_flight=1, actors=1,
                        max_retries=0, gpus_per_actor=8, precision="mixed_bfloat16")  # fmt: skip
    assert (cfg.limit, cfg.batch_size, cfg.max_retries, cfg.gpus_per_actor) == (1, 0, 0, 8)
    assert ExtractConfig(gpus_per_actor=0.25).gpus_per_actor == 0.25
    train = TrainConfig(dropout=0.0, val_fraction=0.01, epochs=1, batch_size=1, hidden=1,
                        pixel_epochs=1)  # fmt: skip
    assert (train.dropout, train.val_fraction) == (0.0, 0.01)


def test_absolute_keeps_uris_and_keywords(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert absolute(None) is None
    for kept in ("s3://bucket/out", "gs://b/x"):
        assert absolute(kept) == kept
    for keyword in WEIGHTS_KEYWORDS:
        assert absolute(keyword, WEIGHTS_KEYWORDS) == keyword
        assert absolute(keyword) == str(tmp_path / keyword)  # a folder of that name elsewhere
    assert absolute("out/sub") == str(tmp_path / "out" / "sub")
    assert absolute("~/data") == str(tmp_path / "home" / "data")
    assert absolute(str(tmp_path / "x")) == str(tmp_path / "x")


def test_configs_make_local_paths_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = ExtractConfig(out="o", data_dir="d", weights="w.h5")
    assert (cfg.out, cfg.data_dir, cfg.weights) == (
        str(tmp_path / "o"),
        str(tmp_path / "d"),
        str(tmp_path / "w.h5"),
    )
    assert ExtractConfig(weights="imagenet", data_dir=None).weights == "imagenet"
    assert ExtractConfig(weights="none").weights == "none"
    train = TrainConfig(out="s3://b/o", data_dir="pix")
    assert (train.out, train.data_dir) == ("s3://b/o", str(tmp_path / "pix"))
    assert Path(TrainConfig().out).is_absolute()  # the default ./cifar-ray-out too


def test_an_output_folder_named_like_a_weights_keyword_is_still_made_absolute(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    assert ExtractConfig(out="none").out == str(tmp_path / "none")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, (None, ())),
        ("", (None, ())),
        ("75", (75, ())),
        ("resnet50=224", (None, (("resnet50", 224),))),
        (" 75 , ResNet50 = 224,mobilenetv2=32 ", (75, (("resnet50", 224), ("mobilenetv2", 32)))),
        ("tests.custom_backbone:tiny=40", (None, (("tests.custom_backbone:tiny", 40),))),
    ],
)
def test_parse_image_sizes(text, expected):
    assert parse_image_sizes(text) == expected


@pytest.mark.parametrize("text", ["big", "resnet50=", "resnet50=2x4", "75,resnet50:224"])
def test_parse_image_sizes_refuses_what_is_not_n_or_name_n(text):
    with pytest.raises(UserError, match=r"--image-size .*expected N or name=N"):
        parse_image_sizes(text)


def test_backbone_names_trims_and_drops_empty_names():
    assert backbone_names("inceptionv3") == ["inceptionv3"]
    assert backbone_names(" resnet50 ,, mobilenetv2, ") == ["resnet50", "mobilenetv2"]
    assert backbone_names("pkg.mod:factory") == ["pkg.mod:factory"]


@pytest.mark.parametrize("value", ["", " ", ",", " , ,"])
def test_backbone_names_refuses_no_backbone(value):
    with pytest.raises(UserError, match="--backbone names no backbone"):
        backbone_names(value)
    assert backbone_names(value, required=False) == []  # train: every store in OUT


def test_extract_and_train_read_the_backbone_list_alike():
    """One parser for both: `train --backbone "a, b"` names the stores `extract` made."""
    from cifar_ray.extract import configs

    assert configs.backbone_names is backbone_names
    assert backbone_names(" a , b", required=False) == backbone_names("a,b") == ["a", "b"]
