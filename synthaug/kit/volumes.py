"""Volume resampling shared by sources, ctsim and the projectors: one implementation."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from synthaug.contract.types import Volume
from synthaug.errors import SynthaugError


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
