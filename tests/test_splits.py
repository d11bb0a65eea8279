"""The validation split: it falls back to a plain seeded split when stratifying cannot work, and
every model gets the same rows in the same fit-then-validation order."""

from __future__ import annotations

import numpy as np

from cifar_ray.train import splits


def test_a_class_with_one_image_falls_back_to_a_plain_seeded_split():
    y = np.array([0] * 10 + [1] * 9 + [2])  # class 2 cannot be in both parts
    fit, val = splits.train_val_indices(y, 0.25, seed=1)
    assert (len(fit), len(val)) == (15, 5)
    assert sorted([*fit, *val]) == list(range(20))
    again = splits.train_val_indices(y, 0.25, seed=1)
    assert np.array_equal(fit, again[0]) and np.array_equal(val, again[1])


def test_fewer_validation_rows_than_classes_still_splits():
    y = np.repeat(np.arange(10), 3)  # stratified needs val >= 10 rows; 10% of 30 is 3
    fit, val = splits.train_val_indices(y, 0.1, seed=0)
    assert (len(fit), len(val)) == (27, 3)
    assert not set(fit) & set(val)


def test_seed_changes_the_split_and_indices_come_sorted():
    y = np.repeat(np.arange(4), 25)
    a = splits.train_val_indices(y, 0.2, seed=0)
    b = splits.train_val_indices(y, 0.2, seed=1)
    assert not np.array_equal(a[1], b[1])
    for part in (*a, *b):
        assert np.all(np.diff(part) > 0)


def test_fit_then_val_orders_fit_rows_first():
    y = np.repeat(np.arange(5), 8)
    order, n_fit = splits.fit_then_val(y, 0.25, seed=2)
    fit, val = splits.train_val_indices(y, 0.25, seed=2)
    assert n_fit == len(fit) == 30
    assert order[:n_fit].tolist() == fit.tolist() and order[n_fit:].tolist() == val.tolist()


def test_views_share_memory_and_parts_keep_rows_with_their_labels():
    x_train = np.arange(40, dtype=np.float32).reshape(20, 2)  # row i holds 2i, 2i+1
    y_train = np.repeat(np.arange(4), 5)
    test = (np.zeros((3, 2)), np.array([0, 1, 2]))
    v = splits.views(x_train, y_train, 15, test)
    assert np.shares_memory(v["train"][0], x_train) and np.shares_memory(v["val"][0], x_train)
    assert len(v["train"][1]) == 15 and len(v["val"][1]) == 5 and v["test"] is test

    p = splits.parts({"train": x_train, "test": test[0]}, {"train": y_train, "test": test[1]},
                     0.25, seed=5)  # fmt: skip
    ids = np.concatenate([p["train"][0][:, 0], p["val"][0][:, 0]]).astype(int) // 2
    assert sorted(ids) == list(range(20))  # every train row once, none from test
    for name in ("train", "val"):
        x, y = p[name]
        np.testing.assert_array_equal(y, y_train[x[:, 0].astype(int) // 2])
    assert sorted(np.bincount(p["val"][1], minlength=4)) == [1, 1, 1, 2]  # stratified
    np.testing.assert_array_equal(p["test"][1], test[1])
