"""`first_line`: every one-line error reason in the package comes from it, so each reads alike:
the first non-blank line, TensorFlow's node prefix dropped, cut, never blank for an exception."""

from __future__ import annotations

import pytest

from cifar_ray.errors import first_line

TF_TEXT = (
    "{{function_node __wrapped__Assert_device_/job:localhost}} assertion failed: [oom]\n"
    "\t [[{{node Assert}}]] [Op:Assert] name: "
)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("one line", "one line"),
        ("\n\n  first  \nsecond\n", "first"),
        (TF_TEXT, "assertion failed: [oom]"),
        ("", ""),
        (" \n\t\n", ""),
        (ValueError("bad value\nTraceback detail"), "ValueError: bad value"),
        (RuntimeError(TF_TEXT), "RuntimeError: assertion failed: [oom]"),
        (KeyError(), "KeyError"),  # an empty message still gives a reason
        (OSError("\n"), "OSError"),
    ],
)
def test_first_line(given, expected):
    assert first_line(given) == expected


def test_untyped_gives_the_message_alone_and_the_type_only_when_it_is_empty():
    assert first_line(ValueError("bad\nmore"), typed=False) == "bad"
    assert first_line(ValueError(""), typed=False) == "ValueError"


def test_limit_cuts_the_line_not_the_type_name():
    assert first_line("x" * 500) == "x" * 200
    assert first_line("abcdef", limit=3) == "abc"
    assert first_line(ValueError("y" * 300), limit=10) == "ValueError: " + "y" * 10


def test_every_stage_uses_the_one_function():
    """The stages' old private copies are gone: one rule, one place to change it."""
    from cifar_ray.embed import backbones
    from cifar_ray.extract import distributor

    assert backbones.first_line is first_line
    assert distributor.first_line is first_line and not hasattr(distributor, "_first_line")
