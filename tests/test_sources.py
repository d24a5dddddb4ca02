import numpy as np
import pytest

from synthaug import SynthaugError, load_images, load_volumes
from synthaug_plugins.sources.kaggle import detect_layout

from conftest import make_kaggle_first, write_png


def test_first_release_layout_loads_three_classes(kaggle_first):
    data = load_images("kaggle", kaggle_first, size=32)
    assert data.class_names == ("covid", "normal", "viral")
    assert data.counts() == {"covid": 6, "normal": 10, "viral": 11}
    assert data.images.shape == (27, 1, 32, 32) and data.images.dtype == np.float32
    assert 0.0 <= data.images.min() and data.images.max() <= 1.0
    assert data.meta["layout"] == "first"
    # Natural order, file stem as patient id, path as origin.
    normals = data.patient_ids[data.labels == 1]
    assert list(normals[:3]) == ["NORMAL (1)", "NORMAL (2)", "NORMAL (3)"]
    assert data.origin[0].endswith("COVID-19 (1).png")
    # Class brightness survives loading (covid fixture 0.7 > normal 0.3).
    assert data.images[data.labels == 0].mean() > data.images[data.labels == 1].mean() + 0.2


def test_later_release_ignores_masks_and_lung_opacity_unless_asked(kaggle_later):
    data = load_images("kaggle", kaggle_later / "COVID-19_Radiography_Dataset", size=24)
    assert data.counts() == {"covid": 6, "normal": 10, "viral": 11}
    assert data.meta["layout"] == "later"
    assert all("/images/" in o for o in data.origin)
    with_opacity = load_images("kaggle", kaggle_later, size=24, classes=["lung_opacity"])
    assert with_opacity.class_names == ("covid", "normal", "viral", "lung_opacity")
    assert with_opacity.counts()["lung_opacity"] == 4


def test_rgb_channels_and_16bit_png(tmp_path):
    root = make_kaggle_first(tmp_path, counts=(2, 2, 2), size=20)
    write_png(root / "COVID-19 Radiography Database" / "NORMAL" / "NORMAL (3).png", 20, 0.3, bits=16)
    rgb = load_images("kaggle", root, channels=3)
    assert rgb.images.shape == (7, 3, 20, 20)
    grey = load_images("kaggle", root, channels=1)
    k = list(grey.patient_ids).index("NORMAL (3)")
    assert abs(grey.images[k].mean() - 0.3) < 0.05  # 16-bit scaled to [0, 1], not clipped to 1


def test_layout_error_says_what_was_found_and_expected(tmp_path):
    (tmp_path / "stuff" / "cats").mkdir(parents=True)
    with pytest.raises(SynthaugError) as err:
        detect_layout(tmp_path / "stuff")
    message = str(err.value)
    assert "cats" in message and "COVID-19 Radiography Database" in message and "images/*.png" in message
    assert "\n" not in message


def test_missing_dir_empty_class_and_corrupt_png(tmp_path, kaggle_first):
    with pytest.raises(SynthaugError, match="no such directory"):
        load_images("kaggle", tmp_path / "nope")
    empty = make_kaggle_first(tmp_path / "empty", counts=(0, 3, 3))
    with pytest.raises(SynthaugError, match="COVID-19: class folder holds no images"):
        load_images("kaggle", empty)
    bad = kaggle_first / "COVID-19 Radiography Database" / "NORMAL" / "NORMAL (2).png"
    bad.write_bytes(bad.read_bytes()[:60])  # truncated
    with pytest.raises(SynthaugError, match=r"NORMAL \(2\)\.png: unreadable image"):
        load_images("kaggle", kaggle_first, size=32)
    skipped = load_images("kaggle", kaggle_first, size=32, skip_bad=True)
    assert skipped.meta["skipped"] == 1 and skipped.counts()["normal"] == 9


def test_sizes_must_agree_without_resize(tmp_path):
    root = make_kaggle_first(tmp_path, counts=(2, 2, 2), size=20)
    write_png(root / "COVID-19 Radiography Database" / "NORMAL" / "NORMAL (9).png", 30)
    with pytest.raises(SynthaugError, match="--size"):
        load_images("kaggle", root)


def test_imagefolder(tmp_path):
    for cls, n in (("a", 3), ("b", 5)):
        for k in range(n):
            write_png(tmp_path / cls / f"{k}.jpg" if k == 0 else tmp_path / cls / f"{k}.png", 16, seed=k)
    data = load_images("imagefolder", tmp_path)
    assert data.class_names == ("a", "b") and data.counts() == {"a": 3, "b": 5}
    with pytest.raises(SynthaugError, match="one sub-folder of images per class"):
        load_images("imagefolder", tmp_path / "a")


def test_h5_source_returns_real_images_of_a_store(tmp_path, tiny_images):
    from synthaug import balance

    out = tmp_path / "s.h5"
    balance(tiny_images, "duplicate", test_per_class=2, out=out)
    again = load_images("h5", out)
    assert again.counts() == tiny_images.counts()  # real images of train + test, no duplicates
    assert set(again.synth) == {"real"}
    train = load_images("h5", out, split="train")
    assert train.counts() == {"covid": 7, "normal": 7, "viral": 7}


# ---- binary tasks: one class against the rest ---------------------------------------------------
def test_as_binary_image_set_keeps_provenance(tiny_images):
    from synthaug.pipeline.load import as_binary

    data = tiny_images.with_provenance(synth=np.where(np.arange(len(tiny_images)) == 5, "augment", "real"),
                                       extras={"severity": np.arange(len(tiny_images), dtype=np.float32)})
    binary = as_binary(data, "viral")
    assert binary.class_names == ("viral", "rest")
    assert binary.counts() == {"viral": 9, "rest": 12}
    np.testing.assert_array_equal(binary.labels, np.where(data.labels == 2, 0, 1))
    for column in ("patient_ids", "synth", "origin", "source_index", "seed"):
        np.testing.assert_array_equal(getattr(binary, column), getattr(data, column))
    np.testing.assert_array_equal(binary.extras["severity"], data.extras["severity"])
    assert binary.images is data.images  # nothing copied
    assert binary.meta["binary"] == {"positive": "viral", "rest": "rest", "classes": ["covid", "normal", "viral"]}
    assert as_binary(data, "covid", rest="other").class_names == ("covid", "other")
    assert data.class_names == ("covid", "normal", "viral")  # the input is unchanged


def test_as_binary_volume_set_stays_lazy():
    from synthaug.contract.types import Volume, VolumeSet
    from synthaug.pipeline.load import as_binary

    loaded = []

    def loader(i):
        def load():
            loaded.append(i)
            return Volume(np.full((4, 4, 4), float(i)), (1, 1, 1))
        return load

    volumes = VolumeSet([loader(i) for i in range(5)], [0, 1, 2, 1, 0], ("covid", "normal", "viral"),
                        [f"p{i}" for i in range(5)], [f"ct{i}.nii" for i in range(5)], {"severity": np.arange(5.0)})
    binary = as_binary(volumes, "normal")
    assert loaded == [] and len(binary) == 5  # nothing loaded to relabel
    assert binary.class_names == ("normal", "rest") and binary.counts() == {"normal": 2, "rest": 3}
    assert list(binary.labels) == [1, 0, 1, 0, 1] and list(volumes.labels) == [0, 1, 2, 1, 0]
    assert list(binary.patient_ids) == list(volumes.patient_ids) and list(binary.origins) == list(volumes.origins)
    np.testing.assert_array_equal(binary.meta["severity"], np.arange(5.0))
    volume = binary[3]
    assert loaded == [3] and volume.label == 0 and volume.hu[0, 0, 0] == 3 and volume.origin == "ct3.nii"


def test_as_binary_errors_name_the_class(tiny_images):
    from synthaug.pipeline.load import as_binary

    with pytest.raises(SynthaugError, match=r"^binary class 'cat' is not a class; classes are covid, normal, viral$"):
        as_binary(tiny_images, "cat")
    renamed = tiny_images.with_provenance(class_names=("covid", "rest", "viral"))
    with pytest.raises(SynthaugError,
                       match=r"^cannot name the other classes 'rest': a class is already called 'rest'$"):
        as_binary(renamed, "covid")
    assert as_binary(renamed, "covid", rest="others").counts() == {"covid": 4, "others": 17}


def test_cli_binary_applies_to_volumes_that_have_the_class():
    from synthaug.contract.types import Volume, VolumeSet
    from synthaug.pipeline.load import binary_volumes

    vols = VolumeSet([Volume(np.zeros((4, 4, 4)), (1, 1, 1))] * 3, [0, 1, 2], ("covid", "normal", "viral"),
                     ["a", "b", "c"])
    assert binary_volumes(vols, "covid").class_names == ("covid", "rest")
    assert binary_volumes(vols, None) is vols
    mosmed = VolumeSet([Volume(np.zeros((4, 4, 4)), (1, 1, 1))] * 2, [0, 1], ("CT-0", "CT-1"), ["a", "b"])
    assert binary_volumes(mosmed, "covid") is mosmed  # left to the synthesizer's label_map


@pytest.mark.parametrize("source, options, message", [
    ("imagefolder", {"colour": 1}, "dataset 'imagefolder' takes no options; got colour"),
    ("h5", {"splt": "train"}, "dataset 'h5': unknown option 'splt'; options are split"),
    ("h5", {"split": 3}, "option 'split' of dataset 'h5' must be a string or null; got 3"),
    ("nifti", {"class_name": ["a"]}, "option 'class_name' of dataset 'nifti' must be a string; got \\['a'\\]"),
])
def test_sources_refuse_options_they_do_not_declare(tmp_path, source, options, message):
    with pytest.raises(SynthaugError, match=message):
        (load_images if source != "nifti" else load_volumes)(source, tmp_path, **options)


def test_config_for_builds_the_config_from_extra_for_a_source_made_without_options():
    from synthaug import SourceOptions
    from synthaug.registry import create

    made = create("dataset", "dicom-ct", class_name="chest")  # as the core makes it: options at creation
    assert made.config_for(SourceOptions()).class_name == "chest"
    bare = create("dataset", "dicom-ct")  # a direct caller: the options only in extra
    assert bare.config_for(SourceOptions(extra={"class_name": "chest", "shape": "8x8x4"})).shape == "8x8x4"
    with pytest.raises(SynthaugError, match="option 'class_name' of dataset 'dicom-ct' must be a string; got 3"):
        bare.config_for(SourceOptions(extra={"class_name": 3}))
