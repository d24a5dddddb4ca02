"""The ``parallel`` projector: attenuation summed (or averaged) along the view axis.

The simple projection quan2021 contrasts with DRRs (their Fig. 1a, "average the intensity along the
view direction"): every ray is parallel to the anterior-posterior axis, so there is no
magnification and no perspective. The projection is computed on the volume's own grid and then
sampled (bilinear) at the detector pixels of the same :class:`Geometry` as ``siddon`` uses with
``beam="parallel"``, so the two projectors' images line up pixel for pixel.

A pose rotation resamples the volume (trilinear) on its own grid, so corners rotated outside the
box are cut off; for exact oblique projections use ``siddon`` with ``beam="parallel"``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from synthaug import Geometry, Projector, SynthaugError, Volume
from synthaug.contract.types import rotation_matrix
from synthaug.kit.xray import MU_WATER, WINDOW_PERCENTILE, hu_to_mu, radiograph

from .projector import start_projection
from .rays import extent_mm


@dataclass
class ParallelConfig:
    """Options of the ``parallel`` projector."""

    #: Attenuation of water, mm^-1 (same default as ``siddon``).
    mu_water: float = MU_WATER
    #: ``sum``: line integral in mu*mm (matches ``siddon`` with a parallel beam); ``mean``: average
    #: attenuation along the ray (quan2021's averaging), mm^-1.
    reduce: str = "sum"
    #: radiograph window (low, high); None: 0 to the percentile below of each image.
    window: tuple[float, float] | None = None
    #: percentile of each image mapped to white when ``window`` is None.
    percentile: float = WINDOW_PERCENTILE

    def __post_init__(self) -> None:
        if self.reduce not in ("sum", "mean"):
            raise SynthaugError(f"parallel projector reduce must be sum or mean; got {self.reduce!r}")


def _rotated(mu: np.ndarray, spacing, angles) -> np.ndarray:
    """``mu`` rotated by ``R = Rx Ry Rz`` about its centre, resampled on its own grid."""
    rot = rotation_matrix(*angles)
    scale = np.asarray(spacing, dtype=np.float64)
    centre = (np.asarray(mu.shape, dtype=np.float64) - 1) / 2
    # output voxel o sits at world q = (o - c) s; it reads the volume at p = R^T q, index p / s + c
    matrix = np.diag(1 / scale) @ rot.T @ np.diag(scale)
    offset = centre - matrix @ centre
    return ndimage.affine_transform(mu, matrix, offset=offset, order=1, mode="constant", cval=0.0)


class ParallelProjector(Projector):
    name = "parallel"
    Config = ParallelConfig

    def project(self, volume: Volume, geometry: Geometry | None = None, *, mode: str = "radiograph") -> np.ndarray:
        """float32 ``(1, H, W)``; ``geometry``'s cone parameters are ignored (rays are parallel)."""
        hu, geometry = start_projection(volume, geometry, mode, beam="parallel")
        spacing = np.asarray(volume.spacing, dtype=np.float64)
        mu = hu_to_mu(hu, self.config.mu_water)
        if any(geometry.pose[:3]):
            mu = _rotated(mu, spacing, geometry.pose[:3])
        # Rays run along y (AP and PA give the same integral; the display convention is shared).
        projection = mu.sum(axis=1, dtype=np.float64) * spacing[1]  # (X, Z)
        if self.config.reduce == "mean":
            projection /= extent_mm(hu.shape, spacing)[1]
        h, w, ps = geometry.height, geometry.width, geometry.pixel_spacing
        rows = (np.arange(h) - (h - 1) / 2.0) * ps - geometry.principal_point[0]
        cols = (np.arange(w) - (w - 1) / 2.0) * ps - geometry.principal_point[1]
        z_mm, x_mm = np.meshgrid(-rows, -cols, indexing="ij")
        tx, _, tz = geometry.pose[3:]
        # world mm -> voxel-centre index of the (X, Z) projection; outside the volume reads 0
        i = (x_mm - tx) / spacing[0] + (hu.shape[0] - 1) / 2
        k = (z_mm - tz) / spacing[2] + (hu.shape[2] - 1) / 2
        image = ndimage.map_coordinates(projection, [i, k], order=1, mode="grid-constant", cval=0.0)
        image = image.reshape(1, h, w).astype(np.float32)
        if mode == "raw":
            return image
        return radiograph(image, window=self.config.window, percentile=self.config.percentile)
