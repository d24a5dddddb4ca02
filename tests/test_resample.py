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
    assert X_res.dtype == np.uint8  # uint8 in, uint8 out, as imbalanced-learn's fit_resample
    np.testing.assert_array_equal(X_res[:7], X8)
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


def test_integer_images_come_back_in_their_dtype_with_synthetic_ones_on_the_grid():
    X, y = _arrays()
    for dtype, top in ((np.uint8, 255), (np.uint16, 65535)):
        Xi = np.rint(X * top).astype(dtype)
        X_res, _ = synthaug.resample(Xi, y, "augment", seed=1)
        assert X_res.dtype == dtype and X_res.shape == (10, 16, 16)
        np.testing.assert_array_equal(X_res[:7], Xi)
        as_float, _ = synthaug.resample(Xi.astype(np.float32) / np.float32(top), y, "augment", seed=1)
        np.testing.assert_allclose(X_res[7:] / top, as_float[7:], atol=0.5 / top + 1e-6)


@pytest.mark.parametrize("ratio, covid", [(0.5, 2), (0.8, 4), (1.0, 5)])
def test_a_float_strategy_is_imbalanced_learns_minority_to_majority_ratio(ratio, covid):
    X, y = _arrays()  # 2 covid, 5 normal
    _, y_res = synthaug.resample(X, y, "duplicate", sampling_strategy=ratio)
    assert (y_res == "covid").sum() == covid == int(ratio * 5) and (y_res == "normal").sum() == 5


@pytest.mark.parametrize("ratio, message", [
    (0.2, "strategy 0.2: 'covid' already has 2 images for 5 'normal' (ratio 0.400); a ratio only adds images"),
    (1.5, "strategy 1.5: a ratio is the minority/majority count wanted after balancing, in (0, 1]"),
    (0.0, "in (0, 1]"),
])
def test_a_ratio_that_would_remove_images_or_lies_outside_0_1_is_refused(ratio, message):
    X, y = _arrays()
    with pytest.raises(SynthaugError, match=re.escape(message)):
        synthaug.resample(X, y, "duplicate", sampling_strategy=ratio)


def test_a_ratio_is_for_binary_tasks_and_the_cli_takes_it(tmp_path, kaggle_first):
    from click.testing import CliRunner

    from synthaug.cli import main

    X, y = _arrays()
    y3 = y.copy()
    y3[0] = "viral"
    with pytest.raises(SynthaugError, match=re.escape("strategy 0.5: a ratio is for a binary task (two classes, as "
                                                      "in imbalanced-learn); this one has 3")):
        synthaug.resample(X, y3, "duplicate", sampling_strategy=0.5)
    result = CliRunner().invoke(main, ["--quiet", "balance", "--data", "kaggle", "--data-dir", kaggle_first,
                                       "--size", "16", "--test-per-class", "1", "--strategy", "0.5",
                                       "--out", str(tmp_path / "b.h5")])
    assert result.exit_code == 2 and "a ratio is for a binary task" in result.output, result.output
    assert not (tmp_path / "b.h5").exists()


def test_a_spec_arm_takes_a_ratio_strategy():
    from synthaug.experiments.spec import check_strategy

    assert check_strategy(0.25, "arms.x.strategy") == 0.25 and check_strategy("0.5", "arms.x.strategy") == 0.5
    with pytest.raises(SynthaugError, match=re.escape("arms.x.strategy: strategy 2: a ratio is the minority/majority")):
        check_strategy(2, "arms.x.strategy")
