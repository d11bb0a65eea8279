"""The dense head on Ray Train: one worker by default, per-epoch checkpoints, resumable."""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.fs as pafs

from cifar_ray.config import TrainConfig, as_dict
from cifar_ray.errors import StorageError, StorageRefused, UserError
from cifar_ray.store import latents, locations
from cifar_ray.store.layout import Layout
from cifar_ray.store.locations import Location
from cifar_ray.train import head, metrics
from cifar_ray.train.results import HEAD, HEAD_KIND, ModelResult

log = logging.getLogger(__name__)

# The TrainConfig fields that decide the trained head; the others (baselines, report
# options, paths) do not, so changing them still resumes.
MODEL_FIELDS = ("hidden", "dropout", "learning_rate", "epochs", "batch_size", "patience",
                "val_fraction", "seed")  # fmt: skip


def run_key(cfg: TrainConfig, lat: latents.Latents) -> str:
    """What the head is trained from: the model fields, the split and the features. A
    checkpoint is resumed only under the same key, so a resumed model is never one fitted on
    rows that are now validation, or with another seed or size."""
    fields = {name: getattr(cfg, name) for name in MODEL_FIELDS}
    fields["fingerprint"] = lat.manifest["fingerprint"]
    fields["split_sizes"] = lat.manifest["split_sizes"]
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def run_name(backbone: str, key: str) -> str:
    return f"head-{backbone}-{key}"


def fit(cfg: TrainConfig, loc: Location, lat: latents.Latents, fit_ref, val_ref) -> dict:
    """fit_ref and val_ref: (x, y) in the object store; the worker reads them from there."""
    from cifar_ray.embed.tfsetup import configure_tensorflow

    configure_tensorflow()  # ray.train.tensorflow imports TensorFlow into the driver
    import ray
    from ray.train import CheckpointConfig, RunConfig, ScalingConfig
    from ray.train.tensorflow import TensorflowTrainer

    gpus = ray.cluster_resources().get("GPU", 0) > 0
    key = run_key(cfg, lat)
    name = run_name(lat.backbone, key)
    _remove_other_runs(loc, lat.backbone, keep=name)
    layout = Layout(loc)
    trainer = TensorflowTrainer(
        _train_loop,
        train_loop_config={
            "cfg": as_dict(cfg),
            "backbone": lat.backbone,
            "run_key": key,
            "n_classes": len(lat.classes),
            "fit": fit_ref,
            "val": val_ref,
        },
        scaling_config=ScalingConfig(num_workers=1, use_gpu=gpus),
        run_config=RunConfig(
            name=name,
            storage_path=layout.train_runs_storage(),
            checkpoint_config=CheckpointConfig(num_to_keep=1),
        ),
    )
    try:
        trainer.fit()
    except Exception as exc:  # Ray Train wraps the worker's error in its own, many lines long
        refused = _refused_write(exc, layout.train_run(name))
        if refused is None:
            raise
        raise refused from None
    state_raw = locations.get_bytes(loc, layout.head_state(lat.backbone))
    locations.delete_dir(loc, layout.train_run(name))  # done: next run starts fresh
    _remove_if_empty(loc, layout.train_runs())
    return json.loads(state_raw)


def _remove_if_empty(loc: Location, folder: str) -> None:
    """OUT/train-runs/ holds unfinished runs only: with none left, it goes too."""
    if not loc.fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True)):
        locations.delete_dir(loc, folder)


def _refused_write(exc: BaseException, where: str) -> StorageRefused | None:
    """A full disk or a read-only OUT under Ray Train (a checkpoint, the model) as the one line
    every other write gives; found in the error's chain or, where Ray kept only the text, in
    the text of the OS error it wrapped."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, StorageError):
            return seen if isinstance(seen, StorageRefused) else None
        if isinstance(seen, OSError) and seen.errno in locations.REFUSED:
            return StorageRefused(f"cannot write under {where}: {os.strerror(seen.errno)}")
        seen = seen.__cause__ or seen.__context__
    text = str(exc)
    for code in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):  # texts no other error says
        if os.strerror(code) in text:
            return StorageRefused(f"cannot write under {where}: {os.strerror(code)}")
    return None


def _remove_other_runs(loc: Location, backbone: str, keep: str) -> None:
    """A killed run under another config will never be resumed (its key is gone): delete
    its checkpoints. Names are `head-<backbone>-<key>`; a key has no dash, so another
    backbone whose name starts with this one's is left alone."""
    prefix = run_name(backbone, "")
    selector = pafs.FileSelector(Layout(loc).train_runs(), allow_not_found=True)
    for info in loc.fs.get_file_info(selector):
        name = info.base_name
        stale = name.startswith(prefix) and "-" not in name[len(prefix) :] and name != keep
        if stale and info.type == pafs.FileType.Directory:
            log.warning("%s: removing checkpoints of a run with another config", info.path)
            locations.delete_dir(loc, info.path)


def _train_loop(config: dict) -> None:
    """Runs in the Ray Train worker: resumes from Ray Train's latest checkpoint if there is one."""
    from cifar_ray.embed.tfsetup import configure_tensorflow

    configure_tensorflow()  # before Keras imports TensorFlow: memory growth, not the whole GPU
    import ray

    cfg = TrainConfig(**config["cfg"])
    data = (*ray.get(config["fit"]), *ray.get(config["val"]))
    # The best weights and the saved head stage here: removed however the loop ends, so no
    # run leaves tens of MB behind in the temporary folder; one killed outright (SIGKILL, the
    # OOM killer) cannot, and the next training on the node removes its folder.
    remove_stale_staging()
    with tempfile.TemporaryDirectory(prefix=f"{STAGING_PREFIX}{os.getpid()}-") as tmp:
        _fit_head(cfg, config, data, Path(tmp))


STAGING_PREFIX = "cifar-ray-head-"  # then the pid of the process that stages there


def remove_stale_staging() -> None:
    """Staging folders whose process is gone. A live process with a reused pid keeps its
    folder (nothing is removed that might be in use)."""
    import psutil

    for path in Path(tempfile.gettempdir()).glob(f"{STAGING_PREFIX}*"):
        pid = path.name.removeprefix(STAGING_PREFIX).partition("-")[0]
        if pid.isdigit() and not psutil.pid_exists(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _fit_head(cfg: TrainConfig, config: dict, data: tuple, work: Path) -> None:
    """The loop's body, with `work` a folder of its own that the caller removes."""
    import keras
    import ray.train

    loc = Location(cfg.out)
    best = work / "best.weights.h5"
    model = head.build(data[0].shape[1], config["n_classes"], cfg.hidden, cfg.dropout,
                       cfg.learning_rate, cfg.seed, x_fit=data[0])  # fmt: skip
    state = head.LoopState(run_key=config["run_key"])
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder:
            saved = head.LoopState.load(Path(folder))
            if saved.run_key == state.run_key:  # the run name has the key; this double-checks
                model = keras.models.load_model(Path(folder) / "model.keras")
                state = saved
                state.resumed_from = state.epoch
                _copy(Path(folder) / "best.weights.h5", best)

    def on_epoch(state: head.LoopState, improved: bool) -> None:
        if improved or not best.exists():  # a NaN loss never improves: keep the first epoch
            model.save_weights(best)
        with tempfile.TemporaryDirectory() as folder:
            model.save(Path(folder) / "model.keras")
            _copy(best, Path(folder) / "best.weights.h5")
            state.save(Path(folder))
            last = {k: v[-1] for k, v in state.history.items()}
            ray.train.report(
                {"epoch": state.epoch, **last},
                checkpoint=ray.train.Checkpoint.from_directory(folder),
            )

    head.fit(
        model, data, epochs=cfg.epochs, batch_size=cfg.batch_size, patience=cfg.patience,
        seed=cfg.seed, state=state, on_epoch=on_epoch,
    )  # fmt: skip
    model.load_weights(best)
    layout, backbone = Layout(loc), config["backbone"]
    model.save(work / "head.keras")
    locations.put_atomic(loc, layout.head(backbone), (work / "head.keras").read_bytes())
    locations.put_atomic(loc, layout.head_state(backbone), json.dumps(state.__dict__).encode())


def _copy(src: Path, dst: Path) -> None:
    dst.write_bytes(src.read_bytes())


def load_head(loc: Location, backbone: str):
    """The saved model, from local disk or object storage."""
    from cifar_ray.embed.tfsetup import configure_tensorflow

    configure_tensorflow()
    import keras

    path = Layout(loc).head(backbone)
    raw = locations.get_bytes(loc, path)
    if raw is None:
        raise UserError(f"{Layout(loc).models(backbone)}: no trained model; run `cifar-ray train`")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "head.keras"
        path.write_bytes(raw)
        return keras.models.load_model(path)


def predict(model, x: np.ndarray) -> np.ndarray:
    return np.argmax(model.predict(x, batch_size=1024, verbose=0), axis=1)


def evaluate(
    loc: Location, backbone: str, parts: dict, n_classes: int, state: dict, fit_s: float
) -> ModelResult:
    """Accuracy comes from the saved model itself, so it reproduces exactly on reload."""
    model = load_head(loc, backbone)
    preds, seconds = {}, {}
    for split, (x, _) in parts.items():
        started = time.perf_counter()
        preds[split] = predict(model, x)
        seconds[split] = time.perf_counter() - started
    params = {
        "best_epoch": state["best_epoch"],
        "epochs_run": state["epoch"],
        "resumed_from": state["resumed_from"],
        "run_key": state.get("run_key"),
        "stopped_early": state["stopped_early"],
    }
    accuracy = {k: metrics.accuracy(parts[k][1], p) for k, p in preds.items()}
    return ModelResult.scored(
        HEAD, HEAD_KIND, params, accuracy, parts["test"][1], preds["test"], n_classes,
        fit_s=fit_s, infer_s=seconds["test"], history=state["history"],
    )  # fmt: skip
