"""Classification measures of liang2021 (accuracy, per-class precision/recall/F1) and more.

Plain numpy, no scikit-learn. Conventions (the same as scikit-learn's ``zero_division=0``): a class
never predicted has precision 0; a class absent from the truth has recall 0; F1 is 0 when precision
and recall are both 0. ROC-AUC of a class absent from the truth (or the only class present) is
undefined: ``None``, left out of the macro average.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from synthaug.errors import SynthaugError

#: Positive class for sensitivity/specificity when none is given and the data has it.
DEFAULT_POSITIVE = "covid"


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """``cm[i, j]`` = number of samples of true class ``i`` predicted as ``j``."""
    y_true, y_pred = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
    if y_true.shape != y_pred.shape:
        raise SynthaugError(f"{len(y_true)} true labels for {len(y_pred)} predictions")
    for name, y in (("true label", y_true), ("prediction", y_pred)):
        if len(y) and (y.min() < 0 or y.max() >= num_classes):
            raise SynthaugError(f"{name} out of range [0, {num_classes - 1}]")
    return np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return np.divide(a, b, out=np.zeros_like(a), where=b > 0)


def per_class_scores(cm: np.ndarray) -> dict[str, np.ndarray]:
    """precision, recall, f1 and support per class from a confusion matrix."""
    tp = np.diag(cm).astype(float)
    precision = _divide(tp, cm.sum(axis=0))
    recall = _divide(tp, cm.sum(axis=1))
    f1 = _divide(2 * precision * recall, precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1, "support": cm.sum(axis=1)}


def binary_roc_auc(positive: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties counting 1/2.

    Computed through the Mann-Whitney U statistic on average ranks, which is exactly the trapezoidal
    area under the ROC curve with tied scores as one step.
    """
    positive = np.asarray(positive, bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = _average_ranks(np.asarray(scores, float))
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


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
    scores = per_class_scores(cm)
    total = int(cm.sum())
    support = scores["support"]
    result = {
        "n": total,
        "accuracy": float(np.trace(cm) / total) if total else 0.0,
        "macro_f1": float(scores["f1"].mean()),
        "weighted_f1": float((scores["f1"] * support).sum() / total) if total else 0.0,
        "per_class": {name: {"precision": float(scores["precision"][i]), "recall": float(scores["recall"][i]),
                             "f1": float(scores["f1"][i]), "support": int(support[i])}
                      for i, name in enumerate(class_names)},
        "confusion": cm.tolist(),
        "roc_auc": roc_auc_ovr(y_true, probabilities, class_names) if probabilities is not None else None,
    }
    positive = resolve_positive(class_names, positive)
    result["positive_class"] = positive
    if positive is not None:
        p = class_names.index(positive)
        negatives = cm.sum() - cm[p].sum()
        true_negatives = negatives - (cm[:, p].sum() - cm[p, p])
        result["sensitivity"] = float(scores["recall"][p])
        result["specificity"] = float(true_negatives / negatives) if negatives else 0.0
    return result
