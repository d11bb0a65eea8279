"""Every process that training starts sets TensorFlow up (GPU memory growth) before TensorFlow
loads, so no task takes the whole GPU from the head's training: each entry point runs in a
fresh interpreter that records who imported TensorFlow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Records, when TensorFlow is really imported, whether tfsetup.configure_tensorflow is on the
# stack: the import machinery asks the finders for "tensorflow" once more than any probe that
# comes before it, so the last answer before it is in sys.modules is the import's.
WATCH = textwrap.dedent(
    """
    import json, sys, traceback

    class Watch:
        configured = None

        def find_spec(self, name, path=None, target=None):
            if name == "tensorflow" and name not in sys.modules:
                Watch.configured = any(
                    f.name == "configure_tensorflow" and f.filename.endswith("tfsetup.py")
                    for f in traceback.extract_stack()
                )
            return None

    sys.meta_path.insert(0, Watch())
    """
)
REPORT = textwrap.dedent(
    """
    print(json.dumps({"imported": "tensorflow" in sys.modules, "configured": Watch.configured}))
    """
)

ENTRY_POINTS = {
    "pixel baseline task": """
        import numpy as np
        from cifar_ray.train import pixel_baselines
        x, y = np.zeros((8, 32, 32, 3), np.uint8), np.arange(8) % 2
        pixel_baselines.run("pixel_mlp", (x, y), (x, y), (x, y), 2, epochs=1)
    """,
    "Ray Train loop": """
        from cifar_ray.train import ray_train
        try:
            ray_train._train_loop({})  # no config: it fails right after its TF setup
        except KeyError:
            pass
    """,
    "dense head": """
        from cifar_ray.train import head
        head.build(4, 2, 4, 0.1, 1e-3, 0)
    """,
    "saved head": """
        from cifar_ray.train import ray_train
        from cifar_ray.errors import UserError
        from cifar_ray.store.locations import Location
        try:
            ray_train.load_head(Location(sys.argv[1]), "none")
        except UserError:
            pass
    """,
}


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_tensorflow_is_configured_before_it_loads(entry, tmp_path):
    code = WATCH + textwrap.dedent(ENTRY_POINTS[entry]) + REPORT
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
        timeout=300, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {"imported": True, "configured": True}, entry
