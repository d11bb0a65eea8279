"""The extraction job without Ray: validate, plan, check what is done, then hand off to Ray."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from cifar_ray.config import ExtractConfig
from cifar_ray.embed import backbones, fingerprint, weights_cache
from cifar_ray.embed.embedder import EmbedderSpec
from cifar_ray.errors import StorageError, UserError
from cifar_ray.extract import own_images, store_meta
from cifar_ray.extract.claim import check_fingerprint
from cifar_ray.store import locations, quality
from cifar_ray.store.features import FeatureStore
from cifar_ray.store.layout import store_name
from cifar_ray.store.locations import Location
from cifar_ray.store.records import ShardRecord
from cifar_ray.store.shards import Shard, plan

if TYPE_CHECKING:  # distributor imports Ray: only when there is work for it
    from cifar_ray.extract import distributor
    from cifar_ray.extract.inputs import ShardPixels

log = logging.getLogger(__name__)


@dataclass
class ExtractionPlan:
    cfg: ExtractConfig
    dataset: own_images.Dataset
    backbone: backbones.Backbone
    spec: EmbedderSpec
    store: FeatureStore
    fingerprint: dict
    fingerprint_id: str
    shards: list[Shard]
    todo: list[Shard]
    temporaries_removed: int = 0
    strays_removed: int = 0

    @property
    def skipped(self) -> int:
        return len(self.shards) - len(self.todo)

    @property
    def metadata(self) -> dict:
        """What each Parquet file says about itself."""
        fp = self.fingerprint
        return {
            "fingerprint": self.fingerprint_id,
            "backbone": self.backbone.name,
            "store": self.store.backbone,  # `<backbone>@<dataset>` beyond CIFAR-10 (layout.py)
            "weights": fp["weights"],
            "image_size": fp["image_size"],
            "resize": fp["resize"],
            "preprocessing": fp["preprocessing"],
            "precision": fp["precision"],
            "xla": fp["xla"],
            "dataset": fp["dataset"],
            "dataset_sha256": fp["dataset_sha256"],
            "versions": fingerprint.versions(),
        }


def prepare(cfg: ExtractConfig, dataset: own_images.Dataset | None = None) -> ExtractionPlan:
    """Everything that can fail on user input fails here, before anything is written; what
    only building the model can tell (a weights file that does not fit, a factory whose model
    is wrong) fails in the first actor, which also writes nothing (see `execute`)."""
    backbone, spec = embedder_spec(cfg)
    size = spec.image_size
    loc = Location(cfg.out)
    dataset = dataset or own_images.load(cfg)
    store = FeatureStore(loc, store_name(backbone.name, dataset.name))
    sizes = {k: len(v) for k, v in dataset.splits.items() if len(v)}
    fields = fingerprint.build(
        dataset=dataset.name, dataset_sha256=dataset.sha256, shard_size=cfg.shard_size,
        backbone=backbone, weights=fingerprint.weights_identity(cfg.weights, cfg.seed, backbone),
        image_size=size, precision=cfg.precision, xla=cfg.xla, split_sizes=sizes,
        **own_images.fingerprint_fields(cfg, dataset),
    )  # fmt: skip
    fields, fid = check_fingerprint(store, fields, cfg.overwrite, dataset)
    n = sum(sizes.values())
    _check_writable(loc, store.dir, need_bytes=n * max(backbone.dim, 1) * 4)
    shards = plan(sizes, cfg.shard_size)
    # Every record and data file is read before anything is deleted: a storage error on any
    # of them stops planning with the store as it was.
    todo = [s for s in shards if _needs_work(store, s, fid)]
    removed = locations.remove_temporaries(loc, store.dir)
    strays = store.remove_strays(shards)  # no attempt runs yet: losers of earlier runs go
    if strays:
        log.warning("removed %d stray files (uncommitted attempts, shards outside the plan)",
                    len(strays))  # fmt: skip
    return ExtractionPlan(
        cfg, dataset, backbone, spec, store, fields, fid, shards, todo, removed, len(strays)
    )


def embedder_spec(cfg: ExtractConfig) -> tuple[backbones.Backbone, EmbedderSpec]:
    """The backbone and what an actor builds: no dataset, no TensorFlow needed. The model
    itself is not built here (importing TensorFlow and building it cost the driver 7 s before
    Ray could start); the first actor's build is the check."""
    backbone = backbones.get(cfg.backbone)
    size = backbones.check_image_size(backbone, cfg.image_size)
    weights = weights_cache.resolve(cfg.weights)  # an object-store file: staged on this node
    if cfg.weights not in ("imagenet", "none") and not Path(weights).expanduser().is_file():
        raise UserError(f"--weights {cfg.weights}: no such file (use imagenet, none or a file)")
    spec = EmbedderSpec(
        backbone.name if ":" not in cfg.backbone else cfg.backbone, size, cfg.weights, cfg.seed,
        cfg.batch_size, precision=cfg.precision, xla=cfg.xla,
        input_size=size if cfg.data else 32,  # your own images come decoded at `size`
    )  # fmt: skip
    return backbone, spec


def store_of(cfg: ExtractConfig) -> str:
    """The store `cfg` writes, known without the data (the dataset's name is in `cfg`)."""
    return store_name(backbones.get(cfg.backbone).name, own_images.dataset_key(cfg))


def launch(cfg: ExtractConfig) -> distributor.Launch:
    """Start the actors for `cfg` inside a Ray session, before the dataset is read: they import
    TensorFlow and build the model while the driver reads and checks the archive. `execute`
    takes the pool over (or shuts it down when the plan has nothing to do)."""
    from cifar_ray.extract import distributor

    backbone, spec = embedder_spec(cfg)
    weights = fingerprint.weights_identity(cfg.weights, cfg.seed, backbone)
    startup = {"backbone": backbone.name, "weights": weights,
               "store": store_name(backbone.name, own_images.dataset_key(cfg))}  # fmt: skip
    return distributor.launch(
        spec, Location(cfg.out), startup, actors=cfg.actors,
        gpus_per_actor=cfg.gpus_per_actor, in_flight=cfg.in_flight, start_timeout=cfg.start_timeout,
    )  # fmt: skip


def _check_writable(loc: Location, folder: str, need_bytes: int) -> None:
    """The probe leaves no folder behind: the model is checked by the first actor, after
    this, and a job that ends there (a user's factory, a weights file) has written nothing."""
    made = []
    if loc.is_local:
        path = Path(folder)
        while not path.exists() and path != path.parent:
            made.append(path)  # deepest first
            path = path.parent
    try:
        locations.check_writable(loc, folder, need_bytes)
    finally:
        for path in made:
            with contextlib.suppress(OSError):
                path.rmdir()


def _needs_work(store: FeatureStore, shard: Shard, fid: str) -> bool:
    problem = store.problem(shard, fid)
    if problem and problem not in ("missing", "other fingerprint"):  # that one: --overwrite
        log.warning("shard %s will be recomputed: %s", shard.key, problem)
    return problem is not None


@dataclass
class ExtractionSummary:
    backbone: str
    shards: int
    computed: int
    skipped: int
    images: int
    seconds: float
    images_per_s: float
    first_shard_s: float | None
    steady_images_per_s: float = 0.0  # after actors are up: what the pipeline sustains
    failed: dict[str, str] = field(default_factory=dict)
    actors_replaced: int = 0
    bad_images: int = 0  # your own images: skipped as unusable by this run (records name them)
    storage_error: str | None = None  # the store refused a write: the run stopped there
    warning: str | None = None  # degenerate features (store/quality.py)


def execute(
    p: ExtractionPlan,
    on_shard: Callable[[ShardRecord], None] = lambda r: None,
    pixels: ShardPixels | None = None,  # shared between backbones
    launched: distributor.Launch | None = None,  # actors started for this plan (see launch)
    on_embedding: Callable[[int], None] | None = None,  # images in shards in flight
) -> ExtractionSummary:
    """Run the Ray part for the shards still to do, then record the manifest. Nothing is
    written before an actor is up and has published a shard: an actor that cannot build the
    model (a user's error) ends the job with the store as it was."""
    started = time.perf_counter()
    outcome = None
    if not p.todo and launched is not None:
        launched.shutdown()
    if p.todo:
        from cifar_ray.extract import distributor  # Ray is imported only when there is work for it

        done: list[ShardRecord] = []

        def published(record: ShardRecord) -> None:
            done.append(record)
            if len(done) == 1:  # the store is claimed by the first result, not before
                store_meta.write_manifest(
                    p, None
                )  # the plan: `inspect` and `train` name missing shards
                own_images.claim(p.store, p.dataset)  # the listing, before the fingerprint
                p.store.write_fingerprint(p.fingerprint_id, p.fingerprint)
            on_shard(record)

        try:
            outcome = distributor.run(
                p.dataset, p.todo, p.spec, p.store.loc, p.metadata,
                actors=p.cfg.actors, gpus_per_actor=p.cfg.gpus_per_actor,
                in_flight=p.cfg.in_flight, max_retries=p.cfg.max_retries,
                shard_timeout=p.cfg.shard_timeout, start_timeout=p.cfg.start_timeout,
                on_shard=published,
                pixels=pixels or own_images.shard_items(p), launched=launched,
                on_embedding=on_embedding,
            )  # fmt: skip
        except StorageError as exc:  # the store failed the driver: what was published stands
            outcome = _stopped(p, done, exc)
        except BaseException:  # interrupted or failed: still leave only the result behind
            with contextlib.suppress(Exception):
                _clean(p)
            raise
        with contextlib.suppress(Exception) if outcome.stopped else contextlib.nullcontext():
            _clean(p)  # a store that refused writes may refuse this too: the summary comes first
    seconds = time.perf_counter() - started
    images = sum(r.rows for r in outcome.records) if outcome else 0
    summary = ExtractionSummary(
        backbone=p.store.backbone, shards=len(p.shards),
        computed=len(outcome.records) if outcome else 0, skipped=p.skipped, images=images,
        seconds=round(seconds, 3), images_per_s=round(images / seconds, 2) if images else 0.0,
        first_shard_s=outcome.first_shard_s if outcome else None,
        steady_images_per_s=_steady_rate(images, outcome),
        failed=outcome.failed if outcome else {},
        actors_replaced=outcome.actors_replaced if outcome else 0,
        bad_images=sum(len(r.bad) for r in outcome.records) if outcome else 0,
        storage_error=outcome.stopped if outcome else None,
    )  # fmt: skip
    try:
        written = store_meta.write_manifest(p, summary)
        store_meta.write_preview(p)
    except StorageError as exc:  # what was published stands: its records certify it
        summary.storage_error = summary.storage_error or str(exc)
        return summary
    return replace(summary, warning=quality.degenerate(written["shards"]))


def _stopped(p: ExtractionPlan, done: list[ShardRecord], exc: StorageError):
    """What the run did before the store refused a write of the driver's own: every shard it
    had not published is named with the reason."""
    from cifar_ray.extract import distributor

    published = {r.key for r in done}
    failed = {s.key: str(exc) for s in p.todo if s.key not in published}
    return distributor.Outcome(records=done, failed=failed, stopped=str(exc))


def _clean(p: ExtractionPlan) -> None:
    """After the pool is shut down no attempt runs: the data of attempts that lost a race or
    never committed goes, so the split folders hold exactly the result's rows. Once this run
    has claimed the store, shards made differently (what --overwrite replaces) go too."""
    locations.remove_temporaries(p.store.loc, p.store.dir)
    if (p.store.read_fingerprint(replacing=True) or {}).get("id") == p.fingerprint_id:
        p.store.remove_other_fingerprints(p.shards, p.fingerprint_id)
    p.store.remove_strays(p.shards)


def _steady_rate(images: int, outcome) -> float:
    if not images:
        return 0.0
    return round(images / max(1e-9, outcome.seconds - outcome.pool_ready_s), 2)
