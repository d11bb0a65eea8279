"""The per-node file lock: a second process really waits for the first, and the lock is given
back however the block ends."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cifar_ray.locks import file_lock, keras_home

CHILD = """
import sys
from pathlib import Path
from cifar_ray.locks import file_lock
with file_lock(Path(sys.argv[1])):
    with open(sys.argv[2], "a") as log:
        log.write("child holds the lock\\n")
"""


def _blocked_on(path: Path, pid: int) -> bool:
    """The kernel lists a process waiting for a flock as `-> FLOCK ... <pid> <dev>:<inode>`."""
    inode = os.stat(path).st_ino
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "->" in fields and str(pid) in fields and fields[-3].endswith(f":{inode}"):
            return True
    return False


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="needs Linux /proc/locks")
def test_a_second_process_waits_until_the_first_lets_go(tmp_path):
    lock, log = tmp_path / "locks" / "weights.lock", tmp_path / "log"
    log.write_text("")
    with file_lock(lock):
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(lock), str(log)],
                                 stderr=subprocess.PIPE, text=True)  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while not _blocked_on(lock, child.pid):  # the kernel's word, not a guessed delay
                assert child.poll() is None, f"child ran while we held the lock: {log.read_text()}"
                assert time.monotonic() < deadline, "child never waited on the lock"
                time.sleep(0.01)
            assert log.read_text() == ""
        except BaseException:
            child.kill()
            child.wait()
            raise
    _, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert log.read_text() == "child holds the lock\n"


def test_exclusive_while_held_and_released_after_an_error(tmp_path):
    lock = tmp_path / "new" / "dirs" / "x.lock"  # parents are created

    def try_lock() -> bool:
        with open(lock, "w") as other:  # another open file: flock treats it as another owner
            try:
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            fcntl.flock(other, fcntl.LOCK_UN)
            return True

    with pytest.raises(RuntimeError, match="boom"), file_lock(lock):
        assert lock.exists() and not try_lock()
        raise RuntimeError("boom")
    assert try_lock()


def test_keras_home_follows_keras_home_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KERAS_HOME", raising=False)
    assert keras_home() == tmp_path / ".keras"
    monkeypatch.setenv("KERAS_HOME", "~/elsewhere")
    assert keras_home() == tmp_path / "elsewhere"
