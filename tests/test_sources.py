import numpy as np
import pytest

from synthaug import SynthaugError, load_images
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
