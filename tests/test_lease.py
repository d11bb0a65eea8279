"""One extract at a time on a store (issue 20, item 8): a lease with an expiry. The second run
is refused in one line; a dead run's lease lapses. No Ray: the lease is the store's."""

from __future__ import annotations

import json
import logging

import pytest

from cifar_ray.errors import UserError
from cifar_ray.store import lease
from cifar_ray.store.locations import Location


def test_a_live_lease_refuses_a_second_run_and_is_given_back_after(tmp_path):
    loc = Location(str(tmp_path / "out"))
    with lease.held(loc, ["inceptionv3", "resnet50"]) as first:
        body = json.loads((tmp_path / "out" / "leases" / "resnet50.json").read_text())
        assert body["run"] == first.run and body["expires_unix"] > body["since_unix"]
        with pytest.raises(UserError) as refused:
            lease.Lease(loc, ["resnet50"]).acquire(settle_s=0)
        assert str(refused.value).startswith("another extract is running on this store (pid ")
        assert "this one would compute the same shards again" in str(refused.value)
        assert "\n" not in str(refused.value)
        assert lease.Lease(loc, ["mobilenetv2"]).acquire(settle_s=0) is None  # another store
    assert not (tmp_path / "out" / "leases" / "inceptionv3.json").exists()


def test_a_dead_runs_lease_lapses_and_is_taken_over(tmp_path, caplog):
    loc = Location(str(tmp_path / "out"))
    dead = lease.Lease(loc, ["inceptionv3"], lease_s=-1)  # as if not renewed for too long
    dead.acquire(settle_s=0)
    with caplog.at_level(logging.WARNING), lease.held(loc, ["inceptionv3"]) as second:
        assert "stopped renewing it" in caplog.text
        dead.release()  # the dead run's release (had it come back) leaves the new lease be
        on_disk = json.loads((tmp_path / "out" / "leases" / "inceptionv3.json").read_text())
        assert on_disk["run"] == second.run


def test_of_two_runs_that_start_together_the_last_writer_keeps_the_lease(tmp_path):
    loc = Location(str(tmp_path / "out"))
    a, b = lease.Lease(loc, ["x"]), lease.Lease(loc, ["x"])
    for one in (a, b):  # both found no lease, both wrote: then both read back
        one.renew()
    with pytest.raises(UserError, match="another extract is running"):
        a._refuse_if_held(a.paths[0])
    b._refuse_if_held(b.paths[0])


def test_a_refused_or_finished_run_leaves_no_folder(tmp_path):
    out = tmp_path / "out"
    with lease.held(Location(str(out)), ["x"]):
        assert (out / "leases").is_dir()
    assert not out.exists()


def test_a_lease_whose_run_died_on_this_host_is_taken_over_at_once(tmp_path, caplog):
    """A driver killed outright (SIGKILL, the OOM killer) on this host: its pid is gone, so the
    user's re-run resumes at once instead of waiting for the lease to lapse."""
    import subprocess
    import sys

    loc = Location(str(tmp_path / "out"))
    code = (
        "import sys; from cifar_ray.store import lease; from cifar_ray.store.locations "
        "import Location; lease.Lease(Location(sys.argv[1]), ['x']).acquire(settle_s=0)"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "out")], check=True)
    body = json.loads((tmp_path / "out" / "leases" / "x.json").read_text())
    assert body["expires_unix"] > body["since_unix"]  # not lapsed: its process exited
    with caplog.at_level(logging.WARNING), lease.held(loc, ["x"], renew_s=60) as second:
        assert "is no longer running" in caplog.text
        on_disk = json.loads((tmp_path / "out" / "leases" / "x.json").read_text())
        assert on_disk["run"] == second.run
