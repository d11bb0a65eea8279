"""Shared by the job scripts: run one cifar-ray command against the cluster this runs on."""

from __future__ import annotations

import sys


def run(command: str) -> None:
    """`ray submit`/`ray job submit` start the script on the head node: join that cluster."""
    args = sys.argv[1:]
    if args[:1] == ["--"]:
        args = args[1:]
    if "--local" not in args and not any(a.startswith("--address") for a in args):
        args = ["--address", "auto", *args]
    sys.argv = ["cifar-ray", command, *args]
    from cifar_ray.cli import main

    main()
