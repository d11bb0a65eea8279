"""Run configuration: every default in one place, validated before any work starts."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path

from cifar_ray.errors import UserError

DEFAULT_OUT = "./cifar-ray-out"
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


WEIGHTS_KEYWORDS = ("imagenet", "none")
DATASETS = ("cifar10", "cifar100")  # source.cifar.SOURCES holds what each one is

# The shard watchdog (extract/watchdog.py): an actor that holds shards and makes no progress
# for FACTOR x the slowest shard so far (before any: x its warm-up), at least MIN_S, is stuck.
SHARD_TIMEOUT_FACTOR = 10.0
SHARD_TIMEOUT_MIN_S = 60.0
# extract/pool.py: an actor placed on a node whose constructor (import TensorFlow, build the
# model, one warm-up batch: about a minute on a slow CPU) has not returned after this is stuck
# starting (a stopped process, a hung GPU driver): a failed start (--start-timeout sets it).
# Not placed yet (waiting for the autoscaler to bring a node) is not bounded.
ACTOR_START_TIMEOUT_S = 600.0
# extract/preflight.py: one batch's activations, estimated per pixel of the resized image
# (InceptionV3 at 75 px, batch 256: about 2.3 MB an image), may take this share of memory.
ACTIVATION_BYTES_PER_PIXEL = 400
BATCH_MEMORY_SHARE = 0.5
# store/lease.py: an extract holds a lease on each store it writes, renewed this often; a run
# that died without giving it back loses it LEASE_S after its last renewal.
LEASE_S = 120.0
LEASE_RENEW_S = 30.0
LEASE_SETTLE_S = 0.5  # two runs that start together: the last writer keeps the lease
SEED_MAX = 2**32 - 1  # NumPy's and TensorFlow's seeds: 0..2**32-1


# Decoding images (source/decode.py). Pillow's own limit, Image.MAX_IMAGE_PIXELS: the size
# past which it calls a file a decompression bomb (~ a 9,500 x 9,500 image, 268 MB as RGB).
RESIZE_MODES = ("squash", "center-crop", "pad")
DEFAULT_RESIZE = "center-crop"  # the ImageNet evaluation convention; CIFAR keeps "squash"
MAX_PIXELS = 89_478_485
DECODE_THREADS: int | None = None  # None: one per CPU this process may run on


def check_dataset(name: str) -> None:
    if name not in DATASETS:
        raise UserError(f"--dataset must be one of {', '.join(DATASETS)}, got {name!r}")


def absolute(path: str | None, keywords: tuple[str, ...] = ()) -> str | None:
    """Local paths made absolute up front: Ray workers (and Ray Train's) run in other cwds.
    `keywords` are values that name no path for this field (--weights imagenet)."""
    if path is None or "://" in path or path in keywords:
        return path
    return os.path.normpath(Path(path).expanduser().absolute())  # no `x/../y` in the report


def _check_out(out: str, flag: str = "--out") -> None:
    """An empty --out would write into the current folder, and `/` or the home folder would
    get `features/`, `samples/`, ... beside everything else there: refused, not guessed.
    `flag`: how the command takes it (`neighbours` takes a positional OUT)."""
    if not out.strip():
        raise UserError(f"{flag} is empty; give a folder or an s3:// / gs:// URI")
    path = absolute(out)
    if "://" in path:
        return
    resolved = Path(path).resolve()
    if resolved == resolved.parent or resolved == Path.home().resolve():
        raise UserError(f"{flag} {out} is a filesystem root or your home folder; give a folder "
                        "of its own, e.g. ./cifar-ray-out")  # fmt: skip


def check_seed(seed: int) -> None:
    if not 0 <= seed <= SEED_MAX:
        raise UserError(f"--seed must be in 0..{SEED_MAX} (NumPy's range), got {seed}")


@dataclass(frozen=True)
class ExtractConfig:
    out: str = DEFAULT_OUT
    data_dir: str | None = None  # None: download the official archive through Keras' cache
    dataset: str = "cifar10"  # or "cifar100": its stores are `<backbone>@cifar100` (layout.py)
    backbone: str = "inceptionv3"
    weights: str = "imagenet"  # "imagenet", "none" (seeded random init) or a weights file
    image_size: int | None = None  # None: the backbone's default input size
    image_size_overrides: tuple[tuple[str, int], ...] = ()  # ("resnet50", 224): per backbone
    limit: int | None = None  # keep the first N images of each split
    batch_size: int = 0  # images per forward pass; 0: chosen for the device and image size
    precision: str = "float32"  # mixed_float16 / mixed_bfloat16 for GPUs with tensor cores
    xla: bool = False  # XLA-compile the embed step (resize + preprocessing + backbone)
    shard_size: int = 1024  # images per Parquet file
    seed: int = 0
    actors: int | None = None  # None: one per GPU, else one per node's worth of CPU
    gpus_per_actor: float = 1.0  # used only where the cluster has GPUs
    in_flight: int = 2  # shards queued per actor so the device never waits on the host
    max_retries: int = 3
    shard_timeout: float | None = None  # seconds without progress; None: from measurements
    start_timeout: float = ACTOR_START_TIMEOUT_S  # seconds from placed to ready
    overwrite: bool = False
    # Your own images (source/images): --data names them; CIFAR stays the default without it.
    data: str | None = None  # an image folder tree, Parquet files or WebDataset tars
    resize: str | None = None  # None: squash for CIFAR (as always), center-crop for images
    test_fraction: float = 0.2  # per class, seeded, when the input names no splits
    image_column: str = "image"  # Parquet inputs
    label_column: str = "label"
    strict: bool = False  # a bad image fails its shard instead of being skipped and listed
    max_pixels: int = MAX_PIXELS  # more is a decompression bomb: a bad image

    def __post_init__(self) -> None:
        _check_out(self.out)
        for name in ("out", "data_dir", "data"):
            object.__setattr__(self, name, absolute(getattr(self, name)))
        object.__setattr__(self, "weights", absolute(self.weights, WEIGHTS_KEYWORDS))
        check_dataset(self.dataset)
        self._check_images()
        check_seed(self.seed)
        if self.limit is not None and self.limit <= 0:
            raise UserError(f"--limit must be a positive number of images, got {self.limit}")
        if self.batch_size < 0:
            raise UserError(f"--batch-size must be positive (or 0 for auto), got {self.batch_size}")
        for name in ("shard_size", "in_flight"):
            if getattr(self, name) <= 0:
                flag = name.replace("_", "-")
                raise UserError(f"--{flag} must be positive, got {getattr(self, name)}")
        if self.precision not in PRECISIONS:
            raise UserError(f"--precision must be one of {', '.join(PRECISIONS)}")
        if self.actors is not None and self.actors <= 0:
            raise UserError(f"--actors must be positive, got {self.actors}")
        if self.max_retries < 0:
            raise UserError(f"--max-retries must be 0 or more, got {self.max_retries}")
        for name in ("shard_timeout", "start_timeout"):
            value = getattr(self, name)
            if value is not None and not 0 < value < math.inf:
                flag = name.replace("_", "-")
                raise UserError(f"--{flag} must be positive seconds, got {value}")
        if not 0 < self.gpus_per_actor <= 8:
            raise UserError(f"--gpus-per-actor must be in (0, 8], got {self.gpus_per_actor}")

    def _check_images(self) -> None:
        if self.data is not None and self.data_dir is not None:
            raise UserError("--data names your images and --data-dir CIFAR's files; give one")
        if self.resize is not None and self.resize not in RESIZE_MODES:
            raise UserError(
                f"--resize must be one of {', '.join(RESIZE_MODES)}, got {self.resize!r}"
            )
        if not 0 < self.test_fraction < 1:
            raise UserError(f"--test-fraction must be in (0, 1), got {self.test_fraction}")
        if self.max_pixels <= 0:
            raise UserError(f"--max-pixels must be positive, got {self.max_pixels}")

    @property
    def resize_mode(self) -> str:
        return self.resize or (DEFAULT_RESIZE if self.data else "squash")


@dataclass(frozen=True)
class TrainConfig:
    out: str = DEFAULT_OUT
    backbone: str = ""  # comma-separated stores to train on; empty: every store in OUT
    hidden: int = 1024  # the seeds' head: Dense 1024 ReLU, dropout, softmax
    dropout: float = 0.5
    learning_rate: float = 1e-4  # Adam
    epochs: int = 10
    batch_size: int = 128
    val_fraction: float = 0.1  # stratified, carved from train
    patience: int = 3  # early stopping on validation loss
    seed: int = 0
    baselines: bool = True
    pixel_baselines: bool = True  # MLP and small CNN on raw pixels: what the backbone buys
    pixel_epochs: int = 5
    data_dir: str | None = None  # pixels for those; default: the source extraction recorded
    tsne: bool = False  # a seeded t-SNE map of 1,000 test points (slow)
    retrain: bool = False  # train again stores whose results are up to date (train/reuse.py)

    def __post_init__(self) -> None:
        _check_out(self.out)
        for name in ("out", "data_dir"):
            object.__setattr__(self, name, absolute(getattr(self, name)))
        check_seed(self.seed)
        if self.pixel_epochs <= 0:
            raise UserError(f"--pixel-epochs must be positive, got {self.pixel_epochs}")
        if not 0 < self.val_fraction < 1:
            raise UserError(f"--val-fraction must be in (0, 1), got {self.val_fraction}")
        if self.epochs <= 0 or self.batch_size <= 0 or self.hidden <= 0:
            raise UserError("--epochs, --batch-size and --hidden must be positive")
        if not 0 <= self.dropout < 1:
            raise UserError(f"--dropout must be in [0, 1), got {self.dropout}")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise UserError(f"--learning-rate must be finite and > 0, got {self.learning_rate}")


@dataclass(frozen=True)
class BenchConfig:
    """`cifar-ray bench`: the pipeline against a plain Keras predict on the same images."""

    data_dir: str | None = None
    dataset: str = ExtractConfig.dataset
    backbone: str = ExtractConfig.backbone
    weights: str = "none"  # the speed of random and ImageNet weights is the same
    image_size: int | None = None  # None: the backbone's default input size
    images: int = 300  # train first, then test, in source order
    batch_size: int = ExtractConfig.batch_size  # 0: the embedder's choice for the device, size
    shard_size: int = 256
    actors: int | None = None
    precision: str = ExtractConfig.precision
    xla: bool = ExtractConfig.xla
    seed: int = ExtractConfig.seed
    rounds: int = 2  # each side runs this many times; the best counts (load on a shared box)
    whole_job: bool = False  # `cifar-ray extract --local` against benchmarks/bare.py, start to end
    image_files: bool = False  # whole job on JPEG files written from the data, not its archive

    def __post_init__(self) -> None:
        check_dataset(self.dataset)
        check_seed(self.seed)
        if self.image_files and not self.whole_job:
            raise UserError("--image-files times the whole job: add --whole-job")
        if self.images <= 0 or self.rounds <= 0:
            raise UserError(
                f"--images and --rounds must be positive, got {self.images} and {self.rounds}"
            )


@dataclass(frozen=True)
class AuditConfig:
    """`cifar-ray neighbours`: the k nearest training images of every test image, and the
    near-duplicates across splits (`cifar_ray.audit`)."""

    out: str = DEFAULT_OUT
    backbone: str = ""  # comma-separated stores; empty: every store in OUT
    data_dir: str | None = None  # pixels for exact duplicates; default: as extracted
    k: int = 10  # neighbours kept per image
    duplicate_threshold: float | None = None  # None: chosen from the data (audit.threshold)
    threshold_floor: float = 0.9  # the data's gap is looked for above this similarity only
    fallback_threshold: float = 0.97  # when the data shows no gap above the floor
    index: str = "auto"  # exact, approximate, or auto (approximate when exact would be slow)
    query_block: int = 4096  # queries searched at once: bounds the similarity block in memory
    base_block: int = 65_536  # training rows per block when the search is split (Ray tasks)
    nlist: int = 0  # IVF lists; 0: sqrt(train rows), so k-means stays cheap at 2048 dims
    nprobe: int = 16  # IVF lists searched per query
    recall_sample: int = 500  # test queries whose approximate result is checked against exact
    within_train: bool = True  # also duplicates inside the training set (a train x train pass)
    fan_out: bool = False  # with a cluster: Ray tasks even when train fits this machine

    def __post_init__(self) -> None:
        _check_out(self.out, "OUT")
        for name in ("out", "data_dir"):
            object.__setattr__(self, name, absolute(getattr(self, name)))
        if self.k <= 0 or self.query_block <= 0 or self.base_block <= 0:
            raise UserError("--k, query and base blocks must be positive")
        if self.index not in INDEX_KINDS:
            raise UserError(f"--index must be one of {', '.join(INDEX_KINDS)}, got {self.index!r}")
        t = self.duplicate_threshold
        if t is not None and not -1 <= t <= 1:
            raise UserError(
                f"--duplicate-threshold must be a cosine similarity in [-1, 1], got {t}"
            )


INDEX_KINDS = ("auto", "exact", "approximate")


def backbone_names(value: str, *, required: bool = True) -> list[str]:
    """`--backbone resnet50, mobilenetv2`: the names, trimmed, empty ones dropped. Extraction
    needs one (`required`); training takes none to mean every store in OUT."""
    names = [n.strip() for n in value.split(",") if n.strip()]
    if required and not names:
        raise UserError("--backbone names no backbone")
    return names


def parse_image_sizes(text: str | None) -> tuple[int | None, tuple[tuple[str, int], ...]]:
    """`--image-size 75`, `--image-size resnet50=224` or both: `75,resnet50=224`."""
    default, overrides = None, []
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        name, _, value = part.rpartition("=")
        try:
            size = int(value)
        except ValueError:
            raise UserError(f"--image-size {text!r}: expected N or name=N, got {part!r}") from None
        if name:
            overrides.append((name.strip().lower(), size))
        else:
            default = size
    return default, tuple(overrides)


def as_dict(cfg: object) -> dict:
    return dataclasses.asdict(cfg)  # type: ignore[arg-type]
