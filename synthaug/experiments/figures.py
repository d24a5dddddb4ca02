"""Figures for reports: a grid of real and synthetic samples per class."""

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
