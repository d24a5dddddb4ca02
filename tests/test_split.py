"""The test split sized by a fraction (quan2021's 80:20, stratified, whole patients on one side) beside the
per-class one (liang2021's 60 per class)."""

import math

import numpy as np
import pytest

from synthaug import SynthaugError, split_test
from synthaug.contract.types import ImageSet


def fake_set(counts, images_per_patient=None, seed=0) -> ImageSet:
    """``counts`` images per class of 1x2x2 pixels; ``images_per_patient(rng)`` draws each patient's size
    (default: one image per patient)."""
    rng = np.random.default_rng(seed)
    labels, patients = [], []
    for c, n in enumerate(counts):
        made = 0
        while made < n:
            size = min(n - made, images_per_patient(rng) if images_per_patient else 1)
            labels += [c] * size
            patients += [f"c{c}-p{len(patients)}"] * size
            made += size
    names = ("covid", "normal", "viral")[:len(counts)]
    return ImageSet(np.zeros((len(labels), 1, 2, 2), np.float32), labels, names, patients,
                    origin=[f"img{i}.png" for i in range(len(labels))])


def target(fraction: float, n: int) -> int:
    return math.floor(fraction * n + 0.5)


@pytest.mark.parametrize("counts", [(219, 1341, 1345), (22, 134, 135), (5, 7, 1)])
@pytest.mark.parametrize("fraction", [0.2, 0.25, 0.5, 0.8, 0.07])
def test_single_image_patients_hit_each_class_target_exactly(counts, fraction):
    data = fake_set(counts)
    train, test, report = split_test(data, seed=3, fraction=fraction)
    expected = {name: target(fraction, n) for name, n in zip(data.class_names, counts)}
    assert test.counts() == expected  # within one image asked; greedy over single images is exact
    assert train.counts() == {name: n - expected[name] for name, n in zip(data.class_names, counts)}
    assert not set(train.patient_ids) & set(test.patient_ids)
    assert report.fraction == fraction and report.per_class is None and report.dropped_for_leakage == 0
    assert report.test_counts == expected


def test_prevalence_of_the_test_set_is_the_datas():
    counts = (219, 1341, 1345)  # the first Kaggle release
    test = split_test(fake_set(counts), seed=0, fraction=0.2)[1]
    assert test.counts() == {"covid": 44, "normal": 268, "viral": 269}
    for name, n in zip(test.class_names, counts):
        assert test.counts()[name] / len(test) == pytest.approx(n / sum(counts), abs=0.002)


@pytest.mark.parametrize("seed", range(5))
def test_multi_image_patients_stay_whole_and_land_close_to_the_target(seed):
    counts = (40, 120, 131)
    data = fake_set(counts, images_per_patient=lambda rng: int(rng.integers(1, 5)), seed=seed)  # 1..4 images
    assert len(set(data.patient_ids)) < len(data)
    train, test, report = split_test(data, seed=seed, fraction=0.2)
    assert not set(train.patient_ids) & set(test.patient_ids)
    assert len(train) + len(test) == len(data) and report.dropped_for_leakage == 0
    for name, n in zip(data.class_names, counts):
        # greedy plus the fix-up step: off by at most half the largest patient (4 images -> 2)
        assert abs(test.counts()[name] - target(0.2, n)) <= 2, (name, test.counts())
    for patient in set(test.patient_ids):  # whole patients: every image of a test patient is in test
        assert (test.patient_ids == patient).sum() == (data.patient_ids == patient).sum()


def test_the_fix_up_step_takes_a_patient_when_that_lands_closer():
    # covid: 10 images in patients of 3 (x2) and 4; target round(0.5 * 10) = 5. Greedy takes one 3 or
    # the 4 and is short by 2 or 1; the smallest patient left (3) lands 1 over (from 2 short) or stays.
    data = ImageSet(np.zeros((10, 1, 2, 2), np.float32), [0] * 10, ("covid",),
                    ["a"] * 3 + ["b"] * 3 + ["c"] * 4)
    sizes = {len(split_test(data, seed=seed, fraction=0.5)[1]) for seed in range(6)}
    assert sizes == {4, 6}  # |count - 5| = 1 either way; without the fix-up a first pick of 3 ends at 3


def test_patients_spanning_classes_never_straddle_the_split():
    data = fake_set((20, 30, 30))
    # give five normal patients a viral image too
    extra = data.subset(np.flatnonzero(data.labels == 1)[:5]).with_provenance(labels=np.full(5, 2))
    data = ImageSet.concat([data, extra])
    for seed in range(4):
        train, test, report = split_test(data, seed=seed, fraction=0.3)
        assert not set(train.patient_ids) & set(test.patient_ids)
        assert len(train) + len(test) + report.dropped_for_leakage == len(data)
        assert abs(test.counts()["normal"] - target(0.3, 30)) <= 1


def test_fraction_split_is_deterministic_by_seed():
    data = fake_set((30, 50, 50), images_per_patient=lambda rng: int(rng.integers(1, 3)))
    a, b, c = (split_test(data, seed=s, fraction=0.25)[1] for s in (4, 4, 5))
    assert list(a.origin) == list(b.origin) and list(a.origin) != list(c.origin)


def test_per_class_split_is_unchanged_and_reports_no_fraction():
    data = fake_set((10, 12, 14))
    train, test, report = split_test(data, per_class=4, seed=2)
    assert test.counts() == {"covid": 4, "normal": 4, "viral": 4}
    assert report.per_class == 4 and report.fraction is None


@pytest.mark.parametrize("fraction", [0, 1, 1.5, -0.2, "0.2", True])
def test_fraction_outside_zero_one_is_refused_naming_the_value(fraction):
    with pytest.raises(SynthaugError, match=r"test fraction must be a number between 0 and 1 \(exclusive\); "
                                            rf"got {repr(fraction).replace('.', '[.]')}$"):
        split_test(fake_set((5, 5, 5)), fraction=fraction)


def test_negative_per_class_is_refused_naming_the_value():
    with pytest.raises(SynthaugError, match=r"test size per class must be a whole number >= 0; got -1"):
        split_test(fake_set((5, 5, 5)), per_class=-1)
