"""Streaming: lazy images, stores written a chunk at a time, integer stores, and what the core reads."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

import synthaug
from synthaug import ImageSet, LazyImages, SynthaugError
from synthaug.contract.interfaces import DEFAULT_RUN
from synthaug.pipeline.store import CHUNK_IMAGES, read_store, store_info, write_store
from tests.conftest import make_kaggle_later, write_png


class Recording:
    """A lazy image source of ``n`` images of ``(1, 8, 8)`` whose pixels are their index / n: it
    records how many images each read asked for."""

    def __init__(self, n: int):
        self.n, self.reads = n, []

    def __call__(self, positions):
        self.reads.append(len(positions))
        grid = np.linspace(0, 1, 64, dtype=np.float32).reshape(1, 1, 8, 8)
        return np.clip(grid * 0.5 + (positions / self.n).astype(np.float32)[:, None, None, None] * 0.5, 0, 1)


def lazy_set(n: int, counts=None) -> tuple[ImageSet, Recording]:
    reader = Recording(n)
    labels = np.repeat(np.arange(len(counts)), counts) if counts else np.arange(n) % 2
    return ImageSet(LazyImages(reader, n, (1, 8, 8)), labels, ("a", "b", "c")[:labels.max() + 1],
                    [f"p{i}" for i in range(n)]), reader


def test_lazy_images_index_like_an_array_and_select_without_reading():
    data, reader = lazy_set(10)
    full = np.asarray(data.images)
    assert full.shape == (10, 1, 8, 8) and data.images.shape == (10, 1, 8, 8) and len(data.images) == 10
    reader.reads.clear()
    picked = data.subset([7, 2, 2])
    assert reader.reads == [] and picked.is_lazy and picked.image_shape == (1, 8, 8)  # nothing read
    np.testing.assert_array_equal(picked.images[1], full[2])
    np.testing.assert_array_equal(picked.images[::2], full[[7, 2]])
    np.testing.assert_array_equal(data.images[data.labels == 1], full[1::2])
    joined = ImageSet.concat([picked, data.subset([0]).in_memory()])
    assert joined.is_lazy and len(joined) == 4
    np.testing.assert_array_equal(np.asarray(joined.images), full[[7, 2, 2, 0]])
    assert [s for s, _ in data.images.chunks(4)] == [0, 4, 8]


def test_balance_streams_a_store_a_chunk_at_a_time_and_equals_the_in_memory_balance(tmp_path):
    n = 3 * CHUNK_IMAGES
    data, reader = lazy_set(n, counts=[100, n - 100])
    result = synthaug.balance(data, "augment", test_per_class=10, seed=3, out=tmp_path / "s.h5")
    # Never the whole set at once: every read of the source is at most one chunk.
    assert reader.reads and max(reader.reads) <= CHUNK_IMAGES
    eager = synthaug.balance(data.in_memory(), "augment", test_per_class=10, seed=3)
    stored = read_store(result.path, "train")
    np.testing.assert_array_equal(stored.images, eager.train.images)
    np.testing.assert_array_equal(stored.source_index, eager.train.source_index)
    assert stored.counts() == {"a": n - 110, "b": n - 110} and stored.counts(synthetic=True)["a"] == n - 200
    np.testing.assert_array_equal(read_store(result.path, "test").images, eager.test.images)
    assert result.train.is_lazy and result.train.counts() == stored.counts()


def test_generate_equals_its_chunks_across_chunk_boundaries():
    data, _ = lazy_set(40, counts=[10, 30])
    augment = synthaug.get_registry().create("synthesizer", "augment")
    n = CHUNK_IMAGES + 20
    whole = augment.generate(data, "a", n, seed=5)
    chunks = list(augment.generate_chunks(data, "a", n, seed=5))
    assert [len(c) for c in chunks] == [CHUNK_IMAGES, 20]
    np.testing.assert_array_equal(whole.images, np.concatenate([c.images for c in chunks]))
    np.testing.assert_array_equal(whole.source_index, np.concatenate([c.source_index for c in chunks]))


def test_a_synthesizer_that_does_not_read_lazily_gets_the_split_in_memory(tmp_path):
    from synthaug.contract.interfaces import Synthesizer

    seen = {}

    class Whole(Synthesizer):
        name = "whole"

        def generate(self, train, target, n, *, seed, volumes=None, run=DEFAULT_RUN):
            seen["type"] = type(train.images)
            idx = np.resize(np.flatnonzero(train.labels == train.class_index(target)), n)
            return train.subset(idx)

    data, _ = lazy_set(60, counts=[20, 40])
    synthaug.balance(data, Whole(), test_per_class=5, out=tmp_path / "s.h5")
    assert seen["type"] is np.ndarray


def test_a_short_chunked_synthesizer_is_refused_and_no_store_is_left(tmp_path):
    from synthaug.contract.interfaces import Synthesizer

    class Short(Synthesizer):
        name = "short"
        reads_lazily = True

        def generate(self, train, target, n, *, seed, volumes=None, run=DEFAULT_RUN):
            raise AssertionError("balance calls generate_chunks")

        def generate_chunks(self, train, target, n, *, seed, volumes=None, run=DEFAULT_RUN):
            yield train.subset(np.flatnonzero(train.labels == train.class_index(target))[:1])

    data, _ = lazy_set(60, counts=[20, 40])
    with pytest.raises(SynthaugError, match=r"'short' returned 1 images for class 'a'; expected 20"):
        synthaug.balance(data, Short(), test_per_class=5, out=tmp_path / "s.h5")
    assert list(tmp_path.iterdir()) == []


def test_eight_bit_sources_are_stored_as_uint8_and_read_back_bit_for_bit(tmp_path):
    root = make_kaggle_later(tmp_path / "k", counts=(12, 20, 20, 0), size=24)
    eager = synthaug.load_images("kaggle", root, size=16)
    lazy = synthaug.load_images("kaggle", root, size=16, lazy=True)
    assert lazy.is_lazy and not eager.is_lazy and lazy.meta["bit_depth"] == 8 == eager.meta["bit_depth"]
    np.testing.assert_array_equal(np.asarray(lazy.images), eager.images)
    np.testing.assert_array_equal(lazy.origin, eager.origin)
    result = synthaug.balance(lazy, "augment", test_per_class=4, seed=1, out=tmp_path / "s.h5")
    with h5py.File(result.path) as f:
        assert f["train/images"].dtype == np.uint8 and f["train/images"].attrs["scale"] == 255
        assert int(f.attrs["schema_version"]) == 2
    assert store_info(result.path)["image_dtype"] == "uint8"
    stored = read_store(result.path, "train")
    real = stored.synth == "real"
    by_origin = dict(zip(eager.origin, eager.images))
    for image, origin in zip(stored.images[real], stored.origin[real]):
        np.testing.assert_array_equal(image, by_origin[origin])  # the float the source made
    made = stored.images[~real]
    assert len(made) == 8 and np.array_equal(np.rint(made * 255) / np.float32(255), made)  # on the 8-bit grid
    in_memory = synthaug.balance(eager, "augment", test_per_class=4, seed=1)
    np.testing.assert_array_equal(in_memory.train.images, stored.images)  # rounded when made, not when written
    dataset = synthaug.open_store(result.path)
    image, label = dataset[len(dataset) - 1]
    np.testing.assert_array_equal(image.numpy(), stored.images[-1])


def test_a_schema_one_float32_store_still_opens(tmp_path):
    path = tmp_path / "old.h5"
    images = np.random.default_rng(0).random((3, 1, 4, 4)).astype(np.float32)
    with h5py.File(path, "w") as f:
        f.attrs.update(schema_version=1, class_names=json.dumps(["a", "b"]), config="{}", synthaug_version="0.1")
        g = f.create_group("train")
        g["images"] = images
        g["labels"] = np.array([0, 1, 1])
        for col in ("patient_ids", "synth", "origin"):
            g.create_dataset(col, data=np.array(["x", "real", "y"], dtype=object), dtype=h5py.string_dtype())
        g["source_index"] = np.full(3, -1)
        g["seed"] = np.full(3, -1)
    np.testing.assert_array_equal(read_store(path).images, images)
    np.testing.assert_array_equal(read_store(path, lazy=True).images[[2, 0]], images[[2, 0]])
    np.testing.assert_array_equal(synthaug.open_store(path)[1][0].numpy(), images[1])


def test_lazy_kaggle_names_a_corrupt_file_and_skips_it_when_asked(tmp_path):
    root = make_kaggle_later(tmp_path / "k", counts=(6, 6, 6, 0), size=16)
    bad = next((root / "COVID-19_Radiography_Dataset" / "Normal" / "images").iterdir())
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    with pytest.raises(SynthaugError, match=bad.name):
        synthaug.load_images("kaggle", root, lazy=True)
    data = synthaug.load_images("kaggle", root, lazy=True, skip_bad=True)
    assert data.meta["skipped"] == 1 and len(data) == 17 and str(bad) not in set(data.origin)


def test_lazy_sources_check_sizes_from_headers(tmp_path):
    for k, size in enumerate((16, 16, 20)):
        write_png(tmp_path / "d" / ("a" if k < 2 else "b") / f"{k}.png", size=size)
    with pytest.raises(SynthaugError, match="different sizes"):
        synthaug.load_images("imagefolder", tmp_path / "d", lazy=True)
    data = synthaug.load_images("imagefolder", tmp_path / "d", size=12, lazy=True)
    assert data.images.shape == (3, 1, 12, 12) and data.images[2].shape == (1, 12, 12)


def test_the_h5_source_reads_a_store_lazily_and_resizes_a_chunk_at_a_time(tmp_path):
    data, _ = lazy_set(30, counts=[10, 20])
    write_store(tmp_path / "s.h5", {"all": data})
    lazy = synthaug.load_images("h5", tmp_path / "s.h5", size=8, lazy=True)
    eager = synthaug.load_images("h5", tmp_path / "s.h5", size=8)
    assert lazy.is_lazy and lazy.image_shape == (1, 8, 8)
    np.testing.assert_allclose(np.asarray(lazy.images), eager.images, atol=1e-6)


def test_reading_a_split_into_memory_that_does_not_fit_is_refused_before_reading(tmp_path, monkeypatch):
    from synthaug.contract.interfaces import Synthesizer
    from synthaug.kit import memory

    class Whole(Synthesizer):
        name = "whole"

        def generate(self, train, target, n, *, seed, volumes=None, run=DEFAULT_RUN):
            raise AssertionError("never reached")

    data, reader = lazy_set(60, counts=[20, 40])
    monkeypatch.setattr(memory, "cpu_available_bytes", lambda: 20_000)  # 20 kB free: 50 images of 1x8x8 are 12.8 kB
    reader.reads.clear()
    with pytest.raises(SynthaugError, match=r"synthesizer 'whole' reads the training split into memory \(50 images "
                                            r"of 1x8x8: 0.00 GB\) and 0.00 GB are available: pass a smaller --size"):
        synthaug.balance(data, Whole(), test_per_class=5, out=tmp_path / "s.h5")
    assert reader.reads == [] and not list(tmp_path.iterdir())
    monkeypatch.setattr(memory, "cpu_available_bytes", lambda: 10**9)
    assert len(synthaug.balance(data, "duplicate", test_per_class=5, out=tmp_path / "s.h5").train) == 70


def _lazy_grey(n: int, counts, side: int = 16):
    """A lazy 2-class set of ``side`` px images that records its reads (pix2pix needs at least 16 px)."""
    reads = []

    def read(positions):
        reads.append(len(positions))
        pixel = np.arange(side * side, dtype=np.float64)[None, :]
        texture = 0.5 + 0.5 * np.sin(positions[:, None] * 12.9898 + pixel * 78.233)  # each image's own
        base = (positions % 17 / 17.0)[:, None]
        return (base * 0.5 + 0.4 * texture).astype(np.float32).reshape(len(positions), 1, side, side)

    labels = np.repeat(np.arange(len(counts)), counts)
    return ImageSet(LazyImages(read, n, (1, side, side)), labels, ("covid", "normal")[:len(counts)],
                    [f"p{i}" for i in range(n)]), reads


@pytest.mark.slow  # streaming-vs-memory equality: the end-to-end group
def test_pix2pix_reads_a_split_too_large_for_memory_a_batch_at_a_time_with_the_same_result(monkeypatch):
    import importlib

    options = dict(epochs=1, batch_size=4, ngf=8, ndf=8, source_class="normal", target_classes=("covid",),
                   pairing="nearest")
    data, reads = _lazy_grey(300, [20, 280])
    in_memory = synthaug.get_registry().create("synthesizer", "pix2pix", **options)
    in_memory.fit(data.in_memory())
    pix2pix = importlib.import_module(type(in_memory).__module__)  # the module the registry loaded
    monkeypatch.setattr(pix2pix, "fits_in_memory", lambda nbytes: False)
    reads.clear()
    streamed = synthaug.get_registry().create("synthesizer", "pix2pix", **options)
    streamed.fit(data)  # lazy: nearest pairing's features a chunk at a time, then each batch when drawn
    assert reads and max(reads) <= CHUNK_IMAGES and sum(r == 4 for r in reads) >= 2 * (280 // 4)
    assert streamed.hashes == in_memory.hashes  # the same numbers in the same order: the same generator
    monkeypatch.undo()
    reads.clear()
    synthaug.get_registry().create("synthesizer", "pix2pix", **options).fit(data)  # fits: read in once
    assert sum(reads) == 300


@pytest.mark.slow  # streaming-vs-memory equality: the end-to-end group
def test_acgan_keeps_only_the_images_at_its_working_size_read_a_chunk_at_a_time():
    data, reads = _lazy_grey(300, [40, 260])
    options = dict(epochs=1, batch_size=16, ngf=8, ndf=8, latent_dim=8)
    in_memory = synthaug.get_registry().create("synthesizer", "acgan", **options)
    in_memory.fit(data.in_memory())
    reads.clear()
    streamed = synthaug.get_registry().create("synthesizer", "acgan", **options)
    streamed.fit(data)
    assert max(reads) <= CHUNK_IMAGES and sum(reads) == 300
    assert streamed.hash == in_memory.hash
