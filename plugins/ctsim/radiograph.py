"""From a patient's HU volume to a chest radiograph: pose, source distance, photon count, projection.

Per image we draw a PA geometry (the standard erect chest film: source behind the patient, detector
in front) with

- pose jitter: a few degrees of rotation about each axis and a few mm of shift (patient positioning),
- source-to-detector distance between a portable bedside film (~1000 mm) and a departmental one
  (~1800 mm); the patient's centre stays ``patient_to_detector_mm`` in front of the detector, so
  magnification varies with it as it does on real films,
- the photon count per detector pixel (exposure), which sets the quantum noise.

The line integral of attenuation comes from the registered projector (``siddon`` in ``raw`` mode);
the appearance is then computed here, pixel by pixel, so that two volumes that differ only in the
lungs (a covid patient and its lesion-free twin, projected with the same pose and the same noise
draw) give images that differ only where rays cross the lungs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synthaug import Geometry
from synthaug.kit.xray import radiograph


@dataclass(frozen=True)
class RadiographVariation:
    #: Rotation jitter, degrees (s.d.) about the left-right, antero-posterior, cranio-caudal axes.
    rotation_deg: tuple[float, float, float] = (2.0, 2.0, 3.0)
    #: Translation jitter, mm (s.d.) along x, y, z (positioning on the detector).
    translation_mm: tuple[float, float, float] = (4.0, 4.0, 6.0)
    #: Source-to-detector distance, mm: bedside (~1000) to departmental PA (~1800).
    sdd_mm: tuple[float, float] = (1000.0, 1800.0)
    #: Patient centre to detector, mm (half an adult chest's depth plus the gap to the cassette).
    patient_to_detector_mm: float = 200.0
    #: Field of view at the isocentre, mm: a 35 x 43 cm cassette covers the chest with margins.
    field_of_view_mm: float = 340.0
    #: Photons per detector pixel behind air, log-uniform range (exposure; sets quantum noise).
    photons: tuple[float, float] = (2e4, 2e5)
    #: Display window on the line integral (mu * mm) mapped to 0 ... 1: aerated lung dark,
    #: mediastinum and spine bright (a fixed window, not per image, so twins share it).
    window: tuple[float, float] = (0.95, 5.3)


@dataclass(frozen=True)
class Shot:
    """Everything random about one exposure: the same shot reproduces an image exactly."""

    geometry: Geometry
    photons: float
    noise_seed: int


def draw_shot(variation: RadiographVariation, size: int, rng: np.random.Generator) -> Shot:
    rot = rng.normal(0.0, variation.rotation_deg)
    shift = rng.normal(0.0, variation.translation_mm)
    sdd = float(rng.uniform(*variation.sdd_mm))
    sid = sdd - variation.patient_to_detector_mm
    # The detector pixel is fixed by the mean magnification: a longer SDD magnifies less.
    mean_sdd = float(np.mean(variation.sdd_mm))
    mean_mag = mean_sdd / (mean_sdd - variation.patient_to_detector_mm)
    pixel = variation.field_of_view_mm * mean_mag / size
    geometry = Geometry(sdd=sdd, sid=sid, height=size, width=size, pixel_spacing=pixel,
                        pose=(*map(float, rot), *map(float, shift)), view="PA", beam="cone")
    photons = float(np.exp(rng.uniform(np.log(variation.photons[0]), np.log(variation.photons[1]))))
    return Shot(geometry, photons, int(rng.integers(2**31 - 1)))


def expose(line_integral: np.ndarray, shot: Shot, variation: RadiographVariation) -> np.ndarray:
    """Quantum noise and display: line integral (1, H, W) -> radiograph in [0, 1], pixel-wise.

    Counts behind the patient are ``N0 exp(-L)``; their Poisson noise is drawn in its Gaussian form
    from a fixed standard-normal field, so a pixel's noise depends only on its own ``L``.
    """
    z = np.random.default_rng(shot.noise_seed).standard_normal(line_integral.shape).astype(np.float32)
    counts = shot.photons * np.exp(-line_integral.astype(np.float64))
    noisy = np.maximum(counts + np.sqrt(counts) * z, 0.5)
    measured = -np.log(noisy / shot.photons)
    return radiograph(measured, window=variation.window)
