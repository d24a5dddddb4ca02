"""The fast CPU path: Siddon's exact radiological path with Jacobs' incremental traversal (numba).

Siddon (1985) writes a ray's line integral through a voxel grid as the sum over the voxels it
crosses of (voxel value) x (length of the ray inside the voxel); the lengths are the gaps between
consecutive crossings of the x, y and z grid planes. Jacobs et al. (1998) walk those crossings in
order without building or sorting them: keep the parameter of the *next* crossing along each axis,
step along whichever comes first, and update that one axis. Per ray this is O(nx + ny + nz) work,
no allocation and no sort; rays are independent, so they run in parallel (``prange``) on all cores.

Rays are given in continuous voxel-index coordinates (voxel ``i`` spans ``[i, i+1)``); a ray is
``p(a) = source + a * (target - source)`` for ``a`` in [0, 1], and its world length in mm turns the
summed ``value x delta_a`` into ``value x mm``.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from synthaug.kit.state import kept


@numba.njit(cache=True, inline="always")
def _clip_axis(p, d, n, a_min, a_max):
    """Narrow [a_min, a_max] to the slab 0 <= p + a d <= n (empty interval if the ray misses it)."""
    if d != 0.0:
        a0 = (0.0 - p) / d
        a1 = (n - p) / d
        return max(a_min, min(a0, a1)), min(a_max, max(a0, a1))
    if p < 0.0 or p >= n:
        return 1.0, 0.0  # parallel to this axis' planes and outside the slab
    return a_min, a_max


@numba.njit(cache=True, inline="always")
def _start_axis(p, d, n, a_min):
    """Entry voxel along one axis, its step (+1/-1/0), next crossing parameter and crossing spacing."""
    x = p + a_min * d
    if d < 0.0:
        i = int(math.ceil(x)) - 1  # on a plane while moving down: entering the voxel below it
    else:
        i = int(math.floor(x))
    i = min(max(i, 0), n - 1)  # rounding at the entry plane can land one voxel outside
    if d > 0.0:
        return i, 1, (i + 1 - p) / d, 1.0 / d
    if d < 0.0:
        return i, -1, (i - p) / d, -1.0 / d
    return i, 0, math.inf, math.inf


@numba.njit(cache=True, nogil=True)
def _trace_one(volume, sx, sy, sz, tx, ty, tz, length, scale, offset):
    nx, ny, nz = volume.shape
    dx, dy, dz = tx - sx, ty - sy, tz - sz
    a_min, a_max = _clip_axis(sx, dx, nx, 0.0, 1.0)
    a_min, a_max = _clip_axis(sy, dy, ny, a_min, a_max)
    a_min, a_max = _clip_axis(sz, dz, nz, a_min, a_max)
    if a_min >= a_max:
        return 0.0
    ix, stepx, nextx, incx = _start_axis(sx, dx, nx, a_min)
    iy, stepy, nexty, incy = _start_axis(sy, dy, ny, a_min)
    iz, stepz, nextz, incz = _start_axis(sz, dz, nz, a_min)

    total = 0.0
    a = a_min
    while a < a_max:
        # Step to whichever plane crossing comes first; the gap is the length inside this voxel.
        if nextx <= nexty and nextx <= nextz:
            a_end = min(nextx, a_max)
            total += max(scale * volume[ix, iy, iz] + offset, 0.0) * (a_end - a)
            ix += stepx
            nextx += incx
            if ix < 0 or ix >= nx:
                break
        elif nexty <= nextz:
            a_end = min(nexty, a_max)
            total += max(scale * volume[ix, iy, iz] + offset, 0.0) * (a_end - a)
            iy += stepy
            nexty += incy
            if iy < 0 or iy >= ny:
                break
        else:
            a_end = min(nextz, a_max)
            total += max(scale * volume[ix, iy, iz] + offset, 0.0) * (a_end - a)
            iz += stepz
            nextz += incz
            if iz < 0 or iz >= nz:
                break
        a = a_end
    return total * length


@numba.njit(parallel=True, cache=True, nogil=True)
def trace_rays(volume, sources, targets, lengths, scale=1.0, offset=0.0):
    """Line integrals ``(N,)`` float64 of ``max(scale * volume + offset, 0)`` along N rays.

    ``volume``: (X, Y, Z), rays in index coordinates. The affine transfer lets the kernel read
    Hounsfield units directly (``scale = mu_water / 1000``, ``offset = mu_water``), converting only
    the voxels a ray visits instead of making a whole attenuation volume per projection.
    """
    out = np.zeros(sources.shape[0], dtype=np.float64)
    for r in numba.prange(sources.shape[0]):
        out[r] = _trace_one(volume, sources[r, 0], sources[r, 1], sources[r, 2],
                            targets[r, 0], targets[r, 1], targets[r, 2], lengths[r], scale, offset)
    return out


def cache_friendly_order(sources: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """A ray order in which consecutive rays read neighbouring memory.

    Voxels are C-ordered, so z neighbours share cache lines. Sorting rays by the voxel column
    (x, y) of their midpoint and then by z puts rays that cross the same columns one after the
    other: a ray reloads the lines its predecessor just brought in. On the example chest CT this
    is about 3x faster than row-major detector order (the kernel is memory-bound).
    """
    middle = 0.5 * (sources + targets)
    return np.lexsort((middle[:, 2], np.floor(middle[:, 1]), np.floor(middle[:, 0])))


def trace(volume, sources, targets, lengths, scale=1.0, offset=0.0) -> np.ndarray:
    """``trace_rays`` in cache-friendly order, results returned in the given ray order."""
    order = cache_friendly_order(sources, targets)
    # Dynamic chunks of 256 rays: on a shared machine a descheduled thread no longer holds up
    # a whole static half of the image.
    # numba's OpenMP layer sets the process's OpenMP thread count, which torch reads too: kept() hands
    # the caller's torch threads (and everything else process-wide) back as they were.
    with kept(), numba.parallel_chunksize(256):
        values = trace_rays(volume, np.ascontiguousarray(sources[order]), np.ascontiguousarray(targets[order]),
                            np.ascontiguousarray(lengths[order]), scale, offset)
    out = np.empty_like(values)
    out[order] = values
    return out
