"""Statistics of an experiment report: is an arm better than a baseline, or can they not be told apart?

An *arm* is one way of balancing the training set (no balancing, classical augmentation, pix2pix,
...). Every arm is trained once per seed and tested on the same test images of that seed, so two arms
are compared in paired ways:

* **over seeds** (:func:`paired_seed_comparison`): the per-seed differences ``b - a`` of a measure,
  with a Student t interval of their mean and its two-sided p-value (needs at least two seeds);
* **over the test set** (:func:`paired_bootstrap`, ``over_seeds=False``): every draw resamples the
  test *units* of every seed with replacement (the same units for both arms), recomputes the measure
  of both arms per seed and averages ``b - a`` over seeds. It covers test-set noise only;
* **over seeds and the test set** (``over_seeds=True``): every draw first resamples the seeds with
  replacement, then the test units of each seed drawn (independently for a seed drawn twice). It
  covers both training variance and test-set noise, and its p-value is what the verdicts use.

The test unit is the patient where the test split's patient ids repeat (several images of one
patient are resampled together: a cluster bootstrap), otherwise the image (:func:`cluster_index`).
Each draw is a vector of resampling counts per image; the measures take those counts as weights
(:func:`synthaug.pipeline.metrics.measure_batch` on weighted confusion matrices, and the weighted
ROC-AUC and average precision for the threshold-free measures), so all draws are measured at once.
Intervals are percentile intervals of the draws; the two-sided p-value of a difference is
``min(1, 2 (min(#draws <= 0, #draws >= 0) + 1) / (#draws + 1))`` (:func:`bootstrap_p`).

Verdict rule (:func:`verdict`, what the report prints):

* **not judged** with fewer than two seeds: one training run per arm says nothing of training
  variance, so one seed reports the difference and its test-set interval only;
* **helped** when the interval over seeds lies strictly above 0 *and* the multiplicity-adjusted
  p-value of the seed x test-unit bootstrap (Holm, :func:`holm`, over every comparison of the table)
  is below ``1 - level`` with a positive difference;
* **hurt** the same below 0;
* **cannot be told apart** otherwise (the sentence says which condition failed).

An interval touching 0 (e.g. identical arms: ``[0, 0]``) does not exclude it. Intervals of an arm's
own measure (a proportion: accuracy, F1, AUC ...) are bootstrap percentile intervals
(:func:`value_bootstrap`), or with no predictions a logit-scale t interval
(:func:`proportion_interval`): they stay inside [0, 1], where a t interval over a few seeds does not.

The measures themselves are :mod:`synthaug.pipeline.metrics`'s, the one home of every
classification measure. Student's t distribution is ``scipy.stats.t``'s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from synthaug.errors import SynthaugError
from synthaug.pipeline.metrics import (  # noqa: F401  re-exported: the measures a report may compare by
    MEASURES,
    POSITIVE_MEASURES,
    THRESHOLD_FREE,
    check_measure,
    measure_batch,
    measure_from_confusion,
    threshold_free_batch,
)

# --------------------------------------------------------------------------------------------------
# Student t quantile
# --------------------------------------------------------------------------------------------------

def t_quantile(df: int, level: float = 0.95) -> float:
    """Two-sided Student t critical value: ``P(|T| <= t) = level`` with ``df`` degrees of freedom.

    E.g. ``t_quantile(2) = 4.303``, ``t_quantile(9) = 2.262``; ``df = inf`` gives the normal quantile.
    ``scipy.stats.t`` (imported here, on first use: importing the report stays cheap).
    """
    if isinstance(df, bool) or not isinstance(df, (int, float, np.integer, np.floating)) or not df > 0:
        raise SynthaugError(f"degrees of freedom {df!r}; expected a number > 0")
    level = _check_level(level)
    from scipy.stats import t

    return float(t.isf((1.0 - level) / 2.0, float(df)))  # the upper tail holds (1 - level) / 2


# --------------------------------------------------------------------------------------------------
# Intervals
# --------------------------------------------------------------------------------------------------

def _check_level(level: float) -> float:
    if isinstance(level, bool) or not isinstance(level, (int, float, np.floating)) or not 0.0 < level < 1.0:
        raise SynthaugError(f"confidence level {level!r}; expected a number strictly between 0 and 1")
    return float(level)


def mean_interval(values, level: float = 0.95) -> dict:
    """Mean of ``values`` with its two-sided Student t interval at ``level``.

    Returns ``{"n", "mean", "std", "low", "high", "half_width", "level"}``; ``std`` is the sample
    standard deviation (ddof=1) and ``half_width = t_quantile(n - 1, level) * std / sqrt(n)``. With
    fewer than two values ``std``, ``low``, ``high`` and ``half_width`` are ``None``.
    """
    level = _check_level(level)
    try:
        v = np.asarray(values, float).ravel()
    except (TypeError, ValueError):
        raise SynthaugError(f"values {values!r} are not numbers") from None
    if v.size == 0:
        raise SynthaugError("no values to average")
    if not np.all(np.isfinite(v)):
        raise SynthaugError(f"values must be finite numbers; got {v.tolist()}")
    n, mean = int(v.size), float(v.mean())
    result = {"n": n, "mean": mean, "std": None, "low": None, "high": None, "half_width": None, "level": level}
    if n >= 2:
        std = float(v.std(ddof=1))
        half = t_quantile(n - 1, level) * std / math.sqrt(n)
        result.update(std=std, low=mean - half, high=mean + half, half_width=half)
    return result


def paired_seed_comparison(a, b, level: float = 0.95) -> dict:
    """Interval of the mean per-seed difference ``b - a`` of a measure (same seeds, same order).

    The keys of :func:`mean_interval` on the differences, and ``p``: the two-sided p-value of the
    paired t test of a zero mean difference (1 when every difference is 0, 0 when they are all the
    same non-zero value); bounds and ``p`` are ``None`` with a single seed.
    """
    try:
        a, b = np.asarray(a, float).ravel(), np.asarray(b, float).ravel()
    except (TypeError, ValueError):
        raise SynthaugError("per-seed values must be numbers") from None
    if a.shape != b.shape:
        raise SynthaugError(f"{a.size} per-seed values for the baseline but {b.size} for the arm; "
                            "expected the same seeds")
    result = mean_interval(b - a, level)
    result["p"] = None
    if result["std"] is not None:
        if result["std"] == 0:
            result["p"] = 1.0 if result["mean"] == 0 else 0.0
        else:
            from scipy.stats import t

            statistic = result["mean"] / (result["std"] / math.sqrt(result["n"]))
            result["p"] = float(min(1.0, 2 * t.sf(abs(statistic), result["n"] - 1)))
    return result


def proportion_interval(values, level: float = 0.95, eps: float = 1e-6) -> dict:
    """Mean of per-seed proportions (values in [0, 1]) with a t interval on the logit scale, mapped
    back: it stays inside [0, 1] where the t interval of the raw values does not (0.95, 0.99, 1.0
    over 3 seeds: t gives up to 1.05). Values are clipped to ``[eps, 1 - eps]`` before the logit.
    The keys of :func:`mean_interval` (``half_width``: half the back-mapped interval's width, which
    is not symmetric about the mean), and ``method``: ``"logit t"``."""
    result = mean_interval(values, level)
    v = np.asarray(values, float).ravel()
    if np.any((v < 0) | (v > 1)):
        raise SynthaugError(f"proportions must lie in [0, 1]; got {v.tolist()}")
    result["method"] = "logit t"
    if result["std"] is None:
        return result
    logit = np.log(np.clip(v, eps, 1 - eps) / (1 - np.clip(v, eps, 1 - eps)))
    inner = mean_interval(logit, level)
    low, high = (float(1 / (1 + np.exp(-x))) for x in (inner["low"], inner["high"]))
    result.update(low=low, high=high, half_width=(high - low) / 2)
    return result




# --------------------------------------------------------------------------------------------------
# Bootstrap: test units, resampling counts, measures of weighted predictions
# --------------------------------------------------------------------------------------------------

def cluster_index(patient_ids, n: int | None = None) -> tuple[np.ndarray, str]:
    """``(unit of each test image, unit name)``: the patient (``0..C-1``, ``"patient"``) where the test
    split's patient ids repeat, else the image itself (``0..n-1``, ``"image"``; also without ids)."""
    if patient_ids is None:
        if n is None:
            raise SynthaugError("cluster_index needs patient ids or an image count")
        return np.arange(n), "image"
    ids = np.asarray(patient_ids).astype(str)
    if n is not None and len(ids) != n:
        raise SynthaugError(f"{len(ids)} patient ids for {n} test images")
    names, inverse = np.unique(ids, return_inverse=True)
    if len(names) == len(ids):
        return np.arange(len(ids)), "image"
    return inverse.astype(np.int64).ravel(), "patient"


def _draw_counts(rng: np.random.Generator, units: np.ndarray, n_units: int, size: int) -> np.ndarray:
    """``(size, n)`` resampling counts: each row draws ``n_units`` units with replacement, and every image
    counts as often as its unit was drawn (a cluster bootstrap; the image bootstrap when units are images)."""
    picks = rng.integers(0, n_units, size=(size, n_units))
    counts = np.bincount((picks + (np.arange(size, dtype=np.int64) * n_units)[:, None]).ravel(),
                         minlength=size * n_units)
    return counts.reshape(size, n_units)[:, units].astype(float)


def _scorer(y: np.ndarray, x: np.ndarray, k: int, measure: str, positive: int | None):
    """``score(weights (m, n)) -> (m,)``: the measure of one arm's predictions ``x`` (labels, or
    probabilities for a threshold-free measure) under each row of image weights."""
    if measure in THRESHOLD_FREE:
        return lambda w: threshold_free_batch(y, x, measure, positive, w)
    codes = y * k + x

    def score(w: np.ndarray) -> np.ndarray:
        m = w.shape[0]
        flat = (codes[None, :] + (np.arange(m, dtype=np.int64) * (k * k))[:, None]).ravel()
        cms = np.bincount(flat, weights=w.ravel(), minlength=m * k * k).reshape(m, k, k)
        return measure_batch(cms, measure, positive)
    return score


@dataclass
class _Seed:
    """One seed's test set in a bootstrap: the statistic of weighted images and the test units."""

    stat: Callable[[np.ndarray], np.ndarray]
    n: int
    units: np.ndarray
    n_units: int
    unit: str


def _draws(sample: _Seed, rng: np.random.Generator, size: int) -> np.ndarray:
    out = np.empty(size)
    chunk = max(1, 4_000_000 // max(sample.n, sample.n_units))  # bound the (draws, n) arrays to ~32 MB
    for start in range(0, size, chunk):
        m = min(chunk, size - start)
        out[start:start + m] = sample.stat(_draw_counts(rng, sample.units, sample.n_units, m))
    return out


def _resample(samples: list[_Seed], n_boot: int, seed: int, over_seeds: bool) -> tuple[np.ndarray, np.ndarray]:
    """(observed statistic per seed, ``n_boot`` draws of its mean over seeds). ``over_seeds``: every draw
    also resamples the seeds with replacement; a seed drawn twice gets two independent test resamples."""
    rng = np.random.default_rng(seed)
    observed = np.array([float(s.stat(np.ones((1, s.n)))[0]) for s in samples])
    if not over_seeds:
        return observed, sum(_draws(s, rng, n_boot) for s in samples) / len(samples)
    picks = rng.integers(0, len(samples), size=(n_boot, len(samples)))
    draws = np.zeros(n_boot)
    for i, s in enumerate(samples):
        rows = np.nonzero(picks == i)[0]
        if len(rows):
            draws += np.bincount(rows, weights=_draws(s, rng, len(rows)), minlength=n_boot)
    return observed, draws / len(samples)


def bootstrap_p(draws) -> float | None:
    """Two-sided bootstrap p-value of "the difference is 0": ``min(1, 2 (min(#draws <= 0, #draws >= 0)
    + 1) / (#draws + 1))`` over the finite draws (1 when every draw is 0); None without draws."""
    d = np.asarray(draws, float)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return None
    return float(min(1.0, 2 * (min(int((d <= 0).sum()), int((d >= 0).sum())) + 1) / (d.size + 1)))


def _summary(observed: np.ndarray, draws: np.ndarray, samples: list[_Seed], n_boot: int, level: float,
             over_seeds: bool) -> dict:
    valid = draws[np.isfinite(draws)]
    alpha = 1.0 - level
    low = high = None
    if valid.size:
        low, high = (float(q) for q in np.quantile(valid, [alpha / 2, 1 - alpha / 2]))
    return {"value": float(observed.mean()) if np.all(np.isfinite(observed)) else None,
            "low": low, "high": high, "half_width": None if low is None else (high - low) / 2,
            "n_boot": n_boot, "n_valid": int(valid.size), "n_images": [s.n for s in samples],
            "n_units": [s.n_units for s in samples],
            "unit": "patient" if any(s.unit == "patient" for s in samples) else "image",
            "over_seeds": bool(over_seeds), "level": level}


def _check_boot(n_boot, level) -> tuple[int, float]:
    level = _check_level(level)
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise SynthaugError(f"n_boot {n_boot!r}; expected a whole number >= 1")
    return int(n_boot), level


def _units(clusters, s: int, n: int) -> tuple[np.ndarray, int, str]:
    ids = None if clusters is None else clusters[s]
    units, unit = cluster_index(ids, n)
    return units, int(units.max()) + 1 if n else 0, unit


def _as_labels(y, what: str, seed_index: int) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise SynthaugError(f"{what} of seed {seed_index} has shape {arr.shape}; expected one label per test image")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.issubdtype(arr.dtype, np.number) or not np.all(arr == np.round(arr)):
            raise SynthaugError(f"{what} of seed {seed_index} must be integer class indices")
    arr = arr.astype(np.int64)
    if arr.size and arr.min() < 0:
        raise SynthaugError(f"{what} of seed {seed_index} has a negative class index")
    return arr


def _as_probabilities(x, n: int, what: str, seed_index: int) -> np.ndarray:
    try:
        arr = np.asarray(x, float)
    except (TypeError, ValueError):
        raise SynthaugError(f"{what} of seed {seed_index} are not numbers") from None
    if arr.ndim != 2 or arr.shape[0] != n or arr.shape[1] < 2 or not np.all(np.isfinite(arr)):
        raise SynthaugError(f"{what} of seed {seed_index} has shape {arr.shape}; expected finite class "
                            f"probabilities of shape ({n}, K >= 2)")
    return arr


def _prepared(groups: list, names: tuple[str, ...], measure: str, positive, num_classes) -> tuple[list, int]:
    """Checked arrays of every seed (``y`` then one array per arm) and the class count ``K``."""
    if not groups:
        raise SynthaugError("no seeds to bootstrap: pairs is empty")
    free = measure in THRESHOLD_FREE
    out = []
    for s, group in enumerate(groups):
        if len(group) != len(names):
            raise SynthaugError(f"seed {s}: expected ({', '.join(names)}); got {len(group)} arrays")
        y = _as_labels(group[0], names[0], s)
        xs = [_as_probabilities(x, len(y), what, s) if free else _as_labels(x, what, s)
              for x, what in zip(group[1:], names[1:])]
        if not free and any(len(x) != len(y) for x in xs):
            raise SynthaugError(f"seed {s}: {len(y)} true labels, " + " and ".join(str(len(x)) for x in xs) +
                                " predictions; expected the same test images for both arms")
        if len(y) == 0:
            raise SynthaugError(f"seed {s} has no test images")
        out.append((y, *xs))
    if free:
        k = out[0][1].shape[1]
        if any(x.shape[1] != k for group in out for x in group[1:]) or max(int(g[0].max()) for g in out) >= k:
            raise SynthaugError(f"probabilities of {k} classes in one seed, another count or a label >= {k} elsewhere")
        if positive is not None:
            check_measure("recall", positive, k)
        return out, k
    seen = max(int(max(x.max() for x in group)) for group in out) + 1
    if positive is not None and isinstance(positive, (int, np.integer)) and not isinstance(positive, bool):
        seen = max(seen, int(positive) + 1)
    if num_classes is None:
        k = seen
    elif isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < seen:
        raise SynthaugError(f"num_classes {num_classes!r}; the labels need at least {seen}")
    else:
        k = int(num_classes)
    check_measure(measure, positive, k)
    return out, k


def paired_bootstrap(pairs: Sequence, measure: str, positive: int | None, n_boot: int = 2000, seed: int = 0,
                     level: float = 0.95, *, num_classes: int | None = None, clusters: Sequence | None = None,
                     over_seeds: bool = False) -> dict:
    """Paired bootstrap of the difference ``measure(b) - measure(a)``, averaged over seeds.

    ``pairs`` holds one ``(y_true, a, b)`` triple per seed on the same test images of that seed:
    predicted labels, or for ``auc`` / ``auprc`` class probabilities ``(n, K)``. ``clusters``: one
    array of patient ids per seed (or None entries): where they repeat, the patient is the unit drawn
    (:func:`cluster_index`). Each of ``n_boot`` draws resamples the units of every seed with
    replacement (the same for ``a`` and ``b``); ``over_seeds`` resamples the seeds too (the seed x
    test-unit bootstrap). ``num_classes`` defaults to one more than the largest label or positive
    index seen; give it when a class may be missing from a test set (it changes macro averages).

    Returns ``{"diff"`` (observed mean over seeds), ``"low"``, ``"high"`` (percentile interval at
    ``level``), ``"half_width"``, ``"p"`` (:func:`bootstrap_p`), ``"n_boot"``, ``"n_valid"`` (draws
    where the measure is defined), ``"n_images"``, ``"n_units"`` (per seed), ``"unit"`` (``"image"`` or
    ``"patient"``), ``"over_seeds"``, ``"level"}``. Deterministic for a given ``seed``.
    """
    n_boot, level = _check_boot(n_boot, level)
    groups, k = _prepared(list(pairs), ("y_true", "pred_a", "pred_b"), measure, positive, num_classes)
    if clusters is not None and len(clusters) != len(groups):
        raise SynthaugError(f"{len(clusters)} patient-id arrays for {len(groups)} seeds")
    samples = []
    for s, (y, a, b) in enumerate(groups):
        score_a, score_b = _scorer(y, a, k, measure, positive), _scorer(y, b, k, measure, positive)
        samples.append(_Seed(lambda w, fa=score_a, fb=score_b: fb(w) - fa(w), len(y), *_units(clusters, s, len(y))))
    observed, draws = _resample(samples, n_boot, seed, over_seeds)
    result = _summary(observed, draws, samples, n_boot, level, over_seeds)
    return {"diff": result.pop("value"), **result, "p": bootstrap_p(draws)}


def value_bootstrap(sets: Sequence, measure: str, positive: int | None, n_boot: int = 2000, seed: int = 0,
                    level: float = 0.95, *, num_classes: int | None = None, clusters: Sequence | None = None,
                    over_seeds: bool = True) -> dict:
    """Bootstrap percentile interval of one arm's measure, averaged over seeds: ``sets`` holds one
    ``(y_true, predictions)`` pair per seed (labels, or probabilities for ``auc`` / ``auprc``); the
    other arguments as :func:`paired_bootstrap`'s (here ``over_seeds`` defaults to True: seeds and
    test units). Each draw is a mean of measures in [0, 1], so the interval of a proportion stays in
    [0, 1]. Returns the keys of :func:`paired_bootstrap` with ``"mean"`` for ``"diff"`` and no ``"p"``."""
    n_boot, level = _check_boot(n_boot, level)
    groups, k = _prepared(list(sets), ("y_true", "predictions"), measure, positive, num_classes)
    if clusters is not None and len(clusters) != len(groups):
        raise SynthaugError(f"{len(clusters)} patient-id arrays for {len(groups)} seeds")
    samples = [_Seed(_scorer(y, x, k, measure, positive), len(y), *_units(clusters, s, len(y)))
               for s, (y, x) in enumerate(groups)]
    observed, draws = _resample(samples, n_boot, seed, over_seeds)
    result = _summary(observed, draws, samples, n_boot, level, over_seeds)
    return {"mean": result.pop("value"), **result}


# --------------------------------------------------------------------------------------------------
# Multiplicity
# --------------------------------------------------------------------------------------------------

def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values, in the order given: the i-th smallest of the ``m`` p-values
    becomes ``max_{j <= i} min(1, (m - j + 1) p_(j))``. A comparison is significant at level alpha
    after the correction when its adjusted p-value is below alpha; the family-wise error rate over
    the ``m`` comparisons is then at most alpha. ``None`` (no p-value) stays None and is not counted."""
    present = [i for i, value in enumerate(p_values) if value is not None]
    for i in present:
        if not 0.0 <= float(p_values[i]) <= 1.0:
            raise SynthaugError(f"p-value {p_values[i]!r} is not in [0, 1]")
    out: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, i in enumerate(sorted(present, key=lambda j: float(p_values[j]))):
        running = max(running, min(1.0, (len(present) - rank) * float(p_values[i])))
        out[i] = running
    return out


# --------------------------------------------------------------------------------------------------
# Verdict
# --------------------------------------------------------------------------------------------------

HELPED, HURT, UNCLEAR, NOT_JUDGED = "helped", "hurt", "cannot be told apart", "not judged"
#: What a one-seed comparison's verdict says after "not judged".
ONE_SEED = "1 seed: the interval covers test-set noise only, not training variance"


def _side(interval: dict | None, key: str = "low") -> int:
    """+1 when the interval lies strictly above 0, -1 strictly below, 0 otherwise (or absent)."""
    if not interval or interval.get("low") is None or interval.get("high") is None:
        return 0
    return 1 if interval["low"] > 0 else -1 if interval["high"] < 0 else 0


def _p_used(comparison: dict) -> float | None:
    """The p-value a verdict uses: Holm-adjusted where the comparison was adjusted, else its own."""
    for key in ("p_holm", "p"):
        if comparison.get(key) is not None:
            return float(comparison[key])
    return None


def verdict(comparison: dict) -> str:
    """``helped`` | ``hurt`` | ``cannot be told apart`` | ``not judged`` by the rule of the module docstring.

    ``comparison``: ``{"seed"`` (:func:`paired_seed_comparison`), ``"p"`` (of the seed x test-unit
    bootstrap, or the paired t test without predictions), ``"p_holm"`` (adjusted; optional)``}``.
    """
    seed = comparison.get("seed") or {}
    if seed.get("low") is None:
        return NOT_JUDGED
    alpha = 1.0 - float(seed.get("level", 0.95))
    side, p = _side(seed), _p_used(comparison)
    if side and p is not None and p < alpha and np.sign(seed["mean"]) == side:
        return HELPED if side > 0 else HURT
    return UNCLEAR


def _signed(x: float) -> str:
    x = round(float(x), 3)
    return f"{x + 0.0 if x != 0 else 0.0:+.3f}"


def _level_text(d: dict) -> str:
    return f"{100 * float(d.get('level', 0.95)):g}%"


def p_text(p: float) -> str:
    """``p = 0.412`` / ``p < 0.001``."""
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def units_text(boot: dict) -> str:
    """What a bootstrap resampled: ``300 test images per seed``, ``120 test patients (300 images)``."""
    def span(values: list[int]) -> str:
        return f"{values[0]}" if min(values) == max(values) else f"{min(values)}-{max(values)}"

    sizes = [int(m) for m in boot.get("n_images") or []]
    if not sizes:
        return "test images"
    per = "" if len(sizes) == 1 else " per seed"
    if boot.get("unit") == "patient":
        return f"{span([int(u) for u in boot['n_units']])} test patients ({span(sizes)} images){per}"
    return f"{span(sizes)} test images{per}"


def _interval(d: dict) -> str:
    return f"{_signed(d['low'])} to {_signed(d['high'])}"


def _seeds_parts(comparison: dict) -> list[str]:
    """The numbers of a comparison over two or more seeds."""
    seed, joint, boot = comparison["seed"], comparison.get("seed_bootstrap"), comparison.get("bootstrap")
    parts = [f"{_level_text(seed)} interval over {seed['n']} seeds {_interval(seed)}"]
    m = int(comparison.get("holm_comparisons") or 1)
    adjusted = f", Holm-adjusted over {m} comparisons {p_text(comparison['p_holm'])}" \
        if m > 1 and comparison.get("p_holm") is not None else ""
    if joint is not None and joint.get("low") is not None:
        parts.append(f"seed x test-{joint['unit']} bootstrap {_interval(joint)}, "
                     f"{p_text(comparison['p'])}{adjusted}" if comparison.get("p") is not None else
                     f"seed x test-{joint['unit']} bootstrap {_interval(joint)}")
    elif comparison.get("p") is not None:
        parts.append(f"paired t test over seeds {p_text(comparison['p'])}{adjusted}")
    if boot is not None and boot.get("low") is not None:
        parts.append(f"bootstrap over {units_text(boot)} alone (test-set noise only) {_interval(boot)}")
    return parts


def _why_unclear(comparison: dict) -> str:
    seed = comparison["seed"]
    alpha = 1.0 - float(seed.get("level", 0.95))
    p = _p_used(comparison)
    name = "Holm-adjusted p-value" if comparison.get("p_holm") is not None and \
        int(comparison.get("holm_comparisons") or 1) > 1 else "p-value"
    p_low = p is not None and p < alpha
    if _side(seed):
        why = f"the interval over seeds excludes 0 but the {name} is not below {alpha:g}" if p is not None else \
            "the interval over seeds excludes 0 but there is no p-value"
    elif p_low:
        why = f"the {name} is below {alpha:g} but the interval over seeds includes 0"
    else:
        why = f"the interval over seeds includes 0 and the {name} is not below {alpha:g}"
    if _side(comparison.get("bootstrap")):
        why += "; the test-set bootstrap alone excludes 0, but it leaves out training variance"
    return f" ({why})"


def verdict_sentence(arm: str, baseline: str, measure: str, comparison: dict) -> str:
    """One plain sentence with the numbers and the verdict, e.g.

    ``pix2pix vs augment: macro_f1 -0.055 (95% interval over 3 seeds -0.260 to +0.151; seed x
    test-image bootstrap -0.190 to +0.090, p = 0.412, Holm-adjusted over 3 comparisons p = 1.000;
    bootstrap over 300 test images per seed alone (test-set noise only) -0.081 to -0.030): cannot be
    told apart (the interval over seeds includes 0 and the Holm-adjusted p-value is not below 0.05;
    the test-set bootstrap alone excludes 0, but it leaves out training variance).``

    and with one seed ``pix2pix vs augment: macro_f1 -0.087 (1 seed; 95% paired bootstrap over 300
    test images -0.120 to -0.050): not judged (1 seed: the interval covers test-set noise only, not
    training variance).``
    """
    seed, boot = comparison.get("seed") or {}, comparison.get("bootstrap")
    diff = next((d[k] for d, k in ((seed, "mean"), (comparison.get("seed_bootstrap") or {}, "diff"),
                                   (boot or {}, "diff")) if d.get(k) is not None), None)
    result = verdict(comparison)
    head = f"{arm} vs {baseline}: {measure}" + (f" {_signed(diff)}" if diff is not None else "")
    if result != NOT_JUDGED:
        text = f"{head} ({'; '.join(_seeds_parts(comparison))}): {result}"
        return text + (_why_unclear(comparison) if result == UNCLEAR else "") + "."
    n = int(seed.get("n") or 1)
    if boot is not None and boot.get("low") is not None:
        return (f"{head} ({n} seed; {_level_text(boot)} paired bootstrap over {units_text(boot)} "
                f"{_interval(boot)}): {NOT_JUDGED} ({ONE_SEED}).")
    return f"{head} ({n} seed; no test-image predictions to bootstrap): {NOT_JUDGED} (1 seed, and no interval)."
