import numpy as np
import pytest

from synthaug import SynthaugError, balance, plan_counts, read_store, split_test
from synthaug.contract.interfaces import DEFAULT_RUN, Synthesizer
from synthaug.contract.types import ImageSet, VolumeSet
from synthaug.pipeline.balance import class_seed, parse_strategy, plan_trims

COUNTS = {"covid": 219, "normal": 1341, "viral": 1345}


def test_plan_counts_follows_imbalanced_learn_semantics():
    assert plan_counts(COUNTS, "auto") == {"covid": 1126, "normal": 4, "viral": 0}
    assert plan_counts(COUNTS, "not majority") == plan_counts(COUNTS, "auto")
    assert plan_counts(COUNTS, "minority") == {"covid": 1126, "normal": 0, "viral": 0}
    assert plan_counts(COUNTS, "not minority") == {"covid": 0, "normal": 4, "viral": 0}
    assert plan_counts(COUNTS, "all") == {"covid": 1126, "normal": 4, "viral": 0}
    assert plan_counts(COUNTS, {"covid": 1254}) == {"covid": 1035, "normal": 0, "viral": 0}
    assert plan_counts(COUNTS, "none") == plan_counts(COUNTS, {}) == {"covid": 0, "normal": 0, "viral": 0}
    assert plan_trims(COUNTS, "auto") == plan_trims(COUNTS, "none") == {"covid": 0, "normal": 0, "viral": 0}


def test_final_counts_below_the_current_ones_trim():
    # liang2021: 1,254 per class after 60 test images per class of the first release
    train = {"covid": 219 - 60, "normal": 1341 - 60, "viral": 1345 - 60}
    strategy = parse_strategy("covid=1254,normal=1254,viral=1254")
    assert plan_counts(train, strategy) == {"covid": 1095, "normal": 0, "viral": 0}
    assert plan_trims(train, strategy) == {"covid": 0, "normal": 27, "viral": 31}
    assert plan_trims(COUNTS, {"covid": 100}) == {"covid": 119, "normal": 0, "viral": 0}


def test_per_source_counts_come_from_the_sources():
    sources = {"covid": 3, "normal": 0, "viral": 5}
    assert plan_counts(COUNTS, "per-source", sources=sources) == sources
    assert plan_counts(COUNTS, "per-source", sources={"viral": 2}) == {"covid": 0, "normal": 0, "viral": 2}
    with pytest.raises(SynthaugError, match="'per-source' needs the synthesizer's sources per class"):
        plan_counts(COUNTS, "per-source")
    with pytest.raises(SynthaugError, match=r"sources per class names class 'cat'; classes are covid, normal, viral"):
        plan_counts(COUNTS, "per-source", sources={"cat": 1})
    assert parse_strategy("per-source") == "per-source" and parse_strategy(" none ") == "none"


def test_bad_strategies_name_the_value():
    with pytest.raises(SynthaugError, match=r"strategy count for 'covid' must be a whole number >= 0; got -1"):
        plan_counts(COUNTS, {"covid": -1})
    with pytest.raises(SynthaugError, match=r"strategy count for 'covid' must be a whole number >= 0; got 2.5"):
        plan_trims(COUNTS, {"covid": 2.5})
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

        def fit(self, train, volumes=None, *, run=DEFAULT_RUN):
            raise AssertionError("fit must not run when the strategy is invalid")

        def generate(self, train, target, n, *, seed, volumes=None, run=DEFAULT_RUN):
            raise AssertionError

    with pytest.raises(SynthaugError, match="strategy names class 'cat'"):
        balance(tiny_images, Exploding(), strategy={"cat": 1}, test_per_class=1)
    with pytest.raises(SynthaugError, match="cannot hold out 60"):
        balance(tiny_images, Exploding())


def test_synthesizer_returning_wrong_count_is_caught(tiny_images):
    from synthaug.contract.interfaces import Synthesizer

    class Short(Synthesizer):
        name = "short"

        def generate(self, train, target, n, *, seed, volumes=None, run=DEFAULT_RUN):
            return train.subset(np.flatnonzero(train.labels == train.class_index(target))[:1])

    with pytest.raises(SynthaugError, match=r"'short' returned 1 images"):
        balance(tiny_images, Short(), test_per_class=1)


def test_synthesizer_never_sees_test_images(tiny_images):
    from synthaug.contract.interfaces import Synthesizer

    seen = []

    class Spy(Synthesizer):
        name = "spy"

        def fit(self, train, volumes=None, *, run=DEFAULT_RUN):
            seen.extend(train.origin)

        def generate(self, train, target, n, *, seed, volumes=None, run=DEFAULT_RUN):
            seen.extend(train.origin)
            idx = np.flatnonzero(train.labels == train.class_index(target))[:1].repeat(n)
            return train.subset(idx)

    result = balance(tiny_images, Spy(), test_per_class=2)
    assert seen and not set(seen) & set(result.test.origin)


def test_volume_synthesizers_never_see_test_patients_volumes(tmp_path):
    """balance and fit_synthesizer hand a volume synthesizer only the CTs of training patients, and
    the provenance of what it made indexes the VolumeSet the caller passed."""
    from synthaug.contract.interfaces import Synthesizer
    from synthaug.contract.types import Volume, VolumeSet
    from synthaug.pipeline.checkpoint import fit_synthesizer

    class Recording(Synthesizer):
        name, needs_volumes, trainable = "recording", True, True  # trainable: fit_synthesizer accepts it
        seen: list[list[str]] = []

        def fit(self, train, volumes=None, *, run=DEFAULT_RUN):
            Recording.seen.append(list(volumes.patient_ids))

        def generate(self, train, target, n, *, seed, volumes=None, run=DEFAULT_RUN):
            Recording.seen.append(list(volumes.patient_ids))
            idx = np.flatnonzero(volumes.labels == train.class_index(target))[np.arange(n) % 2]
            return ImageSet(np.zeros((n, *train.image_shape), np.float32), np.full(n, train.class_index(target)),
                            train.class_names, volumes.patient_ids[idx], origin=volumes.origins[idx], source_index=idx)

    labels = np.repeat([0, 1], [4, 8])
    patients = [f"p{i}" for i in range(12)]
    images = ImageSet(np.random.default_rng(0).random((12, 1, 8, 8), dtype=np.float32), labels, ("covid", "normal"),
                      patients)
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


# ---- strategies that add nothing, trim, or make one image per source ------------------------------
class Counting(Synthesizer):
    """Duplicates the first image of the class; counts its checks and fits."""

    name = "counting"
    calls: list[str] = []

    def check(self, train, deficits, volumes=None, *, run=DEFAULT_RUN):
        Counting.calls.append("check")

    def fit(self, train, volumes=None, *, run=DEFAULT_RUN):
        Counting.calls.append("fit")

    def generate(self, train, target, n, *, seed, volumes=None, run=DEFAULT_RUN):
        idx = np.flatnonzero(train.labels == train.class_index(target))[:1].repeat(n)
        return train.subset(idx).with_provenance(source_index=idx)


@pytest.mark.parametrize("strategy", ["none", {}, {"normal": 6}])
def test_nothing_to_add_writes_the_unbalanced_split_and_fits_nothing(tmp_path, tiny_images, strategy):
    Counting.calls = []
    result = balance(tiny_images, Counting(), strategy=strategy, test_per_class=2, seed=4, out=tmp_path / "n.h5")
    assert Counting.calls == []  # neither checked nor fitted: there is nothing to make
    balanced = balance(tiny_images, "duplicate", test_per_class=2, seed=4)
    assert list(result.test.origin) == list(balanced.test.origin)  # the same real test split
    train = read_store(tmp_path / "n.h5", "train")
    assert train.counts() == {"covid": 2, "normal": 6, "viral": 7} and set(train.synth) == {"real"}
    assert result.deficits == {"covid": 0, "normal": 0, "viral": 0}
    assert result.config["synthesizer"] is None and balanced.config["synthesizer"]["name"] == "duplicate"


def test_no_synthesizer_for_a_store_without_synthetic_images(tmp_path, tiny_images):
    result = balance(tiny_images, None, strategy="none", test_fraction=0.25, test_per_class=None,
                     out=tmp_path / "u.h5")
    assert result.config["synthesizer"] is None and set(read_store(tmp_path / "u.h5", "train").synth) == {"real"}
    assert result.test.counts() == {"covid": 1, "normal": 2, "viral": 2}  # round(0.25 x 4 / 8 / 9)
    with pytest.raises(SynthaugError, match=r"^strategy 'auto' adds images "
                                            r"\(\{'covid': 5, 'normal': 1, 'viral': 0\}\); "
                                            r"name a synthesizer to make them$"):
        balance(tiny_images, None, test_per_class=2)
    with pytest.raises(SynthaugError, match="strategy 'per-source' counts a synthesizer's sources; name a synthesizer"):
        balance(tiny_images, None, strategy="per-source", test_per_class=2)


def test_an_already_balanced_split_fits_nothing_for_any_strategy(tiny_images):
    even = tiny_images.subset(np.concatenate([np.flatnonzero(tiny_images.labels == c)[:4] for c in range(3)]))
    Counting.calls = []
    result = balance(even, Counting(), strategy="all", test_per_class=1)
    assert Counting.calls == [] and result.config["synthesizer"] is None
    balance(tiny_images, Counting(), strategy="all", test_per_class=1)
    assert Counting.calls == ["check", "fit"]


def fake_release(counts, seed=0) -> ImageSet:
    """One 1x4x4 image per patient per class: cheap enough for the real release's 2,905 images."""
    labels = np.repeat(np.arange(len(counts)), counts)
    images = np.random.default_rng(seed).random((len(labels), 1, 4, 4), dtype=np.float32)
    return ImageSet(images, labels, ("covid", "normal", "viral"), [f"p{i}" for i in range(len(labels))],
                    origin=[f"img{i}.png" for i in range(len(labels))])


def test_liang2021_balances_to_1254_per_class_by_trimming_and_adding():
    data = fake_release((219, 1341, 1345))
    result = balance(data, "duplicate", strategy=parse_strategy("covid=1254,normal=1254,viral=1254"),
                     test_per_class=60, seed=0)
    assert result.train.counts() == {"covid": 1254, "normal": 1254, "viral": 1254}  # 3,762 = 3 x 1,254
    assert result.train.counts(synthetic=True) == {"covid": 1095, "normal": 0, "viral": 0}
    assert result.config["trimmed"] == {"covid": 0, "normal": 27, "viral": 31}
    assert result.test.counts() == {"covid": 60, "normal": 60, "viral": 60}


def test_trimming_drops_random_real_training_images_by_seed():
    data = fake_release((22, 134, 135))  # the release scaled by 0.1: 16 / 128 / 129 after 6 test images
    strategy = {"covid": 40, "normal": 40, "viral": 125}
    runs = [balance(data, "duplicate", strategy=strategy, test_per_class=6, seed=s) for s in (1, 1, 2)]
    a = runs[0]
    assert a.train.counts() == {"covid": 40, "normal": 40, "viral": 125}
    assert a.train.counts(synthetic=True) == {"covid": 24, "normal": 0, "viral": 0}
    assert a.config["trimmed"] == {"covid": 0, "normal": 88, "viral": 4}
    split_train = split_test(data, 6, 1)[0]
    kept = set(a.train.origin[a.train.synth == "real"])
    assert kept <= set(split_train.origin) and not kept & set(a.test.origin)  # the test split is untouched
    dropped = np.isin(split_train.origin, sorted(set(split_train.origin) - kept))
    assert split_train.subset(np.flatnonzero(dropped)).counts() == {"covid": 0, "normal": 88, "viral": 4}
    assert list(runs[1].train.origin) == list(a.train.origin)  # same seed, same images dropped
    other = set(runs[2].train.origin[runs[2].train.synth == "real"])
    assert other != kept
    # the synthesizer drew only from what stayed: provenance indexes the trimmed training split
    made = a.train.synth == "duplicate"
    assert set(a.train.origin[made]) <= kept


def test_default_sources_per_class_are_the_real_training_images(tiny_images):
    result = balance(tiny_images, "duplicate", strategy="per-source", test_per_class=2, seed=0)
    real = result.train.subset(np.flatnonzero(result.train.synth == "real"))
    assert result.deficits == real.counts() == {"covid": 2, "normal": 6, "viral": 7}
    made = result.train.synth == "duplicate"
    assert sorted(result.train.source_index[made]) == list(range(len(real)))  # each real image once


def test_volume_synthesizers_count_the_training_volumes_mapped_to_each_class():
    from synthaug.registry import create

    classes = ("CT-0", "CT-1", "CT-2")  # MosMed grades: CT-0 -> normal, CT-1..CT-4 -> covid
    labels = [0, 0, 1, 2, 2, 2]
    volumes = VolumeSet([lambda: pytest.fail("counting loads no volume")] * 6, labels, classes,
                        [f"v{i}" for i in range(6)])
    images = ImageSet(np.zeros((2, 1, 8, 8), np.float32), [0, 1], ("covid", "normal"), ["a", "b"])
    assert create("synthesizer", "drr").sources_per_class(images, volumes) == {"covid": 4, "normal": 2}
    mapped = create("synthesizer", "drr", label_map={"CT-2": "covid"})
    assert mapped.sources_per_class(images, volumes) == {"covid": 3, "normal": 0}
    with pytest.raises(SynthaugError, match="'drr' needs labeled CT volumes; pass --volumes"):
        create("synthesizer", "drr").sources_per_class(images, None)


@pytest.fixture(scope="module")
def small_ctsim():
    """ctsim's tiny preset with 2 / 3 / 3 patients (the ``counts`` option): radiographs and their CTs."""
    import synthaug

    counts = {"covid": 2, "normal": 3, "viral": 3}
    images = synthaug.load_images("ctsim", preset="tiny", counts=counts)
    volumes = synthaug.load_volumes("ctsim", preset="tiny", counts=counts)
    assert images.counts() == volumes.counts() == counts
    return images, volumes


def test_per_source_drr_projects_every_training_volume_once(small_ctsim):
    images, volumes = small_ctsim
    result = balance(images, "drr", strategy="per-source", test_per_class=1, seed=0, volumes=volumes,
                     synth_options={"max_rotation": 0, "max_translation": 0})
    test_patients = set(result.test.patient_ids)
    training_volumes = [i for i in range(len(volumes)) if volumes.patient_ids[i] not in test_patients]
    assert len(training_volumes) == 5 and result.deficits == {"covid": 1, "normal": 2, "viral": 2}
    made = result.train.synth == "drr"
    assert sorted(result.train.source_index[made]) == training_volumes  # every training CT exactly once
    for i in np.flatnonzero(made):
        assert result.train.labels[i] == volumes.labels[result.train.source_index[i]]
        assert result.train.origin[i] == volumes.origins[result.train.source_index[i]]
    assert result.train.counts(synthetic=False) == {"covid": 1, "normal": 2, "viral": 2}


# ---- the test split as a fraction, threaded through balance and fit ----------------------------
def test_balance_with_a_test_fraction_records_it(tmp_path):
    data = fake_release((20, 60, 60))
    result = balance(data, "duplicate", test_fraction=0.2, seed=1, out=tmp_path / "f.h5")
    assert result.test.counts() == {"covid": 4, "normal": 12, "viral": 12}
    assert result.train.counts() == {"covid": 48, "normal": 48, "viral": 48}
    config = result.config
    assert config["test_fraction"] == 0.2 and config["test_per_class"] is None
    assert config["split"]["fraction"] == 0.2 and config["split"]["per_class"] is None
    assert read_store(tmp_path / "f.h5", "test").counts() == result.test.counts()
    per_class = balance(data, "duplicate", test_per_class=3).config
    assert per_class["test_fraction"] is None and per_class["test_per_class"] == 3
    assert per_class["split"]["fraction"] is None and per_class["split"]["per_class"] == 3


def test_checkpoints_compare_fraction_splits(tmp_path):
    import types

    import synthaug
    from synthaug.pipeline.checkpoint import fit_synthesizer
    from synthaug.registry import register_plugin

    class Fitted(Counting):
        name, trainable = "fitted-counting", True

    module = types.ModuleType("fitted_plugin")
    module.register_synthesizers = synthaug.hookimpl(lambda register: register(Fitted.name, Fitted))
    register_plugin(module, "fitted_plugin")
    data = fake_release((20, 60, 60))
    fit_synthesizer(data, Fitted.name, tmp_path / "ckpt", test_fraction=0.25, seed=2)
    saved = __import__("json").loads((tmp_path / "ckpt" / "split.json").read_text())
    assert saved["fraction"] == 0.25 and saved["per_class"] is None
    result = balance(data, Fitted.name, test_fraction=0.25, seed=2, synth_checkpoint=tmp_path / "ckpt")
    assert result.config["synth_checkpoint"] == str(tmp_path / "ckpt")
    with pytest.raises(SynthaugError, match=r"fitted with a different test split \(seed 2, fraction 0.25\); "
                                            r"use the same --seed and --test-per-class or --test-fraction"):
        balance(data, Fitted.name, test_fraction=0.2, seed=2, synth_checkpoint=tmp_path / "ckpt")
    with pytest.raises(SynthaugError, match=r"different test split \(seed 2, fraction 0.25\)"):
        balance(data, Fitted.name, test_per_class=5, seed=2, synth_checkpoint=tmp_path / "ckpt")
    fit_synthesizer(data, Fitted.name, tmp_path / "per-class", test_per_class=5, seed=2)
    with pytest.raises(SynthaugError, match=r"different test split \(seed 2, 5 per class\)"):
        balance(data, Fitted.name, test_fraction=0.25, seed=2, synth_checkpoint=tmp_path / "per-class")
