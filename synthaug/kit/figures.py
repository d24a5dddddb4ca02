"""Figures any plugin or core module draws: matplotlib on the Agg backend, atomic PNGs, and how an
image of any channel count is shown (``viewable``), so that a GAN's sample grid and the quality
report show a C-channel image the same way. matplotlib and numpy are imported when first used."""

from __future__ import annotations

from pathlib import Path

from synthaug.kit.files import atomic_path


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path) -> Path:
    """``fig`` written atomically to ``path`` as a PNG, then closed."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    pyplot().close(fig)
    return path


def viewable(image):
    """One ``(C, H, W)`` image as every figure shows it, clipped to [0, 1]: ``(H, W, 3)`` for three
    channels (RGB), otherwise ``(H, W)`` in grey: the one channel, or the mean of the channels for any
    other count (a 4-sequence MRI slice shows the average of its sequences; no channel is singled out)."""
    import numpy as np

    array = np.clip(np.asarray(image, np.float32), 0.0, 1.0)
    if array.ndim != 3:
        raise ValueError(f"expected one (C, H, W) image; got shape {array.shape}")
    return array.transpose(1, 2, 0) if array.shape[0] == 3 else array.mean(axis=0)


def class_grid(images, rows: int, path: str | Path) -> None:
    """PNG of ``images`` in [0, 1], (rows·cols, C, H, W), one row per class (RGB for three channels,
    otherwise grey: the channel mean, as every figure shows images): the per-epoch sample grid of the
    class-conditional synthesizers (acgan, ddpm)."""
    import numpy as np
    from PIL import Image

    n, c, h, w = images.shape
    cols = n // rows
    grid = images[:rows * cols].reshape(rows, cols, c, h, w).transpose(2, 0, 3, 1, 4).reshape(c, rows * h, cols * w)
    Image.fromarray((viewable(grid) * 255 + 0.5).astype(np.uint8)).save(path)
