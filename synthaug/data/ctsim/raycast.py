"""A minimal cone-beam ray-marching projector, used by ctsim only when ``siddon`` is not registered.

Rays run from the source to each detector pixel centre; attenuation is sampled trilinearly every
half voxel and summed (a Riemann sum of the line integral). Geometry conventions are those of
:class:`synthaug.interfaces.Geometry`: world = RAS+ mm centred on the volume, PA source posterior,
detector rows superior -> inferior, columns from the patient's right to left (as a film is read).
"""

from __future__ import annotations

import math

import numpy as np

from ...interfaces import Geometry, Projector
from ..volumes import Volume

MU_WATER = 0.02  # 1/mm, water at about 70 keV effective energy


def hu_to_mu(hu):
    return MU_WATER * (1.0 + hu / 1000.0).clip(min=0.0)


def _rotation(rx: float, ry: float, rz: float) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = (f(math.radians(a)) for a in (rx, ry, rz) for f in (math.cos, math.sin))
    rot_x = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    rot_y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rot_z = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rot_x @ rot_y @ rot_z


class RayCastProjector(Projector):
    name = "raycast"

    def project(self, volume: Volume, geometry: Geometry | None = None, *, mode: str = "raw") -> np.ndarray:
        import torch
        import torch.nn.functional as F

        g = geometry or Geometry()
        side = -1.0 if g.view == "PA" else 1.0  # source on the posterior (-y) side for PA
        rows = (g.height / 2 - np.arange(g.height) - 0.5) * g.pixel_spacing + g.principal_point[0]
        cols = (g.width / 2 - np.arange(g.width) - 0.5) * g.pixel_spacing + g.principal_point[1]
        det_z, det_x = np.meshgrid(rows, cols, indexing="ij")
        det = np.stack([det_x, np.full_like(det_x, -side * (g.sdd - g.sid)), det_z], -1)
        if g.beam == "cone":
            source = np.array([0.0, side * g.sid, 0.0])
            direction = det - source
        else:
            direction = np.broadcast_to(np.array([0.0, -side, 0.0]), det.shape)
            source = det - direction * g.sid
        direction = direction / np.linalg.norm(direction, axis=-1, keepdims=True)
        # Pose moves the volume; move the rays by the inverse instead.
        rot = _rotation(*g.pose[:3])
        origin = ((source if source.ndim > 1 else source[None, None]) - np.asarray(g.pose[3:])) @ rot
        direction = direction @ rot

        extent = np.asarray(volume.hu.shape) * np.asarray(volume.spacing)
        half = float(np.linalg.norm(extent)) / 2
        step = min(volume.spacing) / 2
        centre_t = np.einsum("hwc,hwc->hw", -np.broadcast_to(origin, direction.shape), direction)
        ts = np.arange(-half, half, step)
        points = np.broadcast_to(origin, direction.shape)[..., None, :] + \
            (centre_t[..., None, None] + ts[:, None]) * direction[..., None, :]
        norm = points / (extent / 2)  # [-1, 1] across the volume (align_corners=False)
        grid = torch.from_numpy(norm[..., ::-1].astype(np.float32).copy())[None]  # (1, H, W, S, zyx)
        mu = torch.from_numpy(np.ascontiguousarray(hu_to_mu(volume.hu), dtype=np.float32))[None, None]
        samples = F.grid_sample(mu, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return (samples[0, 0].sum(-1) * step).numpy()[None].astype(np.float32)
