"""Rays of a :class:`~synthaug.contract.types.Geometry`: world-frame endpoints, pose, voxel-index frame.

Only numpy here: both the numba kernel and the torch renderer start from these rays.

Frames (docs/projectors.md has the figure):
- world: RAS+ mm with the volume centre at the origin; source and detector live here.
- volume: the same axes before the pose, ``p_world = R @ p_volume + t``.
- index: continuous voxel coordinates, ``index = p_volume / spacing + shape / 2``; voxel ``(i, j, k)``
  spans ``[i, i+1) x [j, j+1) x [k, k+1)``, so the volume box is ``[0, shape]``.
"""

from __future__ import annotations

import numpy as np

from synthaug import Geometry, SynthaugError


def extent_mm(shape: tuple[int, int, int], spacing: tuple[float, float, float]) -> np.ndarray:
    return np.asarray(shape, dtype=np.float64) * np.asarray(spacing, dtype=np.float64)


def detector_rays(geometry: Geometry, reach: float) -> tuple[np.ndarray, np.ndarray]:
    """World-frame ray endpoints ``(sources, targets)``, each ``(H*W, 3)`` in row-major pixel order.

    ``reach``: for parallel beams, how far (mm) from the isocentre rays start and end; it must clear
    the (posed) volume. ``geometry.pixel_spacing`` must be resolved (see ``Geometry.fitted``).
    """
    h, w, ps = geometry.height, geometry.width, geometry.pixel_spacing
    if ps is None:
        raise SynthaugError("geometry pixel spacing is unresolved; call geometry.fitted(extent) first")
    pp_row, pp_col = geometry.principal_point
    rows = (np.arange(h) - (h - 1) / 2.0) * ps - pp_row
    cols = (np.arange(w) - (w - 1) / 2.0) * ps - pp_col
    # Rows run superior -> inferior (-z); columns patient's right -> left (-x), for AP and PA alike.
    z, x = np.meshgrid(-rows, -cols, indexing="ij")
    x, z = x.reshape(-1), z.reshape(-1)
    toward = 1.0 if geometry.view == "AP" else -1.0  # side of the source: anterior for AP
    n = x.size
    if geometry.beam == "parallel":
        sources = np.stack([x, np.full(n, toward * reach), z], axis=1)
        targets = np.stack([x, np.full(n, -toward * reach), z], axis=1)
        return sources, targets
    sources = np.tile(np.array([0.0, toward * geometry.sid, 0.0]), (n, 1))
    targets = np.stack([x, np.full(n, toward * (geometry.sid - geometry.sdd)), z], axis=1)
    return sources, targets


def to_index_frame(points: np.ndarray, geometry: Geometry, shape, spacing) -> np.ndarray:
    """World points -> continuous voxel-index coordinates of the posed volume."""
    rot = geometry.rotation
    shift = np.asarray(geometry.pose[3:], dtype=np.float64)
    in_volume = (points - shift) @ rot  # R^T (p - t), row-vector form
    return in_volume / np.asarray(spacing, dtype=np.float64) + np.asarray(shape, dtype=np.float64) / 2.0


def parallel_reach(geometry: Geometry, shape, spacing) -> float:
    """A distance from the isocentre that clears the posed volume, for parallel-beam rays."""
    half_diagonal = float(np.linalg.norm(extent_mm(shape, spacing))) / 2.0
    return half_diagonal + float(np.linalg.norm(geometry.pose[3:])) + 10.0


def index_rays(geometry: Geometry, shape, spacing) -> tuple[Geometry, np.ndarray, np.ndarray, np.ndarray]:
    """Everything a kernel needs: the resolved geometry, index-frame ``sources``, ``targets`` and the
    world length (mm) of each ray, which converts a traversal fraction into millimetres.

    Raises if a cone-beam source sits inside the posed volume (its rays would start mid-patient).
    """
    geometry = geometry.fitted(tuple(extent_mm(shape, spacing)))
    reach = parallel_reach(geometry, shape, spacing)
    world_sources, world_targets = detector_rays(geometry, reach)
    lengths = np.linalg.norm(world_targets - world_sources, axis=1)
    sources = to_index_frame(world_sources, geometry, shape, spacing)
    targets = to_index_frame(world_targets, geometry, shape, spacing)
    if geometry.beam == "cone":
        source = sources[0]
        if np.all(source >= 0) and np.all(source <= np.asarray(shape, dtype=np.float64)):
            raise SynthaugError(
                f"the X-ray source lies inside the volume (sid={geometry.sid} mm, pose={geometry.pose}, volume "
                f"extent {tuple(round(float(e), 1) for e in extent_mm(shape, spacing))} mm); increase --sid")
    return geometry, sources, targets, lengths
