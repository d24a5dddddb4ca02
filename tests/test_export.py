"""`synthaug export STORE DIR`: class folders of PNGs that read back as the stored pixels, a provenance.csv
that matches the store row for row, and refusals that leave nothing behind."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

import synthaug
from synthaug import ImageSet, read_store, write_store
from synthaug.cli import main
from synthaug.kit.files import lock_path
from synthaug.pipeline.export import PROVENANCE_COLUMNS

from conftest import make_augment_store


def export(*args):
    return CliRunner().invoke(main, ["--quiet", "export", *map(str, args)])


@pytest.fixture(scope="module")
def store_8bit(tmp_path_factory):
    return make_augment_store(tmp_path_factory)


def test_exported_8bit_store_reads_back_as_the_stored_pixels(tmp_path, store_8bit):
    result = export(store_8bit, tmp_path / "png")
    assert result.exit_code == 0, result.output
    assert "train: covid 4, normal 4" in result.output and "8-bit PNGs" in result.output
    for split in ("train", "test"):
        stored = read_store(store_8bit, split)
        loaded = synthaug.load_images("imagefolder", tmp_path / "png" / split)
        assert loaded.class_names == stored.class_names and loaded.counts() == stored.counts()
        for c in range(len(stored.class_names)):  # files sort in store order within a class
            np.testing.assert_array_equal(loaded.images[loaded.labels == c], stored.images[stored.labels == c])
    names = sorted(p.name for p in (tmp_path / "png" / "train" / "covid").iterdir())
    assert [n.split("_")[1] for n in names] == ["real.png", "real.png", "augment.png", "augment.png"]


def test_provenance_csv_matches_the_store_row_for_row(tmp_path, store_8bit):
    assert export(store_8bit, tmp_path / "png").exit_code == 0
    with open(tmp_path / "png" / "provenance.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert tuple(rows[0]) == PROVENANCE_COLUMNS
    expected = []
    for split in ("train", "test"):
        s = read_store(store_8bit, split, images=False)
        for i in range(len(s)):
            name = s.class_names[s.labels[i]]
            expected.append([split, f"{split}/{name}/{i:06d}_{s.synth[i]}.png", name, str(s.labels[i]), s.synth[i],
                             s.origin[i], str(s.source_index[i]), str(s.seed[i]), s.patient_ids[i]])
    assert rows[1:] == expected and len(expected) == 10
    assert all((tmp_path / "png" / row[1]).is_file() for row in rows[1:])
    synthetic = [row for row in rows[1:] if row[4] == "augment"]
    assert len(synthetic) == 2 and all(row[2] == "covid" and int(row[6]) >= 0 for row in synthetic)


def test_16bit_and_float_stores_give_16bit_pngs_of_the_stored_integers(tmp_path):
    import cv2  # albumentations' dependency (the augment synthesizer uses it): reads 16-bit RGB PNGs
    from PIL import Image

    rng = np.random.default_rng(0)
    grey = np.array([[[[0, 1], [65534, 65535]]], [[[300, 40000], [7, 12345]]]], np.float32) / np.float32(65535)
    uint16 = write_store(tmp_path / "u16.h5", {"train": ImageSet(grey, [0, 1], ("a", "b"), ["p", "q"],
                                                                   meta={"bit_depth": 16})})
    assert export(uint16, tmp_path / "u16", "--json").exit_code == 0
    for row, name in ((0, "a/000000_real.png"), (1, "b/000001_real.png")):
        with Image.open(tmp_path / "u16" / "train" / name) as im:
            assert im.mode == "I;16"
            np.testing.assert_array_equal(np.asarray(im), np.rint(grey[row, 0] * 65535).astype(np.uint16))
    twelve = write_store(tmp_path / "u12.h5", {"train": ImageSet(grey, [0, 1], ("a", "b"), ["p", "q"],
                                                                   meta={"bit_depth": 12})})
    assert export(twelve, tmp_path / "u12").exit_code == 0
    with Image.open(tmp_path / "u12" / "train" / "b" / "000001_real.png") as im:  # the stored 0..4095, not rescaled
        np.testing.assert_array_equal(np.asarray(im), np.rint(grey[1, 0] * 4095).astype(np.uint16))
    # their sBIT chunk says 12 bits: a source reads them back as the store's own k / 4095
    import synthaug

    back = synthaug.load_images("imagefolder", tmp_path / "u12" / "train")
    assert back.meta["bit_depth"] == 12
    np.testing.assert_array_equal(back.images, read_store(twelve, "train").images)
    rgb = rng.random((2, 3, 4, 5)).astype(np.float32)
    floats = write_store(tmp_path / "f32.h5", {"train": ImageSet(rgb, [0, 1], ("a", "b"), ["p", "q"])})
    result = export(floats, tmp_path / "f32", "--json")
    assert result.exit_code == 0 and '"bits": 16' in result.output
    back = cv2.imread(str(tmp_path / "f32" / "train" / "b" / "000001_real.png"), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16 and back.shape == (4, 5, 3)
    np.testing.assert_array_equal(back[..., ::-1], np.rint(rgb[1].transpose(1, 2, 0) * 65535).astype(np.uint16))


def _store_with(tmp_path, class_names=("a", "b"), channels=1):
    images = np.zeros((2, channels, 4, 4), np.float32)
    return write_store(tmp_path / "s.h5", {"train": ImageSet(images, [0, 1], class_names, ["p", "q"])})


@pytest.mark.parametrize("class_names, channels, args, message", [
    (("a", "b/c"), 1, (), "class 'b/c' cannot be a folder name"),
    (("a", ".."), 1, (), "class '..' cannot be a folder name"),
    (("a", ""), 1, (), "class '' cannot be a folder name"),
    (("a", "b"), 2, (), "images have 2 channels; PNG export takes 1 (grey) or 3 (RGB)"),
    (("a", "b"), 1, ("--split", "test"), "no split 'test'; the store has train"),
])
def test_refusals_name_the_cause_and_leave_nothing(tmp_path, class_names, channels, args, message):
    store = _store_with(tmp_path, class_names, channels)
    before = sorted(os.listdir(tmp_path))
    result = export(store, tmp_path / "out" / "png", *args)
    assert result.exit_code == 2 and message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert sorted(os.listdir(tmp_path)) == before  # no DIR, no parent made for it, no lock, no temporary


def test_existing_dir_is_refused_unless_overwrite_replaces_an_earlier_export(tmp_path):
    store = _store_with(tmp_path)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("user data")
    result = export(store, tmp_path / "mine")
    assert result.exit_code == 2 and "already exists; pass --overwrite" in result.output
    result = export(store, tmp_path / "mine", "--overwrite")
    assert result.exit_code == 2 and "is not an earlier export (no provenance.csv in it)" in result.output
    assert (tmp_path / "mine" / "keep.txt").read_text() == "user data"
    assert export(store, tmp_path / "png").exit_code == 0
    (tmp_path / "png" / "stale.txt").write_text("from before")
    assert export(store, tmp_path / "png", "--overwrite").exit_code == 0
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == ["provenance.csv", "train"]


def test_a_failure_while_writing_leaves_no_dir(tmp_path, monkeypatch):
    from synthaug.pipeline import export as export_module

    store = _store_with(tmp_path)
    written = []

    def fail_on_second(image, significant_bits=None):
        if written:
            raise OSError("simulated crash")
        written.append(image)
        return b"png"

    monkeypatch.setattr(export_module, "png_bytes", fail_on_second)
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(OSError, match="simulated crash"):
        export_module.export_store(store, tmp_path / "png")
    assert len(written) == 1 and sorted(os.listdir(tmp_path)) == before


def test_a_second_export_into_a_dir_being_written_is_refused(tmp_path):
    store = _store_with(tmp_path)
    out = tmp_path / "png"
    lock = lock_path(out.absolute())
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a+'); "
                               "f.write('4242'); f.flush(); fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); "
                               "time.sleep(60)", str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        result = export(store, out)
    finally:
        holder.kill()
        holder.wait()
    assert result.exit_code == 2 and "is being written by another synthaug run (process 4242)" in result.output
    assert not out.exists()
