"""What the commands decide before any work: backbone names, each backbone's own config and
image size, override names checked, and the `backbones` listing as a user sees it."""

from __future__ import annotations

import os

import pytest

from cifar_ray.config import ExtractConfig, parse_image_sizes
from cifar_ray.embed import backbones
from cifar_ray.errors import UserError
from cifar_ray.extract import configs
from tests.conftest import run_cli


def _cfg(sizes: str) -> ExtractConfig:
    default, overrides = parse_image_sizes(sizes)
    return ExtractConfig(backbone="inceptionv3,resnet50,mobilenetv2", image_size=default,
                         image_size_overrides=overrides, limit=7, seed=3)  # fmt: skip


def test_cfg_for_gives_each_backbone_its_own_size_else_the_default():
    cfg = _cfg("80,resnet50=224,mobilenet_v2=32")
    sizes = {name: configs.cfg_for(cfg, name).image_size for name in ("inceptionv3", "resnet50",
                                                                       "mobilenetv2")}  # fmt: skip
    assert sizes == {"inceptionv3": 80, "resnet50": 224, "mobilenetv2": 32}
    assert configs.cfg_for(cfg, "ResNet-50").image_size == 224  # names compare as get() does
    one = configs.cfg_for(cfg, "resnet50")
    assert (one.backbone, one.image_size_overrides) == ("resnet50", ())
    assert (one.limit, one.seed, one.out) == (cfg.limit, cfg.seed, cfg.out)  # the rest kept


def test_cfg_for_without_a_default_leaves_the_backbone_size():
    cfg = _cfg("resnet50=224")
    assert configs.cfg_for(cfg, "inceptionv3").image_size is None
    assert configs.cfg_for(cfg, "resnet50").image_size == 224


def test_override_names_are_checked_even_when_unused():
    configs.check_overrides(_cfg("vgg16=64,Mobile_Net-V2=32"))  # known, unused: fine
    with pytest.raises(UserError, match="unknown backbone 'vgg61'"):
        configs.check_overrides(_cfg("75,vgg61=64"))


def _cells(stdout: str) -> dict[str, list[str]]:
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.replace("┃", "│").strip("│ ").split("│")]
        if len(cells) > 1:
            rows[cells[0]] = cells[1:]
    return rows


def test_backbones_lists_every_registered_backbone_with_its_numbers():
    result = run_cli("backbones")
    assert result.returncode == 0, result.stderr
    assert "\x1b[" not in result.stdout  # a pipe gets plain text
    rows = _cells(result.stdout)
    assert set(backbones.names()) <= set(rows)
    assert rows["name"] == ["source", "dim", "size", "min size", "preprocessing", "params (M)",
                            "GMACs"]  # fmt: skip
    assert rows["inceptionv3"] == ["InceptionV3", "2048", "299", "75", "tf", "21.8", "5.71"]
    assert rows["mobilenetv3small"] == ["MobileNetV3Small", "576", "224", "32", "raw", "0.94",
                                        "0.055"]  # fmt: skip


def test_backbones_files_lists_weights_files_and_hashes():
    result = run_cli("backbones", "--files")
    assert result.returncode == 0, result.stderr
    rows = _cells(result.stdout)
    for name in backbones.names():
        spec = backbones.get(name)
        assert rows[name] == [spec.weights_file, spec.weights_hash or "-"], name


def test_a_plugin_that_does_not_load_is_listed_as_an_error_with_the_rest(tmp_path):
    info = tmp_path / "fake_backbones-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-backbones\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[cifar_ray.backbones]\nbroken = tests.no_such_module:factory\n"
    )
    path = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    result = run_cli("backbones", env={"PYTHONPATH": path})
    assert result.returncode == 0, result.stderr
    rows = _cells(result.stdout)
    assert rows["broken"][0].startswith("error: backbone 'broken'")
    assert rows["broken"][1:] == ["-"] * 6
    assert rows["inceptionv3"][0] == "InceptionV3"
