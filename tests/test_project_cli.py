"""`synthaug project`: a NIfTI file in, a PNG or NPY out, one-line errors with exit code 2."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from synthaug.cli import main


@pytest.fixture
def ct_file(tmp_path):
    import nibabel as nib

    hu = np.full((24, 20, 16), -1000, np.int16)
    hu[6:18, 4:16, 3:13] = 0  # a water block
    hu[11:13, 4:16, 3:13] = 1000  # a bone rod
    path = tmp_path / "phantom.nii.gz"
    nib.save(nib.Nifti1Image(hu, np.diag([2.0, 2.0, 2.5, 1.0])), str(path))
    return path


def run(*args):
    return CliRunner().invoke(main, ["--quiet", "project", *map(str, args)])


def test_project_png_and_npy(ct_file, tmp_path):
    result = run("--volume", ct_file, "--size", "32", "--out", tmp_path / "drr.png")
    assert result.exit_code == 0, result.output
    from PIL import Image

    png = np.asarray(Image.open(tmp_path / "drr.png"))
    assert png.shape == (32, 32) and png.dtype == np.uint8 and png.max() == 255 and png.min() == 0
    result = run("--volume", ct_file, "--size", "24", "16", "--mode", "raw", "--spacing", "3",
                 "--pose", "0,0,10,0,0,0", "--view", "PA", "--out", tmp_path / "raw.npy")
    assert result.exit_code == 0, result.output
    raw = np.load(tmp_path / "raw.npy")
    assert raw.shape == (24, 16) and raw.dtype == np.float32
    assert 0.5 < float(raw.max()) < 2.0  # ~ 24 mm water + bone, magnified rays: order of 1 mu*mm

    from synthaug.contract.types import Geometry
    from synthaug.registry import create
    from synthaug_plugins.sources.nifti import read_nifti

    expected = create("projector", "siddon").project(
        read_nifti(ct_file), Geometry(height=24, width=16, pixel_spacing=3.0, pose=(0, 0, 10, 0, 0, 0), view="PA"),
        mode="raw")
    np.testing.assert_array_equal(raw, expected[0])


def test_project_parallel_and_size_forms(ct_file, tmp_path):
    result = run("--projector", "parallel", "--volume", ct_file, "--size", "20x30", "--out", tmp_path / "p.npy")
    assert result.exit_code == 0, result.output
    assert np.load(tmp_path / "p.npy").shape == (20, 30)


@pytest.mark.parametrize("args, message", [
    (("--pose", "1,2,3"), "--pose must be 6 comma-separated numbers"),
    (("--size", "0"), "--size must be H or H W"),
    (("--sid", "2000"), "need 0 < sid < sdd"),
    (("--sid", "10", "--sdd", "100"), "source lies inside the volume"),
    (("--projector", "sidon"), "did you mean 'siddon'"),
    (("--checkpoint", "ckpt"), "unknown option 'checkpoint'"),
])
def test_bad_options_are_one_line_errors(ct_file, tmp_path, args, message):
    result = run("--volume", ct_file, "--out", tmp_path / "x.png", *args)
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.output
    assert not (tmp_path / "x.png").exists()


def test_bad_files_are_one_line_errors(ct_file, tmp_path):
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(ct_file.read_bytes()[:200])
    result = run("--volume", cut, "--out", tmp_path / "x.png")
    assert result.exit_code == 2 and "cut.nii.gz" in result.output and len(result.output.strip().splitlines()) == 1
    result = run("--volume", ct_file, "--out", tmp_path / "x.jpg")
    assert result.exit_code == 2 and "must end in .png or .npy" in result.output


def test_top_level_project_returns_the_image_the_command_writes(ct_file, tmp_path):
    import synthaug
    from synthaug_plugins.sources.nifti import read_nifti

    result = run("--volume", ct_file, "--size", "20", "--mode", "raw", "--out", tmp_path / "raw.npy")
    assert result.exit_code == 0, result.output
    image = synthaug.project(read_nifti(ct_file), "siddon", height=20, width=20, mode="raw")
    assert image.shape == (1, 20, 20) and image.dtype == np.float32
    np.testing.assert_array_equal(image[0], np.load(tmp_path / "raw.npy"))
