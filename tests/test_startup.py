"""Start-up of `extract`: the driver reads the archive while Ray and the actors start, and it
never imports TensorFlow (the first actor's build checks the model). What must stay true: a
broken archive or a bad factory still ends in one line, exit 2, with nothing written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest

from cifar_ray.config import ExtractConfig
from cifar_ray.extract import job
from cifar_ray.store.feature_file import META_KEY
from tests.conftest import RUN_TAG_ENV, kill_group, start_cli, tagged_processes, tree_files

pytestmark = pytest.mark.ray

ROOT = Path(__file__).resolve().parents[1]

DRIVER = """
import json, sys
from cifar_ray.cli import main
sys.argv = ["cifar-ray", *sys.argv[1:]]
try:
    main()
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "tensorflow": "tensorflow" in sys.modules,
                  "keras": "keras" in sys.modules}))
"""


def test_the_driver_never_imports_tensorflow(tmp_path, cifar_archive):
    """Before: the driver imported TensorFlow and built the user's model only to check it
    (7 s before Ray could start). Now the actors alone import it; the job still runs."""
    out = tmp_path / "out"
    args = ["extract", "--local", "--data-dir", cifar_archive, "--weights", "none",
            "--backbone", "tests.custom_backbone:small_cnn", "--image-size", "32",
            "--limit", "24", "--shard-size", "12", "--out", out]  # fmt: skip
    result = subprocess.run([sys.executable, "-c", DRIVER, *map(str, args)], capture_output=True,
                            text=True, timeout=600, cwd=ROOT, start_new_session=True)  # fmt: skip
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["code"] == 0, result.stderr[-3000:]
    assert report == {"code": 0, "tensorflow": False, "keras": False}
    manifest = json.loads((out / "features/smallcnn/manifest.json").read_text())
    assert manifest["complete"] and len(manifest["shards"]) == 4


def test_actors_launched_before_the_plan_publish_the_plans_metadata(ray_local, tmp_path,
                                                                    cifar_archive):  # fmt: skip
    """The pool starts with the backbone and weights alone; each shard's file still carries
    the plan's metadata (dataset checksum, fingerprint) and the actor's weights digest."""
    cfg = ExtractConfig(out=str(tmp_path / "out"), data_dir=str(cifar_archive), weights="none",
                        backbone="tests.custom_backbone:small_cnn", image_size=32, limit=12,
                        shard_size=12, actors=1)  # fmt: skip
    launched = job.launch(cfg)
    plan = job.prepare(cfg)
    summary = job.execute(plan, launched=launched)
    assert summary.computed == 2 and not summary.failed
    for shard in plan.shards:
        meta = json.loads(pq.read_schema(plan.store.data_path(shard)).metadata[META_KEY])
        assert meta["dataset_sha256"] == plan.dataset.sha256
        assert meta["fingerprint"] == plan.fingerprint_id and len(meta["weights_digest"]) == 64
    assert not launched.pool.ready and not launched.pool.starting  # handed back


def test_a_plan_with_nothing_to_do_shuts_the_launched_pool_down(ray_local, tmp_path,
                                                                cifar_archive):  # fmt: skip
    cfg = ExtractConfig(out=str(tmp_path / "out"), data_dir=str(cifar_archive), weights="none",
                        backbone="tests.custom_backbone:small_cnn", image_size=32, limit=12,
                        shard_size=12, actors=1)  # fmt: skip
    job.execute(job.prepare(cfg))
    launched = job.launch(cfg)
    summary = job.execute(job.prepare(cfg), launched=launched)
    assert summary.computed == 0 and summary.skipped == 2
    assert not launched.pool.ready and not launched.pool.starting


@pytest.mark.parametrize(
    ("case", "backbone", "message"),
    [
        ("truncated archive", "tests.custom_backbone:small_cnn", "truncated or corrupt archive"),
        ("factory without pooling", "tests.custom_backbone:no_pooling", "no_pooling"),
    ],
)
def test_errors_after_the_launch_are_one_line_and_leave_nothing(
    tmp_path, synthetic_archive, case, backbone, message
):
    """The archive is read while the actors start, and the model is checked by building it in
    an actor: either failing still ends in one line, exit 2, no file and no process left."""
    data = synthetic_archive
    if case == "truncated archive":
        data = tmp_path / "truncated.tar.gz"
        data.write_bytes(synthetic_archive.read_bytes()[:4000])
    out, tag = tmp_path / "out", uuid.uuid4().hex
    proc = start_cli("extract", "--local", "--data-dir", data, "--weights", "none",
                     "--backbone", backbone, "--image-size", "32", "--out", out,
                     env={RUN_TAG_ENV: tag})  # fmt: skip
    try:
        _, stderr = proc.communicate(timeout=400)
        _, left = psutil.wait_procs(tagged_processes(tag), timeout=30)
    finally:
        kill_group(proc)
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2, stderr[-3000:]
    assert len(lines) == 1 and message in lines[0], stderr
    assert tree_files(out) == set()
    assert not left, f"processes of the run still alive: {[p.cmdline() for p in left]}"


WORKER_ENV = """
import json, os
import ray
from cifar_ray.ray_runtime import ray_session

keys = ["TF_CPP_MIN_LOG_LEVEL", "PYTHONWARNINGS", "RAY_TRAIN_V2_ENABLED", "CIFAR_RAY_TEST_PROBE"]
before = {k: os.environ.get(k) for k in keys}
with ray_session(local=True):
    after = {k: os.environ.get(k) for k in keys}
    job_env = ray.get_runtime_context().runtime_env.get("env_vars")
    worker = ray.get(ray.remote(lambda: {k: os.environ.get(k) for k in keys}).remote())
print(json.dumps({"before": before, "after": after, "worker": worker, "job_env": job_env}))
"""


def test_an_embedded_rays_workers_inherit_their_environment_without_a_runtime_env():
    """A runtime_env made Ray's runtime-env agent prepare the first actor's worker (0.3 s on
    the critical path); an embedded Ray's workers inherit the variables instead, forwarded
    ones included, and the driver's own environment is left as it was."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONWARNINGS", "TF_CPP_MIN_LOG_LEVEL")
    }
    env["CIFAR_RAY_TEST_PROBE"] = "forwarded"
    result = subprocess.run([sys.executable, "-c", WORKER_ENV], capture_output=True, text=True,
                            timeout=300, cwd=ROOT, env=env, start_new_session=True)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["worker"] == {
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "PYTHONWARNINGS": "ignore",
        "RAY_TRAIN_V2_ENABLED": "1",
        "CIFAR_RAY_TEST_PROBE": "forwarded",
    }
    assert not report["job_env"]
    assert report["after"]["PYTHONWARNINGS"] is None  # the driver's own, unchanged
    assert report["after"]["CIFAR_RAY_TEST_PROBE"] == "forwarded"
