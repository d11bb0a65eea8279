"""Errors a user can cause: the CLI prints them as one line and exits with code 2.

The base module of every stage: any of them may import it (it imports nothing of ours)."""

from __future__ import annotations

import re


class UserError(Exception):
    """Bad input or a refused operation; the message names the thing and what is wrong."""


class StorageError(Exception):
    """Storage answered with something other than "not found" (denied, throttled, timed out,
    not a file): nothing may be concluded from it, so the command stops (exit 1) before it
    overwrites anything. The message is one line naming the path and the reason."""


class StorageRefused(StorageError):
    """A write refused for a reason no retry changes (no space left, a read-only filesystem,
    permission denied): every shard would fail the same way, so the job stops at once."""


class ExtractionFailed(Exception):
    """Some shards could not be computed after all retries; the others were published."""

    def __init__(self, failed: dict[str, str]):
        self.failed = failed
        names = ", ".join(sorted(failed))
        super().__init__(f"{len(failed)} shard(s) failed: {names}")


_TF_PREFIX = re.compile(r"^\{\{[^}]*\}\}\s*")  # TensorFlow's "{{function_node __inference_...}}"


def first_line(exc_or_text: BaseException | str, limit: int = 200, *, typed: bool = True) -> str:
    """An error in one line, for a message that must stay one line: the first non-blank line,
    without TensorFlow's "{{function_node ...}}" prefix, cut at `limit` characters.

    For an exception: "TypeName: line" (`typed=False`: the line alone), and its type's name when
    its message is empty, so a reason is never blank. For a text: the line, or ""."""
    text = exc_or_text if isinstance(exc_or_text, str) else str(exc_or_text)
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    line = _TF_PREFIX.sub("", line)[:limit]
    if isinstance(exc_or_text, str):
        return line
    name = type(exc_or_text).__name__
    if not line:
        return name
    return f"{name}: {line}" if typed else line
