"""CT side of xpgan and drr: label maps, checks, pose variety, the encoder's input and the DRR target.

One posed volume gives both G's input (resized to the encoder grid, HU window -> [-1, 1]) and the
DRR that R(G) compares G's output with, so the pair agrees by construction: the pose is applied to
the volume here (resampling about its centre) and the projector always sees the identity pose.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import replace
from typing import Sequence

import numpy as np

from synthaug import Geometry, SynthaugError, Volume, VolumeSet
from synthaug.contract.types import rotation_matrix
from synthaug.kit.volumes import resample_volume

AIR_HU = -1000.0
# "ct" is what the nifti source names a folder of volumes without class subfolders
_UNLABELED = {"", "ct", "unlabeled", "unlabelled", "unknown", "none"}
_MOSMED_GRADE = re.compile(r"^ct-?([0-4]+)$", re.IGNORECASE)  # CT-0..CT-4, merged CT-23


# ---------------------------------------------------------------------------------------------
# labels
# ---------------------------------------------------------------------------------------------
def check_labeled(volumes: VolumeSet, owner: str) -> None:
    names = [c.strip().lower() for c in volumes.class_names]
    if not names or all(n in _UNLABELED for n in names) or (len(volumes.labels) and volumes.labels.min() < 0):
        first = volumes.origins[0] if len(volumes) else "?"
        raise SynthaugError(f"{owner}: the CT volumes (e.g. {first or 'volume 0'}) carry no class labels; "
                            f"use a labeled source (mosmed, ctsim) or a folder per class")


def default_target(volume_class: str, image_classes: Sequence[str]) -> str | None:
    """Same name (case-insensitive); MosMed grades CT-0 -> normal, CT-1..CT-4 -> covid."""
    lowered = {c.lower(): c for c in image_classes}
    if volume_class.lower() in lowered:
        return lowered[volume_class.lower()]
    grade = _MOSMED_GRADE.match(volume_class.strip())
    if grade:
        return lowered.get("normal" if grade.group(1) == "0" else "covid")
    return None


def resolve_label_map(volume_classes: Sequence[str], image_classes: Sequence[str],
                      label_map: dict[str, str] | None, owner: str) -> dict[int, int]:
    """Volume class index -> image class index; unmapped volume classes are left out."""
    mapping: dict[int, int] = {}
    if label_map:
        for ct_class, cxr_class in label_map.items():
            if ct_class not in volume_classes:
                raise SynthaugError(f"{owner}: label_map names CT class {ct_class!r}; the volumes have "
                                    f"{', '.join(volume_classes)}")
            if cxr_class not in image_classes:
                raise SynthaugError(f"{owner}: label_map sends {ct_class!r} to {cxr_class!r}; the radiographs' "
                                    f"classes are {', '.join(image_classes)}")
            mapping[list(volume_classes).index(ct_class)] = list(image_classes).index(cxr_class)
        return mapping
    for i, name in enumerate(volume_classes):
        target = default_target(name, image_classes)
        if target is not None:
            mapping[i] = list(image_classes).index(target)
    return mapping


def check_deficits_covered(volumes: VolumeSet, mapping: dict[int, int], image_classes: Sequence[str],
                           deficits: dict[str, int], owner: str) -> None:
    image_labels = image_labels_of(volumes, mapping)
    for target, n in deficits.items():
        if n <= 0:
            continue
        if target not in image_classes:
            raise SynthaugError(f"{owner}: unknown class {target!r}; classes are {', '.join(image_classes)}")
        if not np.any(image_labels == list(image_classes).index(target)):
            sources = [volumes.class_names[v] for v, t in mapping.items() if image_classes[t] == target]
            raise SynthaugError(
                f"{owner}: class {target!r} needs {n} images but no CT volume maps to it (volume classes "
                f"{', '.join(f'{k}={c}' for k, c in volumes.counts().items())}; mapped: "
                f"{', '.join(f'{volumes.class_names[v]}->{image_classes[t]}' for v, t in mapping.items()) or 'none'}"
                f"{'; ' + ', '.join(sources) + ' have no volumes' if sources else ''}); pass label_map")


def image_labels_of(volumes: VolumeSet, mapping: dict[int, int]) -> np.ndarray:
    """Per volume: the image class it stands for, -1 if unmapped."""
    return np.asarray([mapping.get(int(v), -1) for v in volumes.labels], dtype=np.int64)


# ---------------------------------------------------------------------------------------------
# geometry of one volume
# ---------------------------------------------------------------------------------------------
def pose_volume(volume: Volume, pose: Sequence[float]) -> Volume:
    """Rotate the volume about its centre, then translate (mm); air fills what comes into view."""
    if not any(pose):
        return volume
    from scipy.ndimage import affine_transform

    spacing = np.asarray(volume.spacing)
    rot = rotation_matrix(*pose[:3])
    # output voxel o -> world p = (o - c) * s; input world = R^T (p - t); input voxel = world / s + c
    matrix = (rot.T * spacing[None, :]) / spacing[:, None]
    centre = (np.asarray(volume.hu.shape) - 1) / 2.0
    offset = centre - matrix @ centre - (rot.T @ np.asarray(pose[3:], float)) / spacing
    hu = affine_transform(volume.hu, matrix, offset=offset, order=1, cval=AIR_HU, mode="constant")
    return replace(volume, hu=hu.astype(np.float32), mask=None)


def working_volume(volume: Volume, image_size: int, encoder_shape: Sequence[int]) -> Volume:
    """At most max(2 x detector size, encoder axis) voxels per axis: finer detail reaches neither output.

    The label map is dropped: neither G's input nor the DRR uses it, so it is not resampled either.
    """
    limit = [max(2 * image_size, e) for e in encoder_shape]
    if volume.mask is not None:
        volume = replace(volume, mask=None)
    return resample_volume(volume, [min(n, m) for n, m in zip(volume.hu.shape, limit)])


def normalise_hu(hu: np.ndarray, window: Sequence[float]) -> np.ndarray:
    """HU window -> [-1, 1], G's input range (quan2021 §2.3)."""
    low, high = float(window[0]), float(window[1])
    return (np.clip(hu, low, high) - low) * (2.0 / (high - low)) - 1.0


def encoder_input(volume: Volume, encoder_shape: Sequence[int], window: Sequence[float]) -> np.ndarray:
    """float32 (1, X, Y, Z) in [-1, 1] on the encoder grid."""
    return normalise_hu(resample_volume(volume, encoder_shape).hu, window)[None].astype(np.float32)


def drr_geometry(volume: Volume, size: int, *, view: str, sdd: float, sid: float, beam: str = "cone",
                 margin: float = 1.05) -> Geometry:
    """A square detector whose field of view holds the volume's R-L and S-I extent (plus ``margin``)."""
    extent = max(volume.hu.shape[0] * volume.spacing[0], volume.hu.shape[2] * volume.spacing[2])
    magnification = sdd / sid if beam == "cone" else 1.0
    return Geometry(sdd=sdd, sid=sid, height=size, width=size, pixel_spacing=extent * magnification * margin / size,
                    view=view, beam=beam)


def random_pose(rng: np.random.Generator, max_rotation: float, max_translation: float) -> tuple[float, ...]:
    rot = rng.uniform(-max_rotation, max_rotation, 3) if max_rotation > 0 else np.zeros(3)
    shift = rng.uniform(-max_translation, max_translation, 3) if max_translation > 0 else np.zeros(3)
    return tuple(float(v) for v in (*rot, *shift))


class PairRenderer:
    """(encoder input, DRR) of volume ``i`` in a given pose, with a bounded LRU cache.

    The cache keys on (volume index, pose) so training revisits a fixed set of poses per volume
    (pose 0 is the identity) without resampling and reprojecting each time.
    """

    def __init__(self, volumes: VolumeSet, projector, *, image_size: int, encoder_shape: Sequence[int],
                 hu_window: Sequence[float], view: str, sdd: float, sid: float, beam: str = "cone",
                 cache_mb: float = 1024.0, with_encoder: bool = True):
        self.volumes, self.projector = volumes, projector
        self.image_size, self.encoder_shape, self.hu_window = image_size, tuple(encoder_shape), tuple(hu_window)
        self.view, self.sdd, self.sid, self.beam = view, sdd, sid, beam
        self.with_encoder = with_encoder
        self.cache: OrderedDict = OrderedDict()
        self.cache_bytes, self.cache_limit = 0, cache_mb * 2 ** 20
        self._working: tuple[int, Volume] | None = None  # the last loaded volume, reused across its poses

    def volume(self, index: int) -> Volume:
        if self._working is None or self._working[0] != index:
            self._working = (index, working_volume(self.volumes[index], self.image_size, self.encoder_shape))
        return self._working[1]

    def drr(self, volume: Volume) -> np.ndarray:
        geometry = drr_geometry(volume, self.image_size, view=self.view, sdd=self.sdd, sid=self.sid, beam=self.beam)
        image = np.asarray(self.projector.project(volume, geometry, mode="radiograph"), dtype=np.float32)
        return image.reshape(1, self.image_size, self.image_size)

    def pair(self, index: int, pose: Sequence[float]) -> tuple[np.ndarray | None, np.ndarray]:
        key = (int(index), tuple(round(p, 6) for p in pose))
        if key in self.cache:
            self.cache.move_to_end(key)
            return self.cache[key]
        posed = pose_volume(self.volume(index), pose)
        enc = encoder_input(posed, self.encoder_shape, self.hu_window) if self.with_encoder else None
        item = (enc, self.drr(posed))
        size = sum(a.nbytes for a in item if a is not None)
        if size <= self.cache_limit:
            self.cache[key] = item
            self.cache_bytes += size
            while self.cache_bytes > self.cache_limit:
                _, old = self.cache.popitem(last=False)
                self.cache_bytes -= sum(a.nbytes for a in old if a is not None)
        return item
