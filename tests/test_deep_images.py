"""16-bit PNG and TIFF read at full depth, the sBIT chunk, and the store keeping each depth exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

import synthaug
from synthaug import SourceOptions, SynthaugError
from synthaug.contract.types import common_bit_depth, on_grid
from synthaug.pipeline.store import read_store, store_info, write_store


def levels(bits: int, seed: int, size: int = 16) -> np.ndarray:
    """A (size, size) uint16 image of ``bits``-bit levels holding 0 and the top level."""
    k = np.random.default_rng(seed).integers(0, 2 ** bits, (size, size)).astype(np.uint16)
    k.flat[:2] = 0, 2 ** bits - 1
    return k


def save_deep(path: Path, k: np.ndarray, significant: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    info = None
    if significant is not None:
        info = PngImagePlugin.PngInfo()
        info.add(b"sBIT", bytes([significant]))
    Image.fromarray(k).save(path, pnginfo=info) if info else Image.fromarray(k).save(path)
    return path


def exact(k: np.ndarray, bits: int) -> np.ndarray:
    """What the store reads back for levels ``k``: the float32 division of the store's loader."""
    return k.astype(np.float32) / np.float32(2 ** bits - 1)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
@pytest.mark.parametrize("lazy", [False, True])
def test_16_bit_png_and_tiff_are_read_at_full_depth(tmp_path, suffix, lazy):
    ks = [levels(16, seed) for seed in range(4)]
    for i, k in enumerate(ks):
        save_deep(tmp_path / ("a" if i < 2 else "b") / f"{i}{suffix}", k)
    data = synthaug.load_images("imagefolder", tmp_path, lazy=lazy)
    assert data.meta["bit_depth"] == 16 and data.is_lazy == lazy
    images = np.asarray(data.images)
    for i, k in enumerate(ks):
        assert np.array_equal(images[i, 0], exact(k, 16))  # bit for bit, all 65536 levels possible
    assert len(np.unique(images)) > 1000  # not squeezed through 8 bits (256 levels)


def test_a_12_bit_png_with_sbit_reads_k_over_4095_whether_shifted_or_not(tmp_path):
    k = levels(12, 0)
    save_deep(tmp_path / "a" / "plain.png", k, significant=12)  # 0..4095, as medical exporters write it
    save_deep(tmp_path / "a" / "shifted.png", k << 4, significant=12)  # the PNG specification's scaling
    replicated = (k << 4) | (k >> 8)  # the specification's scaling with left bit replication
    save_deep(tmp_path / "b" / "replicated.png", replicated, significant=12)
    for lazy in (False, True):
        data = synthaug.load_images("imagefolder", tmp_path, lazy=lazy)
        assert data.meta["bit_depth"] == 12
        images = np.asarray(data.images)
        for i in range(3):
            assert np.array_equal(images[i, 0], exact(k, 12)), data.origin[i]
        assert images.max() == 1.0  # the top level is white, not 4095 / 65535 = 0.0625


def test_values_outside_the_declared_bits_name_the_file(tmp_path):
    k = levels(12, 0)
    k[0, 0] = 5000  # above 4095 and not a shifted level
    path = save_deep(tmp_path / "a" / "over.png", k, significant=12)
    save_deep(tmp_path / "b" / "fine.png", levels(12, 1), significant=12)
    with pytest.raises(SynthaugError, match=r"over\.png: sample 5000 exceeds 4095"):
        synthaug.load_images("imagefolder", tmp_path)
    with pytest.raises(SynthaugError, match=r"over\.png: sample 5000 exceeds 4095"):
        synthaug.load_images("imagefolder", tmp_path, lazy=True, skip_bad=False).images[0]
    skipped = synthaug.load_images("imagefolder", tmp_path, lazy=True, skip_bad=True)
    assert skipped.meta["skipped_files"] == [str(path)] and len(skipped) == 1
    wide = tmp_path / "wide" / "a" / "i32.tif"
    wide.parent.mkdir(parents=True)
    Image.fromarray(np.full((16, 16), 70000, np.int32)).save(wide)
    save_deep(tmp_path / "wide" / "b" / "ok.png", levels(16, 2))
    with pytest.raises(SynthaugError, match=r"i32\.tif: sample 70000 lies outside 0\.\.65535"):
        synthaug.load_images("imagefolder", tmp_path / "wide")


@pytest.mark.parametrize("depths, expected", [((8, 16), 16), ((8, 12), None), ((12,), 12), ((8,), 8)])
def test_a_set_takes_the_grid_that_holds_every_file(tmp_path, depths, expected):
    for i, bits in enumerate(depths * 2):
        path = tmp_path / ("a" if i % 2 else "b") / f"{i}.png"
        if bits == 8:
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(levels(8, i).astype(np.uint8), "L").save(path)
        else:
            save_deep(path, levels(bits, i), significant=bits if bits < 16 else None)
    eager = synthaug.load_images("imagefolder", tmp_path)
    lazy = synthaug.load_images("imagefolder", tmp_path, lazy=True)  # from the headers alone
    assert eager.meta["bit_depth"] == expected == lazy.meta["bit_depth"]
    assert common_bit_depth(depths) == expected


@pytest.mark.parametrize("bits, dtype", [(8, "uint8"), (10, "uint16"), (12, "uint16"), (14, "uint16"), (16, "uint16")])
def test_the_store_keeps_each_depth_exactly(tmp_path, bits, dtype):
    k = np.stack([levels(bits, s, size=8) for s in range(4)])[:, None]
    data = synthaug.ImageSet(exact(k, bits), [0, 0, 1, 1], ("a", "b"), ["p0", "p1", "p2", "p3"],
                             meta={"bit_depth": bits})
    write_store(tmp_path / "s.h5", {"train": data})
    back = read_store(tmp_path / "s.h5", "train")
    assert np.array_equal(back.images, data.images) and back.meta["bit_depth"] == bits
    info = store_info(tmp_path / "s.h5")
    assert info["image_dtype"] == dtype and info["bit_depth"] == bits
    import h5py

    with h5py.File(tmp_path / "s.h5") as f:
        assert f["train/images"].attrs["scale"] == 2 ** bits - 1
        assert np.array_equal(f["train/images"][()], k)  # the levels themselves, not rescaled


def test_an_8_bit_image_is_on_the_16_bit_grid_and_synthetic_images_are_rounded_to_12_bits(tmp_path):
    k8 = np.arange(256, dtype=np.float32)
    assert np.array_equal(k8 / np.float32(255), (257 * k8) / np.float32(65535))
    assert np.array_equal(on_grid(k8 / np.float32(255), 16), (257 * k8).astype(np.uint16))
    for i in range(6):
        save_deep(tmp_path / ("a" if i < 4 else "b") / f"{i}.png", levels(12, i, size=16), significant=12)
    data = synthaug.load_images("imagefolder", tmp_path)
    result = synthaug.balance(data, "augment", test_per_class=1, seed=0, out=tmp_path / "s.h5")
    train = read_store(tmp_path / "s.h5", "train")
    synthetic = train.images[train.synth != "real"]
    assert len(synthetic) == 2 and store_info(tmp_path / "s.h5")["bit_depth"] == 12
    assert np.array_equal(np.rint(synthetic * 4095) / np.float32(4095), synthetic)  # on the 12-bit grid
    assert np.array_equal(result.train.images, train.images)  # in memory as on disk


def test_resizing_a_deep_image_keeps_it_on_its_grid(tmp_path):
    k = levels(12, 3, size=32)
    save_deep(tmp_path / "a" / "0.png", k, significant=12)
    save_deep(tmp_path / "b" / "1.png", k, significant=12)
    data = synthaug.load_images("imagefolder", tmp_path, size=16, channels=3)
    image = data.images[0]
    assert image.shape == (3, 16, 16) and data.meta["bit_depth"] == 12
    assert np.array_equal(image[0], image[2]) and np.array_equal(np.rint(image * 4095) / np.float32(4095), image)
    expected = np.asarray(Image.fromarray(k.astype(np.float32)).resize((16, 16), Image.BILINEAR))
    assert np.abs(image[0] * 4095 - expected).max() <= 0.5  # PIL's resize, rounded to the nearest level


def test_image_files_refuse_channel_counts_other_than_1_and_3(tmp_path):
    from synthaug_plugins.sources.imagefolder import ImageFolderSource
    from synthaug_plugins.sources.images import read_image

    for i in range(2):
        save_deep(tmp_path / "ab"[i] / f"{i}.png", levels(16, i))
    options = SourceOptions()
    options.channels = 4  # what SourceOptions may soon allow for other sources
    for lazy in (False, True):
        options.lazy = lazy
        with pytest.raises(SynthaugError, match=r"^channels=4: images give 1 \(grey\) or 3 \(RGB\) channels; "
                                                r"expected channels 1 or 3$"):
            ImageFolderSource().load_images(tmp_path, options)
    with pytest.raises(SynthaugError, match="channels=2"):
        read_image(tmp_path / "a" / "0.png", None, 2)
