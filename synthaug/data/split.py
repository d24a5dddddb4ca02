"""The real-only test split, fixed before any synthesizer sees data (liang2021: 60 images per class).

Patient-aware: a patient's images never straddle train and test. Per class, patients are visited in
a seeded random order and taken whole while they fit, until the class has exactly ``per_class`` test
images. If a patient chosen for one class's test images also has images of another class, those
images are dropped from train (they can't go to test without breaking the exact count) and the
number is reported, so no patient leaks into training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import SynthaugError
from .imageset import REAL, ImageSet


@dataclass
class SplitReport:
    per_class: int
    seed: int
    test_counts: dict[str, int]
    train_counts: dict[str, int]
    dropped_for_leakage: int


def split_test(data: ImageSet, per_class: int = 60, seed: int = 0) -> tuple[ImageSet, ImageSet, SplitReport]:
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
        members = np.flatnonzero(real & (data.labels == c))
        patients, inverse = np.unique(data.patient_ids[members].astype(str), return_inverse=True)
        groups = [members[inverse == k] for k in range(len(patients))]
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
