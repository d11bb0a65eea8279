"""Ray's errors read back as one line each: why an actor died, what a call raised."""

from __future__ import annotations

import re

from ray.exceptions import ActorDiedError, RayActorError

from cifar_ray.errors import first_line


def death(exc: RayActorError) -> tuple[str, str | None]:
    """Why an actor's process died, and its node's address, from Ray's several-line message:
    its "key: value" lines hold the address, the first other line after them the reason."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    fields = dict(ln.split(": ", 1) for ln in lines[1:] if re.match(r"^[a-z_]+: ", ln))
    others = [ln for ln in lines[1:] if not re.match(r"^[a-z_]+: ", ln)]
    if lines and lines[0] == ActorDiedError.BASE_ERROR_MSG and others:
        reason = first_line(others[0].split(" Some common causes")[0])
    else:
        reason = task_reason(exc)
    return reason, fields.get("ip")


def task_reason(exc: BaseException) -> str:
    """Ray wraps what the actor raised: the cause's own message where Ray kept the exception,
    else the last line of Ray's traceback text (the line that names the exception)."""
    cause = getattr(exc, "cause", None)
    if cause is not None:
        return first_line(cause, typed=False)
    lines = str(exc).strip().splitlines()
    return first_line(lines[-1]) if lines else type(exc).__name__
