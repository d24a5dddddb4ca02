import numpy as np
import pytest

from synthaug import SynthaugError, balance, plan_counts, read_store, split_test
from synthaug.pipeline.balance import class_seed, parse_strategy
from synthaug.contract.types import ImageSet


COUNTS = {"covid": 219, "normal": 1341, "viral": 1345}


def test_plan_counts_follows_imbalanced_learn_semantics():
    assert plan_counts(COUNTS, "auto") == {"covid": 1126, "normal": 4, "viral": 0}
    assert plan_counts(COUNTS, "not majority") == plan_counts(COUNTS, "auto")
    assert plan_counts(COUNTS, "minority") == {"covid": 1126, "normal": 0, "viral": 0}
    assert plan_counts(COUNTS, "not minority") == {"covid": 0, "normal": 4, "viral": 0}
    assert plan_counts(COUNTS, "all") == {"covid": 1126, "normal": 4, "viral": 0}
    assert plan_counts(COUNTS, {"covid": 1254}) == {"covid": 1035, "normal": 0, "viral": 0}


def test_bad_strategies_name_the_value():
    with pytest.raises(SynthaugError, match=r"asks for 100 images of 'covid' but .* already has 219"):
        plan_counts(COUNTS, {"covid": 100})
    with pytest.raises(SynthaugError, match=r"class 'cat'; classes are covid, normal, viral"):
        plan_counts(COUNTS, {"cat": 5})
    with pytest.raises(SynthaugError, match=r"unknown strategy 'most'; expected one of auto, minority"):
        parse_strategy("most")
    assert parse_strategy("covid=10,normal=12") == {"covid": 10, "normal": 12}
    assert parse_strategy('{"covid": 10}') == {"covid": 10}


def test_split_is_exact_real_only_patient_aware_and_seeded(tiny_images):
    data = tiny_images
    # Give patient p4 (a normal) a second image labelled viral: it must not straddle the split.
    data = ImageSet.concat([data, data.subset([4]).with_provenance(labels=np.array([2]))])
    train, test, report = split_test(data, per_class=3, seed=1)
    assert test.counts() == {"covid": 3, "normal": 3, "viral": 3}
    assert set(test.synth) == {"real"}
    assert not set(train.patient_ids) & set(test.patient_ids)
    assert len(train) + len(test) + report.dropped_for_leakage == len(data)
    again = split_test(data, per_class=3, seed=1)[1]
    other = split_test(data, per_class=3, seed=2)[1]
    assert list(again.origin) == list(test.origin) and list(other.origin) != list(test.origin)
    with pytest.raises(SynthaugError, match=r"class 'covid' has 4 real images; cannot hold out 5"):
        split_test(data, per_class=5)


@pytest.mark.parametrize("synth", ["duplicate", "augment"])
def test_balance_fills_exact_deficits_with_traceable_images(tmp_path, tiny_images, synth):
    out = tmp_path / "b.h5"
    result = balance(tiny_images, synth, test_per_class=2, seed=3, out=out)
    train, test = read_store(out, "train"), read_store(out, "test")
    assert train.counts() == {"covid": 7, "normal": 7, "viral": 7}
    assert train.counts(synthetic=True) == {"covid": 5, "normal": 1, "viral": 0} == result.deficits
    assert test.counts() == {"covid": 2, "normal": 2, "viral": 2} and set(test.synth) == {"real"}
    made = train.subset(np.flatnonzero(train.synth == synth))
    real_train = train.subset(np.flatnonzero(train.synth == "real"))
    assert len(made) == 6 and len(real_train) == 15  # the loop below looks at every synthetic image
    for k in range(len(made)):  # every synthetic image names a real training image of its class
        src = made.source_index[k]
        assert real_train.labels[src] == made.labels[k] and made.origin[k] == real_train.origin[src]
        assert made.origin[k] not in set(test.origin)
        if synth == "duplicate":
            np.testing.assert_array_equal(made.images[k], real_train.images[src])
    # each class's images carry that class's seed, derived from the run seed; real images carry -1
    np.testing.assert_array_equal(made.seed, [class_seed(3, int(label)) for label in made.labels])
    assert class_seed(3, 0) != class_seed(3, 1) and class_seed(3, 0) != class_seed(4, 0)
    assert set(real_train.seed) == {-1} and set(test.seed) == {-1}
    assert set(real_train.source_index) == {-1} and set(test.source_index) == {-1}
    # 5 covid images from the 2 real covid training images: used in rounds (3 and 2 times, never 4 and 1).
    covid_sources = made.source_index[made.labels == 0]
    assert sorted(np.bincount(covid_sources)[np.bincount(covid_sources) > 0]) == [2, 3]


def test_same_seed_same_bytes_other_seed_different(tmp_path, tiny_images):
    a = balance(tiny_images, "augment", test_per_class=2, seed=7, out=tmp_path / "a.h5")
    b = balance(tiny_images, "augment", test_per_class=2, seed=7, out=tmp_path / "b.h5")
    c = balance(tiny_images, "augment", test_per_class=2, seed=8, out=tmp_path / "c.h5")
    ra, rb, rc = (read_store(r.path, "train").images for r in (a, b, c))
    assert ra.tobytes() == rb.tobytes()
    assert ra.shape != rc.shape or ra.tobytes() != rc.tobytes()


def test_augment_is_flip_and_small_rotation(tiny_images):
    from synthaug.registry import create

    train = tiny_images
    made = create("synthesizer", "augment").generate(train, "viral", 40, seed=0)
    diffs = []
    for k in range(len(made)):
        src = train.images[made.source_index[k], 0]
        out = made.images[k, 0]
        # Either close to the source or to its mirror image (a rotation of <= 5 degrees moves little).
        diffs.append(min(np.abs(out - src).mean(), np.abs(out - src[:, ::-1]).mean()))
    assert np.mean(diffs) < 0.12
    flipped = sum(np.abs(made.images[k, 0] - train.images[made.source_index[k], 0][:, ::-1]).mean()
                  < np.abs(made.images[k, 0] - train.images[made.source_index[k], 0]).mean() for k in range(len(made)))
    assert 8 <= flipped <= 32  # about half flipped


def test_balance_validates_before_fitting(tiny_images):
    from synthaug.contract.interfaces import Synthesizer

    class Exploding(Synthesizer):
        name = "exploding"

        def fit(self, train, volumes=None):
            raise AssertionError("fit must not run when the strategy is invalid")

        def generate(self, train, target, n, *, seed, volumes=None):
            raise AssertionError

    with pytest.raises(SynthaugError, match="over-sampling never removes"):
        balance(tiny_images, Exploding(), strategy={"normal": 1}, test_per_class=1)
    with pytest.raises(SynthaugError, match="cannot hold out 60"):
        balance(tiny_images, Exploding())


def test_synthesizer_returning_wrong_count_is_caught(tiny_images):
    from synthaug.contract.interfaces import Synthesizer

    class Short(Synthesizer):
        name = "short"

        def generate(self, train, target, n, *, seed, volumes=None):
            return train.of_class(target).subset([0])

    with pytest.raises(SynthaugError, match=r"'short' returned 1 images"):
        balance(tiny_images, Short(), test_per_class=1)


def test_synthesizer_never_sees_test_images(tiny_images):
    from synthaug.contract.interfaces import Synthesizer

    seen = []

    class Spy(Synthesizer):
        name = "spy"

        def fit(self, train, volumes=None):
            seen.extend(train.origin)

        def generate(self, train, target, n, *, seed, volumes=None):
            seen.extend(train.origin)
            idx = np.flatnonzero(train.labels == train.class_index(target))[:1].repeat(n)
            return train.subset(idx)

    result = balance(tiny_images, Spy(), test_per_class=2)
    assert seen and not set(seen) & set(result.test.origin)


def test_volume_synthesizers_never_see_test_patients_volumes(tmp_path):
    """balance and fit_synthesizer hand a volume synthesizer only the CTs of training patients, and
    the provenance of what it made indexes the VolumeSet the caller passed."""
    from synthaug.pipeline.checkpoint import fit_synthesizer
    from synthaug.contract.types import Volume, VolumeSet
    from synthaug.contract.interfaces import Synthesizer

    class Recording(Synthesizer):
        name, needs_volumes, trainable = "recording", True, True  # trainable: fit_synthesizer accepts it
        seen: list[list[str]] = []

        def fit(self, train, volumes=None):
            Recording.seen.append(list(volumes.patient_ids))

        def generate(self, train, target, n, *, seed, volumes=None):
            Recording.seen.append(list(volumes.patient_ids))
            idx = np.flatnonzero(volumes.labels == train.class_index(target))[np.arange(n) % 2]
            return ImageSet(np.zeros((n, *train.image_shape), np.float32), np.full(n, train.class_index(target)),
                            train.class_names, volumes.patient_ids[idx], origin=volumes.origins[idx], source_index=idx)

    labels = np.repeat([0, 1], [4, 8])
    patients = [f"p{i}" for i in range(12)]
    images = ImageSet(np.random.default_rng(0).random((12, 1, 8, 8), dtype=np.float32), labels, ("covid", "normal"), patients)
    volumes = VolumeSet([Volume(np.zeros((4, 4, 4)), (1, 1, 1)) for _ in patients], labels, ("covid", "normal"),
                        patients, origins=[f"ct/{p}.nii.gz" for p in patients])
    result = balance(images, Recording(), test_per_class=2, seed=1, volumes=volumes)
    test_patients = set(result.test.patient_ids)
    assert len(test_patients) == 4 and result.config["volumes_held_out"] == 4
    assert Recording.seen and all(not set(ids) & test_patients for ids in Recording.seen)
    made = result.train.synth == "recording"
    assert made.sum() == 4  # covid: 2 real left in train, 6 normal
    for i in np.flatnonzero(made):  # source_index points into the caller's VolumeSet
        assert volumes.origins[result.train.source_index[i]] == result.train.origin[i]
    Recording.seen.clear()
    fit_synthesizer(images, Recording(), tmp_path / "fit", test_per_class=2, seed=1, volumes=volumes)
    assert Recording.seen and not set(Recording.seen[0]) & test_patients
