"""ImageSet: radiographs in memory with labels, patients and per-sample provenance.

Conventions (every plugin relies on them):
- ``images``: float32 ``(N, C, H, W)`` in [0, 1], C = 1 (grey) or 3 (RGB).
- ``labels``: int64 ``(N,)`` indexing ``class_names`` (ordered, e.g. ``("covid", "normal", "viral")``).
- ``patient_ids``: str ``(N,)``; images of one patient never straddle train and test.
- provenance per sample: ``synth`` (``"real"`` or the synthesizer's name), ``origin`` (the file or
  volume a sample came from; for a synthetic one, what it was made from), ``source_index`` (index of
  the source image in the training split or of the source volume, -1 if none), ``seed`` (-1 for real).
- ``meta``: facts about the whole set (source, layout, skipped files).
- ``extras``: optional per-sample arrays with first dimension N, e.g. ``"twin"`` (ctsim's lesion-free
  image of the same patient and pose) with ``"has_twin"`` (bool).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np

from ..errors import SynthaugError

REAL = "real"


@dataclass
class ImageSet:
    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    patient_ids: np.ndarray
    synth: np.ndarray | None = None
    origin: np.ndarray | None = None
    source_index: np.ndarray | None = None
    seed: np.ndarray | None = None
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    #: Facts about the whole set (source name, layout, files skipped, ...); not per sample.
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.images)
        self.images = np.asarray(self.images, dtype=np.float32)
        if self.images.ndim != 4:
            raise SynthaugError(f"images must be (N, C, H, W); got shape {self.images.shape}")
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        self.class_names = tuple(str(c) for c in self.class_names)
        self.patient_ids = _strings(self.patient_ids, n)
        self.synth = _strings(self.synth, n, REAL)
        self.origin = _strings(self.origin, n, "")
        self.source_index = _ints(self.source_index, n)
        self.seed = _ints(self.seed, n)
        for key, value in self.extras.items():
            if len(value) != n:
                raise SynthaugError(f"extra {key!r} has {len(value)} rows; expected {n}")
        if len(self.labels) != n:
            raise SynthaugError(f"{len(self.labels)} labels for {n} images")
        if n and (self.labels.min() < 0 or self.labels.max() >= len(self.class_names)):
            raise SynthaugError(f"labels must lie in [0, {len(self.class_names) - 1}] for classes {self.class_names}")

    # ---- shape and counts -------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.images.shape[1:])  # type: ignore[return-value]

    def class_index(self, name: str) -> int:
        if name not in self.class_names:
            raise SynthaugError(f"unknown class {name!r}; classes are {', '.join(self.class_names)}")
        return self.class_names.index(name)

    def counts(self, synthetic: bool | None = None) -> dict[str, int]:
        """Images per class; ``synthetic=True/False`` counts only synthetic/real ones."""
        mask = np.ones(len(self), bool)
        if synthetic is not None:
            mask = (self.synth != REAL) if synthetic else (self.synth == REAL)
        found = np.bincount(self.labels[mask], minlength=len(self.class_names))
        return {name: int(found[i]) for i, name in enumerate(self.class_names)}

    # ---- selection and joining --------------------------------------------------------------
    def subset(self, index: np.ndarray | Sequence[int]) -> "ImageSet":
        idx = np.asarray(index)
        return ImageSet(self.images[idx], self.labels[idx], self.class_names, self.patient_ids[idx],
                        self.synth[idx], self.origin[idx], self.source_index[idx], self.seed[idx],
                        {k: v[idx] for k, v in self.extras.items()}, dict(self.meta))

    def of_class(self, name: str) -> "ImageSet":
        return self.subset(np.flatnonzero(self.labels == self.class_index(name)))

    def with_provenance(self, **columns) -> "ImageSet":
        return replace(self, **columns)

    @staticmethod
    def concat(parts: Sequence["ImageSet"]) -> "ImageSet":
        parts = [p for p in parts if p is not None]
        if not parts:
            raise SynthaugError("nothing to concatenate")
        first = parts[0]
        for p in parts[1:]:
            if p.class_names != first.class_names:
                raise SynthaugError(f"class names differ: {first.class_names} vs {p.class_names}")
            if len(p) and len(first) and p.image_shape != first.image_shape:
                raise SynthaugError(f"image shapes differ: {first.image_shape} vs {p.image_shape}")
        keys = set().union(*(p.extras for p in parts))
        extras = {}
        for key in keys:
            # A part without this extra contributes zeros of the same shape (and False for flags).
            ref = next(p.extras[key] for p in parts if key in p.extras)
            extras[key] = np.concatenate([p.extras[key] if key in p.extras
                                          else np.zeros((len(p),) + ref.shape[1:], ref.dtype) for p in parts])
        cat = lambda attr: np.concatenate([getattr(p, attr) for p in parts])  # noqa: E731
        return ImageSet(cat("images"), cat("labels"), first.class_names, cat("patient_ids"), cat("synth"),
                        cat("origin"), cat("source_index"), cat("seed"), extras, dict(first.meta))


def _strings(values, n: int, default: str | None = None) -> np.ndarray:
    if values is None:
        if default is None:
            raise SynthaugError("patient_ids are required")
        return np.full(n, default, dtype=object)
    arr = np.asarray([str(v) for v in values], dtype=object)
    if len(arr) != n:
        raise SynthaugError(f"{len(arr)} values for {n} images")
    return arr


def _ints(values, n: int) -> np.ndarray:
    if values is None:
        return np.full(n, -1, dtype=np.int64)
    arr = np.asarray(values, dtype=np.int64).reshape(-1)
    if len(arr) != n:
        raise SynthaugError(f"{len(arr)} values for {n} images")
    return arr
