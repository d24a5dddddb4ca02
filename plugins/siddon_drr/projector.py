"""The ``siddon`` projector: exact DRRs, a fast numba CPU path and a differentiable torch path."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from synthaug import Geometry, Projector, SynthaugError, Volume
from synthaug.kit.xray import MU_WATER, WINDOW_PERCENTILE, hu_to_mu, radiograph

from .rays import extent_mm, index_rays

MODES = ("raw", "radiograph")


@dataclass
class SiddonConfig:
    """Options of the ``siddon`` projector (``create("projector", "siddon", **options)``)."""

    #: Attenuation of water, mm^-1 (about 70 keV, a 120 kVp chest beam's effective energy).
    mu_water: float = MU_WATER
    #: ``numba`` (CPU, parallel over rays, fastest for single images) or ``torch`` (any device,
    #: batched, differentiable); both give the same numbers.
    backend: str = "numba"
    #: torch device for ``backend="torch"`` and ``project_torch`` volumes given as numpy.
    device: str = "cpu"
    #: rays per chunk on the torch path (None: about 4 M plane crossings per chunk).
    chunk_rays: int | None = None
    #: photons per pixel for Poisson noise in ``radiograph`` mode (None: noiseless).
    photons: float | None = None
    #: seed of the Poisson noise (same seed, same volume -> same image).
    seed: int = 0
    #: radiograph window (low, high) in line-integral units; None: 0 to the percentile below.
    window: tuple[float, float] | None = None
    #: percentile of each image mapped to white when ``window`` is None.
    percentile: float = WINDOW_PERCENTILE

    def __post_init__(self) -> None:
        if self.backend not in ("numba", "torch"):
            raise SynthaugError(f"siddon backend must be numba or torch; got {self.backend!r}")
        if self.chunk_rays is not None and self.chunk_rays < 1:
            raise SynthaugError(f"chunk_rays must be >= 1; got {self.chunk_rays}")
        if self.window is not None:
            self.window = tuple(float(v) for v in self.window)  # type: ignore[assignment]


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise SynthaugError(f"projection mode must be raw or radiograph; got {mode!r}")


def start_projection(volume: Volume, geometry: Geometry | None, mode: str, *,
                     beam: str | None = None) -> tuple[np.ndarray, Geometry]:
    """What every ``project()`` here starts with: the mode checked, the volume re-checked and the geometry
    defaulted (``beam`` forced if given) with its pixel spacing fitted to the volume.

    Returns the volume's HU (C-contiguous float32, see ``Volume.checked_hu``) and the resolved geometry.
    """
    check_mode(mode)
    if not isinstance(volume, Volume):
        raise SynthaugError(f"project() needs a synthaug Volume (HU + spacing); got {type(volume).__name__}")
    hu = volume.checked_hu()
    geometry = geometry or Geometry()
    if beam is not None and geometry.beam != beam:
        geometry = replace(geometry, beam=beam)
    return hu, geometry.fitted(tuple(extent_mm(hu.shape, volume.spacing)))


class SiddonProjector(Projector):
    """Digitally reconstructed radiographs by Siddon's exact radiological path (Jacobs' traversal)."""

    name = "siddon"
    Config = SiddonConfig

    def project(self, volume: Volume, geometry: Geometry | None = None, *, mode: str = "radiograph") -> np.ndarray:
        """float32 ``(1, H, W)``: line integrals (``raw``) or the radiograph appearance in [0, 1]."""
        hu, geometry = start_projection(volume, geometry, mode)
        if self.config.backend == "torch":
            import torch

            with torch.no_grad():
                image = self.project_torch(torch.from_numpy(hu).to(self.config.device), volume.spacing, geometry,
                                           mode=mode)
            return image[0].cpu().numpy().astype(np.float32)
        line_integrals = self.line_integrals(hu, volume.spacing, geometry)
        return self._appearance(line_integrals, mode)

    def line_integrals(self, hu: np.ndarray, spacing, geometry: Geometry) -> np.ndarray:
        """``(1, H, W)`` float32 integral of mu dl (mm^-1 x mm) on the numba CPU path."""
        from .kernel import trace

        mu_water = self.config.mu_water
        if not mu_water > 0:
            raise SynthaugError(f"mu_water must be > 0 (mm^-1); got {mu_water}")
        geometry, sources, targets, lengths = index_rays(geometry, hu.shape, spacing)
        # hu_to_mu applied per visited voxel: mu = max(mu_water * (1 + HU / 1000), 0)
        values = trace(hu, sources, targets, lengths, mu_water / 1000.0, mu_water)
        return values.reshape(1, geometry.height, geometry.width).astype(np.float32)

    def _appearance(self, line_integrals, mode: str):
        if mode == "raw":
            return line_integrals
        rng = None
        if self.config.photons is not None:
            if type(line_integrals).__module__.startswith("torch"):
                import torch

                rng = torch.Generator(device=line_integrals.device).manual_seed(self.config.seed)
            else:
                rng = np.random.default_rng(self.config.seed)
        return radiograph(line_integrals, photons=self.config.photons, rng=rng, window=self.config.window,
                          percentile=self.config.percentile)

    def project_torch(self, hu: Any, spacing, geometry: Geometry | None = None, poses: Any = None, *,
                      mode: str = "radiograph"):
        """Batched, differentiable projection: torch ``(B, 1, H, W)``.

        ``hu``: torch tensor or numpy array ``(X, Y, Z)`` or ``(B, X, Y, Z)`` in HU (gradients flow
        back to it); ``poses``: ``(B, 6)`` (rx, ry, rz degrees; tx, ty, tz mm) overriding
        ``geometry.pose``. Runs on ``hu``'s device (numpy input goes to ``config.device``).
        """
        import torch

        from .torch_siddon import render

        check_mode(mode)
        geometry = geometry or Geometry()
        if not isinstance(hu, torch.Tensor):
            hu = torch.as_tensor(np.asarray(hu, dtype=np.float32), device=self.config.device)
        if not bool(torch.isfinite(hu.detach()).all()):
            raise SynthaugError("volume contains NaN or inf values")
        if poses is not None and not isinstance(poses, torch.Tensor):
            poses = torch.as_tensor(np.asarray(poses, dtype=np.float32))
        mu = hu_to_mu(hu, self.config.mu_water)
        line_integrals = render(mu, spacing, geometry, poses, chunk_rays=self.config.chunk_rays)
        return self._appearance(line_integrals, mode)
