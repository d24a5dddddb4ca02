"""Splits: the real-only test split, fixed before any synthesizer sees data, and the validation split
a classifier run carves from the train split.

Two ways to size the test split, both patient-aware (a patient's images never straddle train and test)
and deterministic by seed:

- ``per_class=K`` (liang2021: 60 images per class): per class, patients are visited in a seeded random
  order and taken whole while they fit, until the class has exactly ``K`` test images (an error if
  whole patients cannot make exactly ``K``).
- ``fraction=F`` (quan2021: 80:20, "stratified sampling while keeping images of the same patients in
  either train or test"): per class, the target is ``round(F * real images of the class)`` (halves
  round up), so the test set's class prevalence is the data's. Greedy over a seeded patient order:
  a patient is taken whole when its images fit in what the class still needs. That hits the target
  exactly when patients hold one image each. With larger patients it can stop short; then one fix-up
  step takes the smallest patient left (the first in the seeded order among equals) if that brings
  the count closer to the target (it overshoots by less than it was short), so a class ends as close
  to its target as that greedy pass and one whole patient allow.

If a patient chosen for one class's test images also has images of another class that were not
chosen for test, those images are dropped from train (they can't go to test without changing that
class's count) and the number is reported, so no patient leaks into training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from synthaug.contract.types import REAL, ImageSet
from synthaug.errors import SynthaugError

#: liang2021 holds out 60 real images per class: the default everywhere (stated here only).
DEFAULT_TEST_PER_CLASS = 60


@dataclass
class SplitReport:
    per_class: int | None  # None when the split was sized by ``fraction``
    seed: int
    test_counts: dict[str, int]
    train_counts: dict[str, int]
    dropped_for_leakage: int
    fraction: float | None = None  # None when the split was sized by ``per_class``


def split_test(data: ImageSet, per_class: int = DEFAULT_TEST_PER_CLASS, seed: int = 0, *,
               fraction: float | None = None) -> tuple[ImageSet, ImageSet, SplitReport]:
    """Return ``(train, test, report)``: ``per_class`` real images of each class in test, or, with
    ``fraction`` (0 < F < 1, replacing ``per_class``), about ``round(F * n)`` of a class's ``n``."""
    real = data.synth == REAL
    if fraction is None:
        targets = _per_class_targets(data.counts(synthetic=False), per_class)
    else:
        targets = _fraction_targets(data.counts(synthetic=False), fraction)
    rng = np.random.default_rng(seed)
    in_test = np.zeros(len(data), bool)
    test_patients: set[str] = set()
    for c, name in enumerate(data.class_names):
        if fraction is None and per_class == 0:
            continue  # no draw: the per-class split keeps the byte-identical stream of earlier versions
        patients, groups = patient_groups(np.flatnonzero(real & (data.labels == c)), data.patient_ids)
        chosen = _pick_patients([len(g) for g in groups], targets[name], rng.permutation(len(groups)),
                                exact=fraction is None)
        if chosen is None:
            raise SynthaugError(
                f"class {name!r}: cannot take exactly {per_class} test images from whole patients "
                f"(patients have too many images each); choose another --test-per-class")
        for k in chosen:
            in_test[groups[k]] = True
            test_patients.add(patients[k])
    leaked = ~in_test & np.isin(data.patient_ids.astype(str), list(test_patients))
    train, test = data.subset(np.flatnonzero(~in_test & ~leaked)), data.subset(np.flatnonzero(in_test))
    report = SplitReport(per_class if fraction is None else None, seed, test.counts(), train.counts(),
                         int(leaked.sum()), None if fraction is None else float(fraction))
    return train, test, report


def _per_class_targets(counts: dict[str, int], per_class: int) -> dict[str, int]:
    if isinstance(per_class, bool) or not isinstance(per_class, (int, np.integer)) or per_class < 0:
        raise SynthaugError(f"test size per class must be a whole number >= 0; got {per_class!r}")
    for name, n in counts.items():
        if n < per_class:
            raise SynthaugError(
                f"class {name!r} has {n} real images; cannot hold out {per_class} for the test split "
                f"(use --test-per-class {n} or fewer)")
    return {name: int(per_class) for name in counts}


def _fraction_targets(counts: dict[str, int], fraction: float) -> dict[str, int]:
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float, np.floating)) or \
            not 0 < fraction < 1:
        raise SynthaugError(f"test fraction must be a number between 0 and 1 (exclusive); got {fraction!r}")
    return {name: int(math.floor(fraction * n + 0.5)) for name, n in counts.items()}


def _pick_patients(sizes: list[int], target: int, order: np.ndarray, *, exact: bool) -> list[int] | None:
    """Indices of the patients (of ``sizes`` images each) that make the class's test images.

    Greedy over ``order``: a patient is taken whole while it fits in what is still needed. ``exact``:
    ``None`` unless that makes ``target`` exactly. Otherwise, if short, one fix-up step takes the
    smallest patient left (first in ``order`` among equals) when that lands closer to ``target``.
    """
    chosen, needed = [], target
    for k in order:
        if needed == 0:
            break
        if sizes[k] <= needed:
            chosen.append(int(k))
            needed -= sizes[k]
    if needed and exact:
        return None
    taken = set(chosen)
    left = [int(k) for k in order if int(k) not in taken]
    if needed and left:
        smallest = min(left, key=lambda k: sizes[k])  # min keeps the first in order among equals
        if sizes[smallest] - needed < needed:  # every patient left is larger than what is needed
            chosen.append(smallest)
    return chosen


def patient_groups(members: np.ndarray, patient_ids: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """(sorted patient ids, the indices in ``members`` of each one's samples)."""
    names, inverse = np.unique(np.asarray(patient_ids)[members].astype(str), return_inverse=True)
    return names, [members[inverse == k] for k in range(len(names))]


@dataclass
class ValidationSplit:
    """Indices into the train split: what trains, what validates, and what was withheld."""
    train: np.ndarray
    val: np.ndarray
    val_patients: int
    withheld: int  # synthetic samples made from a validation patient's images, kept out of training


def validation_split(labels: np.ndarray, synth: np.ndarray, patient_ids: np.ndarray, fraction: float,
                     seed: int) -> ValidationSplit:
    """Carve a validation set from the train split: real images only, whole patients, per class.

    Per class, the patients with real images of that class are visited in a seeded order and taken
    whole until the class has ``round(fraction * real images)`` (at least one patient where the
    class has two or more; never all of them). Validation holds only *real* images, so checkpoint
    selection measures the real distribution, not how recognisable the synthetic images are; every
    sample of a validation patient, a synthetic one made from its images included (a duplicate
    carries its source's patient id), stays out of training, so no copy of a validation image trains.
    """
    labels = np.asarray(labels)
    real = np.asarray(synth).astype(str) == REAL
    patients = np.asarray(patient_ids).astype(str)
    rng = np.random.default_rng([seed, 0x5A1])
    chosen: set[str] = set()
    for cls in np.unique(labels[real]) if fraction > 0 else []:
        members = np.flatnonzero(real & (labels == cls))
        names, groups = patient_groups(members, patients)
        if len(names) < 2:
            continue
        target = max(1, round(fraction * len(members)))
        taken = 0
        for k in rng.permutation(len(names))[:len(names) - 1]:  # at least one patient keeps training
            if taken >= target:
                break
            chosen.add(names[k])
            taken += len(groups[k])
    of_val_patient = np.isin(patients, sorted(chosen))
    val = np.flatnonzero(of_val_patient & real)
    train = np.flatnonzero(~of_val_patient)
    return ValidationSplit(train, val, len(chosen), int((of_val_patient & ~real).sum()))
