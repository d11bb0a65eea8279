"""Errors a user can cause: the CLI prints them as one line and exits with code 2."""


class UserError(Exception):
    """Bad input or a refused operation; the message names the thing and what is wrong."""


class StorageError(Exception):
    """Storage answered with something other than "not found" (denied, throttled, timed out,
    not a file): nothing may be concluded from it, so the command stops (exit 1) before it
    overwrites anything. The message is one line naming the path and the reason."""


class ExtractionFailed(Exception):
    """Some shards could not be computed after all retries; the others were published."""

    def __init__(self, failed: dict[str, str]):
        self.failed = failed
        names = ", ".join(sorted(failed))
        super().__init__(f"{len(failed)} shard(s) failed: {names}")
