"""The commands that only show what is there: `inspect` (the feature stores under OUT) and
`backbones` (the registry and Keras Hub's families), as tables or `--json`."""

from __future__ import annotations

from cifar_ray import progress
from cifar_ray.errors import UserError


def inspect(out: str, as_json: bool = False) -> bool:
    """Print what `store.checks` found (a table, or JSON for scripts); True when every
    store is whole."""
    from cifar_ray.store import checks

    found = checks.inspect(out)
    if as_json:
        progress.json_result([{"backbone": s.backbone, **s.counts, "ok": s.ok,
                               "problems": s.problems} for s in found])  # fmt: skip
        return all(store.ok for store in found)
    rows = []
    for store in found:
        name, counts, problems = store.backbone, store.counts, store.problems
        status = "ok" if store.ok else f"{len(problems)} bad"
        # Strays do not make a store bad (training reads only what records name), but a
        # reader of a split folder as a Parquet dataset would see their rows: say so.
        for path in counts.get("strays", []):
            progress.say(f"stray file, not part of the result (the next extract removes it): "
                         f"{path}", tag=name, style="yellow")  # fmt: skip
        for key, path, reason in counts.get("bad", []):  # skipped, not a fault of the store
            progress.say(f"bad image in {key}, skipped: {path}: {reason}", tag=name,
                         style="yellow")  # fmt: skip
        for path in counts.get("temporaries", []):
            progress.say(f"temporary file of an interrupted write (the next extract removes "
                         f"it): {path}", tag=name, style="yellow")  # fmt: skip
        if counts.get("strays"):
            status += f", {len(counts['strays'])} stray"
        if counts.get("temporaries"):
            status += f", {len(counts['temporaries'])} temporary"
        if counts.get("bad"):
            status += f", {len(counts['bad'])} bad images skipped"
        if counts.get("warning"):
            status += ", degenerate"
            progress.say(counts["warning"], tag=f"warning: {name}", style="yellow")
        shards = f"{counts['published']}/{counts['shards']}" if counts else None
        rows.append([name, shards, *(counts.get(k) for k in ("rows", "dim", "fingerprint")),
                     status])  # fmt: skip
        for problem in problems:
            progress.say(problem, tag=name, style="red")
    progress.table(
        "feature stores", ["backbone", "shards", "rows", "dim", "fingerprint", "status"], rows
    )
    return all(store.ok for store in found)


_BACKBONE_KEYS = ("name", "source", "dim", "size", "min_size", "preprocessing", "params_m",
                  "gmacs", "weights_file", "weights_hash")  # fmt: skip


def _backbone_record(b) -> dict:
    values = (b.name, b.application, b.dim or None, b.default_size, b.min_size, b.preprocessing,
              b.params_m or None, b.gmacs or None, b.weights_file, b.weights_hash)  # fmt: skip
    return dict(zip(_BACKBONE_KEYS, values, strict=True))


def list_backbones(files: bool = False, as_json: bool = False) -> None:
    from cifar_ray.embed import backbones
    from cifar_ray.embed.tfsetup import configure_tensorflow

    configure_tensorflow()  # Keras and Keras Hub import TensorFlow: quietly, as everywhere

    records = []
    for name in backbones.names():
        try:
            records.append(_backbone_record(backbones.get(name)))
        except UserError as exc:  # an installed plugin that does not load: list the others
            records.append({"name": name, "error": str(exc)})
    if as_json:
        progress.json_result({"backbones": records, "keras_hub": _hub_families()})
        return
    keys = ("name", "weights_file", "weights_hash") if files else _BACKBONE_KEYS[:8]
    columns = (
        ["name", "ImageNet weights file (no top, in ~/.keras/models/)", "Keras file_hash"]
        if files
        else ["name", "source", "dim", "size", "min size", "preprocessing", "params (M)", "GMACs"]
    )
    rows = [[r["name"], f"error: {r['error']}"] + [None] * (len(keys) - 2) if "error" in r
            else [r[k] for k in keys] for r in records]  # fmt: skip
    progress.table("backbones", columns, rows)
    _list_hub_backbones(files)


def _hub_families() -> list[dict] | str:
    """Keras Hub's image backbone families, or why there are none (the extra is missing)."""
    from cifar_ray.embed import hub

    try:
        return [{"family": f, "presets": p} for f, p in hub.families()]
    except UserError as exc:
        return str(exc)


def _list_hub_backbones(files: bool) -> None:
    """Keras Hub's image backbone families beside the registry, from its installed tables."""
    families = _hub_families()
    if isinstance(families, str):  # the extra is not installed: say how to get it
        progress.say(f"Keras Hub backbones (--backbone hub:<preset>): {families}")
        return
    if files:
        progress.say("Keras Hub presets (--backbone hub:<preset>): downloaded and "
                     "cached by Keras Hub (kagglehub: KAGGLEHUB_CACHE)")  # fmt: skip
        return
    rows = [["keras-hub", f["family"], len(f["presets"]), ", ".join(f["presets"][:3]) or None]
            for f in families]  # fmt: skip
    progress.table("Keras Hub backbones: --backbone hub:<preset> (or a preset directory)",
                   ["source", "family", "presets", "examples"], rows)  # fmt: skip
