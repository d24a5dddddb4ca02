"""Figures for reports: a grid of real and synthetic samples per class; a reliability diagram."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from synthaug.contract.types import REAL, ImageSet


def sample_grid(data: ImageSet, path: str | Path, per_row: int = 6, seed: int = 0, title: str = "",
                image=None) -> Path:
    """One row of real and one row of synthetic images per class (synthetic rows only where any exist).

    ``image(i)``: how to get image ``i`` when ``data`` holds only labels and provenance (a store read
    with ``images=False``: only the images drawn are read); default ``data.images[i]``."""
    from synthaug.pipeline.report import pyplot, save_figure, viewable

    plt = pyplot()
    rng = np.random.default_rng(seed)
    rows = []
    for c, name in enumerate(data.class_names):
        for kind in ("real", "synthetic"):
            mask = (data.labels == c) & ((data.synth == REAL) if kind == "real" else (data.synth != REAL))
            idx = np.flatnonzero(mask)
            if len(idx):
                rows.append((f"{name}\n{kind}" + ("" if kind == "real" else f"\n({data.synth[idx[0]]})"),
                             rng.choice(idx, size=min(per_row, len(idx)), replace=False)))
    fig, axes = plt.subplots(len(rows), per_row, figsize=(1.4 * per_row + 1, 1.45 * len(rows)), squeeze=False)
    for r, (label, idx) in enumerate(rows):
        for k in range(per_row):
            ax = axes[r, k]
            ax.set_xticks([]), ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
            if k < len(idx):
                shown = data.images[idx[k]] if image is None else image(int(idx[k]))
                ax.imshow(viewable(shown), cmap="gray", vmin=0, vmax=1)  # grey, RGB, or the mean of C channels
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)


def reliability_diagram(table: dict, path: str | Path, title: str = "", ece: float | None = None) -> Path:
    """A reliability diagram of :func:`synthaug.pipeline.metrics.calibration_bins`'s ``table``: per bin,
    the observed frequency against the mean probability (a calibrated classifier lies on the diagonal),
    and below it how many images fell in each bin. Written atomically (:mod:`synthaug.kit.figures`)."""
    from synthaug.kit.figures import pyplot, save_figure

    plt = pyplot()
    edges = np.asarray(table["edges"], float)
    centres, widths = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
    filled = [i for i, n in enumerate(table["count"]) if n]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(4.4, 5.2), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.bar(centres[filled], [table["observed"][i] for i in filled], widths[filled] * 0.92, color="tab:blue",
            alpha=0.75, label="observed")
    top.plot([table["confidence"][i] for i in filled], [table["observed"][i] for i in filled], "o", color="black",
             markersize=3, label="at the bins' mean probability")
    top.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle=":")
    observed = "fraction positive" if table["of"].startswith("positive") else "accuracy"
    top.set(ylabel=observed, xlim=(0, 1), ylim=(0, 1.02),
            title=(title + "\n" if title else "") + (f"ECE {ece:.3f} over these images" if ece is not None else ""))
    top.grid(alpha=0.3)
    top.legend(loc="upper left", fontsize=7)
    bottom.bar(centres, table["count"], widths * 0.92, color="tab:grey")
    bottom.set(xlabel=table["of"], ylabel="images")
    return save_figure(fig, path)
