"""synthaug.pipeline.metrics and synthaug.pipeline.report against hand-computed cases and scikit-learn."""

import numpy as np
import pytest

from synthaug.errors import SynthaugError
from synthaug.pipeline.metrics import (
    MEASURES,
    binary_roc_auc,
    classification_metrics,
    confusion_matrix,
    measure_batch,
    pairwise_auc,
    roc_auc_ovr,
)
from synthaug.pipeline.report import per_class_markdown, plot_confusion, plot_curves, summary_markdown


def test_two_class_case_by_hand():
    # truth covid,covid,covid,normal; predicted covid,covid,normal,normal
    m = classification_metrics([0, 0, 0, 1], [0, 0, 1, 1], ("covid", "normal"))
    assert m["confusion"] == [[2, 1], [0, 1]]
    assert m["accuracy"] == pytest.approx(3 / 4)
    covid, normal = m["per_class"]["covid"], m["per_class"]["normal"]
    assert (covid["precision"], covid["recall"], covid["f1"]) == pytest.approx((1.0, 2 / 3, 0.8))
    assert (normal["precision"], normal["recall"], normal["f1"]) == pytest.approx((0.5, 1.0, 2 / 3))
    assert m["macro_f1"] == pytest.approx((0.8 + 2 / 3) / 2)
    assert m["weighted_f1"] == pytest.approx((3 * 0.8 + 1 * 2 / 3) / 4)
    # default positive class "covid": sensitivity 2/3; the one normal image is called normal
    assert m["positive_class"] == "covid"
    assert (m["sensitivity"], m["specificity"]) == pytest.approx((2 / 3, 1.0))
    other = classification_metrics([0, 0, 0, 1], [0, 0, 1, 1], ("covid", "normal"), positive="normal")
    assert (other["sensitivity"], other["specificity"]) == pytest.approx((1.0, 2 / 3))
    assert m["roc_auc"] is None  # no probabilities given


def test_three_classes_and_a_class_never_predicted():
    y_true = [0, 0, 1, 1, 1, 2]
    y_pred = [0, 1, 1, 1, 1, 1]  # class 2 never predicted
    m = classification_metrics(y_true, y_pred, ("a", "b", "c"))
    assert m["confusion"] == [[1, 1, 0], [0, 3, 0], [0, 1, 0]]
    assert m["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert m["per_class"]["b"]["precision"] == pytest.approx(3 / 5)
    assert m["per_class"]["b"]["f1"] == pytest.approx(2 * 0.6 / 1.6)
    assert m["positive_class"] is None and "sensitivity" not in m


def test_binary_auc_with_ties_by_hand():
    # positives 0.9, 0.4; negatives 0.8, 0.4, 0.1: pairs won 3 + (0 + 0.5 + 1) = 4.5 of 6
    auc = binary_roc_auc(np.array([1, 1, 0, 0, 0], bool), np.array([0.9, 0.4, 0.8, 0.4, 0.1]))
    assert auc == pytest.approx(0.75)
    assert binary_roc_auc(np.array([1, 1], bool), np.array([0.2, 0.3])) is None
    assert binary_roc_auc(np.array([0, 1], bool), np.array([0.1, 0.9])) == 1.0


def test_one_vs_rest_auc_skips_absent_class():
    probs = np.array([[0.7, 0.2, 0.1], [0.4, 0.5, 0.1], [0.3, 0.6, 0.1], [0.6, 0.3, 0.1]])
    auc = roc_auc_ovr([0, 1, 1, 0], probs, ("a", "b", "c"))
    # class a: positives 0.7, 0.6 vs negatives 0.4, 0.3 -> 1; class b: 0.5, 0.6 vs 0.2, 0.3 -> 1
    assert auc["per_class"] == {"a": 1.0, "b": 1.0, "c": None}
    assert auc["macro"] == 1.0
    flipped = roc_auc_ovr([1, 0, 0, 1], probs, ("a", "b", "c"))
    assert flipped["per_class"]["a"] == 0.0


def test_bad_inputs_are_one_line_errors():
    with pytest.raises(SynthaugError, match="3 true labels for 2 predictions"):
        confusion_matrix([0, 1, 1], [0, 1], 2)
    with pytest.raises(SynthaugError, match=r"prediction out of range \[0, 1\]"):
        confusion_matrix([0, 1], [0, 2], 2)
    with pytest.raises(SynthaugError, match="positive class 'covid19' is not one of covid, normal"):
        classification_metrics([0], [0], ("covid", "normal"), positive="covid19")


def test_markdown_table_and_figures(tmp_path):
    m = classification_metrics([0, 0, 0, 1], [0, 0, 1, 1], ("covid", "normal"), np.array(
        [[0.9, 0.1], [0.8, 0.2], [0.4, 0.6], [0.3, 0.7]]))
    assert per_class_markdown(m) == (
        "| | covid | normal |\n|---|---:|---:|\n| Precision | 1.000 | 0.500 |\n"
        "| Recall | 0.667 | 1.000 |\n| F1 score | 0.800 | 0.667 |\n")
    assert summary_markdown(m) == ("accuracy 0.750; macro F1 0.733; ROC-AUC 1.000; "
                                   "covid sensitivity 0.667, specificity 1.000")
    history = [{"epoch": 1, "stage": "frozen", "train_loss": 1.0, "train_accuracy": 0.5, "val_loss": None},
               {"epoch": 2, "stage": "finetune", "train_loss": 0.5, "train_accuracy": 0.8, "val_loss": None}]
    for path in (plot_confusion(m["confusion"], ["covid", "normal"], tmp_path / "c.png"),
                 plot_curves(history, tmp_path / "curves.png")):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.png", "curves.png"]  # no temp files left


def _sklearn_measure(name, y, pred, k, positive):
    """The same measure by scikit-learn, zero_division=0, macro averages over all k classes."""
    from sklearn import metrics

    labels = list(range(k))
    rest = dict(labels=labels, zero_division=0)
    if name == "accuracy":
        return metrics.accuracy_score(y, pred) if len(y) else 0.0
    if name == "balanced_accuracy":  # sklearn's own drops classes absent from the truth: macro recall keeps them
        return metrics.recall_score(y, pred, average="macro", **rest)
    if name == "macro_f1":
        return metrics.f1_score(y, pred, average="macro", **rest)
    if name == "weighted_f1":
        return metrics.f1_score(y, pred, average="weighted", **rest)
    if name == "specificity":
        return metrics.recall_score(np.asarray(y) != positive, np.asarray(pred) != positive, zero_division=0)
    score = {"precision": metrics.precision_score, "recall": metrics.recall_score, "f1": metrics.f1_score}[name]
    return score(y, pred, average=None, **rest)[positive]


def test_every_measure_equals_scikit_learn():
    rng = np.random.default_rng(3)
    cases = []
    for n, k in ((1, 2), (5, 2), (7, 3), (40, 3), (200, 4)):
        y, pred = rng.integers(0, k, n), rng.integers(0, k, n)
        cases.append((y, pred, k))
    y = rng.integers(0, 3, 30)
    cases.append((y, np.where(y == 1, 0, y), 3))          # class 1 never predicted
    cases.append((np.where(y == 2, 0, y), y, 3))          # class 2 absent from the truth
    for y, pred, k in cases:
        cm = confusion_matrix(y, pred, k)[None]
        for name in MEASURES:
            for positive in range(k):
                ours = measure_batch(cm, name, positive)[0]
                assert ours == pytest.approx(_sklearn_measure(name, y, pred, k, positive), abs=1e-12), (name, k)


def test_auc_equals_scikit_learn_with_ties():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(4)
    for n in (2, 9, 300):
        positive = rng.integers(0, 2, n).astype(bool)
        positive[:2] = (True, False)
        scores = rng.integers(0, 5, n) / 4.0  # many ties
        expected = roc_auc_score(positive, scores)
        assert binary_roc_auc(positive, scores) == pytest.approx(expected, abs=1e-12)
        assert pairwise_auc(scores[positive], scores[~positive]) == pytest.approx(expected, abs=1e-12)


# --------------------------------------------------------------------------------------------------
# threshold-free measures and calibration (issue #26)
# --------------------------------------------------------------------------------------------------
def test_weighted_auc_and_average_precision_equal_scikit_learn_with_weights_and_ties():
    from sklearn.metrics import average_precision_score, roc_auc_score

    from synthaug.pipeline.metrics import weighted_auc, weighted_average_precision

    rng = np.random.default_rng(5)
    for n in (3, 20, 250):
        truth = rng.integers(0, 2, n).astype(bool)
        truth[:2] = (True, False)
        scores = rng.integers(0, 6, n) / 5.0  # many ties
        weights = rng.integers(0, 4, (5, n)).astype(float)
        weights[:, :2] = 1.0  # every row weighs a positive and a negative
        auc, ap = weighted_auc(truth, scores, weights), weighted_average_precision(truth, scores, weights)
        assert auc.shape == ap.shape == (5,)
        for b in range(5):
            assert auc[b] == pytest.approx(roc_auc_score(truth, scores, sample_weight=weights[b]), abs=1e-12)
            assert ap[b] == pytest.approx(average_precision_score(truth, scores, sample_weight=weights[b]), abs=1e-12)
        assert weighted_auc(truth, scores)[0] == pytest.approx(binary_roc_auc(truth, scores), abs=1e-12)
    # a row that weighs no positive: undefined, not 0
    assert np.isnan(weighted_auc([True, False], [0.9, 0.1], [[0.0, 2.0]])[0])
    assert np.isnan(weighted_average_precision([True, False], [0.9, 0.1], [[0.0, 2.0]])[0])


def test_threshold_free_measures_of_the_positive_class_and_macro():
    from sklearn.metrics import average_precision_score, roc_auc_score

    from synthaug.pipeline.metrics import probability_measures, threshold_free_batch

    rng = np.random.default_rng(6)
    y = rng.integers(0, 3, 60)
    p = rng.dirichlet([1, 1, 1], 60)
    ours = probability_measures(y, p, positive=2)
    assert ours["auc"] == pytest.approx(roc_auc_score(y == 2, p[:, 2]), abs=1e-12)
    assert ours["auprc"] == pytest.approx(average_precision_score(y == 2, p[:, 2]), abs=1e-12)
    macro = threshold_free_batch(y, p, "auc", None)[0]
    assert macro == pytest.approx(roc_auc_score(y, p, multi_class="ovr", average="macro"), abs=1e-12)
    ap_macro = threshold_free_batch(y, p, "auprc", None)[0]
    assert ap_macro == pytest.approx(np.mean([average_precision_score(y == k, p[:, k]) for k in range(3)]), abs=1e-12)
    with pytest.raises(SynthaugError, match="shape"):
        threshold_free_batch(y, p[:, :2].T, "auc", 0)


def test_ece_and_brier_by_hand_for_two_classes():
    from sklearn.metrics import brier_score_loss

    from synthaug.pipeline.metrics import brier_score, calibration_bins, expected_calibration_error

    # covid = class 0 is the positive class; its probabilities 0.9, 0.7, 0.3, 0.1 fall in bins 13, 10, 4, 1
    # of 15 (width 1/15), one image each: |1 - 0.9|, |1 - 0.7|, |0 - 0.3|, |0 - 0.1| -> ECE 0.2
    y = np.array([0, 0, 1, 1])
    p_covid = np.array([0.9, 0.7, 0.3, 0.1])
    p = np.stack([p_covid, 1 - p_covid], axis=1)
    assert expected_calibration_error(y, p, positive=0) == pytest.approx(0.2)
    assert brier_score(y, p, positive=0) == pytest.approx((0.01 + 0.09 + 0.09 + 0.01) / 4)
    assert brier_score(y, p, positive=0) == pytest.approx(brier_score_loss(y == 0, p_covid))
    table = calibration_bins(y, p, positive=0)
    assert table["of"] == "positive-class probability"
    assert [i for i, n in enumerate(table["count"]) if n] == [1, 4, 10, 13]
    # three images in one bin, (0.8, 0.8667]: mean probability 0.84, 2 of 3 positive
    y3 = np.array([0, 1, 0])
    p3 = np.array([0.82, 0.84, 0.86])
    assert expected_calibration_error(y3, np.stack([p3, 1 - p3], 1), positive=0) == pytest.approx(0.84 - 2 / 3)
    # a perfectly calibrated 0/1 classifier: ECE 0, Brier 0
    assert expected_calibration_error([0, 1], [[1.0, 0.0], [0.0, 1.0]], positive=0) == 0.0
    assert brier_score([0, 1], [[1.0, 0.0], [0.0, 1.0]], positive=0) == 0.0


def test_ece_of_the_top_class_and_the_multiclass_brier_by_hand():
    from synthaug.pipeline.metrics import brier_score, calibration_bins, expected_calibration_error

    # top-class confidences 0.7 (right), 0.5 (wrong: class 0 called, class 1 true), 0.62 (right): one per bin
    p = np.array([[0.7, 0.2, 0.1], [0.5, 0.3, 0.2], [0.18, 0.2, 0.62]])
    y = np.array([0, 1, 2])
    assert calibration_bins(y, p, positive=0)["of"] == "top-class confidence"  # 3 classes: never the positive's
    assert expected_calibration_error(y, p, positive=0) == pytest.approx((0.3 + 0.5 + 0.38) / 3)
    rows = [0.3 ** 2 + 0.2 ** 2 + 0.1 ** 2, 0.5 ** 2 + 0.7 ** 2 + 0.2 ** 2, 0.18 ** 2 + 0.2 ** 2 + 0.38 ** 2]
    assert brier_score(y, p) == pytest.approx(np.mean(rows))
    # two classes without a positive class: top-class confidence, Brier summed over both classes (twice the binary)
    p2 = np.array([[0.9, 0.1], [0.3, 0.7]])
    assert calibration_bins([0, 0], p2)["of"] == "top-class confidence"
    assert brier_score([0, 0], p2) == pytest.approx(2 * brier_score([0, 0], p2, positive=0))


def test_metrics_json_keeps_the_probability_measures():
    m = classification_metrics([0, 0, 1, 1], [0, 1, 1, 1], ("covid", "normal"),
                               probabilities=[[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.2, 0.8]])
    assert set(m["probability_measures"]) == {"auc", "auprc", "ece", "brier"}
    assert m["probability_measures"]["auc"] == pytest.approx(1.0)  # every covid image scores above every normal
    assert classification_metrics([0, 1], [0, 1], ("covid", "normal"))["probability_measures"] is None
