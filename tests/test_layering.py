"""Every import between our modules points down the data flow, never up it.

The stages, in the order data flows through them:

    source   CIFAR-10 on disk -> images and labels
    embed    backbones, the embedding model, the fingerprint of what decides the features
    store    feature files, shard records, manifest, OUT's layout (what extraction publishes
             and training reads: it sits below both)
    extract  the extraction job and its Ray actors: reads source, embeds, publishes to store
    audit    nearest neighbours and near-duplicates (faiss), beside the store: reads store
             and source (pixels for exact duplicates); Ray only in its fan-out edge
    train    the dense head (Ray Train), baselines, results: reads store
    report   metrics.json, report.md/html and figures: reads train's results and the store

A module may import its own stage and any stage before it. Above every stage sit the command
layer (cli, cli_options, commands, listings) and bench, which may import anything. Below every
stage sit the base modules that anyone may import: errors, config, locks, progress, background;
and two
primitives that belong to a stage by subject but that lower stages need: `store.locations`
(where bytes live, local or object storage: embed stages weights files through it) and
`embed.tfsetup`
(TensorFlow's process settings, needed before any Keras import, also by source's Keras
download). ray_runtime and cluster are Ray's edge: only extract, train and the top may
import them. Base modules import base modules only.

The ast is read, so imports inside functions and under TYPE_CHECKING count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cifar_ray"
STAGES = ("source", "embed", "store", "extract", "audit", "train", "report")
TOP = {
    "cli",
    "cli_options",
    "cli_tools",
    "commands",
    "commands_audit",
    "listings",
    "bench",
    "__init__",
}
BASE = {"errors", "config", "locks", "progress", "background", "store.locations", "embed.tfsetup"}
RAY_EDGE = {"ray_runtime", "cluster"}
RAY_EDGE_USERS = {"extract", "train", *TOP}


def _modules() -> dict[str, Path]:
    """'store.features' -> its file, for every module of the package."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(path: Path) -> set[str]:
    """Our modules that `path` imports, as 'stage.module' names."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
        else:
            continue
        for name in names:
            if name.startswith("cifar_ray."):
                rel = name.removeprefix("cifar_ray.")
                out.add(rel if rel in MODULES else rel.rpartition(".")[0] or rel)
    return {m for m in out if m in MODULES}


def _stage(module: str) -> str:
    return module.split(".")[0]


def _why_not(importer: str, imported: str) -> str | None:
    """None when the arrow is allowed; else what is wrong with it."""
    low, high = _stage(imported), _stage(importer)
    if high in TOP or importer == imported or imported in BASE or imported in STAGES:
        return None  # a stage package's __init__ holds only its docstring
    if imported in RAY_EDGE:
        return None if high in RAY_EDGE_USERS else "only extract, train and the top use Ray"
    if importer in BASE or high in RAY_EDGE:
        return "a base module imports only base modules"
    if low in TOP:
        return "the command layer is imported by nothing below it"
    if low == high:
        return None
    if STAGES.index(low) > STAGES.index(high):
        return f"{high} comes before {low} in the data flow"
    return None


def test_the_package_is_what_this_test_knows():
    """A new top-level module or stage must be placed in the order above, not slip past it."""
    known = {*STAGES, *TOP, *RAY_EDGE, *(b for b in BASE if "." not in b)}
    assert {_stage(m) for m in MODULES} <= known


@pytest.mark.parametrize("importer", sorted(MODULES))
def test_every_import_points_down_the_flow(importer):
    wrong = {
        imported: why
        for imported in sorted(_imports(MODULES[importer]))
        if (why := _why_not(importer, imported))
    }
    assert not wrong, f"{importer} imports up the flow: {wrong}"


def test_the_rule_catches_an_arrow_up_the_flow():
    assert _why_not("store.latents", "train.splits") == "store comes before train in the data flow"
    assert _why_not("train.runner", "report.writer")
    assert _why_not("source.cifar", "store.features")
    assert _why_not("report.writer", "ray_runtime")
    assert _why_not("errors", "store.features")
    assert _why_not("extract.job", "store.manifest") is None
    assert _why_not("commands", "report.writer") is None
