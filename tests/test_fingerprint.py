"""The fingerprint covers what decides the values: a user's factory code, and the weights a
factory loads itself when it declares them. Built-in identities stay as they were."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import pytest

from cifar_ray.embed import backbones, fingerprint
from cifar_ray.errors import UserError
from tests import editable_backbone
from tests.conftest import run_cli


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def module_dir(tmp_path, monkeypatch):
    """A folder on sys.path for the factory modules a test writes; they are forgotten after."""
    folder = tmp_path / "mods"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    before = set(sys.modules)
    yield folder
    for name in set(sys.modules) - before:
        if getattr(sys.modules[name], "__file__", "") and str(folder) in sys.modules[name].__file__:
            sys.modules.pop(name)


def test_built_in_identities_are_unchanged():
    """Stores made before keep resuming: no factory, nothing new in the identity."""
    b = backbones.get("inceptionv3")
    assert fingerprint.weights_identity("none", 3, b) == {"name": "none", "seed": 3}
    assert fingerprint.weights_identity("imagenet", 0, b) == {
        "name": "imagenet", "file": b.weights_file, "hash": b.weights_hash,
    }  # fmt: skip


def test_a_factory_is_identified_by_its_module_source(module_dir, tmp_path):
    ref = editable_backbone.write(module_dir, 1.0)
    first = fingerprint.weights_identity("none", 0, backbones.get(ref))
    assert first["factory"] == {
        "ref": ref, "qualname": "factory", "module": "editable_bb",
        "module_sha256": sha256(module_dir / "editable_bb.py"),
    }  # fmt: skip
    assert fingerprint.weights_identity("none", 0, backbones.get(ref)) == first

    editable_backbone.write(module_dir, 2.0)  # one constant changed
    second = fingerprint.weights_identity("none", 0, backbones.get(ref))
    assert fingerprint.differences(first, second) == ["factory.module_sha256"]

    weights = tmp_path / "w.weights.h5"
    weights.write_bytes(b"any bytes")  # identity only: nothing is loaded here
    with_file = fingerprint.weights_identity(str(weights), 0, backbones.get(ref))
    assert with_file["sha256"] == sha256(weights) and with_file["factory"] == second["factory"]


def test_the_module_that_defines_the_factory_is_hashed_not_the_one_named(module_dir):
    """`mod:factory` may re-export a factory defined elsewhere: its code is in that file."""
    (module_dir / "reexport_bb.py").write_text("from tests.custom_backbone import small_cnn\n")
    identity = fingerprint.weights_identity("none", 0, backbones.get("reexport_bb:small_cnn"))
    defining = Path(sys.modules["tests.custom_backbone"].__file__)
    assert identity["factory"]["module"] == "tests.custom_backbone"
    assert identity["factory"]["module_sha256"] == sha256(defining)


DECLARING = """
from tests.custom_backbone import small_cnn


def factory(input_shape, weights=None):
    return small_cnn(input_shape, None)


factory.backbone_spec = {{"dim": 16, "weights_file": {file!r}, "version": {version!r}{extra}}}
"""


def declaring_factory(folder: Path, name: str, file: str, version: str, extra: str = "") -> str:
    (folder / f"{name}.py").write_text(DECLARING.format(file=file, version=version, extra=extra))
    return f"{name}:factory"


def test_weights_a_factory_declares_are_covered(module_dir, tmp_path, monkeypatch):
    """For weights="imagenet" the factory loads its own file: its sha256 when declared."""
    weights = tmp_path / "pretrained.h5"
    weights.write_bytes(b"version one")
    ref = declaring_factory(module_dir, "declared_bb", str(weights), "7")
    first = fingerprint.weights_identity("imagenet", 0, backbones.get(ref))
    assert first["sha256"] == sha256(weights) and first["file"] == str(weights)
    assert first["factory"]["version"] == "7"
    assert "sha256" not in fingerprint.weights_identity("none", 0, backbones.get(ref))

    weights.write_bytes(b"version two")  # the factory's weights replaced, its code the same
    second = fingerprint.weights_identity("imagenet", 0, backbones.get(ref))
    assert fingerprint.differences(first, second) == ["sha256"]

    weights.unlink()  # a factory may fetch its file when it builds: the actor checks it then
    assert fingerprint.weights_identity("imagenet", 0, backbones.get(ref))["sha256"] is None
    with pytest.raises(UserError, match=r"declares weights_file .* not there after building"):
        fingerprint.weights_identity("imagenet", 0, backbones.get(ref), built=True)
    weights.write_bytes(b"version two")  # fetched by the build: the same weights as `second`
    after = fingerprint.weights_identity("imagenet", 0, backbones.get(ref), built=True)
    assert fingerprint.same_weights({**second, "sha256": None}, after)
    assert not fingerprint.same_weights(first, after)  # known before the build: compared


def test_a_weights_file_is_its_bytes_not_its_path(tmp_path):
    """A byte-identical copy at another path is the same weights; a store fingerprinted when
    files were named by their path resumes under its own fingerprint."""
    from cifar_ray.extract import claim

    original, copy = tmp_path / "a" / "w.h5", tmp_path / "b" / "other-name.h5"
    for path in (original, copy):
        path.parent.mkdir()
        path.write_bytes(b"the same weights")
    bb = backbones.get("inceptionv3")
    here = fingerprint.weights_identity(str(original), 0, bb)
    assert here == fingerprint.weights_identity(str(copy), 0, bb)
    fields = {"backbone": "inceptionv3", "image_size": 75, "weights": here}
    old = {**fields, "weights": {**here, "name": "w.h5"}}  # as stores recorded it before
    existing = {**old, "id": fingerprint.fingerprint_id(old)}
    assert claim._same_weights(existing, fields) == old  # resumes as it was made
    other = {**fields, "weights": {**here, "sha256": "0" * 64}}
    assert claim._same_weights(existing, other) is None  # other bytes: refused as before
    assert claim._same_weights(existing, {**fields, "image_size": 99}) is None


def test_declared_names_resolve_under_keras_home_and_hashes_are_taken_as_given(
    module_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    (tmp_path / "kh/models").mkdir(parents=True)
    (tmp_path / "kh/models/mine.h5").write_bytes(b"cached by get_file")
    ref = declaring_factory(module_dir, "named_bb", "mine.h5", "1")
    identity = fingerprint.weights_identity("imagenet", 0, backbones.get(ref))
    assert identity["sha256"] == sha256(tmp_path / "kh/models/mine.h5")

    ref = declaring_factory(module_dir, "hashed_bb", "mine.h5", "1", ', "weights_hash": "ab" * 32')
    identity = fingerprint.weights_identity("imagenet", 0, backbones.get(ref))
    assert identity["hash"] == "ab" * 32 and "sha256" not in identity  # verified before use


def test_differences_name_nested_fields():
    old = {"a": 1, "w": {"sha256": "x", "factory": {"module_sha256": "m"}}}
    new = {"a": 1, "w": {"sha256": "y", "factory": {"module_sha256": "n"}}, "b": 2}
    assert fingerprint.differences(old, new) == ["b", "w.factory.module_sha256", "w.sha256"]
    assert fingerprint.differences(old, old) == []


@pytest.mark.ray
def test_an_edited_factory_is_refused_not_mixed(tmp_path, cifar_archive):
    """Extract with a user's module, edit one constant, extract again: refused, files intact."""
    mods = tmp_path / "mods"
    mods.mkdir()
    ref = editable_backbone.write(mods, 1.0)
    path = os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(mods)]))
    out = tmp_path / "out"
    args = ["extract", "--local", "--weights", "none", "--image-size", "75", "--limit", "64",
            "--shard-size", "32", "--data-dir", cifar_archive, "--out", out,
            "--backbone", ref]  # fmt: skip
    first = run_cli(*args, env={"PYTHONPATH": path})
    assert first.returncode == 0, first.stderr[-3000:]
    store = out / "features" / "editable"
    files = {p: p.read_bytes() for p in sorted(store.rglob("*.parquet"))}
    assert len(files) == 4  # 64 train + 64 test rows in shards of 32

    editable_backbone.write(mods, 2.0)
    again = run_cli(*args, env={"PYTHONPATH": path})
    assert again.returncode == 2, again.stderr[-3000:]
    lines = [line for line in again.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "weights" in lines[0] and "--overwrite" in lines[0], again.stderr
    assert {p: p.read_bytes() for p in sorted(store.rglob("*.parquet"))} == files
    recorded = json.loads((store / "fingerprint.json").read_text())
    assert recorded["weights"]["factory"]["module_sha256"] != sha256(mods / "editable_bb.py")
