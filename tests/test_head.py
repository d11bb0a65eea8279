"""The dense head: its layers, standardisation saved inside the model, early stopping on
validation loss, and a loop state that resumes the same schedule after a save and load."""

from __future__ import annotations

import math

import numpy as np

from cifar_ray.train import head


def _problem(n: int = 120, dim: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = (np.eye(3, dim)[y] * 3 + rng.normal(0, 1, (n, dim))) * 1e-3 + 50.0  # tiny variance
    return x.astype(np.float32), y, (x[:90], y[:90], x[90:], y[90:])


def test_build_standardises_with_fit_statistics_and_ends_in_a_softmax():
    x, _, _ = _problem()
    plain = head.build(6, 3, hidden=8, dropout=0.5, learning_rate=1e-3, seed=0)
    model = head.build(6, 3, hidden=8, dropout=0.5, learning_rate=1e-3, seed=0, x_fit=x)
    assert [type(layer).__name__ for layer in plain.layers] == ["Dense", "Dropout", "Dense"]
    assert model.layers[0].name == "standardise"
    z = np.asarray(model.layers[0](x))
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-2)
    np.testing.assert_allclose(z.std(axis=0), 1, atol=1e-2)
    assert model.layers[1].units == 8 and model.layers[-1].units == 3
    assert model.layers[2].rate == 0.5
    probs = model.predict(x[:5], verbose=0)
    assert probs.shape == (5, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)


def test_no_improvement_for_patience_epochs_stops_early():
    x, _, data = _problem()
    model = head.build(6, 3, hidden=8, dropout=0.0, learning_rate=1e-3, seed=0, x_fit=x)
    calls = []
    state = head.LoopState(best_val_loss=0.0)  # cross-entropy never reaches 0: no epoch improves
    state = head.fit(model, data, epochs=10, batch_size=32, patience=2, seed=0, state=state,
                     on_epoch=lambda s, improved: calls.append((s.epoch, improved)))  # fmt: skip
    assert calls == [(1, False), (2, False)]
    assert (state.epoch, state.waited, state.best_epoch, state.stopped_early) == (2, 2, -1, True)
    assert len(state.history["val_loss"]) == 2 and len(state.history["seconds"]) == 2
    again = head.fit(model, data, epochs=10, batch_size=32, patience=2, seed=0, state=state,
                     on_epoch=lambda s, improved: calls.append(s.epoch))  # fmt: skip
    assert again.epoch == 2 and len(calls) == 2  # a stopped run stays stopped


def test_state_round_trips_and_a_resumed_run_continues_the_schedule(tmp_path):
    x, _, data = _problem()
    model = head.build(6, 3, hidden=8, dropout=0.0, learning_rate=1e-2, seed=0, x_fit=x)
    fresh = head.LoopState()
    fresh.save(tmp_path)
    loaded = head.LoopState.load(tmp_path)
    assert loaded == fresh and math.isinf(loaded.best_val_loss)

    state = head.LoopState(waited=1)  # a resumed run that had waited once
    saves = []

    def on_epoch(s: head.LoopState, improved: bool) -> None:
        s.save(tmp_path)
        saves.append(improved)

    state = head.fit(model, data, epochs=2, batch_size=32, patience=3, seed=0, state=state,
                     on_epoch=on_epoch)  # fmt: skip
    assert saves[0] is True and state.best_epoch >= 0
    assert state.best_val_loss == min(state.history["val_loss"])
    resumed = head.LoopState.load(tmp_path)
    assert resumed == state
    assert set(resumed.history) >= {"loss", "accuracy", "val_loss", "val_accuracy", "seconds"}

    resumed.resumed_from = resumed.epoch
    after = head.fit(model, data, epochs=3, batch_size=32, patience=3, seed=0, state=resumed,
                     on_epoch=lambda s, i: None)  # fmt: skip
    assert after.epoch == 3 and len(after.history["val_loss"]) == 3  # one more, not three
    assert after.history["val_loss"][:2] == state.history["val_loss"]
    assert head.LoopState.load(tmp_path).epoch == 2  # only on_epoch saves
