"""Statistics of an experiment report: is an arm better than a baseline, or can they not be told apart?

An *arm* is one way of balancing the training set (no balancing, classical augmentation, pix2pix,
...). Every arm is trained once per seed and tested on the same test images, so two arms can be
compared in two paired ways:

* **over seeds** (:func:`paired_seed_comparison`): the per-seed differences ``b - a`` of a measure,
  with a Student t interval of their mean (needs at least two seeds);
* **over test images** (:func:`paired_bootstrap`): every bootstrap draw resamples the test images of
  every seed with replacement (the same images for both arms), recomputes the measure of both arms
  per seed and averages ``b - a`` over seeds; the percentile interval of those draws.

The first says how much the comparison moves when training is repeated; the second how much it
would move on another test set of the same size.

Verdict rule (what the report prints):

* **helped** when every available interval lies strictly above 0;
* **hurt** when every available interval lies strictly below 0;
* **cannot be told apart** otherwise -- including when one interval excludes 0 and the other does
  not (the sentence then says which one did), and when no interval exists at all (one seed and no
  test-image predictions).

The interval over seeds is available when there are at least two seeds; the bootstrap interval when
predictions on the test images were given. An interval touching 0 (e.g. identical arms: ``[0, 0]``)
does not exclude 0.

The measures themselves (:data:`MEASURES`, :func:`measure_batch` on the bootstrap's stacks of
confusion matrices) are :mod:`synthaug.pipeline.metrics`'s, the one home of every classification
measure, with its conventions (scikit-learn's ``zero_division=0``). Student's t quantile is
``scipy.stats.t``'s.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from synthaug.errors import SynthaugError
from synthaug.pipeline.metrics import (  # noqa: F401  re-exported: the measures a report may compare by
    MEASURES,
    POSITIVE_MEASURES,
    check_measure,
    measure_batch,
    measure_from_confusion,
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

    The keys of :func:`mean_interval` on the differences; bounds ``None`` with a single seed.
    """
    try:
        a, b = np.asarray(a, float).ravel(), np.asarray(b, float).ravel()
    except (TypeError, ValueError):
        raise SynthaugError("per-seed values must be numbers") from None
    if a.shape != b.shape:
        raise SynthaugError(f"{a.size} per-seed values for the baseline but {b.size} for the arm; "
                            "expected the same seeds")
    return mean_interval(b - a, level)


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


def _bootstrap_confusions(y: np.ndarray, pred: np.ndarray, idx: np.ndarray, k: int) -> np.ndarray:
    """``(B, K, K)`` confusion matrices of the resampled images ``idx`` (shape ``(B, n)``), one bincount."""
    b = idx.shape[0]
    codes = (y * k + pred)[idx] + (np.arange(b, dtype=np.int64) * (k * k))[:, None]
    return np.bincount(codes.ravel(), minlength=b * k * k).reshape(b, k, k)


def paired_bootstrap(pairs: Sequence, measure: str, positive: int | None, n_boot: int = 2000, seed: int = 0,
                     level: float = 0.95, *, num_classes: int | None = None) -> dict:
    """Paired bootstrap over test images of the difference ``measure(b) - measure(a)``, averaged over seeds.

    ``pairs`` holds one ``(y_true, pred_a, pred_b)`` triple of integer arrays per seed, all on the
    same test images of that seed. Each of ``n_boot`` draws resamples the test images of every seed
    with replacement -- the same indices for ``a`` and ``b`` -- computes the measure of both arms per
    seed and averages ``b - a`` over seeds. The confusion matrices of all draws are built at once
    with one ``np.bincount`` of ``true * K + pred`` offset by ``draw * K * K`` (in chunks of draws
    only to bound memory). ``num_classes`` (``K``) defaults to one more than the largest label or
    positive index seen; give it when a class may be missing from a test set, as it changes macro
    averages.

    Returns ``{"diff"`` (observed mean over seeds), ``"low"``, ``"high"`` (percentile interval at
    ``level``), ``"half_width"`` ((high - low) / 2), ``"n_boot"``, ``"n_images"`` (per seed list),
    ``"level"}``. Deterministic for a given ``seed``.
    """
    level = _check_level(level)
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise SynthaugError(f"n_boot {n_boot!r}; expected a whole number >= 1")
    n_boot = int(n_boot)
    pairs = list(pairs)
    if not pairs:
        raise SynthaugError("no seeds to bootstrap: pairs is empty")
    triples = []
    for s, triple in enumerate(pairs):
        if len(triple) != 3:
            raise SynthaugError(f"seed {s}: expected (y_true, pred_a, pred_b); got {len(triple)} arrays")
        y, pa, pb = (_as_labels(arr, what, s) for arr, what in zip(triple, ("y_true", "pred_a", "pred_b")))
        if not (len(y) == len(pa) == len(pb)):
            raise SynthaugError(f"seed {s}: {len(y)} true labels, {len(pa)} and {len(pb)} predictions; "
                                "expected the same test images for both arms")
        if len(y) == 0:
            raise SynthaugError(f"seed {s} has no test images")
        triples.append((y, pa, pb))
    seen = max(int(max(y.max(), pa.max(), pb.max())) for y, pa, pb in triples) + 1
    if positive is not None and isinstance(positive, (int, np.integer)) and not isinstance(positive, bool):
        seen = max(seen, int(positive) + 1)
    if num_classes is None:
        k = seen
    else:
        if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < seen:
            raise SynthaugError(f"num_classes {num_classes!r}; the labels need at least {seen}")
        k = int(num_classes)
    check_measure(measure, positive, k)

    rng = np.random.default_rng(seed)
    observed = np.empty(len(triples))
    draws = np.zeros(n_boot)
    for s, (y, pa, pb) in enumerate(triples):
        n = len(y)
        full = np.arange(n)[None]
        observed[s] = (measure_batch(_bootstrap_confusions(y, pb, full, k), measure, positive)[0]
                       - measure_batch(_bootstrap_confusions(y, pa, full, k), measure, positive)[0])
        chunk = max(1, 4_000_000 // n)  # bound the (draws, n) index array to ~32 MB
        for start in range(0, n_boot, chunk):
            idx = rng.integers(0, n, size=(min(chunk, n_boot - start), n))
            draws[start:start + len(idx)] += (measure_batch(_bootstrap_confusions(y, pb, idx, k), measure, positive)
                                              - measure_batch(_bootstrap_confusions(y, pa, idx, k), measure, positive))
    draws /= len(triples)
    alpha = 1.0 - level
    low, high = (float(q) for q in np.quantile(draws, [alpha / 2, 1 - alpha / 2]))
    return {"diff": float(observed.mean()), "low": low, "high": high, "half_width": (high - low) / 2,
            "n_boot": n_boot, "n_images": [len(t[0]) for t in triples], "level": level}


# --------------------------------------------------------------------------------------------------
# Verdict
# --------------------------------------------------------------------------------------------------

HELPED, HURT, UNCLEAR = "helped", "hurt", "cannot be told apart"


def _intervals(seed_cmp: dict | None, boot: dict | None) -> list[tuple[str, float, float]]:
    found = []
    if seed_cmp is not None and seed_cmp.get("low") is not None and seed_cmp.get("high") is not None:
        found.append(("seeds", float(seed_cmp["low"]), float(seed_cmp["high"])))
    if boot is not None and boot.get("low") is not None and boot.get("high") is not None:
        found.append(("bootstrap", float(boot["low"]), float(boot["high"])))
    return found


def verdict(seed_cmp: dict | None, boot: dict | None) -> str:
    """``"helped"`` | ``"hurt"`` | ``"cannot be told apart"`` by the rule of the module docstring."""
    found = _intervals(seed_cmp, boot)
    if found and all(low > 0 for _, low, _ in found):
        return HELPED
    if found and all(high < 0 for _, _, high in found):
        return HURT
    return UNCLEAR


def _signed(x: float) -> str:
    x = round(float(x), 3)
    return f"{x + 0.0 if x != 0 else 0.0:+.3f}"


def _level_text(d: dict) -> str:
    return f"{100 * float(d.get('level', 0.95)):g}%"


def verdict_sentence(arm: str, baseline: str, measure: str, seed_cmp: dict | None, boot: dict | None) -> str:
    """One plain sentence with the numbers and the verdict, e.g.

    ``pix2pix vs augment: macro_f1 +0.032 (95% interval over 3 seeds -0.010 to +0.074; paired
    bootstrap over 300 test images per seed +0.005 to +0.060): cannot be told apart (only the paired
    bootstrap interval excludes 0).``
    """
    if seed_cmp is not None and seed_cmp.get("mean") is not None:
        diff = seed_cmp["mean"]
    elif boot is not None and boot.get("diff") is not None:
        diff = boot["diff"]
    else:
        diff = None
    parts = []
    if seed_cmp is not None:
        n = int(seed_cmp.get("n") or 0)
        if seed_cmp.get("low") is not None:
            parts.append(f"{_level_text(seed_cmp)} interval over {n} seeds "
                         f"{_signed(seed_cmp['low'])} to {_signed(seed_cmp['high'])}")
        else:
            parts.append(f"{n} seed{'' if n == 1 else 's'}, no interval over seeds")
    if boot is not None and boot.get("low") is not None:
        sizes = [int(m) for m in boot.get("n_images") or []]
        if not sizes:
            images = "test images"
        elif len(sizes) == 1:
            images = f"{sizes[0]} test images"
        elif min(sizes) == max(sizes):
            images = f"{sizes[0]} test images per seed"
        else:
            images = f"{min(sizes)}-{max(sizes)} test images per seed"
        level = "" if seed_cmp is not None and seed_cmp.get("low") is not None else f"{_level_text(boot)} "
        parts.append(f"{level}paired bootstrap over {images} {_signed(boot['low'])} to {_signed(boot['high'])}")
    elif seed_cmp is None or seed_cmp.get("low") is None:
        parts.append("no test-image predictions to bootstrap")

    result = verdict(seed_cmp, boot)
    head = f"{arm} vs {baseline}: {measure}" + (f" {_signed(diff)}" if diff is not None else "")
    sentence = f"{head} ({'; '.join(parts)}): {result}"
    found = _intervals(seed_cmp, boot)
    if result == UNCLEAR:
        names = {"seeds": "interval over seeds", "bootstrap": "paired bootstrap interval"}
        above = [names[w] for w, low, _ in found if low > 0]
        below = [names[w] for w, _, high in found if high < 0]
        if above and below:
            sentence += f" (the {above[0]} lies above 0 but the {below[0]} lies below 0)"
        elif above:
            sentence += f" (only the {above[0]} lies above 0)"
        elif below:
            sentence += f" (only the {below[0]} lies below 0)"
        elif not found:
            sentence += " (no interval to judge by)"
    return sentence + "."
