"""Progress on stderr: a live bar only on a terminal; result tables on stdout, plain in a pipe."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys

SCRIPT = """
from cifar_ray import progress
with progress.image_bar("embed toy", 5) as bar:
    bar.embedding(1)  # a batch of a shard in flight
    for n in (2, 3):
        bar.done(n)
progress.table("speeds", ["backbone", "images", "seconds", "img/s", "note"], [
    ["resnet50", 7, 12345.6, 0.123456, None],
    ["vgg16", 40, -2500.0, 999.94, "ok"],
])
print("done", flush=True)
"""


def _env() -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE",
                        "COLUMNS", "LINES")}  # fmt: skip
    return {**env, "TERM": "xterm-256color"}


def test_a_pipe_gets_a_plain_table_and_no_bar_frames():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                            env=_env(), timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no bar frames in a log
    out = result.stdout
    assert "\x1b" not in out and "\r" not in out  # no colour codes, no redrawn frames
    assert out.endswith("done\n")
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.replace("┃", "│").strip("│ ").split("│")]
        rows[cells[0]] = cells[1:]
    assert out.lstrip().startswith("speeds")
    assert rows["backbone"] == ["images", "seconds", "img/s", "note"]
    assert rows["resnet50"] == ["7", "12,346", "0.1235", "-"]  # thousands, 4 digits, None
    assert rows["vgg16"] == ["40", "-2,500", "999.9", "ok"]


def test_a_terminal_gets_the_bar_with_images_done():
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE,
                                stderr=follower, env=_env(), text=True)  # fmt: skip
        os.close(follower)
        chunks = []
        while select.select([leader], [], [], 60)[0]:  # a hung child fails, not hangs, the test
            try:
                data = os.read(leader, 65536)
            except OSError:  # the child closed the terminal (EIO on Linux)
                break
            if not data:
                break
            chunks.append(data)
        out, _ = proc.communicate(timeout=60)
    finally:
        os.close(leader)
    screen = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0 and out.endswith("done\n") and "12,346" in out
    assert "embed toy" in screen and "5/5" in screen  # images done of total
    assert "img/s" in screen and "ETA" in screen
