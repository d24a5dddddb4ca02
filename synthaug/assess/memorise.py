"""Memorisation: how close each synthetic image lies to the real images the synthesizer trained on.

For every synthetic image its nearest real training image of *any* class is found (a synthesizer
that translates one class into another, pix2pix making "covid" images from "normal" ones, copies
its sources across classes), either way round (the training images and their horizontal mirrors: a
flipped copy still shows the patient), in feature space and in pixels (images reduced to at most
``PIXEL_SIZE`` a side, distance as the root mean square difference in intensity), and the class of
that nearest image is reported. The same is done for the real *test* images of the synthetic
images' class, which no synthesizer saw: their distances (to the training images of every class
too) say how close a new patient ever comes to a training image.

- **copies**: synthetic images closer to a training image than any real test image is (below the
  smallest test distance).
- **near-copies**: closer than all but 5 % of the real test images (below the 5th percentile).
A synthesizer that makes new patients has both near zero; one that duplicates has both at 100 %.
"""

from __future__ import annotations

from typing import Any

import numpy as np

PIXEL_SIZE = 64
NEAR_PERCENTILE = 5.0


def shrink(batch) -> np.ndarray:
    """A batch of images reduced to at most ``PIXEL_SIZE`` a side, flattened ``(B, C*h*w)`` float32."""
    from synthaug.assess.features import resize

    if batch.shape[-1] > PIXEL_SIZE:
        batch = resize(batch, PIXEL_SIZE)
    return batch.flatten(1).numpy().astype(np.float32)


def thumbnails(dataset, indices, *, batch_size: int = 64) -> np.ndarray:
    """:func:`shrink` of the images of ``indices``, read in batches."""
    from synthaug.assess.features import batches

    out = [shrink(b) for b in batches(dataset, indices, batch_size)]
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def nearest(queries: np.ndarray, references: np.ndarray, rms: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(distance, index) of each query's nearest reference (scikit-learn, exact)."""
    from sklearn.neighbors import NearestNeighbors

    index = NearestNeighbors(n_neighbors=1, algorithm="brute").fit(references)
    distance, which = index.kneighbors(queries)
    distance = distance[:, 0]
    if rms:
        distance = distance / np.sqrt(references.shape[1])
    return distance, which[:, 0]


def either_way(train: np.ndarray, train_flipped: np.ndarray) -> np.ndarray:
    return np.concatenate([train, train_flipped])


def memorisation(synthetic: np.ndarray, test: np.ndarray, train: np.ndarray, train_flipped: np.ndarray, *,
                 rms: bool = False, labels: np.ndarray | None = None, own: int | None = None,
                 class_names: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Nearest training image (of ``train`` or its mirrors) of each synthetic and each test image, and
    the fractions of copies and near-copies. Indices refer to ``train`` (a mirror maps to its image).

    ``labels`` (per training image) and ``own`` (the synthetic images' class): the class of each
    nearest image (``nearest_label``), and the fractions whose nearest image is of another class
    (``nearest_other_class``), also among the copies and near-copies (``copies_other_class``,
    ``near_copies_other_class``: synthetic images that are (near-)copies of another class's image);
    ``nearest_classes`` counts the nearest images per class (named by ``class_names``)."""
    references = either_way(train, train_flipped)
    s_dist, s_idx = nearest(synthetic, references, rms)
    t_dist, _ = nearest(test, references, rms)
    n = len(train)
    copy_below = float(t_dist.min())
    near_below = float(np.percentile(t_dist, NEAR_PERCENTILE))
    copies, near = s_dist < copy_below, s_dist < near_below
    out = {
        "copies": float(np.mean(copies)),
        "near_copies": float(np.mean(near)),
        "copy_threshold": copy_below, "near_threshold": near_below,
        "synthetic_median": float(np.median(s_dist)), "test_median": float(np.median(t_dist)),
        "synthetic_distance": s_dist, "test_distance": t_dist,
        "nearest": s_idx % n, "mirrored": s_idx >= n,
    }
    if labels is not None:
        found = np.asarray(labels)[s_idx % n]
        other = found != own
        names = class_names or tuple(str(v) for v in range(int(found.max(initial=0)) + 1))
        out.update(nearest_label=found, nearest_other_class=float(np.mean(other)),
                   copies_other_class=float(np.mean(copies & other)),
                   near_copies_other_class=float(np.mean(near & other)),
                   nearest_classes={names[v]: int(c) for v, c in zip(*np.unique(found, return_counts=True))})
    return out
