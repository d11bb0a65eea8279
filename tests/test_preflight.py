"""Options and inputs checked against the machine before Ray starts (issue 20, items 5 and 6):
each refusal is one line, and Ray is never imported on the way to it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from cifar_ray.config import SEED_MAX, ExtractConfig, TrainConfig
from cifar_ray.errors import UserError
from cifar_ray.extract import preflight
from cifar_ray.source.paths import check_data_dir

GB = 1024**3


def test_a_batch_no_node_could_hold_is_refused_with_the_figure():
    problem = preflight.batch_problem(100_000, 75, 24 * GB)
    assert problem.startswith("--batch-size 100000 at 75 px needs about 209.5 GB for one batch")
    assert "more than 50% of this machine's 24.0 GB; use --batch-size 5726 or less" in problem
    assert preflight.batch_problem(256, 299, 24 * GB) is None  # 8.5 GB: fits
    assert preflight.batch_problem(0, 299, 1 * GB) is None  # auto


def test_actors_past_what_the_cluster_can_place_are_refused():
    assert preflight.actors_problem(64, 2, 0, 1.0) == (
        "--actors 64: this machine's 2 CPU(s) can place 8 actor(s) (each needs 0.25 CPU)"
    )
    assert preflight.actors_problem(8, 2, 0, 1.0) is None
    assert preflight.actors_problem(None, 2, 0, 1.0) is None
    assert "can place 4 actor(s)" in preflight.actors_problem(5, 16, 2, 0.5)
    assert preflight.actors_problem(4, 16, 2, 0.5) is None


def test_on_a_cluster_the_same_figures_are_a_warning(caplog):
    cfg = ExtractConfig(actors=10_000, batch_size=10**7)
    preflight.check([cfg], [299], local=False)  # no exception: the nodes may be larger
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "the cluster's nodes may hold it" in said[0]  # actors: see below
    preflight.warn_unplaceable(64, {"CPU": 2.0}, 1.0)
    assert caplog.records[-1].getMessage() == (
        "--actors 64: the cluster's 2 CPU(s) can place 8 actor(s) (each needs 0.25 CPU) now; "
        "the others wait for nodes to join"
    )
    with pytest.raises(UserError, match="--batch-size 10000000"):
        preflight.check([cfg], [299], local=True)


@pytest.mark.parametrize("seed", [-1, SEED_MAX + 1])
def test_a_seed_outside_numpys_range_is_refused(seed):
    for make in (ExtractConfig, TrainConfig):
        with pytest.raises(UserError, match=r"--seed must be in 0\.\.4294967295"):
            make(seed=seed)
    assert ExtractConfig(seed=SEED_MAX).seed == SEED_MAX


@pytest.mark.parametrize("out", ["/", "~", "/.."])
def test_out_at_a_filesystem_root_or_home_is_refused(out):
    with pytest.raises(UserError, match="filesystem root or your home folder"):
        ExtractConfig(out=out)
    with pytest.raises(UserError, match="filesystem root or your home folder"):
        TrainConfig(out=out)


def test_a_fifo_or_device_is_named_as_such(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(UserError, match=r"fifo is a FIFO \(named pipe\), not a file or folder"):
        check_data_dir(str(fifo))  # returns at once: a FIFO is never opened
    with pytest.raises(UserError, match="/dev/zero is a character device"):
        check_data_dir("/dev/zero")
    with pytest.raises(UserError, match="no such file or directory"):
        check_data_dir(str(tmp_path / "nope" / "deeper"))
    check_data_dir(str(tmp_path))  # a folder that opens: the reader decides the rest


@pytest.mark.parametrize("inside", ["cifar-10-python.tar.gz", "cifar-10-batches-py/data_batch_1"])
def test_a_fifo_the_folder_resolves_to_is_named_before_ray(tmp_path, inside):
    """Before: a FIFO named like the archive inside --data-dir passed, Ray started, and 18 s
    later the reader said "no CIFAR-10 here"."""
    from cifar_ray.extract.configs import backbone_configs

    fifo = tmp_path / "data" / inside
    fifo.parent.mkdir(parents=True)
    os.mkfifo(fifo)
    cfg = ExtractConfig(out=str(tmp_path / "out"), data_dir=str(tmp_path / "data"))
    with pytest.raises(UserError, match=rf"^{fifo} is a FIFO \(named pipe\), not a file or"):
        backbone_configs(cfg, local=True)  # returns at once: the FIFO is never opened


# Every case runs in one fresh interpreter: the refusal, and whether Ray was imported by then.
PROBE = """
import json, sys
from cifar_ray import commands
from cifar_ray.config import ExtractConfig
from cifar_ray.errors import UserError
out = []
for case in json.loads(sys.argv[1]):
    try:
        commands.extract(ExtractConfig(**case), local=True, address=None, verbose=False)
        out.append(["no error", False])
    except UserError as exc:
        out.append([str(exc), "ray" in sys.modules])
print(json.dumps(out))
"""


def test_each_refusal_comes_before_ray_is_imported(tmp_path, cifar_archive):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    base = {"out": str(tmp_path / "out"), "data_dir": str(cifar_archive), "weights": "none",
            "image_size": 75, "limit": 24}  # fmt: skip
    too_many = 4 * preflight.cpu_count() + 1  # a quarter of a core each, and one more
    cases = {
        "--batch-size 10000000 at 75 px": {"batch_size": 10**7},
        f"--actors {too_many}": {"actors": too_many},
        "--seed must be in 0..4294967295": {"seed": -1},
        "is a filesystem root or your home folder": {"out": "/"},
        "is a FIFO": {"data_dir": str(fifo)},
        "is a character device": {"data_dir": "/dev/zero"},
        "no such file or directory": {"data_dir": str(tmp_path / "nope")},
    }
    args = json.dumps([{**base, **case} for case in cases.values()])
    done = subprocess.run([sys.executable, "-c", PROBE, args], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    for expected, (message, ray_imported) in zip(cases, json.loads(done.stdout), strict=True):
        assert expected in message and not ray_imported, (expected, message)
    assert not (tmp_path / "out").exists()
