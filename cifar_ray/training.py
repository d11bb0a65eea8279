"""Training on Ray: the dense head through Ray Train, baselines as parallel Ray tasks."""

from __future__ import annotations

import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np

from cifar_ray import baselines, head, inspection, latents, metrics, progress, splits, storage
from cifar_ray.config import TrainConfig, as_dict
from cifar_ray.errors import UserError
from cifar_ray.ray_runtime import ray_session
from cifar_ray.storage import Location

log = logging.getLogger(__name__)


def model_dir(loc: Location, backbone: str) -> str:
    return loc.path("models", backbone)


def train_all(cfg: TrainConfig, *, local: bool, address: str | None, verbose: bool) -> dict:
    """Validate every store first (a clear refusal beats a failed Ray job), then train each."""
    loc = Location(cfg.out)
    names = [n for n in cfg.backbone.split(",") if n] or inspection.stores(loc)
    if not names:
        raise UserError(f"{loc.uri}: no feature stores; run `cifar-ray extract` first")
    loaded = {name: latents.load(loc, name) for name in names}
    results = {}
    with ray_session(local, address, verbose):
        for name, lat in loaded.items():
            results[name] = train_one(cfg, loc, lat)
    _print_results(results)
    return results


def train_one(cfg: TrainConfig, loc: Location, lat: latents.Latents) -> dict:
    import ray

    fit_idx, val_idx = splits.train_val_indices(lat.y["train"], cfg.val_fraction, cfg.seed)
    x, y = lat.x["train"], lat.y["train"]
    parts = {
        "train": (x[fit_idx], y[fit_idx]),  # train minus the validation share
        "val": (x[val_idx], y[val_idx]),
        "test": (lat.x["test"], lat.y["test"]),
    }
    n_classes = len(lat.classes)
    pending = []
    if cfg.baselines:
        task = ray.remote(num_cpus=1)(baselines.run)
        refs = {k: ray.put(v) for k, v in parts.items()}
        pending = [
            task.remote(name, refs["train"], refs["val"], refs["test"], n_classes)
            for name in baselines.CANDIDATES
        ]
    with progress.console.status(f"training dense head on {lat.backbone} (Ray Train)"):
        started = time.perf_counter()
        state = _fit_head(cfg, loc, lat)
        fit_s = time.perf_counter() - started
    models = {"dense_head": _evaluate_head(loc, lat.backbone, parts, n_classes, state, fit_s)}
    with progress.console.status("baselines"):
        for result in ray.get(pending):
            models[result["name"]] = result
    result = {
        "backbone": lat.backbone,
        "fingerprint": lat.manifest["fingerprint"],
        "dim": lat.dim,
        "classes": list(lat.classes),
        "sizes": {k: len(v[1]) for k, v in parts.items()},
        "train_config": as_dict(cfg),
        "extraction": lat.manifest.get("last_run", {}),
        "models": models,
        "embedding_2d": _pca_map(parts["test"], cfg.seed),
    }
    body = json.dumps(result, indent=1).encode()
    storage.put_atomic(loc, f"{model_dir(loc, lat.backbone)}/results.json", body)
    return result


def _fit_head(cfg: TrainConfig, loc: Location, lat: latents.Latents) -> dict:
    import ray
    from ray.train import CheckpointConfig, RunConfig, ScalingConfig
    from ray.train.tensorflow import TensorflowTrainer

    gpus = ray.cluster_resources().get("GPU", 0) > 0
    run_name = f"head-{lat.backbone}-{lat.manifest['fingerprint']}"
    storage_path = loc.path("train-runs") if loc.is_local else f"{loc.uri}/train-runs"
    trainer = TensorflowTrainer(
        _train_loop,
        train_loop_config={**as_dict(cfg), "backbone": lat.backbone},
        scaling_config=ScalingConfig(num_workers=1, use_gpu=gpus),
        run_config=RunConfig(
            name=run_name,
            storage_path=storage_path,
            checkpoint_config=CheckpointConfig(num_to_keep=1),
        ),
    )
    trainer.fit()
    state_raw = storage.get_bytes(loc, f"{model_dir(loc, lat.backbone)}/state.json")
    storage.delete_dir(loc, f"{loc.root}/train-runs/{run_name}")  # done: next run starts fresh
    return json.loads(state_raw)


def _train_loop(config: dict) -> None:
    """Runs in the Ray Train worker: resumes from Ray Train's latest checkpoint if there is one."""
    import keras
    import ray.train

    from cifar_ray.tfsetup import configure_tensorflow

    configure_tensorflow()
    cfg = TrainConfig(**{k: v for k, v in config.items() if k != "backbone"})
    loc = Location(cfg.out)
    lat = latents.load(loc, config["backbone"])
    fit_idx, val_idx = splits.train_val_indices(lat.y["train"], cfg.val_fraction, cfg.seed)
    x, y = lat.x["train"], lat.y["train"]
    data = (x[fit_idx], y[fit_idx], x[val_idx], y[val_idx])
    work = Path(tempfile.mkdtemp(prefix="cifar-ray-head-"))
    best = work / "best.weights.h5"
    model = head.build(lat.dim, len(lat.classes), cfg.hidden, cfg.dropout, cfg.learning_rate,
                       cfg.seed)  # fmt: skip
    state = head.LoopState()
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder:
            model = keras.models.load_model(Path(folder) / "model.keras")
            state = head.LoopState.load(Path(folder))
            _copy(Path(folder) / "best.weights.h5", best)
        state.resumed_from = state.epoch

    def on_epoch(state: head.LoopState, improved: bool) -> None:
        if improved:
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
    out = model_dir(loc, config["backbone"])
    model.save(work / "head.keras")
    storage.put_atomic(loc, f"{out}/head.keras", (work / "head.keras").read_bytes())
    storage.put_atomic(loc, f"{out}/state.json", json.dumps(state.__dict__).encode())


def _copy(src: Path, dst: Path) -> None:
    dst.write_bytes(src.read_bytes())


def load_head(loc: Location, backbone: str):
    """The saved model, from local disk or object storage."""
    import keras

    raw = storage.get_bytes(loc, f"{model_dir(loc, backbone)}/head.keras")
    if raw is None:
        raise UserError(f"{model_dir(loc, backbone)}: no trained model; run `cifar-ray train`")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "head.keras"
        path.write_bytes(raw)
        return keras.models.load_model(path)


def predict(model, x: np.ndarray) -> np.ndarray:
    return np.argmax(model.predict(x, batch_size=1024, verbose=0), axis=1)


def _evaluate_head(loc, backbone, parts, n_classes, state, fit_s) -> dict:
    """Accuracy comes from the saved model itself, so it reproduces exactly on reload."""
    from cifar_ray.tfsetup import configure_tensorflow

    configure_tensorflow()
    model = load_head(loc, backbone)
    preds = {k: predict(model, v[0]) for k, v in parts.items()}
    started = time.perf_counter()
    predict(model, parts["test"][0])
    infer_s = time.perf_counter() - started
    return {
        "name": "dense_head",
        "kind": "dense-head (Ray Train)",
        "params": {
            "best_epoch": state["best_epoch"],
            "epochs_run": state["epoch"],
            "resumed_from": state["resumed_from"],
            "stopped_early": state["stopped_early"],
        },
        "accuracy": {k: metrics.accuracy(parts[k][1], p) for k, p in preds.items()},
        "test": metrics.evaluate(parts["test"][1], preds["test"], n_classes),
        "history": state["history"],
        "fit_s": round(fit_s, 3),
        "infer_s": round(infer_s, 3),
        "sample_predictions": preds["test"][:64].tolist(),
    }


def _pca_map(test: tuple[np.ndarray, np.ndarray], seed: int, n: int = 2000) -> dict:
    from sklearn.decomposition import PCA

    x, y = test
    pick = np.random.default_rng(seed).permutation(len(y))[:n]
    coords = PCA(n_components=2, random_state=seed).fit_transform(x[pick])
    return {"method": "pca", "xy": np.round(coords, 4).tolist(), "labels": y[pick].tolist()}


def _print_results(results: dict) -> None:
    rows = []
    for backbone, res in results.items():
        for name, m in res["models"].items():
            acc = m["accuracy"]
            rows.append([backbone, name, acc["train"], acc["val"], acc["test"], m["fit_s"]])
    progress.table("models", ["backbone", "model", "train", "val", "test", "fit s"], rows)
