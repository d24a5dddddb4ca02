"""synthaug.experiments.stats against hand-computed numbers and constructed arm comparisons."""

import math

import numpy as np
import pytest

from synthaug.errors import SynthaugError
from synthaug.experiments.stats import (
    MEASURES,
    NOT_JUDGED,
    UNCLEAR,
    bootstrap_p,
    cluster_index,
    holm,
    mean_interval,
    measure_batch,
    measure_from_confusion,
    paired_bootstrap,
    paired_seed_comparison,
    proportion_interval,
    t_quantile,
    value_bootstrap,
    verdict,
    verdict_sentence,
)
from synthaug.pipeline.metrics import classification_metrics, confusion_matrix

# rows true, columns predicted
CM3 = np.array([[5, 2, 1],
                [1, 6, 3],
                [0, 2, 4]])


def test_measure_names():
    assert set(MEASURES) == {"accuracy", "macro_f1", "weighted_f1", "precision", "recall", "f1", "specificity",
                             "balanced_accuracy"}
    assert all(isinstance(v, str) and v and "\n" not in v for v in MEASURES.values())


def test_measures_of_a_three_class_matrix_by_hand():
    # precision: 5/6, 6/10, 4/8 ; recall: 5/8, 6/10, 4/6
    p = np.array([5 / 6, 6 / 10, 4 / 8])
    r = np.array([5 / 8, 6 / 10, 4 / 6])
    f = 2 * p * r / (p + r)
    support = np.array([8, 10, 6])
    m = lambda name, pos=None: measure_from_confusion(CM3, name, pos)  # noqa: E731
    assert m("accuracy") == pytest.approx(15 / 24)
    assert m("macro_f1") == pytest.approx(f.mean())
    assert m("weighted_f1") == pytest.approx((f * support).sum() / 24)
    assert m("balanced_accuracy") == pytest.approx(r.mean())
    assert m("precision", 1) == pytest.approx(0.6)
    assert m("recall", 0) == pytest.approx(5 / 8)
    assert m("f1", 2) == pytest.approx(2 * 0.5 * (4 / 6) / (0.5 + 4 / 6))
    # specificity of class 2: 18 others, 1 + 3 of them predicted as class 2
    assert m("specificity", 2) == pytest.approx(14 / 18)
    assert m("specificity", 0) == pytest.approx((16 - 1) / 16)
    # the same as the pipeline's metrics
    y_true = np.repeat(np.repeat([0, 1, 2], 3), CM3.ravel())
    y_pred = np.repeat(np.tile([0, 1, 2], 3), CM3.ravel())
    assert (confusion_matrix(y_true, y_pred, 3) == CM3).all()
    ref = classification_metrics(y_true, y_pred, ("a", "b", "c"), positive="c")
    assert m("macro_f1") == pytest.approx(ref["macro_f1"])
    assert m("weighted_f1") == pytest.approx(ref["weighted_f1"])
    assert m("specificity", 2) == pytest.approx(ref["specificity"])
    assert m("recall", 2) == pytest.approx(ref["sensitivity"])


def test_zero_division_conventions():
    # class 1 never predicted, class 2 absent from the truth and never predicted
    cm = np.array([[3, 0, 0],
                   [2, 0, 0],
                   [0, 0, 0]])
    assert measure_from_confusion(cm, "precision", 1) == 0.0
    assert measure_from_confusion(cm, "recall", 1) == 0.0
    assert measure_from_confusion(cm, "f1", 1) == 0.0
    assert measure_from_confusion(cm, "recall", 2) == 0.0
    assert measure_from_confusion(cm, "precision", 2) == 0.0
    f0 = 2 * 0.6 * 1.0 / 1.6
    assert measure_from_confusion(cm, "macro_f1", None) == pytest.approx(f0 / 3)
    assert measure_from_confusion(cm, "weighted_f1", None) == pytest.approx(3 * f0 / 5)
    assert measure_from_confusion(cm, "balanced_accuracy", None) == pytest.approx(1 / 3)
    assert measure_from_confusion(cm, "specificity", 2) == 1.0  # all 5 others not called class 2
    # only the positive class present: no negatives -> specificity 0
    assert measure_from_confusion(np.array([[4, 0], [0, 0]]), "specificity", 0) == 0.0
    # empty matrix: everything 0
    empty = np.zeros((2, 2), int)
    for name in MEASURES:
        assert measure_from_confusion(empty, name, 0) == 0.0


def test_bad_measure_arguments():
    with pytest.raises(SynthaugError, match="positive"):
        measure_from_confusion(CM3, "specificity", None)
    with pytest.raises(SynthaugError, match="positive"):
        measure_batch(CM3[None], "f1", None)
    with pytest.raises(SynthaugError, match="out of range"):
        measure_from_confusion(CM3, "recall", 3)
    with pytest.raises(SynthaugError, match="unknown measure"):
        measure_from_confusion(CM3, "auc", None)
    with pytest.raises(SynthaugError, match="shape"):
        measure_from_confusion(np.zeros((2, 3)), "accuracy", None)


def test_measure_batch_equals_a_loop():
    rng = np.random.default_rng(1)
    cms = rng.integers(0, 6, size=(40, 4, 4))
    cms[3] = 0                      # empty
    cms[4, :, 1] = 0                # class 1 never predicted
    cms[5, 2, :] = 0                # class 2 absent from the truth
    for name in MEASURES:
        for pos in (0, 1, 2):
            batch = measure_batch(cms, name, pos)
            assert batch.shape == (40,)
            loop = [measure_from_confusion(cm, name, pos) for cm in cms]
            np.testing.assert_allclose(batch, loop, rtol=0, atol=1e-15)


@pytest.mark.parametrize("df, level, expected", [
    (1, 0.95, 12.706), (2, 0.95, 4.303), (4, 0.95, 2.776), (9, 0.95, 2.262), (29, 0.95, 2.045),
    (1000, 0.95, 1.962), (2, 0.90, 2.920), (3, 0.99, 5.841), (1, 0.999, 636.619), (10, 0.5, 0.700),
])
def test_t_quantiles(df, level, expected):
    assert round(t_quantile(df, level), 3) == expected


def test_t_quantile_limits_and_errors():
    assert t_quantile(10 ** 7) == pytest.approx(1.959964, abs=1e-6)  # -> the normal quantile
    assert t_quantile(float("inf")) == pytest.approx(1.959964, abs=1e-6)
    for bad in (dict(df=0), dict(df=-1), dict(df=3, level=1.0), dict(df=3, level=0.0)):
        with pytest.raises(SynthaugError):
            t_quantile(**bad)


def test_t_quantile_is_scipys():
    from scipy import stats as scipy_stats

    for df in (1, 2, 3, 9, 29, 1000, 100_000):
        for level in (0.5, 0.9, 0.95, 0.99):
            assert t_quantile(df, level) == pytest.approx(scipy_stats.t.ppf(0.5 + level / 2, df), rel=1e-12)


def test_mean_interval_by_hand():
    values = [0.70, 0.74, 0.72, 0.78]
    mean = 0.735
    std = math.sqrt(((0.035 ** 2) + (0.005 ** 2) + (0.015 ** 2) + (0.045 ** 2)) / 3)
    half = 3.182446 * std / 2  # t(3) = 3.182446, sqrt(4) = 2
    r = mean_interval(values)
    assert r["n"] == 4
    assert r["mean"] == pytest.approx(mean)
    assert r["std"] == pytest.approx(std)
    assert r["half_width"] == pytest.approx(half, rel=1e-6)
    assert (r["low"], r["high"]) == pytest.approx((mean - half, mean + half), rel=1e-6)
    one = mean_interval([0.5])
    assert one["n"] == 1 and one["mean"] == 0.5
    assert one["std"] is None and one["low"] is None and one["high"] is None and one["half_width"] is None
    flat = mean_interval([0.2, 0.2, 0.2])
    assert (flat["low"], flat["high"], flat["half_width"]) == pytest.approx((0.2, 0.2, 0.0))
    with pytest.raises(SynthaugError):
        mean_interval([])
    with pytest.raises(SynthaugError):
        mean_interval([0.1, float("nan")])


def test_paired_seed_comparison_is_the_interval_of_the_differences():
    a, b = [0.60, 0.62, 0.58], [0.70, 0.75, 0.66]
    from scipy.stats import ttest_rel

    r = paired_seed_comparison(a, b)
    ref = mean_interval(np.array(b) - np.array(a))
    assert {k: v for k, v in r.items() if k != "p"} == ref
    assert r["p"] == pytest.approx(ttest_rel(b, a).pvalue, rel=1e-9)  # the paired t test's p-value
    assert paired_seed_comparison([0.5], [0.6])["p"] is None
    assert paired_seed_comparison([0.5, 0.5], [0.5, 0.5])["p"] == 1.0
    assert r["mean"] == pytest.approx(0.1033333, rel=1e-5)
    with pytest.raises(SynthaugError, match="same seeds"):
        paired_seed_comparison([0.1, 0.2], [0.1])


def _noisy_predictions(y, correct_rate, rng, k):
    wrong = rng.random(len(y)) >= correct_rate
    pred = y.copy()
    pred[wrong] = (y[wrong] + rng.integers(1, k, size=wrong.sum())) % k
    return pred


def _arms(n_seeds, n_images, rate_a, rate_b, k=3, seed=0):
    """Per-seed (y, pred_a, pred_b) on the same test images, with different noise per seed."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, size=n_images)
    return [(y, _noisy_predictions(y, rate_a, rng, k), _noisy_predictions(y, rate_b, rng, k)) for _ in range(n_seeds)]


def _seed_values(pairs, measure, positive=None, k=3):
    a = [measure_from_confusion(confusion_matrix(y, pa, k), measure, positive) for y, pa, _ in pairs]
    b = [measure_from_confusion(confusion_matrix(y, pb, k), measure, positive) for y, _, pb in pairs]
    return a, b


def test_clearly_better_arm_helped_and_the_symmetric_case_hurt():
    pairs = _arms(3, 200, 0.60, 0.95)
    a, b = _seed_values(pairs, "macro_f1")
    seeds = paired_seed_comparison(a, b)
    boot = paired_bootstrap(pairs, "macro_f1", None, n_boot=500, seed=1)
    assert boot["diff"] == pytest.approx(seeds["mean"])  # observed difference: the mean over seeds
    assert seeds["low"] > 0 and boot["low"] > 0
    assert 0.25 < boot["diff"] < 0.45
    assert boot["n_boot"] == 500 and boot["n_images"] == [200, 200, 200] and boot["unit"] == "image"
    joint = paired_bootstrap(pairs, "macro_f1", None, n_boot=500, seed=1, over_seeds=True)
    assert joint["diff"] == pytest.approx(boot["diff"]) and joint["low"] > 0 and joint["p"] == pytest.approx(2 / 501)
    comparison = {"seed": seeds, "bootstrap": boot, "seed_bootstrap": joint, "p": joint["p"]}
    assert verdict(comparison) == "helped"
    assert verdict_sentence("pix2pix", "none", "macro_f1", comparison).endswith(": helped.")

    swapped = [(y, pb, pa) for y, pa, pb in pairs]
    seeds_h = paired_seed_comparison(b, a)
    boot_h = paired_bootstrap(swapped, "macro_f1", None, n_boot=500, seed=1)
    assert boot_h["diff"] == pytest.approx(-boot["diff"])
    # the same resampled indices: the draws are exactly negated, so is the interval
    assert (boot_h["low"], boot_h["high"]) == pytest.approx((-boot["high"], -boot["low"]))
    assert seeds_h["high"] < 0 and boot_h["high"] < 0
    assert verdict({"seed": seeds_h, "bootstrap": boot_h, "p": boot_h["p"]}) == "hurt"


def test_binary_measures_bootstrap_with_a_positive_class():
    pairs = _arms(2, 150, 0.6, 0.95, k=2, seed=3)
    for name in ("precision", "recall", "f1", "specificity"):
        boot = paired_bootstrap(pairs, name, 1, n_boot=200)
        a, b = _seed_values(pairs, name, 1, k=2)
        assert boot["diff"] == pytest.approx(np.mean(np.array(b) - np.array(a)))
        assert boot["low"] <= boot["diff"] <= boot["high"]
    with pytest.raises(SynthaugError, match="positive"):
        paired_bootstrap(pairs, "recall", None, n_boot=10)


def test_identical_arms_cannot_be_told_apart():
    pairs = [(y, pa, pa.copy()) for y, pa, _ in _arms(3, 100, 0.7, 0.7)]
    boot = paired_bootstrap(pairs, "accuracy", None, n_boot=300)
    assert boot["diff"] == 0.0
    assert (boot["low"], boot["high"], boot["half_width"]) == (0.0, 0.0, 0.0)
    a, b = _seed_values(pairs, "accuracy")
    seeds = paired_seed_comparison(a, b)
    assert (seeds["mean"], seeds["low"], seeds["high"]) == (0.0, 0.0, 0.0)
    assert boot["p"] == 1.0  # every draw is 0
    comparison = {"seed": seeds, "bootstrap": boot, "p": boot["p"], "p_holm": 1.0, "holm_comparisons": 3}
    assert verdict(comparison) == "cannot be told apart"
    text = verdict_sentence("smote", "none", "accuracy", comparison)
    assert text == ("smote vs none: accuracy +0.000 (95% interval over 3 seeds +0.000 to +0.000; paired t test over "
                    "seeds p = 1.000, Holm-adjusted over 3 comparisons p = 1.000; bootstrap over 100 test images per "
                    "seed alone (test-set noise only) +0.000 to +0.000): cannot be told apart (the interval over "
                    "seeds includes 0 and the Holm-adjusted p-value is not below 0.05).")


def test_bootstrap_is_deterministic_and_shrinks_with_the_test_set():
    small = _arms(2, 200, 0.7, 0.8, seed=5)
    first = paired_bootstrap(small, "accuracy", None, n_boot=1000, seed=7)
    assert paired_bootstrap(small, "accuracy", None, n_boot=1000, seed=7) == first
    assert paired_bootstrap(small, "accuracy", None, n_boot=1000, seed=8) != first
    # the same test set repeated 4 times: the same per-image rates, 4x the images
    big = [(np.tile(y, 4), np.tile(pa, 4), np.tile(pb, 4)) for y, pa, pb in small]
    second = paired_bootstrap(big, "accuracy", None, n_boot=1000, seed=7)
    assert second["diff"] == pytest.approx(first["diff"])
    assert second["n_images"] == [800, 800]
    assert 0.4 < second["half_width"] / first["half_width"] < 0.6


def test_bootstrap_memory_chunks_do_not_change_the_statistic():
    # 3000 images -> draws are made in chunks of 1333; the result must still cover all draws
    pairs = _arms(1, 3000, 0.7, 0.8, seed=2)
    boot = paired_bootstrap(pairs, "accuracy", None, n_boot=2000, seed=0)
    assert boot["n_boot"] == 2000
    # standard error of a paired accuracy difference: sqrt(var(d) / n) with d in {-1, 0, 1}
    y, pa, pb = pairs[0]
    d = (pb == y).astype(float) - (pa == y)
    se = d.std() / math.sqrt(len(d))
    assert boot["half_width"] == pytest.approx(1.96 * se, rel=0.15)


def test_bootstrap_errors():
    y = np.array([0, 1, 1])
    with pytest.raises(SynthaugError, match="same test images"):
        paired_bootstrap([(y, y, y[:2])], "accuracy", None)
    with pytest.raises(SynthaugError, match="empty"):
        paired_bootstrap([], "accuracy", None)
    with pytest.raises(SynthaugError, match="no test images"):
        paired_bootstrap([(y[:0], y[:0], y[:0])], "accuracy", None)
    with pytest.raises(SynthaugError, match="n_boot"):
        paired_bootstrap([(y, y, y)], "accuracy", None, n_boot=0)
    with pytest.raises(SynthaugError, match="num_classes"):
        paired_bootstrap([(y, y, y)], "accuracy", None, num_classes=1)


def test_num_classes_changes_macro_averages_of_a_missing_class():
    y = np.array([0, 0, 1, 1])
    pa, pb = np.array([0, 1, 1, 1]), np.array([0, 0, 1, 1])
    two = paired_bootstrap([(y, pa, pb)], "macro_f1", None, n_boot=50)
    three = paired_bootstrap([(y, pa, pb)], "macro_f1", None, n_boot=50, num_classes=3)
    assert three["diff"] == pytest.approx(two["diff"] * 2 / 3)


def test_single_seed_gives_no_verdict_only_the_test_set_interval():
    pairs = _arms(1, 300, 0.6, 0.9, seed=4)
    a, b = _seed_values(pairs, "macro_f1")
    seeds = paired_seed_comparison(a, b)
    assert seeds["n"] == 1 and seeds["low"] is None and seeds["high"] is None and seeds["half_width"] is None
    boot = paired_bootstrap(pairs, "macro_f1", None, n_boot=400)
    assert boot["low"] > 0  # the test-set interval excludes 0 ...
    comparison = {"seed": seeds, "bootstrap": boot, "p": None}
    assert verdict(comparison) == NOT_JUDGED == "not judged"  # ... but one training run says nothing of training
    assert verdict({**comparison, "p": 0.0001}) == NOT_JUDGED
    assert verdict({"seed": None, "bootstrap": None}) == NOT_JUDGED
    text = verdict_sentence("pix2pix", "none", "macro_f1", comparison)
    assert text.startswith(f"pix2pix vs none: macro_f1 +{b[0] - a[0]:.3f} (1 seed; 95% paired bootstrap over 300 "
                           "test images +")
    assert text.endswith("): not judged (1 seed: the interval covers test-set noise only, not training variance).")
    assert "helped" not in text and "hurt" not in text
    alone = verdict_sentence("pix2pix", "none", "macro_f1", {"seed": seeds, "bootstrap": None})
    assert alone == (f"pix2pix vs none: macro_f1 +{b[0] - a[0]:.3f} (1 seed; no test-image predictions to "
                     "bootstrap): not judged (1 seed, and no interval).")


def test_the_test_set_bootstrap_excludes_zero_but_the_seeds_disagree_cannot_be_told_apart():
    """Issue #26: three seeds, large test sets; the arm is far better at seeds 0 and 1 and far worse at
    seed 2. Averaged over seeds the difference is positive and the bootstrap over test images alone
    excludes 0, yet training the arm again may land on either side: no verdict."""
    rng = np.random.default_rng(11)
    y = rng.integers(0, 3, 2000)
    pairs = [(y, _noisy_predictions(y, 0.6, rng, 3), _noisy_predictions(y, 0.9, rng, 3)),
             (y, _noisy_predictions(y, 0.6, rng, 3), _noisy_predictions(y, 0.9, rng, 3)),
             (y, _noisy_predictions(y, 0.9, rng, 3), _noisy_predictions(y, 0.6, rng, 3))]
    a, b = _seed_values(pairs, "accuracy")
    seeds = paired_seed_comparison(a, b)
    test_only = paired_bootstrap(pairs, "accuracy", None, n_boot=1000)
    joint = paired_bootstrap(pairs, "accuracy", None, n_boot=1000, over_seeds=True)
    assert test_only["low"] > 0.05  # the test-image bootstrap alone: clearly above 0
    assert seeds["low"] < 0 < seeds["high"]  # the seeds disagree
    assert joint["low"] < 0 < joint["high"] and joint["p"] > 0.05  # seeds x test images: covers both sources
    assert joint["half_width"] > 3 * test_only["half_width"]
    comparison = {"seed": seeds, "bootstrap": test_only, "seed_bootstrap": joint, "p": joint["p"]}
    assert verdict(comparison) == UNCLEAR == "cannot be told apart"
    text = verdict_sentence("pix2pix", "augment", "accuracy", comparison)
    assert text.endswith("cannot be told apart (the interval over seeds includes 0 and the p-value is not below "
                         "0.05; the test-set bootstrap alone excludes 0, but it leaves out training variance).")
    assert "seed x test-image bootstrap" in text and "test-set noise only" in text


def test_verdict_rule_needs_the_seeds_and_the_adjusted_p_value():
    seeds = {"n": 3, "mean": 0.032, "std": 0.017, "low": -0.010, "high": 0.074, "half_width": 0.042, "p": 0.07}
    joint = {"diff": 0.032, "low": 0.005, "high": 0.060, "half_width": 0.0275, "n_boot": 2000, "p": 0.01,
             "n_images": [300, 300, 300], "n_units": [300, 300, 300], "unit": "image"}
    assert verdict({"seed": seeds, "seed_bootstrap": joint, "p": 0.01}) == "cannot be told apart"
    above = {**seeds, "low": 0.004}
    assert verdict({"seed": above, "p": 0.01}) == "helped"
    # the same comparison among 6: Holm multiplies the smallest p-value by 6
    assert verdict({"seed": above, "p": 0.01, "p_holm": 0.06, "holm_comparisons": 6}) == "cannot be told apart"
    text = verdict_sentence("a", "b", "macro_f1", {"seed": above, "seed_bootstrap": joint, "p": 0.01,
                                                  "p_holm": 0.06, "holm_comparisons": 6})
    assert text == ("a vs b: macro_f1 +0.032 (95% interval over 3 seeds +0.004 to +0.074; seed x test-image bootstrap "
                    "+0.005 to +0.060, p = 0.010, Holm-adjusted over 6 comparisons p = 0.060): cannot be told apart "
                    "(the interval over seeds excludes 0 but the Holm-adjusted p-value is not below 0.05).")
    worse = {**seeds, "mean": -0.05, "low": -0.08, "high": -0.02}
    assert verdict({"seed": worse, "p": 0.001}) == "hurt"
    assert verdict({"seed": worse, "p": 0.001, "p_holm": 0.003}) == "hurt"
    assert verdict({"seed": worse, "p": None}) == "cannot be told apart"  # no p-value: no verdict either way
    # an interval touching 0 does not exclude it
    assert verdict({"seed": {**seeds, "low": 0.0}, "p": 0.0001}) == "cannot be told apart"
    # a 90% level: alpha 0.10, and the sentence says 90%
    ninety = {**seeds, "level": 0.9, "low": 0.01}
    assert verdict({"seed": ninety, "p": 0.08}) == "helped"
    assert verdict_sentence("a", "b", "accuracy", {"seed": ninety, "p": 0.08}).startswith(
        "a vs b: accuracy +0.032 (90% interval")


def test_holm_on_known_p_values():
    # sorted: 0.005 x 4 = 0.02; 0.01 x 3 = 0.03; 0.03 x 2 = 0.06; 0.04 x 1 = 0.04 -> 0.06 (monotone)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # None is not a comparison: m = 2
    adjusted = holm([0.02, None, 0.5])
    assert adjusted[1] is None and adjusted[0] == pytest.approx(0.04) and adjusted[2] == pytest.approx(0.5)
    assert holm([0.3, 0.6]) == pytest.approx([0.6, 0.6])  # capped by monotonicity, and at 1
    assert holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])
    assert holm([]) == [] and holm([0.02]) == [0.02]
    # significant at 0.05 after the correction: only the smallest of these three
    assert [p < 0.05 for p in holm([0.012, 0.03, 0.04])] == [True, False, False]
    with pytest.raises(SynthaugError, match="not in"):
        holm([1.2])


def test_bootstrap_p_value():
    assert bootstrap_p(np.zeros(99)) == 1.0
    assert bootstrap_p(np.ones(99)) == pytest.approx(2 / 100)
    assert bootstrap_p(np.r_[np.ones(90), -np.ones(10)]) == pytest.approx(2 * 11 / 101)
    assert bootstrap_p([float("nan")]) is None


def _clustered(n_patients, per_patient, rate_a, rate_b, seed, correlated):
    """One test set of ``n_patients`` x ``per_patient`` images; an arm's correctness is drawn once per
    patient (``correlated``: every image of a patient right or wrong together) or per image."""
    rng = np.random.default_rng(seed)
    ids = np.repeat([f"p{i:03d}" for i in range(n_patients)], per_patient)
    y = rng.integers(0, 2, n_patients * per_patient)

    def arm(rate):
        right = rng.random(n_patients) < rate
        right = np.repeat(right, per_patient) if correlated else rng.random(len(y)) < rate
        return np.where(right, y, 1 - y)
    return y, arm(rate_a), arm(rate_b), ids


def test_the_cluster_bootstrap_widens_when_a_patients_images_are_correlated():
    index, unit = cluster_index(np.array(["a", "b", "a", "c", "b"]))
    assert unit == "patient" and index.tolist() == [0, 1, 0, 2, 1]
    index, unit = cluster_index(np.array(["x", "y", "z"]))  # one image per patient (Kaggle): the image
    assert unit == "image" and index.tolist() == [0, 1, 2]
    assert cluster_index(None, 4)[1] == "image"
    widths = {}
    for correlated in (True, False):
        y, a, b, ids = _clustered(60, 6, 0.6, 0.8, seed=2, correlated=correlated)
        images = paired_bootstrap([(y, a, b)], "accuracy", None, n_boot=2000)
        patients = paired_bootstrap([(y, a, b)], "accuracy", None, n_boot=2000, clusters=[ids])
        assert images["unit"] == "image" and patients["unit"] == "patient" and patients["n_units"] == [60]
        assert patients["diff"] == images["diff"]
        widths[correlated] = patients["half_width"] / images["half_width"]
    # 6 images of a patient that are right or wrong together carry the information of one: about sqrt(6) wider
    assert 1.8 < widths[True] < 3.2
    assert 0.8 < widths[False] < 1.25  # independent images: the patient changes nothing
    # the arm's own interval too
    y, a, _, ids = _clustered(60, 6, 0.7, 0.7, seed=3, correlated=True)
    one = value_bootstrap([(y, a)], "accuracy", None, n_boot=2000, over_seeds=False)
    clustered = value_bootstrap([(y, a)], "accuracy", None, n_boot=2000, over_seeds=False, clusters=[ids])
    assert clustered["half_width"] > 1.8 * one["half_width"]
    with pytest.raises(SynthaugError, match="patient ids"):
        paired_bootstrap([(y, a, a)], "accuracy", None, clusters=[ids[:10]])


def test_intervals_of_a_proportion_near_1_stay_inside_0_1():
    values = [0.95, 0.99, 1.0]
    t = mean_interval(values)
    assert t["high"] > 1.0  # the t interval of a mean near 1 over 3 seeds leaves [0, 1] ...
    logit = proportion_interval(values)
    assert 0.0 <= logit["low"] <= logit["mean"] <= logit["high"] <= 1.0 and logit["method"] == "logit t"
    assert proportion_interval([1.0, 1.0, 1.0])["high"] <= 1.0
    assert proportion_interval([0.0, 0.02])["low"] >= 0.0
    with pytest.raises(SynthaugError, match="proportions"):
        proportion_interval([0.5, 1.2])
    # ... the bootstrap of an arm's accuracy of 0.95-1.0 over 3 seeds stays inside too
    rng = np.random.default_rng(8)
    y = rng.integers(0, 3, 100)
    sets = [(y, _noisy_predictions(y, rate, rng, 3)) for rate in (0.95, 0.99, 1.0)]
    for measure in ("accuracy", "macro_f1", "balanced_accuracy"):
        boot = value_bootstrap(sets, measure, None, n_boot=1000)
        assert 0.0 <= boot["low"] <= boot["high"] <= 1.0 and boot["over_seeds"] is True
    boot = value_bootstrap(sets, "recall", 0, n_boot=1000)
    assert boot["high"] <= 1.0
    # a probability measure too (AUC of class 0 from near-perfect probabilities)
    probabilities = [(y, np.eye(3)[np.where(rng.random(100) < 0.97, y, (y + 1) % 3)] * 0.8 + 0.2 / 3)
                     for _ in range(3)]
    auc = value_bootstrap(probabilities, "auc", 0, n_boot=500)
    assert 0.5 < auc["low"] <= auc["high"] <= 1.0


def test_paired_bootstrap_of_auc_and_auprc_from_probabilities():
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(9)
    y = rng.integers(0, 2, 200)
    sharp = np.clip(y + rng.normal(0, 0.35, 200), 0, 1)
    blunt = np.clip(y + rng.normal(0, 1.0, 200), 0, 1)
    pa, pb = np.stack([1 - blunt, blunt], 1), np.stack([1 - sharp, sharp], 1)
    for measure, score in (("auc", roc_auc_score), ("auprc", average_precision_score)):
        boot = paired_bootstrap([(y, pa, pb)], measure, 1, n_boot=800)
        assert boot["diff"] == pytest.approx(score(y == 1, sharp) - score(y == 1, blunt), abs=1e-12)
        assert boot["low"] > 0 and boot["p"] < 0.01
        same = paired_bootstrap([(y, pa, pa)], measure, 1, n_boot=200)
        assert (same["diff"], same["low"], same["high"], same["p"]) == (0.0, 0.0, 0.0, 1.0)
    macro = paired_bootstrap([(y, pa, pb)], "auc", None, n_boot=200)  # no positive class: the macro mean
    assert macro["diff"] == pytest.approx(roc_auc_score(y, sharp) - roc_auc_score(y, blunt), abs=1e-12)
    with pytest.raises(SynthaugError, match="probabilities"):
        paired_bootstrap([(y, y, y)], "auc", 1)
