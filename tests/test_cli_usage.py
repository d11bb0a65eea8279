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
        (["--test-fraction", "x"], "'--test-fraction'"),
        (["--max-pixels", "1.5"], "'--max-pixels'"),
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
    "neighbours": [
        (["--bogus"], "--bogus"),
        (["--k", "x"], "'--k'"),
        (["a", "b"], "unexpected extra argument"),
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


@pytest.mark.parametrize("command", ["extract", "train", "run"])
def test_local_with_an_address_is_one_line_not_a_silent_choice(command, tmp_path, monkeypatch,
                                                               capsys):  # fmt: skip
    argv = [command, "--local", "--address", "10.0.0.1:6379", "--out", str(tmp_path / "o")]
    code, output = _main(argv, monkeypatch, capsys)
    assert code == 2
    assert output.strip().splitlines() == [
        "cifar-ray: error: --local starts its own Ray and --address 10.0.0.1:6379 joins one; "
        "give one of them"
    ]
    assert not (tmp_path / "o").exists()


def test_run_passes_its_training_options_on(monkeypatch, capsys, tmp_path):
    """`run --no-baselines --epochs 3` reaches training's config (the command layer's input)."""
    from cifar_ray import commands

    seen = {}
    monkeypatch.setattr(commands, "run", lambda xcfg, tcfg, **kw: seen.update(tcfg=tcfg))
    argv = ["run", "--local", "--no-baselines", "--no-pixel-baselines", "--epochs", "3",
            "--out", str(tmp_path)]  # fmt: skip
    code, _ = _main(argv, monkeypatch, capsys)
    assert code == 0
    tcfg = seen["tcfg"]
    assert (tcfg.baselines, tcfg.pixel_baselines, tcfg.epochs) == (False, False, 3)


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


# --- every default comes from the config dataclasses ------------------------------------------
# Flags that are no config field: how to reach Ray, and what to do next.
NOT_CONFIG = {"local": False, "address": None, "write_report": False, "files": False,
              "as_json": False, "path": None}  # fmt: skip
RUN_TRAIN_FIELDS = {
    "epochs",
    "baselines",
    "pixel_baselines",
    "pixel_epochs",
    "tsne",
    "retrain",
}  # run's other: extract's


def _config_default(command: str, param: str):
    """The dataclass field that holds the default of `command --param`."""
    import dataclasses

    from cifar_ray.config import DEFAULT_OUT, AuditConfig, BenchConfig, ExtractConfig, TrainConfig

    if command in ("report", "inspect") and param == "out":
        return DEFAULT_OUT
    if command == "run":
        config = TrainConfig if param in RUN_TRAIN_FIELDS else ExtractConfig
    else:
        config = {"extract": ExtractConfig, "train": TrainConfig, "bench": BenchConfig,
                  "neighbours": AuditConfig}[command]  # fmt: skip
    fields = {f.name: f.default for f in dataclasses.fields(config)}
    assert param in fields, f"{command} --{param} is no {config.__name__} field"
    return fields[param]


def test_every_cli_default_is_the_config_default():
    """Changing a default in config.py changes the command line: no second copy in cli.py."""
    from cifar_ray.config import ExtractConfig

    checked = 0
    for name, command in typer.main.get_command(cli.app).commands.items():
        for param in command.params:
            if param.name in NOT_CONFIG:
                assert param.default == NOT_CONFIG[param.name], (name, param.name)
            elif param.name == "image_size" and name in ("extract", "run"):  # `75,resnet50=224`
                assert param.default is None and ExtractConfig.image_size is None
            elif name != "backbones":
                assert param.default == _config_default(name, param.name), (name, param.name)
                checked += 1
    assert checked >= 50, checked  # extract's, train's, run's and bench's options all compared


def test_cli_source_writes_no_default_itself():
    """cli.py's command signatures (and cli_tools.py's) name config attributes; a literal is
    only None or False, for a flag that is not given (the test above checks the config agrees)."""
    import ast
    import inspect as pyinspect

    from cifar_ray import cli_tools

    tree = ast.parse(pyinspect.getsource(cli))
    commands = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.decorator_list]
    tools = ast.parse(pyinspect.getsource(cli_tools)).body
    commands += [n for n in tools if isinstance(n, ast.FunctionDef)]
    assert len(commands) == 8  # the callback and seven commands (neighbours: commands_audit)
    for fn in commands:
        for default in fn.args.defaults:
            if isinstance(default, ast.Constant) and fn.name != "main_options":  # -v count: 0
                assert default.value is None or default.value is False, (fn.name, default.value)
