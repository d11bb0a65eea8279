"""Where everything lives under OUT: every path below the output root is spelled here once.

    OUT/features/<backbone>/<split>/part-NNNNN-<attempt>.parquet   a shard's data (one attempt)
    OUT/features/<backbone>/_shards/<split>-NNNNN.json             a shard's record (commit point)
    OUT/features/<backbone>/manifest.json                          shards, counts, throughput
    OUT/features/<backbone>/fingerprint.json                       what decides the features
    OUT/features/<backbone>/listing.parquet                        your images' input files
    OUT/models/<backbone>/head.keras                               the trained dense head
    OUT/models/<backbone>/state.json                               the head's training state
    OUT/models/<backbone>/results.json                             every model's results
    OUT/train-runs/head-<backbone>-<key>/                          Ray Train checkpoints
    OUT/samples/test-preview.npz                                   first test images, for the report
    OUT/index/<store>/                                             neighbours and duplicates (audit)
    OUT/report/                                                    metrics.json, report.*, *.png
    OUT/leases/<backbone>.json                                     the extract running on a store
    OUT/leases/train/<backbone>.json                               the train running on a store

A store is named by its backbone and dataset: CIFAR-10's by the backbone alone (`inceptionv3`,
as always), any other dataset's as `<backbone>@<dataset>` (`inceptionv3@cifar100`). That one
name is the folder under features/, models/ and train-runs/, so stores of different datasets
sit side by side, resume on their own and never mix; CIFAR-100's preview is
`samples/test-preview@cifar100.npz`.

Modules ask a `Layout` for a path instead of joining names themselves, so the layout the
README documents is the layout the code writes, and a change to it is one change here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cifar_ray.store.locations import Location

FEATURES = "features"
MODELS = "models"
TRAIN_RUNS = "train-runs"
SAMPLES = "samples"
REPORT = "report"
LEASES = "leases"  # beside features/, not in it: a lease alone is no store
INDEX = "index"

RECORDS = "_shards"  # hidden from Parquet dataset readers by its leading underscore
MANIFEST = "manifest.json"
FINGERPRINT = "fingerprint.json"
LISTING = "listing.parquet"  # your own images: the input files the store was made from
STORE_FILES = (FINGERPRINT, MANIFEST, LISTING)  # a store's own files, beside its splits
HEAD = "head.keras"
HEAD_STATE = "state.json"
RESULTS = "results.json"
PREVIEW = "test-preview.npz"

DEFAULT_DATASET = "cifar10"  # its stores keep the names they had before datasets were added
DATASET_MARK = "@"

# What a record may name: a shard's data file, with an attempt id or (older stores) without.
DATA_FILE = re.compile(r"part-(\d{5})(?:-([0-9a-f]{1,32}))?\.parquet")


def data_file_name(index: int, attempt: str = "") -> str:
    """`part-NNNNN-<attempt>.parquet`; without an attempt, the fixed name older stores used."""
    return f"part-{index:05d}-{attempt}.parquet" if attempt else f"part-{index:05d}.parquet"


def shard_key(split: str, index: int) -> str:
    """A shard's name, `<split>-NNNNN`: its record is `_shards/<key>.json`."""
    return f"{split}-{index:05d}"


def store_name(backbone: str, dataset: str = DEFAULT_DATASET) -> str:
    """The name of a backbone's store for a dataset: `inceptionv3`, `inceptionv3@cifar100`."""
    return backbone if dataset == DEFAULT_DATASET else f"{backbone}{DATASET_MARK}{dataset}"


def dataset_of(store: str) -> str:
    """The dataset a store name says: `inceptionv3@cifar100` -> cifar100, else CIFAR-10."""
    _, mark, dataset = store.rpartition(DATASET_MARK)
    return dataset if mark else DEFAULT_DATASET


def backbone_of(store: str) -> str:
    return store.rpartition(DATASET_MARK)[0] or store


@dataclass(frozen=True)
class Layout:
    """The paths under one output location (local folder or object-store prefix)."""

    loc: Location

    # --- OUT/features/ -------------------------------------------------------------------
    def features_dir(self) -> str:
        return self.loc.path(FEATURES)

    def store_dir(self, backbone: str) -> str:
        return self.loc.path(FEATURES, backbone)

    def split_dir(self, backbone: str, split: str) -> str:
        return f"{self.store_dir(backbone)}/{split}"

    def data_file(self, backbone: str, split: str, file: str) -> str:
        return f"{self.split_dir(backbone, split)}/{file}"

    def records_dir(self, backbone: str) -> str:
        return f"{self.store_dir(backbone)}/{RECORDS}"

    def record(self, backbone: str, key: str) -> str:
        return f"{self.records_dir(backbone)}/{key}.json"

    def manifest(self, backbone: str) -> str:
        return f"{self.store_dir(backbone)}/{MANIFEST}"

    def fingerprint(self, backbone: str) -> str:
        return f"{self.store_dir(backbone)}/{FINGERPRINT}"

    def store_of(self, path: str) -> str | None:
        """The backbone whose manifest or fingerprint `path` is, else None."""
        parent, _, name = path.rpartition("/")
        folder, _, backbone = parent.rpartition("/")
        return backbone if name in STORE_FILES and folder == self.features_dir() else None

    # --- OUT/models/ and OUT/train-runs/ -------------------------------------------------
    def models_dir(self) -> str:
        return self.loc.path(MODELS)

    def models(self, backbone: str) -> str:
        return self.loc.path(MODELS, backbone)

    def head(self, backbone: str) -> str:
        return f"{self.models(backbone)}/{HEAD}"

    def head_state(self, backbone: str) -> str:
        return f"{self.models(backbone)}/{HEAD_STATE}"

    def results(self, backbone: str) -> str:
        return f"{self.models(backbone)}/{RESULTS}"

    def is_results(self, path: str) -> bool:
        parent, _, name = path.rpartition("/")
        return name == RESULTS and parent.rpartition("/")[0] == self.models_dir()

    def train_runs(self) -> str:
        return self.loc.path(TRAIN_RUNS)

    def train_runs_storage(self) -> str:
        """What Ray Train's `storage_path` takes: a local path, or the URI on object storage."""
        return self.train_runs() if self.loc.is_local else f"{self.loc.uri}/{TRAIN_RUNS}"

    def train_run(self, name: str) -> str:
        return f"{self.train_runs()}/{name}"

    # --- OUT/index/ -----------------------------------------------------------------------
    def index_dir(self, store: str) -> str:
        """The audit of one store (`cifar_ray.audit.files` names what is inside)."""
        return self.loc.path(INDEX, store)

    def index_file(self, store: str, name: str) -> str:
        return f"{self.index_dir(store)}/{name}"

    # --- OUT/samples/ and OUT/report/ ----------------------------------------------------
    def preview(self, dataset: str = DEFAULT_DATASET) -> str:
        """One per dataset: `test-preview.npz` for CIFAR-10, else `test-preview@<dataset>.npz`."""
        return self.loc.path(SAMPLES, self.preview_name(dataset))

    @staticmethod
    def preview_name(dataset: str = DEFAULT_DATASET) -> str:
        stem, _, ext = PREVIEW.rpartition(".")
        return PREVIEW if dataset == DEFAULT_DATASET else f"{stem}{DATASET_MARK}{dataset}.{ext}"

    def report_dir(self) -> str:
        return self.loc.path(REPORT)

    def report_file(self, name: str) -> str:
        return f"{self.report_dir()}/{name}"

    # --- OUT/leases/ ---------------------------------------------------------------------
    def lease(self, backbone: str, kind: str = "extract") -> str:
        """An extract's lease; another kind's in a folder of its own (a store name has no
        "/", so no store's lease is another kind's)."""
        if kind == "extract":
            return self.loc.path(LEASES, f"{backbone}.json")
        return self.loc.path(LEASES, kind, f"{backbone}.json")
