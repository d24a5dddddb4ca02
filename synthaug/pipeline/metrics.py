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
    (its recall) and ``specificity`` (the fraction of other-class samples not predicted positive).
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
    }
    if positive is not None:
        result["sensitivity"] = measures["recall"]
        result["specificity"] = measures["specificity"]
    return result
