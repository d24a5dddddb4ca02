"""X-ray physics shared by every projector: HU -> attenuation, and the radiograph's appearance.

Both functions accept numpy arrays or torch tensors (and keep torch gradients), so the exact CPU
projector, the differentiable torch projector and the generators that learn to imitate them all
produce images on the same scale.

- :func:`hu_to_mu`: linear attenuation from Hounsfield units, ``mu = mu_water * (1 + HU / 1000)``,
  the definition of the HU scale. Air (-1000 HU) and anything below it (scanner padding at -2048,
  -3024) clamps to 0, so the air around the patient adds nothing to a line integral.
- :func:`radiograph`: the detector's view of a line integral ``p = integral of mu dl``. The detector
  sees ``I = I0 * exp(-p)`` (Beer-Lambert); a radiograph displays ``-log(I / I0)``, i.e. ``p`` itself,
  so bone is bright and air dark. Optional Poisson noise at ``photons`` per pixel, then a window maps
  ``p`` to [0, 1].
"""

from __future__ import annotations

from typing import Any

import numpy as np

from synthaug.errors import SynthaugError

#: Linear attenuation of water at about 70 keV (effective energy of a ~120 kVp chest beam), mm^-1.
MU_WATER = 0.0192
#: Default upper window: this percentile of each image's line integrals maps to 1 (white).
WINDOW_PERCENTILE = 99.5


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def hu_to_mu(hu: Any, mu_water: float = MU_WATER) -> Any:
    """Linear attenuation (mm^-1) from Hounsfield units; air and below clamp to 0."""
    if not mu_water > 0:
        raise SynthaugError(f"mu_water must be > 0 (mm^-1); got {mu_water}")
    if _is_torch(hu):
        return (mu_water * (1.0 + hu / 1000.0)).clamp_min(0.0)
    hu = np.asarray(hu, dtype=np.float32)
    return np.maximum(np.float32(mu_water) * (1.0 + hu / np.float32(1000.0)), np.float32(0.0))


def radiograph(line_integral: Any, photons: float | None = None, rng: Any = None,
               window: tuple[float, float] | None = None, percentile: float = WINDOW_PERCENTILE) -> Any:
    """Radiograph appearance in [0, 1] of line integrals ``p`` (``(..., H, W)``, unitless mu*mm).

    ``photons``: unattenuated photons per pixel; when given, the detected count is drawn from
    ``Poisson(photons * exp(-p))`` (``rng``: a numpy Generator, or a torch Generator for tensors) and
    ``p`` is re-estimated as ``-log(count / photons)`` (a pixel that sees no photon reads as 1 photon).
    ``window``: ``(low, high)`` in line-integral units mapped to 0 and 1; ``None`` uses ``(0, the
    percentile-th value of each image)``: air is black and the densest 0.5 % saturate to white, as an
    automatic exposure control would. Gradients flow through the noiseless path.
    """
    if photons is not None and not photons > 0:
        raise SynthaugError(f"photons must be > 0 per pixel; got {photons}")
    if not 0 < percentile <= 100:
        raise SynthaugError(f"window percentile must be in (0, 100]; got {percentile}")
    torch_input = _is_torch(line_integral)
    if torch_input:
        import torch

        p = line_integral
        if photons is not None:
            counts = torch.poisson(photons * torch.exp(-p.detach()), generator=rng).clamp_min(1.0)
            p = -torch.log(counts / photons)
        flat = p.reshape(*p.shape[:-2], -1)
        if window is None:
            low = torch.zeros_like(flat[..., :1])
            high = torch.quantile(flat.detach().float(), percentile / 100.0, dim=-1, keepdim=True).to(p.dtype)
        else:
            low = torch.full_like(flat[..., :1], float(window[0]))
            high = torch.full_like(flat[..., :1], float(window[1]))
        span = (high - low).clamp_min(1e-6)
        return ((flat - low) / span).clamp(0.0, 1.0).reshape(p.shape)

    p = np.asarray(line_integral, dtype=np.float64)
    if p.ndim < 2:
        raise SynthaugError(f"radiograph needs an image (..., H, W); got shape {p.shape}")
    if photons is not None:
        rng = rng if rng is not None else np.random.default_rng(0)
        counts = np.maximum(rng.poisson(photons * np.exp(-p)), 1)
        p = -np.log(counts / photons)
    flat = p.reshape(*p.shape[:-2], -1)
    if window is None:
        low = np.zeros(flat.shape[:-1] + (1,))
        high = np.percentile(flat, percentile, axis=-1, keepdims=True)
    else:
        if not window[1] > window[0]:
            raise SynthaugError(f"window must be (low, high) with high > low; got {window}")
        low, high = np.full(flat.shape[:-1] + (1,), window[0]), np.full(flat.shape[:-1] + (1,), window[1])
    span = np.maximum(high - low, 1e-6)
    return np.clip((flat - low) / span, 0.0, 1.0).reshape(p.shape).astype(np.float32)
