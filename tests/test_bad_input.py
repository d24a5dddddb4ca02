"""The bad-input matrix (docs/reliability.md): one row per case, each through the command line.

A refused case: exit code 2, exactly one line on the output, starting ``Error:``, naming the file or
value and what was expected, and no output written (the ``--out`` path and its parent do not exist).
A valid-but-unusual case (16-bit, palette, CMYK, ``--skip-bad``) runs and reads the right values.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from synthaug.cli import main
from tests.conftest import write_png


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def refused(result, *fragments):
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for fragment in fragments:
        assert str(fragment) in lines[0], (fragment, lines[0])
    return lines[0]


def folders(root: Path, counts=(3, 3), size=16, **png) -> Path:
    for c, n in enumerate(counts):
        for k in range(n):
            write_png(root / f"class{c}" / f"{k}.png", size=size, seed=k, **png)
    return root


def balance(data_dir, out, *extra, data="imagefolder"):
    return run("balance", "--synth", "duplicate", "--data", data, "--data-dir", data_dir, "--test-per-class", "1",
               "--size", "16", *extra, "--out", out)


# ---- image sources --------------------------------------------------------------------------------

def case_missing_dir(tmp):
    return tmp / "nowhere", ["nowhere"]


def case_empty_dir(tmp):
    (tmp / "empty").mkdir()
    return tmp / "empty", ["empty", "expected one sub-folder of images per class"]


def case_flat_folder(tmp):
    for k in range(4):
        write_png(tmp / "flat" / f"{k}.png", size=16)
    return tmp / "flat", ["flat", "expected one sub-folder of images per class"]


def case_empty_class(tmp):
    root = folders(tmp / "d")
    (root / "class2").mkdir()
    return root, ["class2", "class folder holds no images"]


def broken_file(name: str, content):
    """A case: a class folder holding, besides good images, file ``name`` with bytes ``content(good PNG)``."""
    def case(tmp):
        root = folders(tmp / "d")
        (root / "class0" / name).write_bytes(content((root / "class0" / "0.png").read_bytes()))
        return root, [name, "unreadable image"]
    return case


case_corrupt_png = broken_file("bad.png", lambda good: b"\x89PNG\r\n\x1a\nnot really a png")
case_truncated_png = broken_file("cut.png", lambda good: good[:len(good) // 2])
case_zero_byte_png = broken_file("zero.png", lambda good: b"")


def case_decompression_bomb(tmp):
    root = folders(tmp / "d")
    big = Image.new("L", (14000, 14000))  # 196 Mpixel: over twice PIL's MAX_IMAGE_PIXELS (89.5 Mpixel), an error
    big.save(root / "class0" / "bomb.png", optimize=False)
    return root, ["bomb.png", "unreadable image"]


IMAGE_CASES = {
    "missing directory": case_missing_dir,
    "empty directory": case_empty_dir,
    "flat folder, no class folders": case_flat_folder,
    "empty class folder": case_empty_class,
    "corrupt PNG": case_corrupt_png,
    "truncated PNG": case_truncated_png,
    "zero-byte PNG": case_zero_byte_png,
    "image over the decompression-bomb limit": case_decompression_bomb,
}


@pytest.mark.parametrize("case", IMAGE_CASES)
def test_bad_image_input_is_one_line_exit_2_and_no_output(tmp_path, case):
    data_dir, fragments = IMAGE_CASES[case](tmp_path)
    out = tmp_path / "out" / "s.h5"
    refused(balance(data_dir, out), *fragments)
    assert not out.parent.exists()


@pytest.mark.parametrize("case", ["corrupt PNG", "truncated PNG", "zero-byte PNG"])
def test_skip_bad_skips_and_counts_the_broken_file(tmp_path, case):
    data_dir, _ = IMAGE_CASES[case](tmp_path)
    out = tmp_path / "out" / "s.h5"
    result = balance(data_dir, out, "--skip-bad")
    assert result.exit_code == 0, result.output
    assert "skipped 1 unreadable" in result.output and out.is_file()


@pytest.mark.parametrize("kind", ["16-bit PNG", "palette PNG", "CMYK JPEG"])
def test_unusual_but_valid_images_are_read_with_their_values(tmp_path, kind):
    from synthaug.pipeline.store import read_store

    root = folders(tmp_path / "d", counts=(2, 2))
    value = np.full((16, 16), 0.25)
    path = root / "class0" / ("odd.jpg" if kind == "CMYK JPEG" else "odd.png")
    if kind == "16-bit PNG":
        Image.fromarray((value * 65535).astype(np.uint16)).save(path)
    elif kind == "palette PNG":
        Image.fromarray((value * 255).astype(np.uint8), "L").convert("P").save(path)
    else:
        Image.fromarray((value * 255).astype(np.uint8), "L").convert("CMYK").save(path, quality=100)
    out = tmp_path / "s.h5"
    result = run("balance", "--synth", "duplicate", "--data", "imagefolder", "--data-dir", root, "--test-per-class",
                 "1", "--strategy", "none", "--seed", "0", "--out", out)
    assert result.exit_code == 0, result.output
    stored = [read_store(out, split) for split in ("train", "test")]
    (image,) = [s.images[i] for s in stored for i, o in enumerate(s.origin) if str(o).endswith(path.name)]
    assert abs(float(np.mean(image)) - 0.25) < 0.01  # its grey level, not a misread channel or palette index


# ---- volumes ---------------------------------------------------------------------------------------

def nifti(path: Path, data: np.ndarray, zooms=(1.0, 1.0, 1.0)) -> Path:
    import nibabel as nib

    image = nib.Nifti1Image(data, np.eye(4))
    if tuple(zooms) != (1.0, 1.0, 1.0):  # written into the header as a scanner would, not through nibabel's checks
        image.header["pixdim"][1:4] = zooms
        image.set_sform(None, code=0)
        image.set_qform(None, code=0)
    nib.save(image, str(path))
    return path


def volume_case(tmp: Path, case: str) -> tuple[Path, list[str]]:
    hu = np.full((24, 24, 16), -500.0, np.float32)
    if case == "corrupt NIfTI":
        path = tmp / "v.nii.gz"
        path.write_bytes(gzip.compress(b"not a nifti header at all" * 20))
        return path, ["v.nii.gz", "NIfTI"]
    if case == "2-D NIfTI":
        return nifti(tmp / "v.nii", hu[:, :, 0]), ["v.nii", "expected a 3-D CT volume"]
    if case == "NaN-holding NIfTI":
        hu[3, 3, 3] = np.nan
        return nifti(tmp / "v.nii", hu), ["v.nii", "NaN"]
    if case == "Inf-holding NIfTI":
        hu[3, 3, 3] = np.inf
        return nifti(tmp / "v.nii", hu), ["v.nii", "inf"]
    if case == "zero-spacing NIfTI":
        return nifti(tmp / "v.nii", hu, zooms=(1.0, 0.0, 1.0)), ["v.nii", "spacing"]
    raise AssertionError(case)


VOLUME_CASES = ["corrupt NIfTI", "2-D NIfTI", "NaN-holding NIfTI", "Inf-holding NIfTI", "zero-spacing NIfTI"]


@pytest.mark.parametrize("case", VOLUME_CASES)
def test_bad_volumes_are_one_line_exit_2_and_no_output(tmp_path, case):
    path, fragments = volume_case(tmp_path, case)
    out = tmp_path / "out" / "drr.png"
    line = refused(run("project", "--volume", path, "--size", "32", "--out", out), *fragments[:1])
    assert fragments[1].lower() in line.lower(), line
    assert not out.parent.exists()


# ---- names, options, splits, weights, runs, stores --------------------------------------------------

@pytest.fixture(scope="module")
def kaggle(tmp_path_factory):
    from tests.conftest import make_kaggle_later

    return make_kaggle_later(tmp_path_factory.mktemp("bad"), counts=(6, 10, 11, 4), size=16)


def kaggle_balance(kaggle, out, *extra):
    return run("balance", "--data", "kaggle", "--data-dir", kaggle, "--test-per-class", "1", *extra, "--out", out)


@pytest.mark.parametrize("extra, fragments", [
    (["--synth", "nosuch"], ["'nosuch'", "duplicate"]),
    (["--synth", "duplicate", "--include", "nosuch"], ["'nosuch'", "lung_opacity"]),
    (["--synth", "duplicate", "--strategy", "nosuch=3"], ["'nosuch'", "covid"]),
    (["--synth", "augment", "--synth-option", "nosuch=1"], ["nosuch", "flip_p"]),
    (["--synth", "augment", "--synth-option", "flip_p=often"], ["flip_p", "'often'"]),
    (["--synth", "duplicate", "--test-per-class", "7"], ["covid", "has 6 real images", "7"]),
], ids=["unknown synthesizer", "unknown class", "unknown class in a strategy", "unknown option",
        "option of the wrong type", "test split larger than a class"])
def test_bad_names_and_values_are_one_line_exit_2_and_no_output(kaggle, tmp_path, extra, fragments):
    out = tmp_path / "out" / "s.h5"
    refused(kaggle_balance(kaggle, out, *extra), *fragments)
    assert not out.parent.exists()


@pytest.fixture(scope="module")
def store(kaggle, tmp_path_factory):
    path = tmp_path_factory.mktemp("bad-store") / "s.h5"
    assert kaggle_balance(kaggle, path, "--synth", "duplicate", "--size", "32").exit_code == 0
    return path


def test_a_weights_file_of_another_architecture_is_refused(store, tmp_path):
    import torch

    weights = tmp_path / "w.pt"
    torch.save({"conv.weight": torch.zeros(3, 3, 3, 3)}, weights)
    out = tmp_path / "run"
    refused(run("train", "--data", store, "--classifier", "resnet50", "--mode", "transfer", "--weights", weights,
                "--epochs", "1", "--out", out), "w.pt")
    assert not out.exists()


def test_a_resume_against_other_data_or_options_is_refused(store, kaggle, tmp_path):
    common = ["train", "--classifier", "densenet121", "--classifier-option", "width=0.25", "--epochs", "1",
              "--batch-size", "16", "--device", "cpu"]
    run_dir = tmp_path / "run"
    assert run(*common, "--data", store, "--out", run_dir).exit_code == 0
    before = sorted(p.name for p in run_dir.rglob("*"))
    other = tmp_path / "other.h5"
    assert kaggle_balance(kaggle, other, "--synth", "augment", "--size", "32").exit_code == 0
    refused(run(*common, "--data", other, "--resume", "--out", run_dir), str(other), "not the store")
    refused(run(*common, "--data", store, "--batch-size", "8", "--resume", "--out", run_dir), "batch")
    assert sorted(p.name for p in run_dir.rglob("*")) == before


def test_a_store_of_a_newer_schema_is_refused(store, tmp_path):
    import shutil

    import h5py

    newer = tmp_path / "newer.h5"
    shutil.copy(store, newer)
    with h5py.File(newer, "a") as f:
        f.attrs["schema_version"] = 99
    refused(run("inspect", newer), "newer.h5", "99")


def test_a_truncated_store_is_refused(store, tmp_path):
    cut = tmp_path / "cut.h5"
    data = store.read_bytes()
    cut.write_bytes(data[:len(data) // 2])
    refused(run("inspect", cut), "cut.h5")
    out = tmp_path / "run"
    refused(run("train", "--data", cut, "--classifier", "densenet121", "--epochs", "1", "--out", out), "cut.h5")
    assert not out.exists()


def test_a_store_another_run_is_writing_is_refused(kaggle, tmp_path):
    from synthaug.kit.files import hold

    out = tmp_path / "s.h5"
    with hold(out):  # this test process is the other run (the lock is per open file, so the CLI is refused)
        import os
        import subprocess
        import sys

        done = subprocess.run([str(Path(sys.executable).with_name("synthaug")), "balance", "--synth", "duplicate",
                               "--data", "kaggle", "--data-dir", str(kaggle), "--test-per-class", "1", "--out",
                               str(out)], capture_output=True, text=True, timeout=120,
                              env=dict(os.environ, SYNTHAUG_QUIET="1"))
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        f"Error: {out} is being written by another synthaug run (process {os.getpid()}); wait for it to finish "
        f"or choose another output"]
    assert not out.exists()


def test_an_unknown_classifier_option_is_refused_before_training(store, tmp_path):
    out = tmp_path / "run"
    refused(run("train", "--data", store, "--classifier", "densenet121", "--classifier-option", "nosuch=1",
                "--out", out), "'nosuch'", "width")
    assert not out.exists()


def test_a_ct_volume_too_small_for_the_xpgan_encoder_is_refused_before_fitting(kaggle, tmp_path):
    volumes = tmp_path / "vols"
    (volumes / "covid").mkdir(parents=True)
    nifti(volumes / "covid" / "tiny.nii", np.full((6, 6, 3), -500.0, np.float32))
    out = tmp_path / "out" / "s.h5"
    line = refused(kaggle_balance(kaggle, out, "--size", "32", "--synth", "xpgan", "--synth-option", "preset=small",
                                  "--strategy", "covid=10", "--volumes", "nifti", "--volumes-dir", volumes),
                   "tiny.nii", "(6, 6, 3)")
    assert "the encoder grid (32, 32, 16) needs at least (8, 8, 4) voxels" in line
    assert not out.parent.exists()


def test_images_too_small_for_the_classifier_are_refused_before_training(kaggle, tmp_path):
    small = tmp_path / "s16.h5"
    assert kaggle_balance(kaggle, small, "--synth", "duplicate", "--size", "16").exit_code == 0
    out = tmp_path / "run"
    line = refused(run("train", "--data", small, "--classifier", "densenet121", "--classifier-option", "width=0.25",
                       "--epochs", "1", "--out", out), "densenet121 on 16x16 images", "Output size is too small")
    assert "use a larger --size" in line and not out.exists()
