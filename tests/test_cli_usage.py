"""Usage errors on every command: exit 2 and a short usage/error message, never a traceback,
whichever click typer vendors; our own exit codes for errors and signals stay as they were."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest
import typer

from cifar_ray import cli
from tests.conftest import run_cli

# command -> (arguments, text the message must show)
USAGE_ERRORS = {
    "extract": [
        (["--bogus"], "--bogus"),
        (["--limit", "abc"], "'--limit'"),
        (["--batch-size", "1.5"], "'--batch-size'"),
        (["--limit"], "'--limit' requires an argument"),
    ],
    "train": [
        (["--bogus"], "--bogus"),
        (["--epochs", "x"], "'--epochs'"),
        (["--val-fraction", "tenth"], "'--val-fraction'"),
        (["--epochs"], "'--epochs' requires an argument"),
    ],
    "report": [
        (["--bogus"], "--bogus"),
        (["--out"], "'--out' requires an argument"),
        (["out", "extra"], "unexpected extra argument"),
    ],
    "run": [
        (["--bogus"], "--bogus"),
        (["--epochs", "x"], "'--epochs'"),
        (["--limit"], "'--limit' requires an argument"),
    ],
    "inspect": [
        (["--bogus"], "--bogus"),
        (["a", "b"], "unexpected extra argument"),
    ],
    "bench": [
        (["--bogus"], "--bogus"),
        (["--images", "x"], "'--images'"),
        (["--rounds"], "'--rounds' requires an argument"),
    ],
    "backbones": [
        (["--bogus"], "--bogus"),
        (["--files=yes"], "'--files' does not take a value"),
    ],
    "": [
        (["--bogus"], "--bogus"),
        (["--verbose=x"], "'--verbose'"),
        (["no-such-command"], "No such command"),
    ],
}
CASES = [
    pytest.param([c, *args] if c else args, text, id=f"{c or 'top'} {' '.join(args)}")
    for c, cases in USAGE_ERRORS.items()
    for args, text in cases
]


def test_every_command_has_usage_error_cases():
    commands = set(typer.main.get_command(cli.app).commands)
    assert commands == set(USAGE_ERRORS) - {""}


def _main(argv: list[str], monkeypatch, capsys) -> tuple[int, str]:
    """cli.main in this process, as the console script calls it; signal handlers restored."""
    monkeypatch.setattr(sys, "argv", ["cifar-ray", *argv])
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with pytest.raises(SystemExit) as stopped:
            cli.main()
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)
    captured = capsys.readouterr()
    return stopped.value.code, captured.out + captured.err


def _assert_usage_error(code: int, output: str, text: str) -> None:
    lines = [ln for ln in output.splitlines() if ln.strip()]
    assert code == 2, output
    assert "Traceback" not in output, output
    assert "Error" in output and text in " ".join(output.split()), output
    assert len(lines) <= 8, output


@pytest.mark.parametrize(("argv", "text"), CASES)
def test_usage_error_exits_2_with_a_short_message(argv, text, monkeypatch, capsys):
    _assert_usage_error(*_main(argv, monkeypatch, capsys), text)


@pytest.mark.parametrize(
    ("argv", "text"),
    [
        (["extract", "--bogus"], "--bogus"),
        (["extract", "--limit", "abc"], "'--limit'"),
        (["train", "--epochs"], "'--epochs' requires an argument"),
        (["bench", "--images", "x"], "'--images'"),
    ],
    ids=" ".join,
)
def test_installed_script_usage_error(argv, text):
    result = run_cli(*argv, timeout=120)
    _assert_usage_error(result.returncode, result.stdout + result.stderr, text)


def test_user_error_is_still_one_line_exit_2(monkeypatch, capsys):
    code, output = _main(["bench", "--images", "0"], monkeypatch, capsys)
    assert code == 2
    assert output.strip().splitlines() == [
        "cifar-ray: error: --images and --rounds must be positive, got 0 and 2"
    ]


def test_help_and_no_arguments(monkeypatch, capsys):
    code, output = _main(["train", "--help"], monkeypatch, capsys)
    assert code == 0 and "--val-fraction" in output
    code, output = _main([], monkeypatch, capsys)
    assert code == 2 and "extract" in output and "Traceback" not in output


# A command that blocks until signalled, added to the real app in a child process.
_BLOCKING = textwrap.dedent(
    """
    import sys, threading
    from cifar_ray import cli

    @cli.app.command()
    def block() -> None:
        print("ready", flush=True)
        threading.Event().wait()

    sys.argv = ["cifar-ray", "block"]
    cli.main()
    """
)


@pytest.mark.parametrize(
    ("signum", "code", "word"),
    [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")],
)
def test_signals_keep_their_exit_codes_and_message(signum, code, word):
    proc = subprocess.Popen(
        [sys.executable, "-c", _BLOCKING], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )  # fmt: skip
    try:
        assert proc.stdout.readline().strip() == "ready"  # the handler is installed by now
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == code, stderr
    assert word in stderr and "Traceback" not in stderr, stderr
