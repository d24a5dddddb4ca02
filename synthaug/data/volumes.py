"""Volume and VolumeSet: labeled CT volumes for projectors and the xpgan/drr synthesizers.

Conventions:
- ``Volume.hu``: float32 ``(X, Y, Z)`` in Hounsfield units, in nibabel's RAS+ voxel order: sources
  reorient with ``nibabel.as_closest_canonical``, so index increases towards the patient's Right
  (axis 0), Anterior (axis 1) and Superior (axis 2).
- ``Volume.spacing``: voxel size in mm along (X, Y, Z), all > 0.
- ``Volume.mask``: optional int label map of the same shape (organ ids, e.g. lung lobes).
- A ``VolumeSet`` is lazy: it holds a loader per volume, so a collection of a thousand CTs does not
  sit in memory. ``labels``, ``class_names`` and ``patient_ids`` are known without loading.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import SynthaugError


@dataclass
class Volume:
    hu: np.ndarray
    spacing: tuple[float, float, float]
    label: int = -1
    patient_id: str = ""
    origin: str = ""
    mask: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.hu = np.asarray(self.hu, dtype=np.float32)
        if self.hu.ndim != 3:
            raise SynthaugError(f"volume {self.origin or '?'} must be 3-D; got shape {self.hu.shape}")
        self.spacing = tuple(float(s) for s in self.spacing)  # type: ignore[assignment]
        if len(self.spacing) != 3 or not all(np.isfinite(s) and s > 0 for s in self.spacing):
            raise SynthaugError(f"volume {self.origin or '?'}: spacing must be three positive numbers in mm; got {self.spacing}")
        if not np.isfinite(self.hu).all():
            raise SynthaugError(f"volume {self.origin or '?'} contains NaN or inf values")


class VolumeSet:
    """Labeled volumes, loaded one at a time on access."""

    def __init__(self, loaders: Sequence[Callable[[], Volume]] | Sequence[Volume], labels: Sequence[int],
                 class_names: Sequence[str], patient_ids: Sequence[str], origins: Sequence[str] | None = None,
                 meta: dict[str, np.ndarray] | None = None):
        self._items = list(loaders)
        self.labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        self.class_names = tuple(str(c) for c in class_names)
        self.patient_ids = np.asarray([str(p) for p in patient_ids], dtype=object)
        self.origins = np.asarray([str(o) for o in (origins if origins is not None else [""] * len(self._items))], dtype=object)
        self.meta = dict(meta or {})  # per-volume arrays, e.g. "severity"
        n = len(self._items)
        if not (len(self.labels) == len(self.patient_ids) == len(self.origins) == n):
            raise SynthaugError("a VolumeSet needs one label, patient id and origin per volume")
        if n and (self.labels.min() < 0 or self.labels.max() >= len(self.class_names)):
            raise SynthaugError(f"volume labels must index the classes {self.class_names}; every volume needs a label")

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, i: int) -> Volume:
        item = self._items[int(i)]
        volume = item if isinstance(item, Volume) else item()
        volume.label = int(self.labels[i])
        volume.patient_id = volume.patient_id or str(self.patient_ids[i])
        volume.origin = volume.origin or str(self.origins[i])
        return volume

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def counts(self) -> dict[str, int]:
        found = np.bincount(self.labels, minlength=len(self.class_names))
        return {name: int(found[i]) for i, name in enumerate(self.class_names)}

    def subset(self, index: Sequence[int]) -> "VolumeSet":
        idx = np.asarray(index, dtype=np.int64)
        return VolumeSet([self._items[i] for i in idx], self.labels[idx], self.class_names,
                         self.patient_ids[idx], self.origins[idx], {k: v[idx] for k, v in self.meta.items()})


def resample_volume(volume: Volume, shape: Sequence[int]) -> Volume:
    """``volume`` resampled to ``shape`` (X, Y, Z) over the same physical extent.

    The spacing becomes ``spacing * old_shape / shape``. Axes that shrink are area-averaged (so a
    256 -> 64 reduction does not alias thin bone into speckle); axes that grow are interpolated
    linearly; a mask is resampled by nearest neighbour. E.g. quan2021's 256 x 256 x 64 inputs.
    """
    try:
        target = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise SynthaugError(f"resample shape must be three whole numbers (X, Y, Z); got {shape!r}") from None
    if len(target) != 3 or min(target) < 1:
        raise SynthaugError(f"resample shape must be three positive whole numbers (X, Y, Z); got {tuple(shape)}")
    if target == volume.hu.shape:
        return volume
    import torch
    import torch.nn.functional as F

    hu = torch.from_numpy(np.ascontiguousarray(volume.hu))[None, None]
    shrunk = tuple(min(t, s) for t, s in zip(target, volume.hu.shape))
    if shrunk != volume.hu.shape:
        hu = F.interpolate(hu, size=shrunk, mode="area")
    if shrunk != target:
        hu = F.interpolate(hu, size=target, mode="trilinear", align_corners=False)
    mask = None
    if volume.mask is not None:
        mask_t = torch.from_numpy(np.ascontiguousarray(volume.mask).astype(np.float32))[None, None]
        mask = F.interpolate(mask_t, size=target, mode="nearest")[0, 0].numpy().astype(volume.mask.dtype)
    spacing = tuple(sp * old / new for sp, old, new in zip(volume.spacing, volume.hu.shape, target))
    return Volume(hu[0, 0].numpy(), spacing, label=volume.label, patient_id=volume.patient_id, origin=volume.origin,
                  mask=mask, meta=dict(volume.meta, resampled_from=tuple(volume.hu.shape)))
