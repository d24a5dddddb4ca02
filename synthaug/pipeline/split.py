"""Splits: the real-only test split, fixed before any synthesizer sees data (liang2021: 60 images per
class), and the validation split a classifier run carves from the train split.

Patient-aware: a patient's images never straddle train and test. Per class, patients are visited in
a seeded random order and taken whole while they fit, until the class has exactly ``per_class`` test
images. If a patient chosen for one class's test images also has images of another class, those
images are dropped from train (they can't go to test without breaking the exact count) and the
number is reported, so no patient leaks into training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synthaug.contract.types import REAL, ImageSet
from synthaug.errors import SynthaugError

#: liang2021 holds out 60 real images per class: the default everywhere (stated here only).
DEFAULT_TEST_PER_CLASS = 60


@dataclass
class SplitReport:
    per_class: int
    seed: int
    test_counts: dict[str, int]
    train_counts: dict[str, int]
    dropped_for_leakage: int


def split_test(data: ImageSet, per_class: int = DEFAULT_TEST_PER_CLASS, seed: int = 0) -> tuple[ImageSet, ImageSet, SplitReport]:
    """Return ``(train, test, report)`` with exactly ``per_class`` real images of each class in test."""
    if per_class < 0:
        raise SynthaugError(f"test size per class must be >= 0; got {per_class}")
    real = data.synth == REAL
    counts = data.counts(synthetic=False)
    for name, n in counts.items():
        if n < per_class:
            raise SynthaugError(
                f"class {name!r} has {n} real images; cannot hold out {per_class} for the test split "
                f"(use --test-per-class {n} or fewer)")
    rng = np.random.default_rng(seed)
    in_test = np.zeros(len(data), bool)
    test_patients: set[str] = set()
    for c, name in enumerate(data.class_names):
        if per_class == 0:
            continue
        patients, groups = patient_groups(np.flatnonzero(real & (data.labels == c)), data.patient_ids)
        needed = per_class
        for k in rng.permutation(len(groups)):
            group = groups[k]
            if len(group) <= needed:
                in_test[group] = True
                test_patients.add(patients[k])
                needed -= len(group)
                if needed == 0:
                    break
        if needed:
            raise SynthaugError(
                f"class {name!r}: cannot take exactly {per_class} test images from whole patients "
                f"(patients have too many images each); choose another --test-per-class")
    leaked = ~in_test & np.isin(data.patient_ids.astype(str), list(test_patients))
    train_idx = np.flatnonzero(~in_test & ~leaked)
    test_idx = np.flatnonzero(in_test)
    train, test = data.subset(train_idx), data.subset(test_idx)
    report = SplitReport(per_class, seed, test.counts(), train.counts(), int(leaked.sum()))
    return train, test, report


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
