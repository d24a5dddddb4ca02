"""A replacement pool (DA-Fusion, Trabucco et al. 2023): synthesis as a loader transform.

A pool store holds the real training images and, for the rare classes, ``k`` synthetic variants per
real image (balanced with ``Share(ratio=k)``). Training does not take their union: an epoch visits
the real images, and each is replaced by one of its variants with probability ``p``.

The variants of a real image are the synthetic images made from it (``source_index``, e.g. augment's
flips) where every synthetic image of its class names a real one; otherwise (a synthesizer sampling
from noise, ddpm) the class's synthetic images are dealt out to its real images in turn, so each has
``k``. Whether row ``r`` is replaced in ``epoch``, and by which variant, is drawn from ``(seed, epoch)``
for every row at once: the same for a seed whatever the order, the batch or the process (every
torchrun rank and DataLoader worker draws the same).
"""

from __future__ import annotations

import numpy as np

from synthaug.contract.types import REAL
from synthaug.errors import SynthaugError

_SALT = 0x9001


def check_pool_p(p: float, what: str = "pool p") -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
        raise SynthaugError(f"{what} must be a probability in [0, 1]; got {p!r}")
    return float(p)


def pool_variants(labels: np.ndarray, synth: np.ndarray, source_index: np.ndarray) -> list[np.ndarray]:
    """For every row of a split, the rows of its synthetic variants (empty for a synthetic row and for a
    real row of a class without any)."""
    labels, source_index = np.asarray(labels), np.asarray(source_index)
    real = np.asarray(synth).astype(str) == REAL
    out = [np.zeros(0, np.int64) for _ in range(len(labels))]
    for c in np.unique(labels):
        rows = np.flatnonzero(real & (labels == c))
        made = np.flatnonzero(~real & (labels == c))
        if not len(rows) or not len(made):
            continue
        sources = source_index[made]
        if np.isin(sources, rows).all():  # each variant names the real image it was made from
            order = np.argsort(sources, kind="stable")  # grouped by source, each group in store order
            keys, starts = np.unique(sources[order], return_index=True)
            for r, group in zip(keys, np.split(made[order], starts[1:])):
                out[r] = group
        else:  # sampled from noise: dealt out in turn
            for j, r in enumerate(rows):
                out[r] = made[j::len(rows)]
    return out


def draws(n: int, seed: int, epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row of a split of ``n``: a uniform number (replaced when below p) and a variant pick."""
    rng = np.random.default_rng([int(seed), _SALT, int(epoch)])
    return rng.random(n), rng.integers(0, 2 ** 31 - 1, n)


def swap(rows: np.ndarray, variants: list[np.ndarray], p: float, seed: int, epoch: int) -> np.ndarray:
    """``rows`` with each replaced by one of its variants with probability ``p``, for ``(seed, epoch)``."""
    u, pick = draws(len(variants), seed, epoch)
    out = np.array(rows, dtype=np.int64, copy=True)
    for j, r in enumerate(out):
        v = variants[r]
        if len(v) and u[r] < p:
            out[j] = v[pick[r] % len(v)]
    return out


class PoolDataset:
    """A pool store's real images as a ``Dataset``: item ``i`` is real image ``i`` (in the store's order)
    or, with probability ``p``, one of its variants, drawn for the current epoch (:meth:`set_epoch`, as
    ``DistributedSampler`` has; epoch 0 until set). ``rows`` are the store rows of the items,
    ``labels`` their classes; ``replaced()`` the items the current epoch replaces."""

    def __init__(self, dataset, p: float, seed: int = 0):
        self.dataset, self.p, self.seed = dataset, check_pool_p(p), int(seed)
        self.variants = pool_variants(dataset.labels, dataset.synth, dataset.source_index)
        self.rows = np.flatnonzero(np.asarray(dataset.synth).astype(str) == REAL)
        self.labels = np.asarray(dataset.labels)[self.rows]
        self.class_names = dataset.class_names
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self._current = swap(self.rows, self.variants, self.p, self.seed, self.epoch)

    def replaced(self) -> np.ndarray:
        """The items (indices) the current epoch gives a synthetic variant for."""
        return np.flatnonzero(self._current != self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int):
        return self.dataset[int(self._current[int(index)])]

    def close(self) -> None:
        self.dataset.close()
