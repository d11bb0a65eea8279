"""An output location that names nothing (`--out ''`, `s3://`): refused in one line, exit 2,
with nothing written anywhere, rather than the current folder or a pyarrow traceback."""

from __future__ import annotations

import pytest

from tests.conftest import run_cli, tree_files


def _refused(result, message: str) -> None:
    err = result.stderr.strip()
    assert result.returncode == 2, err[-3000:]
    assert "Traceback" not in err and len(err.splitlines()) == 1, err[-3000:]
    assert message in err


@pytest.mark.parametrize("command", ["extract", "train"])
def test_empty_out_is_refused_and_writes_nothing(tmp_path, synthetic_archive, command):
    extract = [
        "--data-dir",
        synthetic_archive,
        "--weights",
        "none",
        "--limit",
        "20",
        "--image-size",
        "75",
    ]
    extra = extract if command == "extract" else []
    result = run_cli(command, "--local", "--out", "", *extra, cwd=tmp_path)
    _refused(result, "--out is empty")
    assert tree_files(tmp_path) == set()


@pytest.mark.parametrize("uri", ["s3://", "s3:///", "gs://", "file://"])
@pytest.mark.parametrize("command", ["extract", "inspect"])
def test_uri_without_bucket_or_root_is_refused_in_one_line(tmp_path, synthetic_archive, uri,
                                                          command):  # fmt: skip
    if command == "inspect":
        args = ["inspect", uri]
    else:
        args = ["extract", "--local", "--out", uri, "--data-dir", synthetic_archive,
                "--weights", "none", "--limit", "20"]  # fmt: skip
    result = run_cli(*args, cwd=tmp_path)
    _refused(result, f"--out {uri}" if uri != "file://" else "no path")
    assert tree_files(tmp_path) == set()


@pytest.mark.parametrize("uri", ["s3://", "file://"])
def test_a_uri_that_names_nothing_is_refused_before_ray_starts(monkeypatch, synthetic_archive,
                                                               uri):  # fmt: skip
    """The user hears at once: no Ray start (seconds) before the one-line refusal."""
    import ray

    from cifar_ray import commands
    from cifar_ray.config import ExtractConfig, TrainConfig
    from cifar_ray.errors import UserError

    def started(*args, **kwargs):
        raise AssertionError("Ray was started for an --out that names nothing")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # a test Ray may be up already
    monkeypatch.setattr(ray, "init", started)
    cfg = ExtractConfig(out=uri, data_dir=str(synthetic_archive), weights="none", limit=20,
                        image_size=75)  # fmt: skip
    with pytest.raises(UserError, match=r"no bucket or root|no path"):
        commands.extract(cfg, local=True, address=None, verbose=False)
    train = TrainConfig(out=uri, epochs=1)
    with pytest.raises(UserError, match=r"no bucket or root|no path"):
        commands.run(cfg, train, local=True, address=None, verbose=False)
