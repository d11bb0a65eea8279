"""The cluster path: cluster.yaml, the job scripts on a real cluster, extraction on several nodes.

Every cluster started here is this test's own: its processes carry a unique environment tag and
a unique temp dir, and only those are stopped afterwards (never `ray stop`, which would stop
every Ray on the machine, other people's test clusters included).

Run as a script (`python tests/test_cluster.py SCENARIO OUT ARCHIVE TEMP_DIR RESULT`), this file
runs one multi-node scenario on a `ray.cluster_utils.Cluster` in that process, away from the
pytest process, whose session-scoped embedded Ray must not be disturbed.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.ray

REPO = Path(__file__).resolve().parents[1]
TAG_ENV = "CIFAR_RAY_TEST_CLUSTER_TAG"  # marks every process of a cluster this file starts
RENDEZVOUS_ENV = "CIFAR_RAY_TEST_RENDEZVOUS"  # tests.custom_backbone.rendezvous: "DIR:N"


# --- cluster.yaml ------------------------------------------------------------------------------
def test_cluster_yaml_passes_ray_autoscaler_validation(monkeypatch):
    """Ray's own checks (JSON schema, defaults merge, validate_config), with no network."""
    import jsonschema
    import ray.autoscaler
    import yaml
    from ray.autoscaler._private.util import prepare_config, validate_config

    def no_network(*args, **kwargs):
        raise AssertionError("cluster.yaml validation tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)

    raw = yaml.safe_load((REPO / "cluster.yaml").read_text())
    schema_path = Path(ray.autoscaler.__file__).parent / "ray-schema.json"
    jsonschema.validate(raw, json.loads(schema_path.read_text()))
    config = prepare_config(copy.deepcopy(raw))  # merges the AWS defaults, as `ray up` does
    validate_config(config)

    assert config["provider"]["type"] == "aws"
    assert 0 < config["idle_timeout_minutes"] <= 30
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    workers = [t for name, t in types.items() if name != config["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0 and head["node_config"]["InstanceType"][0] != "g"
    assert len(workers) == 1
    worker = workers[0]
    assert worker["node_config"]["InstanceType"] in {"g6.xlarge", "g5.xlarge"}  # one GPU each
    assert worker["max_workers"] <= config["max_workers"]
    assert worker["min_workers"] <= worker["max_workers"]

    # The repository goes to every node and is installed there, with the GPU extra on workers.
    assert config["file_mounts"] == {"~/cifar-ray": "."}
    assert '"$HOME/cifar-ray[gpu]"' in " ".join(config["worker_setup_commands"])
    assert '"$HOME/cifar-ray"' in " ".join(config["head_setup_commands"])
    assert "gpu" in _pyproject_extras()
    for command in config["head_setup_commands"] + config["worker_setup_commands"]:
        words = shlex.split(command)  # balanced quotes: YAML did not cut a line at a " #"
        assert not any(w.startswith("~/") and "[" in w for w in words), command  # "~" unexpanded
    assert "from cifar_ray.cli import run_job" in (REPO / "jobs" / "extract.py").read_text()


def _pyproject_extras() -> set[str]:
    """The optional-dependency names in pyproject.toml (no tomllib: Python 3.10 is supported)."""
    text = (REPO / "pyproject.toml").read_text()
    section = text.split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    return {line.split("=", 1)[0].strip() for line in section.splitlines() if "=" in line}


# --- the shared-storage check ------------------------------------------------------------------
def test_local_out_refused_on_a_cluster_of_several_machines(monkeypatch):
    import ray

    from cifar_ray.cluster import SHARED_FS_ENV, check_out_is_shared
    from cifar_ray.errors import UserError

    def node(address: str, alive: bool = True) -> dict:
        return {"NodeManagerAddress": address, "Alive": alive, "Resources": {"CPU": 1.0}}

    monkeypatch.delenv(SHARED_FS_ENV, raising=False)
    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    nodes = [node("10.0.0.1"), node("10.0.0.2")]
    monkeypatch.setattr(ray, "nodes", lambda: nodes)

    with pytest.raises(UserError) as caught:
        check_out_is_shared("./cifar-ray-out")
    message = str(caught.value)
    assert "\n" not in message and "./cifar-ray-out" in message and "s3://" in message
    with pytest.raises(UserError):
        check_out_is_shared("file:///data/out")
    check_out_is_shared("s3://bucket/prefix")  # shared storage: fine

    monkeypatch.setenv(SHARED_FS_ENV, "1")  # the user says the path is mounted everywhere
    check_out_is_shared("/mnt/efs/out")
    monkeypatch.delenv(SHARED_FS_ENV)

    nodes[:] = [node("10.0.0.1"), node("10.0.0.2", alive=False)]  # a dead node writes nothing
    check_out_is_shared("./out")
    nodes[:] = [node("127.0.0.1"), node("127.0.0.1"), node("127.0.0.1")]  # one machine's disk
    check_out_is_shared("./out")
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    check_out_is_shared("./out")


# --- a real cluster: `ray start --head`, then `ray job submit` of both job scripts -------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _short_temp_dir() -> str:
    """Ray's socket paths must stay under 108 bytes: a short folder directly in /tmp."""
    return tempfile.mkdtemp(prefix="crt-", dir="/tmp")


def _cluster_env(tag: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0", TF_CPP_MIN_LOG_LEVEL="3")
    env["RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S"] = "0"  # on TERM stop at once: nothing to drain
    env[TAG_ENV] = tag
    return env


def _tagged_pids(tag: str, temp_dir: str) -> list[int]:
    """Processes of this cluster only: they carry the tag or name the temp dir."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone already, or not ours to read
            continue
        in_temp_dir = any(f"{temp_dir}{end}".encode() in cmdline for end in ("/", "\0"))
        if in_temp_dir or f"{TAG_ENV}={tag}".encode() in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def _stop_cluster(proc: subprocess.Popen, tag: str, temp_dir: str) -> list[int]:
    """Stop the group we started, then any process of ours that left it; return survivors."""
    # TERM to the leader only: `ray start --block` then drains and stops its own processes
    # (a TERM to the whole group kills the GCS first, and the drain waits 30 s for it).
    if proc.poll() is None:  # once reaped, its pid may belong to someone else
        os.kill(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=20)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)
    deadline = time.monotonic() + 30
    while (left := _tagged_pids(tag, temp_dir)) and time.monotonic() < deadline:
        for pid in left:  # e.g. a job driver, which Ray starts in a session of its own
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)
    return _tagged_pids(tag, temp_dir)


@pytest.fixture
def job_cluster(tmp_path):
    """A one-node Ray cluster with the dashboard's job server, as `ray start --head` makes it."""
    temp_dir, tag = _short_temp_dir(), uuid.uuid4().hex
    dashboard = _free_port()
    log = (tmp_path / "ray-start.log").open("w")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block",
         f"--port={_free_port()}", "--num-cpus=2", f"--temp-dir={temp_dir}",
         "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
         f"--ray-client-server-port={_free_port()}",
         f"--dashboard-agent-listen-port={_free_port()}", "--disable-usage-stats"],
        stdout=log, stderr=subprocess.STDOUT, env=_cluster_env(tag), start_new_session=True,
    )  # fmt: skip
    try:
        address = f"http://127.0.0.1:{dashboard}"
        _wait_for_job_server(address, proc, tmp_path / "ray-start.log")
        yield address
    finally:
        survivors = _stop_cluster(proc, tag, temp_dir)
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)
        assert not survivors, f"processes of the test cluster still running: {survivors}"


def _wait_for_job_server(address: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"ray start exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"{address}/api/version", timeout=5) as response,
        ):
            if response.status == 200:
                return
        time.sleep(1)
    pytest.fail(f"the dashboard at {address} never answered:\n{log.read_text()[-3000:]}")


def _submit(address: str, script: str, *args) -> subprocess.CompletedProcess:
    """`ray job submit` as a user runs it; the entrypoint uses this interpreter, not PATH's."""
    excludes = [".git", ".venv", "*.egg-info", ".pytest_cache", ".ruff_cache", "__pycache__",
                "cifar-ray-out"]  # fmt: skip
    command = [
        str(Path(sys.executable).parent / "ray"), "job", "submit", "--address", address,
        "--working-dir", str(REPO), "--runtime-env-json", json.dumps({"excludes": excludes}),
        "--", sys.executable, script, *map(str, args),
    ]  # fmt: skip
    env = _cluster_env(uuid.uuid4().hex)
    return subprocess.run(command, capture_output=True, text=True, timeout=420, env=env,
                          start_new_session=True)  # fmt: skip


def test_job_scripts_run_through_ray_job_submit(job_cluster, tmp_path, cifar_archive):
    out = tmp_path / "out"
    extract = _submit(job_cluster, "jobs/extract.py", "--data-dir", cifar_archive,
                      "--weights", "none", "--image-size", "75", "--limit", "40",
                      "--shard-size", "20", "--out", out)  # fmt: skip
    logs = extract.stdout[-4000:] + extract.stderr[-2000:]
    assert extract.returncode == 0 and "succeeded" in extract.stdout, logs
    manifest = json.loads((out / "features/inceptionv3/manifest.json").read_text())
    assert manifest["complete"] and len(manifest["shards"]) == 4, manifest

    train = _submit(job_cluster, "jobs/train.py", "--epochs", "1", "--out", out)
    logs = train.stdout[-4000:] + train.stderr[-2000:]
    assert train.returncode == 0 and "succeeded" in train.stdout, logs
    assert (out / "models/inceptionv3/head.keras").stat().st_size > 0


# --- several nodes on this machine: ray.cluster_utils.Cluster in a subprocess ------------------
def _run_scenario(name: str, tmp_path: Path, archive: Path, env: dict | None = None) -> dict:
    temp_dir, tag = _short_temp_dir(), uuid.uuid4().hex
    out, result = tmp_path / "out", tmp_path / "result.json"
    marks = tmp_path / "marks"
    marks.mkdir()
    env = {RENDEZVOUS_ENV: f"{marks}:2", **(env or {})}  # for the rendezvous backbone
    log = (tmp_path / "scenario.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, __file__, name, str(out), str(archive), temp_dir, str(result)],
        stdout=log, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True,
        env={**_cluster_env(tag), **env},
    )  # fmt: skip
    try:
        proc.wait(timeout=400)
    except subprocess.TimeoutExpired:
        pass
    finally:
        survivors = _stop_cluster(proc, tag, temp_dir)
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)
    text = (tmp_path / "scenario.log").read_text()
    assert proc.returncode == 0 and result.exists(), f"scenario {name} failed:\n{text[-4000:]}"
    assert not survivors, f"processes of the test cluster still running: {survivors}"
    return json.loads(result.read_text())


def _marks(tmp_path: Path) -> list[tuple[str, float]]:
    """(node id, GPUs) of each actor that reached the rendezvous backbone's model build."""
    names = [p.name.split("-") for p in (tmp_path / "marks").iterdir()]
    return [(node, float(gpus)) for _, node, gpus in names]


def _published(out: Path, backbone: str = "inceptionv3") -> list[dict]:
    return [
        json.loads(p.read_text()) for p in (out / "features" / backbone / "_shards").glob("*.json")
    ]


def _ids(out: Path, split: str) -> list[int]:
    import pyarrow.parquet as pq

    files = sorted((out / "features/inceptionv3" / split).glob("*.parquet"))
    return [i for f in files for i in pq.read_table(f, columns=["id"]).column("id").to_pylist()]


def test_extraction_spreads_over_nodes(tmp_path, cifar_archive):
    """Each node gets an actor: asserted on where actors were placed and built their model
    (the rendezvous holds both until both exist), not on which finished shards first, which
    a fast machine decides (one actor can do all 8 before the other is up)."""
    result = _run_scenario("spread", tmp_path, cifar_archive)
    assert not result["summary"]["failed"] and result["summary"]["computed"] == 8
    records = _published(tmp_path / "out", "rendezvous")
    assert len(records) == 8 and {r["node_id"] for r in records} <= set(result["workers"])
    assert sorted(n for n, _ in _marks(tmp_path)) == sorted(result["workers"])


def test_extraction_survives_losing_a_node(tmp_path, cifar_archive):
    from cifar_ray.store import latents
    from cifar_ray.store.locations import Location

    result = _run_scenario("lose-node", tmp_path, cifar_archive,
                           env={"CIFAR_RAY_TEST_SHARD_DELAY_S": "2"})  # fmt: skip
    assert result["removed"] in result["workers"] and result["alive_after"] == 2  # head + one
    summary = result["summary"]
    assert not summary["failed"] and summary["actors_replaced"] >= 1, summary

    out = tmp_path / "out"
    lat = latents.load(Location(str(out)), "inceptionv3")  # complete, one fingerprint
    manifest = json.loads((out / "features/inceptionv3/manifest.json").read_text())
    assert manifest["complete"]
    for split, n in manifest["split_sizes"].items():
        assert _ids(out, split) == list(range(n)), split  # every id exactly once, in order
        assert len(lat.y[split]) == n
    survivor = next(w for w in result["workers"] if w != result["removed"])
    assert survivor in {r["node_id"] for r in _published(out)}


def test_a_node_that_joins_mid_run_gets_an_actor(tmp_path, cifar_archive):
    """The node joins once the first actor is up to its model build, and that actor waits
    there until a second one arrives: the newcomer's actor is the second, whatever the speed."""
    result = _run_scenario("grow", tmp_path, cifar_archive)
    assert not result["summary"]["failed"] and result["summary"]["computed"] == 24
    assert len(result["workers"]) == 2
    assert sorted(n for n, _ in _marks(tmp_path)) == sorted(result["workers"])
    assert {r["node_id"] for r in _published(tmp_path / "out", "rendezvous")} <= set(
        result["workers"]
    )


def test_a_gpu_node_that_joins_mid_run_gets_a_gpu_actor(tmp_path, cifar_archive):
    """A job that started on CPU only: the node with a (simulated) GPU that joins gets an actor
    holding the GPU, which takes over from the CPU actor (TensorFlow still runs on CPU)."""
    result = _run_scenario("gpu-joins", tmp_path, cifar_archive,
                           env={"CIFAR_RAY_TEST_SHARD_DELAY_S": "0.3"})  # fmt: skip
    summary = result["summary"]
    assert not summary["failed"] and summary["computed"] == 24, summary
    cpu_node, gpu_node = result["workers"]
    assert sorted(_marks(tmp_path)) == sorted([(cpu_node, 0.0), (gpu_node, 1.0)])
    assert result["retired"] == 1  # the CPU actor made way
    assert {(a["node_id"], a["gpus"]) for a in result["actors"]} >= {(gpu_node, 1.0)}
    by_node = [r["node_id"] for r in _published(tmp_path / "out", "rendezvous")]
    assert gpu_node in by_node and set(by_node) <= {cpu_node, gpu_node}


# --- the scenarios, run in their own process ---------------------------------------------------
def _scenario_main(name: str, out: str, archive: str, temp_dir: str, result_path: str) -> None:
    import ray
    import ray._private.utils
    from ray.cluster_utils import Cluster

    from cifar_ray.cluster import check_out_is_shared
    from cifar_ray.config import ExtractConfig
    from cifar_ray.extract import distributor, job
    from cifar_ray.ray_runtime import worker_env

    # Cluster writes /tmp/ray/ray_current_cluster, which a plain `ray.init()` of anyone on this
    # machine would then join; this cluster is nobody else's business.
    ray._private.utils.write_ray_address = lambda *args, **kwargs: None
    fast_failure_detection = {"health_check_period_ms": 500, "health_check_failure_threshold": 3}
    outcomes: list = []
    run = distributor.run

    def keep_outcome(*args, **kwargs):  # what job.execute does not pass on: the actors
        outcomes.append(run(*args, **kwargs))
        return outcomes[-1]

    distributor.run = keep_outcome
    joins = name in ("grow", "gpu-joins")
    cluster = Cluster()
    try:
        # The head runs only the driver (no CPU), as on AWS; one-CPU workers do the work.
        cluster.add_node(num_cpus=0, temp_dir=temp_dir, include_dashboard=False,
                         _system_config=fast_failure_detection)  # fmt: skip
        workers = [cluster.add_node(num_cpus=1) for _ in range(1 if joins else 2)]
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False,
                 runtime_env={"env_vars": worker_env()})  # fmt: skip
        check_out_is_shared(out)  # one machine, one disk: a local --out is fine here
        lose = name == "lose-node"
        cfg = ExtractConfig(out=out, data_dir=archive, weights="none",
                            backbone="inceptionv3" if lose else "tests.custom_backbone:rendezvous",
                            image_size=75 if lose else 32, limit=120 if joins else 40,
                            shard_size=10, batch_size=10, actors=None if joins else 2)  # fmt: skip
        plan = job.prepare(cfg)
        removed: list[str] = []
        first_done = threading.Event()
        first_node: list[str] = []

        def on_shard(record) -> None:
            if not first_node:
                first_node.append(record.node_id)
                first_done.set()

        def lose_a_node() -> None:  # the node that has just published: it has more in flight
            if first_done.wait(timeout=300):
                victim = next(w for w in workers if w.node_id == first_node[0])
                cluster.remove_node(victim, allow_graceful=False)
                removed.append(victim.node_id)

        if lose:
            threading.Thread(target=lose_a_node, daemon=True).start()
        if joins:  # Ray adds nodes from the main thread only: extract in another
            done: list = []
            runner = threading.Thread(
                target=lambda: done.append(job.execute(plan, on_shard=on_shard)), daemon=True
            )
            runner.start()
            if _first_mark(timeout=300):  # an autoscaled node joining mid-run
                gpus = 1 if name == "gpu-joins" else 0
                workers.append(cluster.add_node(num_cpus=1, num_gpus=gpus))
            runner.join(timeout=300)
            summary = done[0]
        else:
            summary = job.execute(plan, on_shard=on_shard)
        alive = [n for n in ray.nodes() if n["Alive"]]
        outcome = outcomes[-1]
        Path(result_path).write_text(json.dumps({
            "summary": summary.__dict__,
            "workers": [w.node_id for w in workers],
            "removed": removed[0] if removed else None,
            "alive_after": len(alive),
            "actors": outcome.actors,
            "retired": outcome.actors_retired,
        }))  # fmt: skip
    finally:
        ray.shutdown()
        cluster.shutdown()


def _first_mark(timeout: float) -> bool:
    """Wait until an actor has reached the rendezvous backbone: the pool is up to its model."""
    folder = Path(os.environ[RENDEZVOUS_ENV].rpartition(":")[0])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(folder.iterdir()):
            return True
        time.sleep(0.2)
    return False


if __name__ == "__main__":
    _scenario_main(*sys.argv[1:6])
