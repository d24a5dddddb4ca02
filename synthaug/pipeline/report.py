"""Figures and markdown for a training run: confusion matrix, ROC curves, learning curves, per-class table.

matplotlib runs on the Agg backend (no display needed); every figure is written atomically
(:mod:`synthaug.kit.figures`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

# the figure helpers live in the kit, where plugins draw with them too (their sample grids)
from synthaug.kit.figures import pyplot, save_figure, viewable  # noqa: F401  (viewable: re-exported)


def plot_confusion(confusion: Sequence[Sequence[int]], class_names: Sequence[str], path: str | Path,
                   title: str = "") -> Path:
    """A confusion matrix (rows: true class, columns: predicted) with counts in the cells."""
    import numpy as np

    plt = pyplot()
    cm = np.asarray(confusion)
    size = 1.2 + 0.9 * len(class_names)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(cm, cmap="Blues", vmin=0)
    fig.colorbar(image, ax=ax, fraction=0.046)
    ticks = range(len(class_names))
    ax.set(xticks=ticks, yticks=ticks, xticklabels=class_names, yticklabels=class_names,
           xlabel="predicted", ylabel="true", title=title or "confusion matrix")
    threshold = cm.max() / 2 if cm.size else 0
    for i in ticks:
        for j in ticks:
            ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                    color="white" if cm[i, j] > threshold else "black")
    return save_figure(fig, path)


def plot_roc(labels, probabilities, class_names: Sequence[str], path: str | Path, title: str = "",
             auc: dict | None = None) -> Path:
    """One-vs-rest ROC curve of each class (its probability as the score), with its area in the legend."""
    import numpy as np

    from synthaug.pipeline.metrics import roc_curve

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.8, 4.4))
    labels = np.asarray(labels)
    for k, name in enumerate(class_names):
        curve = roc_curve(labels == k, np.asarray(probabilities)[:, k])
        if curve is None:  # no image (or every image) of this class in the split
            continue
        area = (auc or {}).get(name)
        ax.plot(*curve, drawstyle="default", label=f"{name}" + (f" (AUC {area:.3f})" if area is not None else ""))
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle=":")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.02),
           title=title or "ROC (one class against the rest)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return save_figure(fig, path)


def plot_curves(history: Sequence[dict], path: str | Path, title: str = "") -> Path:
    """Loss and accuracy per epoch (training, and validation where there was a validation split)."""
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    epochs = [h["epoch"] for h in history]
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 3.8))
    for key, style, label in (("train_loss", "-o", "train"), ("val_loss", "--s", "validation")):
        if any(h.get(key) is not None for h in history):
            loss_ax.plot(epochs, [h.get(key) for h in history], style, label=label)
    for key, style, label in (("train_accuracy", "-o", "train"), ("val_accuracy", "--s", "validation")):
        if any(h.get(key) is not None for h in history):
            acc_ax.plot(epochs, [h.get(key) for h in history], style, label=label)
    stages = [h["epoch"] for prev, h in zip(history, history[1:]) if h.get("stage") != prev.get("stage")]
    for ax, ylabel in ((loss_ax, "cross-entropy loss"), (acc_ax, "accuracy")):
        for epoch in stages:  # where liang2021's fine-tuning stage starts
            ax.axvline(epoch - 0.5, color="grey", linewidth=0.8, linestyle=":")
        ax.set(xlabel="epoch", ylabel=ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    acc_ax.set_ylim(0, 1.02)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def per_class_markdown(metrics: dict, digits: int = 3) -> str:
    """liang2021's table layout: rows precision / recall / F1, one column per class."""
    classes = list(metrics["per_class"])
    lines = ["| | " + " | ".join(classes) + " |", "|---|" + "---:|" * len(classes)]
    for key, label in (("precision", "Precision"), ("recall", "Recall"), ("f1", "F1 score")):
        values = " | ".join(f"{metrics['per_class'][c][key]:.{digits}f}" for c in classes)
        lines.append(f"| {label} | {values} |")
    return "\n".join(lines) + "\n"


def summary_markdown(metrics: dict, digits: int = 3) -> str:
    """One line of headline measures: accuracy, macro F1, ROC-AUC, sensitivity/specificity."""
    parts = [f"accuracy {metrics['accuracy']:.{digits}f}", f"macro F1 {metrics['macro_f1']:.{digits}f}"]
    auc = (metrics.get("roc_auc") or {}).get("macro")
    if auc is not None:
        parts.append(f"ROC-AUC {auc:.{digits}f}")
    if metrics.get("positive_class"):
        parts.append(f"{metrics['positive_class']} sensitivity {metrics['sensitivity']:.{digits}f}, "
                     f"specificity {metrics['specificity']:.{digits}f}")
    return "; ".join(parts)
