"""Pneumonia patterns inserted in Hounsfield units inside the lung lobes of a simulated patient.

Both models follow the same recipe: a smooth random field (multifocal "foci") plus a log-prior that
says *where* the disease prefers to be, thresholded per lung so that a chosen fraction of the lung
is involved, with a soft ramp around the threshold (lesions fade into normal lung over a few mm).
Lesions only raise the density of lung voxels (the label map decides what lung is), so vessels
stay visible through ground glass, as they do on CT.

- COVID-19 (Fleischner/RSNA "typical" pattern): multifocal, bilateral, peripheral (subpleural),
  lower-lobe-predominant ground-glass opacities (GGO, about -700 to -300 HU) with rounded
  morphology, in more severe cases with consolidation (-100..+30 HU) in the lesion cores. Severity
  is the fraction of lung involved, graded as in MosMedData: CT-1 < 25 %, CT-2 25-50 %,
  CT-3 50-75 %, CT-4 > 75 %.
- Viral (non-COVID) pneumonia: central/perihilar, peribronchovascular interstitial thickening
  (peribronchial cuffing around the bronchovascular bundles) with a diffuse faint haze; less
  peripheral and less lobar than COVID-19.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synthaug import SynthaugError
from synthaug_plugins.ctsim.anatomy import Anatomy

#: MosMedData severity grades: fraction of lung parenchyma involved.
MOSMED_GRADES = {1: (0.0, 0.25), 2: (0.25, 0.50), 3: (0.50, 0.75), 4: (0.75, 1.0)}


@dataclass(frozen=True)
class CovidLesions:
    #: Probability of CT-1..CT-4. MosMedData's CT positives are about 80/15/5/0.2 %, but most CT-1
    #: disease is invisible on a radiograph (CXR sensitivity for COVID-19 is about 70 %), and the
    #: Kaggle COVID images come from patients whose films were abnormal: weighted towards CT-2/3.
    grade_weights: tuple[float, float, float, float] = (0.15, 0.4, 0.3, 0.15)
    #: Involvement drawn uniformly within the grade, clipped to these bounds (below 10 %: a 64-px
    #: radiograph shows nothing; above 90 %: no aerated lung left, not seen in survivors).
    involvement_bounds: tuple[float, float] = (0.10, 0.90)
    #: Ground-glass attenuation, HU, drawn per patient (partial filling of the air spaces).
    ggo_hu: tuple[float, float] = (-700.0, -300.0)
    #: Probability of consolidation for CT-1..CT-4 (organising pneumonia in later/severe disease).
    consolidation_probability: tuple[float, float, float, float] = (0.1, 0.3, 0.5, 0.7)
    #: Consolidation attenuation, HU (air spaces filled: soft-tissue density).
    consolidation_hu: tuple[float, float] = (-100.0, 30.0)
    #: Subpleural predominance: the prior falls by e every this many mm from the pleura.
    peripheral_mm: float = 18.0
    #: Lateral predominance on the frontal film: the prior grows by e^lateral_weight from the
    #: midline to the lateral chest wall ("peripheral, outer third" on chest radiographs).
    lateral_weight: float = 1.5
    #: Relative prior of lower, middle and upper lobes (lower-lobe predominance).
    lobe_weights: tuple[float, float, float] = (1.0, 0.6, 0.35)
    #: Size of one focus: correlation length of the random field, mm (rounded GGO, 1-3 cm).
    focus_mm: float = 10.0
    #: Width of the soft edge, in standard deviations of the field (about 3-5 mm here).
    edge: float = 0.35


@dataclass(frozen=True)
class ViralLesions:
    #: Fraction of lung involved, drawn uniformly (bronchiolitis/interstitial viral pneumonia).
    involvement: tuple[float, float] = (0.15, 0.45)
    #: Perihilar predominance: the prior falls by e every this many mm from the hilum.
    perihilar_mm: float = 30.0
    #: Width of the peribronchovascular cuff, mm (interstitial thickening around bundles).
    cuff_mm: float = 6.0
    #: Attenuation of the thickened interstitium, HU.
    interstitial_hu: tuple[float, float] = (-400.0, -150.0)
    #: Diffuse faint haze over both lungs, HU (mild ground glass, more diffuse than COVID-19).
    haze_hu: tuple[float, float] = (-750.0, -600.0)
    #: Reach of the haze relative to ``perihilar_mm`` (it fades by e every spread x perihilar_mm).
    haze_spread: float = 1.0
    #: Correlation length of the random field, mm (smaller than COVID foci: reticular texture).
    texture_mm: float = 6.0
    edge: float = 0.35


@dataclass
class LesionResult:
    hu: np.ndarray  # float32, the patient's HU with lesions
    weight: np.ndarray  # float32 in [0, 1]: how much each voxel is diseased (0 outside the lungs)
    involvement: float  # fraction of lung voxels with weight > 0.5
    grade: int  # MosMedData CT-0..CT-4 (graded for every class; 0 for normal)


def grade_of(involvement: float) -> int:
    """MosMedData grade of an involved lung fraction (0: none)."""
    if involvement <= 0:
        return 0
    for grade, (low, high) in MOSMED_GRADES.items():
        if low <= involvement < high:
            return grade
    return 4


def _smooth_field(shape, spacing, correlation_mm: float, rng: np.random.Generator) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    noise = rng.standard_normal(shape).astype(np.float32)
    field = gaussian_filter(noise, sigma=[correlation_mm / s for s in spacing], mode="wrap")
    return field / max(float(field.std()), 1e-6)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _threshold_per_lung(score: np.ndarray, sides: list[np.ndarray], fractions: list[float], edge: float) -> np.ndarray:
    """Soft lesion weight: 0.5 exactly at each lung's (1 - fraction) quantile of the score."""
    weight = np.zeros(score.shape, np.float32)
    for side, fraction in zip(sides, fractions):
        values = score[side]
        if values.size == 0 or fraction <= 0:
            continue
        cut = np.quantile(values, 1.0 - min(fraction, 1.0))
        weight[side] = _smoothstep(0.5 + (values - cut) / (2 * edge))
    return weight


def _raise_density(hu: np.ndarray, weight: np.ndarray, target: np.ndarray | float) -> np.ndarray:
    # Lesions only add density: a vessel (+40 HU) inside ground glass (-500 HU) stays a vessel.
    return (hu + weight * np.maximum(target - hu, 0.0)).astype(np.float32)


def insert_covid(patient: Anatomy, config: CovidLesions, rng: np.random.Generator) -> LesionResult:
    lung = patient.lung
    grade = int(rng.choice(4, p=np.asarray(config.grade_weights) / sum(config.grade_weights))) + 1
    low, high = MOSMED_GRADES[grade]
    target = float(np.clip(rng.uniform(low, high), *config.involvement_bounds))

    lobes = patient.lobes
    lobe_prior = np.zeros(patient.labels.shape, np.float32)
    for name, label in lobes.items():
        weight = config.lobe_weights[0 if "lower" in name else 1 if "middle" in name else 2]
        lobe_prior[patient.labels == label] = np.log(weight)
    field = _smooth_field(lung.shape, patient.spacing, config.focus_mm, rng)
    x = np.arange(lung.shape[0], dtype=np.float32)[:, None, None]
    midline = float(np.argwhere(lung)[:, 0].mean()) if lung.any() else lung.shape[0] / 2
    lateral = np.abs(x - midline) / max(float(np.abs(x - midline)[np.any(lung, axis=(1, 2))].max()), 1.0)
    score = field - patient.pleura_mm / config.peripheral_mm + lobe_prior + config.lateral_weight * lateral
    # Bilateral: each lung gets its share, within +-20 % of the patient's involvement.
    sides = [np.isin(patient.labels, patient.side_lobes(s)) for s in ("left", "right")]
    tilt = rng.uniform(-0.2, 0.2)
    weight = _threshold_per_lung(score, sides, [target * (1 + tilt), target * (1 - tilt)], config.edge) * lung

    ggo = rng.uniform(*config.ggo_hu) + 60.0 * _smooth_field(lung.shape, patient.spacing, 20.0, rng)
    lesion_hu = ggo
    if rng.random() < config.consolidation_probability[grade - 1]:
        # Consolidation in the lesion cores: one standard deviation of the field above the edge.
        core = _threshold_per_lung(score, sides, [target * 0.35] * 2, config.edge) * lung
        lesion_hu = ggo + core * (rng.uniform(*config.consolidation_hu) - ggo)
    hu = _raise_density(patient.hu, weight, lesion_hu)
    involvement = float((weight > 0.5)[lung].mean()) if lung.any() else 0.0
    return LesionResult(hu, weight, involvement, grade_of(involvement))


def insert_viral(patient: Anatomy, config: ViralLesions, rng: np.random.Generator) -> LesionResult:
    from scipy.ndimage import gaussian_filter

    lung = patient.lung
    target = float(rng.uniform(*config.involvement))
    # Bronchovascular bundles: lung voxels denser than -500 HU (vessels and bronchial walls), away
    # from the chest wall, where partial volume with the pleura would mimic them.
    interior = patient.pleura_mm > 2.5 * max(patient.spacing)
    bundles = (lung & interior & (patient.hu > -500)).astype(np.float32)
    cuff = gaussian_filter(bundles, sigma=[config.cuff_mm / s for s in patient.spacing])
    cuff = cuff / max(float(np.percentile(cuff[lung], 95)) if lung.any() else 1.0, 1e-6)
    texture = _smooth_field(lung.shape, patient.spacing, config.texture_mm, rng)
    score = (2.0 * np.log(cuff + 0.05) + 0.6 * texture - patient.hilum_mm / config.perihilar_mm)
    sides = [np.isin(patient.labels, patient.side_lobes(s)) for s in ("left", "right")]
    tilt = rng.uniform(-0.1, 0.1)  # viral pneumonia is near-symmetric
    weight = _threshold_per_lung(score, sides, [target * (1 + tilt), target * (1 - tilt)], config.edge) * lung

    haze = np.exp(-patient.hilum_mm / (config.haze_spread * config.perihilar_mm)) * lung
    hu = _raise_density(patient.hu, 0.6 * haze, rng.uniform(*config.haze_hu))
    hu = _raise_density(hu, weight, rng.uniform(*config.interstitial_hu))
    involvement = float((weight > 0.5)[lung].mean()) if lung.any() else 0.0
    return LesionResult(hu, np.maximum(weight, 0.6 * haze).astype(np.float32), involvement, grade_of(involvement))


def check_lesion_configs(covid: CovidLesions, viral: ViralLesions) -> None:
    if len(covid.grade_weights) != 4 or min(covid.grade_weights) < 0 or sum(covid.grade_weights) <= 0:
        raise SynthaugError(f"covid grade_weights must be four non-negative numbers (CT-1..CT-4); "
                            f"got {covid.grade_weights}")
    for name, (low, high) in (("ggo_hu", covid.ggo_hu), ("consolidation_hu", covid.consolidation_hu),
                              ("interstitial_hu", viral.interstitial_hu), ("haze_hu", viral.haze_hu)):
        if not -1000 <= low <= high <= 200:
            raise SynthaugError(f"{name} must be (low, high) HU within -1000..200; got ({low}, {high})")
    if not 0 < viral.involvement[0] <= viral.involvement[1] <= 1:
        raise SynthaugError(f"viral involvement must be (low, high) within (0, 1]; got {viral.involvement}")
