"""Results on stdout, progress and messages on stderr, and text that is not ours printed as
written (rich would read `[hub]` as a style tag and drop it)."""

from __future__ import annotations

import json

import numpy as np

from cifar_ray import listings, progress
from cifar_ray.store.features import FeatureStore
from cifar_ray.store.locations import Location
from cifar_ray.store.manifest import Manifest
from cifar_ray.store.shards import plan
from tests.conftest import run_cli

BRACKETED = 'pip install -e ".[hub]" [red]kept[/red] [bold]'


def test_backbones_table_pipes_through_stdout_and_json_parses():
    table = run_cli("backbones")  # stdout and stderr are pipes here
    assert table.returncode == 0, table.stderr
    assert "inceptionv3" in table.stdout and "InceptionV3" in table.stdout
    assert "inceptionv3" not in table.stderr  # the result is not mixed into the log
    listed = run_cli("backbones", "--json")
    assert listed.returncode == 0, listed.stderr
    found = json.loads(listed.stdout)
    [inception] = [b for b in found["backbones"] if b["name"] == "inceptionv3"]
    assert (inception["dim"], inception["size"], inception["min_size"]) == (2048, 299, 75)
    assert inception["weights_file"].endswith("_notop.h5")


def _half_store(out) -> None:
    """An interrupted extraction: one of two 10-row shards published."""
    store = FeatureStore(Location(str(out)), "toy")
    shards = plan({"train": 20}, 10)
    feats = np.ones((10, 4), np.float32)
    store.publish(shards[0], np.arange(10) % 10, feats, {"fingerprint": "fp1"})
    Manifest("toy", "fp1", ["a"], {"train": 20}, None, 10).write(store)


def test_inspect_json_on_stdout_counts_what_is_there_and_takes_out_either_way(tmp_path):
    _half_store(tmp_path)
    by_option = run_cli("inspect", "--out", tmp_path, "--json")
    assert by_option.returncode == 1  # a shard is missing
    [store] = json.loads(by_option.stdout)
    assert (store["backbone"], store["shards"], store["published"]) == ("toy", 2, 1)
    assert (store["rows"], store["planned_rows"], store["ok"]) == (10, 20, False)
    assert store["problems"] == ["train-00001: missing"]
    positional = run_cli("inspect", tmp_path)
    assert "toy" in positional.stdout and "1/2" in positional.stdout
    assert "train-00001: missing" in positional.stderr


def test_help_shows_no_type_on_flags():
    shown = run_cli("extract", "--help").stdout
    assert "--overwrite / --no-overwrite" in shown and "--local " in shown
    assert "<bool>" not in shown


def test_every_message_path_prints_bracketed_text_as_written(capsys):
    progress.table(f"title {BRACKETED}", ["name", BRACKETED], [[BRACKETED, 1.5]])
    progress.result(f"report: {BRACKETED}")
    progress.json_result({"text": BRACKETED})
    out = capsys.readouterr()
    assert out.out.count(BRACKETED) == 4 and out.err == ""  # title, column, cell, path
    assert json.loads(out.out[out.out.index("{") :]) == {"text": BRACKETED}
    progress.say(BRACKETED, tag=f"store{BRACKETED}", style="red")
    with progress.status(BRACKETED):
        pass
    listings._list_hub_backbones(files=True)  # a message of ours, through the same path
    err = capsys.readouterr().err
    assert f"store{BRACKETED} {BRACKETED}" in err


def test_a_missing_extra_is_named_with_its_brackets(monkeypatch, capsys):
    from cifar_ray.embed import hub

    def missing():
        raise listings.UserError('install the extra: pip install -e ".[hub]"')

    monkeypatch.setattr(hub, "families", missing)
    listings._list_hub_backbones(files=False)
    assert 'pip install -e ".[hub]"' in capsys.readouterr().err
