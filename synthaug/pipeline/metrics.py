"""Classification measures: the one home of every measure of predictions or a confusion matrix.

Every report takes its classification measures from here: a run's ``metrics.json``
(:func:`classification_metrics`), an experiment's table and its paired bootstrap
(:func:`measure_batch` on thousands of confusion matrices at once, ``synthaug.experiments.stats``),
and the ROC-AUC of ``synthaug quality``'s two-sample test (``synthaug.assess.measures``).

Vectorised numpy rather than scikit-learn: a bootstrap measures ``(B, K, K)`` stacks of confusion
matrices in one pass, and importing ``metrics`` stays cheap. ``tests/test_metrics.py`` checks every
measure against scikit-learn's on random predictions. Conventions (scikit-learn's
``zero_division=0``): a class never predicted has precision 0; a class absent from the truth has
recall 0; F1 is 0 when precision and recall are both 0; a ratio over an empty set is 0; macro
averages (``macro_f1``, ``balanced_accuracy``) run over all ``K`` classes of the matrix. ROC-AUC of a
class absent from the truth (or the only class present) is undefined: ``None``, left out of the
macro average.

Threshold-free measures and calibration (:data:`PROBABILITY_MEASURES`, :func:`probability_measures`)
need the class probabilities: ``auc`` and ``auprc`` (average precision, scikit-learn's
``average_precision_score``) are of the positive class against the rest when a positive class is
given, else the macro mean of the one-vs-rest values over the classes where they are defined;
``ece`` and ``brier`` are of the positive-class probability for a two-class task with a positive
class, else of the top-class confidence (ECE) and over all classes (Brier). The ``weighted_*``
forms take ``(B, n)`` image weights (a bootstrap's resampling counts) and measure all ``B`` at once.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from synthaug.errors import SynthaugError

#: Positive class for sensitivity/specificity when none is given and the data has it.
DEFAULT_POSITIVE = "covid"

#: Measure name -> one-line description. The last four need a positive class.
MEASURES: dict[str, str] = {
    "accuracy": "fraction of test images whose class is predicted correctly",
    "macro_f1": "unweighted mean of the per-class F1 scores",
    "weighted_f1": "mean of the per-class F1 scores weighted by the number of true images of each class",
    "balanced_accuracy": "unweighted mean of the per-class recalls",
    "precision": "of the images predicted as the positive class, the fraction that are",
    "recall": "of the images of the positive class, the fraction predicted as it (sensitivity)",
    "f1": "harmonic mean of the positive class's precision and recall",
    "specificity": "of the images of the other classes, the fraction not predicted as the positive class",
}

POSITIVE_MEASURES = ("precision", "recall", "f1", "specificity")


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """``cm[i, j]`` = number of samples of true class ``i`` predicted as ``j``."""
    y_true, y_pred = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
    if y_true.shape != y_pred.shape:
        raise SynthaugError(f"{len(y_true)} true labels for {len(y_pred)} predictions")
    for name, y in (("true label", y_true), ("prediction", y_pred)):
        if len(y) and (y.min() < 0 or y.max() >= num_classes):
            raise SynthaugError(f"{name} out of range [0, {num_classes - 1}]")
    cells = np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes)
    return cells.reshape(num_classes, num_classes)


# --------------------------------------------------------------------------------------------------
# Measures of confusion matrices
# --------------------------------------------------------------------------------------------------

def _divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return np.divide(a, b, out=np.zeros(np.broadcast(a, b).shape), where=b > 0)


def check_measure(measure: str, positive: int | None, num_classes: int) -> None:
    if measure not in MEASURES:
        raise SynthaugError(f"unknown measure {measure!r}; expected one of {', '.join(MEASURES)}")
    if measure in POSITIVE_MEASURES:
        if positive is None:
            raise SynthaugError(f"measure {measure!r} needs a positive class; none given")
        if isinstance(positive, bool) or not isinstance(positive, (int, np.integer)):
            raise SynthaugError(f"positive class {positive!r} is not a class index")
        if not 0 <= positive < num_classes:
            raise SynthaugError(f"positive class index {positive} out of range [0, {num_classes - 1}]")


def _per_class(cms: np.ndarray) -> dict[str, np.ndarray]:
    """Counts and per-class precision, recall, F1 of ``(B, K, K)`` confusion matrices, each ``(B, K)``."""
    cms = cms.astype(float)
    tp = np.diagonal(cms, axis1=1, axis2=2)
    support = cms.sum(axis=2)                          # true count per class
    predicted = cms.sum(axis=1)                        # predicted count per class
    precision = _divide(tp, predicted)
    recall = _divide(tp, support)
    f1 = _divide(2 * precision * recall, precision + recall)
    return {"tp": tp, "support": support, "predicted": predicted, "precision": precision, "recall": recall,
            "f1": f1}


def measure_batch(cms: np.ndarray, measure: str, positive: int | None) -> np.ndarray:
    """The measure of each of ``B`` confusion matrices ``cms`` of shape ``(B, K, K)``: shape ``(B,)``.

    ``cms[b, i, j]`` is the number of images of true class ``i`` predicted as ``j``; ``positive`` is
    the positive class's index (needed by :data:`POSITIVE_MEASURES` only).
    """
    cms = np.asarray(cms)
    if cms.ndim != 3 or cms.shape[1] != cms.shape[2] or cms.shape[1] == 0:
        raise SynthaugError(f"confusion matrices of shape {cms.shape}; expected (B, K, K) with K >= 1")
    check_measure(measure, positive, cms.shape[1])
    s = _per_class(cms)
    total = s["support"].sum(axis=1)                   # (B,)
    if measure == "accuracy":
        return _divide(s["tp"].sum(axis=1), total)
    if measure == "balanced_accuracy":
        return s["recall"].mean(axis=1)
    if measure == "macro_f1":
        return s["f1"].mean(axis=1)
    if measure == "weighted_f1":
        return _divide((s["f1"] * s["support"]).sum(axis=1), total)
    p = int(positive)
    if measure in ("precision", "recall", "f1"):
        return s[measure][:, p]
    # specificity
    negatives = total - s["support"][:, p]
    false_positives = s["predicted"][:, p] - s["tp"][:, p]
    return _divide(negatives - false_positives, negatives)


def measure_from_confusion(cm: np.ndarray, measure: str, positive: int | None) -> float:
    """The measure of one ``(K, K)`` confusion matrix (rows true, columns predicted)."""
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise SynthaugError(f"confusion matrix of shape {cm.shape}; expected (K, K)")
    return float(measure_batch(cm[None], measure, positive)[0])


def confusion_measures(cm: np.ndarray, positive: int | None = None) -> dict[str, float]:
    """Every measure of :data:`MEASURES` of one confusion matrix; those of the positive class only
    when ``positive`` (a class index) is given."""
    return {m: measure_from_confusion(cm, m, positive) for m in MEASURES
            if positive is not None or m not in POSITIVE_MEASURES}


def per_class_scores(cm: np.ndarray) -> dict[str, np.ndarray]:
    """precision, recall, f1 and support per class of one ``(K, K)`` confusion matrix."""
    s = _per_class(np.asarray(cm)[None])
    return {"precision": s["precision"][0], "recall": s["recall"][0], "f1": s["f1"][0],
            "support": np.asarray(cm).sum(axis=1)}


# --------------------------------------------------------------------------------------------------
# ROC
# --------------------------------------------------------------------------------------------------

def binary_roc_auc(positive: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties counting 1/2.

    Computed through the Mann-Whitney U statistic on average ranks, which is exactly the trapezoidal
    area under the ROC curve with tied scores as one step (scikit-learn's ``roc_auc_score``).
    """
    positive = np.asarray(positive, bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = _average_ranks(np.asarray(scores, float))
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def pairwise_auc(positive_scores: np.ndarray, negative_scores: np.ndarray) -> float:
    """The same area as :func:`binary_roc_auc` from the two groups' scores, by comparing every pair
    (a ``(P, N)`` table: for groups of a few thousand, as in a bootstrap that resamples each group)."""
    p, n = np.asarray(positive_scores)[:, None], np.asarray(negative_scores)[None, :]
    return float((p > n).mean() + 0.5 * (p == n).mean())


def roc_curve(positive: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(false positive rate, true positive rate)`` at every distinct threshold, from (0, 0) to (1, 1);
    tied scores are one step, so the trapezoidal area equals :func:`binary_roc_auc`. None when one
    side is empty."""
    positive = np.asarray(positive, bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    scores = np.asarray(scores, float)
    order = np.argsort(-scores, kind="mergesort")
    ranked, hits = scores[order], positive[order]
    last_of_tie = np.r_[ranked[1:] != ranked[:-1], True]  # a threshold between distinct scores only
    tp = np.cumsum(hits)[last_of_tie]
    fp = np.cumsum(~hits)[last_of_tie]
    return np.r_[0.0, fp / n_neg], np.r_[0.0, tp / n_pos]


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing the mean of their ranks."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    ranks = np.empty(len(values), float)
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    for start, end in zip(starts, ends):
        ranks[order[start:end]] = (start + 1 + end) / 2
    return ranks


def roc_auc_ovr(y_true, probabilities, class_names: Sequence[str]) -> dict:
    """One-vs-rest ROC-AUC per class and their macro mean (over classes where it is defined)."""
    y_true = np.asarray(y_true, np.int64)
    probabilities = np.asarray(probabilities, float)
    if probabilities.shape != (len(y_true), len(class_names)):
        raise SynthaugError(f"probabilities of shape {probabilities.shape}; expected {(len(y_true), len(class_names))}")
    per_class = {name: binary_roc_auc(y_true == i, probabilities[:, i]) for i, name in enumerate(class_names)}
    defined = [v for v in per_class.values() if v is not None]
    return {"macro": float(np.mean(defined)) if defined else None, "per_class": per_class}


# --------------------------------------------------------------------------------------------------
# Threshold-free measures and calibration (from class probabilities)
# --------------------------------------------------------------------------------------------------

#: Measures of the class probabilities rather than of the predicted labels.
THRESHOLD_FREE: dict[str, str] = {
    "auc": "area under the ROC curve of the positive class against the rest (macro one-vs-rest mean "
           "over the classes without a positive class)",
    "auprc": "area under the precision-recall curve (average precision) of the positive class against the "
             "rest (macro one-vs-rest mean without a positive class)",
}
CALIBRATION: dict[str, str] = {
    "ece": "expected calibration error: 15 equal-width bins of the positive-class probability (two classes "
           "with a positive class) or of the top-class confidence (otherwise), the image-weighted mean "
           "|observed frequency - mean probability| over the bins",
    "brier": "Brier score: mean squared error of the positive-class probability (two classes with a positive "
             "class) or the sum over classes of the squared errors of the probabilities (otherwise)",
}
PROBABILITY_MEASURES: dict[str, str] = {**THRESHOLD_FREE, **CALIBRATION}
ECE_BINS = 15


def _weights(weights, n: int) -> np.ndarray:
    w = np.ones((1, n)) if weights is None else np.asarray(weights, float)
    if w.ndim != 2 or w.shape[1] != n:
        raise SynthaugError(f"weights of shape {w.shape}; expected (B, {n})")
    return w


def _grouped(truth: np.ndarray, scores: np.ndarray, weights: np.ndarray, descending: bool):
    """Positive and negative weight of each distinct score, ``(B, G)`` each, scores ascending or descending."""
    order = np.argsort(-scores if descending else scores, kind="mergesort")
    ranked = scores[order]
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    w, t = weights[:, order], truth[order]
    return np.add.reduceat(w * t, starts, axis=1), np.add.reduceat(w * ~t, starts, axis=1)


def weighted_auc(truth, scores, weights=None) -> np.ndarray:
    """ROC-AUC of ``scores`` for the boolean ``truth`` under each row of image ``weights`` ``(B, n)``:
    ``P(score of a positive > score of a negative)``, ties counting 1/2; NaN where a row weighs no
    positive or no negative. Without weights: one row of ones (the plain AUC, :func:`binary_roc_auc`)."""
    truth, scores = np.asarray(truth, bool), np.asarray(scores, float)
    w = _weights(weights, len(truth))
    if len(truth) == 0:
        return np.full(len(w), np.nan)
    pos, neg = _grouped(truth, scores, w, descending=False)
    below = np.cumsum(neg, axis=1) - neg                       # negative weight strictly below each score
    num = (pos * (below + 0.5 * neg)).sum(axis=1)
    den = pos.sum(axis=1) * neg.sum(axis=1)
    return np.divide(num, den, out=np.full(len(w), np.nan), where=den > 0)


def weighted_average_precision(truth, scores, weights=None) -> np.ndarray:
    """Average precision (area under the precision-recall curve, scikit-learn's step rule
    ``sum_k (R_k - R_{k-1}) P_k`` over the distinct scores, highest first) under each row of image
    ``weights``; NaN where a row weighs no positive."""
    truth, scores = np.asarray(truth, bool), np.asarray(scores, float)
    w = _weights(weights, len(truth))
    if len(truth) == 0:
        return np.full(len(w), np.nan)
    pos, neg = _grouped(truth, scores, w, descending=True)
    tp, fp = np.cumsum(pos, axis=1), np.cumsum(neg, axis=1)
    precision = _divide(tp, tp + fp)
    total = pos.sum(axis=1)
    return np.divide((pos * precision).sum(axis=1), total, out=np.full(len(w), np.nan), where=total > 0)


def _check_probabilities(y_true, probabilities) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, np.int64)
    p = np.asarray(probabilities, float)
    if p.ndim != 2 or p.shape[0] != len(y) or p.shape[1] == 0:
        raise SynthaugError(f"probabilities of shape {p.shape}; expected ({len(y)}, K)")
    if len(y) and (y.min() < 0 or y.max() >= p.shape[1]):
        raise SynthaugError(f"true label out of range [0, {p.shape[1] - 1}]")
    return y, p


def threshold_free_batch(y_true, probabilities, measure: str, positive: int | None, weights=None) -> np.ndarray:
    """``auc`` or ``auprc`` (:data:`THRESHOLD_FREE`) under each row of image ``weights`` ``(B, n)``."""
    if measure not in THRESHOLD_FREE:
        raise SynthaugError(f"unknown threshold-free measure {measure!r}; expected one of {', '.join(THRESHOLD_FREE)}")
    y, p = _check_probabilities(y_true, probabilities)
    one = weighted_auc if measure == "auc" else weighted_average_precision
    if positive is not None:
        check_measure("recall", positive, p.shape[1])
        return one(y == positive, p[:, positive], weights)
    per_class = np.stack([one(y == k, p[:, k], weights) for k in range(p.shape[1])])
    defined = np.isfinite(per_class)
    total = np.where(defined, per_class, 0.0).sum(axis=0)
    return np.divide(total, defined.sum(axis=0), out=np.full(per_class.shape[1], np.nan), where=defined.any(axis=0))


def _binary(probabilities: np.ndarray, positive: int | None) -> bool:
    return positive is not None and probabilities.shape[1] == 2


def calibration_bins(y_true, probabilities, positive: int | None = None, bins: int = ECE_BINS) -> dict:
    """The reliability table behind :func:`expected_calibration_error`.

    Two classes with a ``positive`` class: the positive-class probability per image, observed = 1 for
    a positive image. Otherwise: the top-class confidence, observed = 1 where the top class is the
    true one. ``bins`` equal-width bins of [0, 1], each holding ``(lo, hi]`` (the first also 0).
    Returns ``{"of", "edges", "count", "confidence", "observed"}`` (per bin; mean probability and
    observed frequency are None in an empty bin).
    """
    y, p = _check_probabilities(y_true, probabilities)
    if _binary(p, positive):
        check_measure("recall", positive, 2)
        score, hit, of = p[:, positive], (y == positive), "positive-class probability"
    else:
        score, hit, of = p.max(axis=1), (p.argmax(axis=1) == y), "top-class confidence"
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.searchsorted(edges, score, side="left") - 1, 0, bins - 1)
    count = np.bincount(index, minlength=bins)
    conf = np.bincount(index, weights=score, minlength=bins)
    seen = np.bincount(index, weights=hit.astype(float), minlength=bins)
    return {"of": of, "edges": edges.tolist(), "count": count.tolist(),
            "confidence": [None if n == 0 else float(c / n) for c, n in zip(conf, count)],
            "observed": [None if n == 0 else float(o / n) for o, n in zip(seen, count)]}


def expected_calibration_error(y_true, probabilities, positive: int | None = None,
                               bins: int = ECE_BINS) -> float | None:
    """ECE over :func:`calibration_bins`: ``sum_b n_b / N * |observed_b - confidence_b|``; None without images."""
    table = calibration_bins(y_true, probabilities, positive, bins)
    total = sum(table["count"])
    if total == 0:
        return None
    return float(sum(n / total * abs(o - c) for n, o, c in zip(table["count"], table["observed"], table["confidence"])
                     if n))


def brier_score(y_true, probabilities, positive: int | None = None) -> float | None:
    """Two classes with a ``positive`` class: ``mean((p_positive - [y = positive])^2)`` (0..1);
    otherwise ``mean(sum_k (p_k - [y = k])^2)`` over all classes (0..2). None without images."""
    y, p = _check_probabilities(y_true, probabilities)
    if len(y) == 0:
        return None
    if _binary(p, positive):
        check_measure("recall", positive, 2)
        return float(np.mean((p[:, positive] - (y == positive)) ** 2))
    return float(np.mean(((p - np.eye(p.shape[1])[y]) ** 2).sum(axis=1)))


def probability_measures(y_true, probabilities, positive: int | None = None) -> dict[str, float | None]:
    """Every measure of :data:`PROBABILITY_MEASURES` of one set of predictions (None where undefined)."""
    out: dict[str, float | None] = {}
    for measure in THRESHOLD_FREE:
        value = float(threshold_free_batch(y_true, probabilities, measure, positive)[0])
        out[measure] = value if np.isfinite(value) else None
    out["ece"] = expected_calibration_error(y_true, probabilities, positive)
    out["brier"] = brier_score(y_true, probabilities, positive)
    return out


# --------------------------------------------------------------------------------------------------
# metrics.json
# --------------------------------------------------------------------------------------------------

def resolve_positive(class_names: Sequence[str], positive: str | None) -> str | None:
    """The positive class: the one asked for (must exist), else ``covid`` if present, else none."""
    if positive is not None:
        if positive not in class_names:
            raise SynthaugError(f"positive class {positive!r} is not one of {', '.join(class_names)}")
        return positive
    return DEFAULT_POSITIVE if DEFAULT_POSITIVE in class_names else None


def classification_metrics(y_true, y_pred, class_names: Sequence[str], probabilities=None,
                           positive: str | None = None) -> dict:
    """Everything ``metrics.json`` holds.

    Keys: ``accuracy``, ``macro_f1``, ``weighted_f1``, ``per_class`` ({class: precision, recall, f1,
    support}), ``confusion`` (rows true, columns predicted), ``roc_auc`` (``{"macro", "per_class"}``;
    ``None`` without probabilities), and for the positive class ``positive_class``, ``sensitivity``
    (its recall) and ``specificity`` (the fraction of other-class samples not predicted positive);
    ``probability_measures`` (:func:`probability_measures`: auc, auprc, ece, brier; ``None`` without
    probabilities).
    """
    class_names = list(class_names)
    cm = confusion_matrix(y_true, y_pred, len(class_names))
    positive = resolve_positive(class_names, positive)
    measures = confusion_measures(cm, None if positive is None else class_names.index(positive))
    scores = per_class_scores(cm)
    result = {
        "n": int(cm.sum()),
        "accuracy": measures["accuracy"],
        "macro_f1": measures["macro_f1"],
        "weighted_f1": measures["weighted_f1"],
        "per_class": {name: {"precision": float(scores["precision"][i]), "recall": float(scores["recall"][i]),
                             "f1": float(scores["f1"][i]), "support": int(scores["support"][i])}
                      for i, name in enumerate(class_names)},
        "confusion": cm.tolist(),
        "roc_auc": roc_auc_ovr(y_true, probabilities, class_names) if probabilities is not None else None,
        "positive_class": positive,
        # auc, auprc (of the positive class, else macro), ece, brier: the experiment report's columns
        "probability_measures": None if probabilities is None else probability_measures(
            y_true, probabilities, None if positive is None else class_names.index(positive)),
    }
    if positive is not None:
        result["sensitivity"] = measures["recall"]
        result["specificity"] = measures["specificity"]
    return result
