"""`synthaug.resample(X, y)`: imbalanced-learn's fit_resample for images in memory, through the balance pipeline."""

from __future__ import annotations

import re

import numpy as np
import pytest

import synthaug
from synthaug import SynthaugError


def _arrays():
    """7 float images (16 x 16, no channel axis) with string labels: 2 'covid', 5 'normal'."""
    X = np.random.default_rng(0).random((7, 16, 16)).astype(np.float32)
    y = np.array(["normal", "covid", "normal", "normal", "covid", "normal", "normal"])
    return X, y


def test_originals_come_first_unchanged_then_the_minority_is_topped_up():
    X, y = _arrays()
    X_res, y_res = synthaug.resample(X, y, "augment", seed=3)
    assert X_res.shape == (10, 16, 16) and X_res.dtype == np.float32 and y_res.dtype.kind == "U"
    np.testing.assert_array_equal(X_res[:7], X)
    assert y_res.tolist() == y.tolist() + ["covid"] * 3
    assert not any(np.array_equal(X_res[k], X[i]) for k in range(7, 10) for i in range(7))  # flipped/rotated
    again = synthaug.resample(X, y, "augment", seed=3)
    np.testing.assert_array_equal(again[0], X_res)


def test_duplicate_copies_images_of_the_class_and_uint8_is_scaled():
    X, y = _arrays()
    X8 = np.rint(X * 255).astype(np.uint8)[:, None]  # (N, C, H, W) uint8
    labels = np.where(y == "covid", 7, 2)  # integer labels come back as integers
    X_res, y_res = synthaug.resample(X8, labels, "duplicate", sampling_strategy={7: 6})
    assert X_res.shape == (11, 1, 16, 16) and y_res.dtype.kind == "i"
    np.testing.assert_array_equal(X_res[:7], X8.astype(np.float32) / np.float32(255))
    assert y_res.tolist() == labels.tolist() + [7] * 4
    covid = X_res[:7][labels == 7]
    assert all(any(np.array_equal(X_res[k], c) for c in covid) for k in range(7, 11))


@pytest.mark.parametrize("X, y, strategy, message", [
    (None, None, "most", "unknown strategy 'most'; expected one of auto, minority"),
    (None, None, {"flu": 9}, "strategy names class 'flu'; classes are covid, normal"),
    (np.full((7, 16, 16), 1.5, np.float32), None, "auto", "X: float images must lie in [0, 1]; got values from 1.5"),
    (np.zeros((7, 16), np.float32), None, "auto", "X: expected images (N, C, H, W) or (N, H, W)"),
    (None, np.arange(6), "auto", "y: expected 7 labels, one per image of X; got shape (6,)"),
    (None, np.linspace(0, 1, 7), "auto", "y: expected integer or string labels; got float64"),
])
def test_bad_input_is_named(X, y, strategy, message):
    X0, y0 = _arrays()
    with pytest.raises(SynthaugError, match=re.escape(message)):
        synthaug.resample(X0 if X is None else X, y0 if y is None else y, "duplicate", sampling_strategy=strategy)
