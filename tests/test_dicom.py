"""The ``dicom`` radiograph source and the ``dicom-ct`` volume source, on DICOM files the tests write."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import synthaug
from synthaug import SourceOptions, SynthaugError
from synthaug.pipeline.store import read_store, store_info

SOP_DX = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation
SOP_CT = "1.2.840.10008.5.1.4.1.1.2"  # CT Image Storage


def write_dicom(path: Path, k: np.ndarray, *, bits: int = 12, photometric: str = "MONOCHROME2", signed: bool = False,
                sop: str = SOP_DX, syntax=None, **elements) -> Path:
    """A single-frame DICOM file of stored values ``k`` (Explicit VR Little Endian unless ``syntax``)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = sop, generate_uid()
    meta.TransferSyntaxUID = syntax or ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta, ds.preamble = meta, b"\0" * 128
    ds.SOPClassUID, ds.SOPInstanceUID = sop, meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = k.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits, bits - 1, int(signed)
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    if "PixelData" not in elements:
        ds.PixelData = k.astype("<i2" if signed else "<u2").tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def levels(bits: int, seed: int, shape=(8, 8)) -> np.ndarray:
    k = np.random.default_rng(seed).integers(0, 2 ** bits, shape)
    k.flat[:2] = 0, 2 ** bits - 1
    return k


def over(k, bits: int) -> np.ndarray:
    return np.asarray(k).astype(np.float32) / np.float32(2 ** bits - 1)


def test_a_12_bit_monochrome2_set_reads_k_over_4095_with_spacing_and_patients(tmp_path):
    ks = [levels(12, s) for s in range(3)]
    write_dicom(tmp_path / "covid" / "a.dcm", ks[0], PatientID="P7", PixelSpacing=[0.2, 0.3])
    write_dicom(tmp_path / "normal" / "nested" / "1.2.840.99", ks[1], ImagerPixelSpacing=[0.15, 0.15])  # UID-named
    write_dicom(tmp_path / "normal" / "plain", ks[2])  # no extension, no spacing, no PatientID
    (tmp_path / "normal" / "notes.txt").write_text("not DICOM")
    (tmp_path / "normal" / "DICOMDIR").write_bytes(b"\0" * 128 + b"DICM")  # a directory record, not an image
    for lazy in (False, True):
        data = synthaug.load_images("dicom", tmp_path, lazy=lazy)
        assert data.class_names == ("covid", "normal") and list(data.labels) == [0, 1, 1]
        assert data.meta["bit_depth"] == 12 and data.is_lazy == lazy
        images = np.asarray(data.images)
        for i, k in enumerate(ks):
            assert np.array_equal(images[i, 0], over(k, 12))
        assert list(data.patient_ids) == ["P7", "1.2.840.99", "plain"]  # PatientID, else the file's name
        spacing = data.extras["pixel_spacing_mm"]
        assert spacing.shape == (3, 2) and np.array_equal(spacing[:2], [[0.2, 0.3], [0.15, 0.15]])
        assert np.isnan(spacing[2]).all()
    resized = synthaug.load_images("dicom", tmp_path, size=16, channels=3)
    assert resized.images.shape == (3, 3, 16, 16)
    assert np.allclose(resized.extras["pixel_spacing_mm"][0], [0.1, 0.15])  # 8 px of 0.2 mm are 16 of 0.1


def test_monochrome1_is_inverted_and_signed_pixels_map_their_range(tmp_path):
    k = levels(12, 0)
    write_dicom(tmp_path / "a" / "m1.dcm", k, photometric="MONOCHROME1")
    signed = k - 2048  # -2048..2047: 12 bits signed
    write_dicom(tmp_path / "b" / "s.dcm", signed, signed=True)
    data = synthaug.load_images("dicom", tmp_path)
    assert np.array_equal(data.images[0, 0], over(4095 - k, 12))  # bright = dense, as in MONOCHROME2
    assert np.array_equal(data.images[1, 0], over(signed + 2048, 12))
    assert data.meta["bit_depth"] == 12


def test_slope_intercept_and_a_linear_window_span_0_to_1(tmp_path):
    # modality x = 2 k - 1000; window centre 500.5, width 1001: x <= 0 is 0, x > 1000 is 1, and
    # (x - 500) / 1000 + 0.5 between (DICOM PS3.3 C.11.2.1.2.1)
    k = np.array([[0, 500, 625, 750], [875, 1000, 1100, 4095]])
    expected = np.array([[0, 0, 0.25, 0.5], [0.75, 1.0, 1.0, 1.0]], np.float32)
    window = dict(RescaleSlope=2, RescaleIntercept=-1000, WindowCenter=500.5, WindowWidth=1001)
    write_dicom(tmp_path / "a" / "m2.dcm", k, **window)
    write_dicom(tmp_path / "b" / "m1.dcm", k, photometric="MONOCHROME1", **window)
    data = synthaug.load_images("dicom", tmp_path)
    assert np.array_equal(data.images[0, 0], expected) and np.array_equal(data.images[1, 0], 1 - expected)
    assert data.meta["bit_depth"] is None and data.meta["voi"] is True  # a window makes floats: stored as float32
    plain = synthaug.load_images("dicom", tmp_path, voi=False)  # the stored bits' whole range instead
    assert np.array_equal(plain.images[0, 0], over(k, 12)) and plain.meta["bit_depth"] == 12
    with pytest.raises(SynthaugError, match="voi"):
        synthaug.load_images("dicom", tmp_path, voi="sometimes")
    sigmoid = write_dicom(tmp_path / "c" / "a" / "s.dcm", k, WindowCenter=1000, WindowWidth=400,
                          VOILUTFunction="SIGMOID")
    write_dicom(tmp_path / "c" / "b" / "t.dcm", k)
    data = synthaug.load_images("dicom", sigmoid.parent.parent)
    assert np.allclose(data.images[0, 0], 1 / (1 + np.exp(-4 * (k - 1000) / 400)), atol=1e-7)


@pytest.mark.parametrize("sequence", ["VOILUTSequence", "ModalityLUTSequence"])
def test_lookup_tables_map_through_their_entries(tmp_path, sequence):
    from pydicom.dataset import Dataset

    lut_bits = 10 if sequence == "VOILUTSequence" else 16  # a modality LUT's entries are 8 or 16 bits
    table = [0, 100, 200, 2 ** lut_bits - 1]
    item = Dataset()
    item.add_new("LUTDescriptor", "US", [4, 2, lut_bits])  # 4 entries, the first for value 2
    item.add_new("LUTData", "US", table)
    if sequence == "ModalityLUTSequence":
        item.ModalityLUTType = "US"
    k = np.array([[0, 2, 3, 4], [5, 9, 2, 3]])  # below and above the table clamp to its ends
    write_dicom(tmp_path / "a" / "l.dcm", k, bits=8, **{sequence: [item]})
    write_dicom(tmp_path / "b" / "m.dcm", k, bits=8)
    data = synthaug.load_images("dicom", tmp_path)
    entries = np.asarray(table)[np.clip(k - 2, 0, 3)]
    assert np.array_equal(data.images[0, 0], over(entries, lut_bits))
    assert data.meta["bit_depth"] == (None if lut_bits == 10 else 16)  # 10 and 8 bits share no grid; 16 holds 8


def test_bad_dicom_files_are_named_and_skipped_with_skip_bad(tmp_path):
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGLossless

    good = [write_dicom(tmp_path / c / f"{c}.dcm", levels(12, i)) for i, c in enumerate("ab")]
    junk = tmp_path / "a" / "junk.dcm"
    junk.write_bytes(b"this is not DICOM" * 10)
    cut = tmp_path / "b" / "cut"  # a real file cut short in its pixel data: found by its preamble
    cut.write_bytes(good[0].read_bytes()[:-40])
    for lazy in (False, True):
        with pytest.raises(SynthaugError, match=r"junk\.dcm: not a DICOM image \(no Rows/Columns\)"):
            synthaug.load_images("dicom", tmp_path, lazy=lazy)
        data = synthaug.load_images("dicom", tmp_path, lazy=lazy, skip_bad=True)
        assert data.meta["skipped_files"] == [str(junk), str(cut)] and list(data.origin) == [str(p) for p in good]
    junk.unlink()
    with pytest.raises(SynthaugError, match=r"b/cut: cannot decode the pixel data \(ValueError: The number of bytes"):
        synthaug.load_images("dicom", tmp_path)
    with pytest.raises(SynthaugError, match=r"b/cut: cannot decode the pixel data"):
        np.asarray(synthaug.load_images("dicom", tmp_path, lazy=True).images)  # the header alone is whole
    cut.unlink()
    jpeg = write_dicom(tmp_path / "b" / "jpeg.dcm", levels(12, 5), syntax=JPEGLossless,
                       PixelData=encapsulate([b"\xff\xd8 not really a JPEG \xff\xd9"]))
    for lazy in (False, True):  # refused from the header: before any image is read
        with pytest.raises(SynthaugError, match=r"jpeg\.dcm: pixel data compressed as JPEG Lossless.*no decoder"):
            synthaug.load_images("dicom", tmp_path, lazy=lazy)
    jpeg.unlink()
    k = levels(12, 6)
    k[3, 3] = 5000  # bits above HighBit 11 are not the value (PS3.5 8.1.1): 5000 & 4095 = 904
    write_dicom(tmp_path / "b" / "wide.dcm", k)
    data = synthaug.load_images("dicom", tmp_path)
    wide = list(data.origin).index(str(tmp_path / "b" / "wide.dcm"))
    assert data.images[wide, 0, 3, 3] == np.float32(904) / np.float32(4095) and data.meta["bit_depth"] == 12
    (tmp_path / "b" / "wide.dcm").unlink()
    options = SourceOptions()
    options.channels = 2
    with pytest.raises(SynthaugError, match=r"^channels=2: DICOM files give 1 \(grey\) or 3 \(RGB\) channels"):
        synthaug.get_registry().create("dataset", "dicom").load_images(tmp_path, options)


# ---- CT series --------------------------------------------------------------------------------------

SPACING = (0.6, 0.7, 2.5)  # mm along R, A, S


def reference(shape=(5, 4, 3)) -> np.ndarray:
    """HU in RAS+ voxel order, different along every axis: 100 x + 10 y + z - 1000."""
    x, y, z = np.indices(shape)
    return (100 * x + 10 * y + z - 1000).astype(np.float32)


def write_series(folder: Path, ref: np.ndarray, view: str, *, uid="1.2.3.4", patient="CT1", drop=None, shift=None):
    """``ref`` (RAS+) as the slices of an axial or coronal series, in shuffled file order.

    LPS = (-R, -A, S). Axial: rows run along +L (row cosine 1,0,0), down the image towards +P (0,1,0);
    the normal is +S. Coronal: rows along +L, down the image towards -S (0,0,-1); the normal is +P.
    HU = 0.5 k - 1024, so k = 2 (HU + 1024)."""
    (nx, ny, nz), (sx, sy, sz) = ref.shape, SPACING
    stored = 2 * (ref + 1024)
    if view == "axial":
        count, orientation, pixel = nz, [1, 0, 0, 0, 1, 0], [sy, sx]
        cut = lambda s: stored[::-1, ::-1, s].T  # noqa: E731  [row i, column j] = ref[nx-1-j, ny-1-i, s]
        position = lambda s: [-(nx - 1) * sx, -(ny - 1) * sy, s * sz]  # noqa: E731
    else:
        count, orientation, pixel = ny, [1, 0, 0, 0, 0, -1], [sz, sx]
        cut = lambda s: stored[::-1, s, ::-1].T  # noqa: E731  [i, j] = ref[nx-1-j, y, nz-1-i]
        position = lambda s: [-(nx - 1) * sx, -s * sy, (nz - 1) * sz]  # noqa: E731
    for order, s in enumerate(np.random.default_rng(1).permutation(count)):
        if s == drop:
            continue
        where = [round(v, 4) for v in position(s)]
        if shift is not None and s == shift:
            where = [v + d for v, d in zip(where, np.multiply(0.3, np.cross(orientation[:3], orientation[3:])))]
        write_dicom(folder / f"slice{order}.dcm", cut(s), bits=16, sop=SOP_CT, Modality="CT", PatientID=patient,
                    SeriesInstanceUID=uid, ImageOrientationPatient=orientation, ImagePositionPatient=where,
                    PixelSpacing=pixel, RescaleSlope=0.5, RescaleIntercept=-1024)


def test_a_ct_series_is_a_ras_volume_in_hu_whatever_its_slice_direction(tmp_path):
    ref = reference()
    write_series(tmp_path / "covid" / "axial", ref, "axial", patient="A")
    write_series(tmp_path / "normal" / "coronal", ref, "coronal", uid="1.2.3.5", patient="B")
    volumes = synthaug.load_volumes("dicom-ct", tmp_path)
    assert volumes.class_names == ("covid", "normal") and list(volumes.patient_ids) == ["A", "B"]
    for volume in volumes:
        assert volume.hu.shape == ref.shape and np.array_equal(volume.hu, ref)
        assert np.allclose(volume.spacing, SPACING)
    # the files' own voxel axes (columns, rows, slices), before the turn to RAS+
    assert volumes[0].meta["file_axcodes"] == ("L", "P", "S") and volumes[1].meta["file_axcodes"] == ("L", "I", "P")
    one_class = synthaug.load_volumes("dicom-ct", tmp_path / "covid", class_name="chest")
    assert one_class.class_names == ("chest",) and np.array_equal(one_class[0].hu, ref)
    resampled = synthaug.load_volumes("dicom-ct", tmp_path / "covid", shape="10x8x6")[0]
    assert resampled.hu.shape == (10, 8, 6)


@pytest.mark.parametrize("case, message", [
    ("missing", "a missing slice: 5 mm between"),
    ("uneven", "uneven slice spacing"),
    ("mixed", "holds 2 series"),
])
def test_a_broken_series_is_refused_naming_its_folder(tmp_path, case, message):
    ref = reference((5, 4, 5))
    folder = tmp_path / "series"
    if case == "missing":
        write_series(folder, ref, "axial", drop=2)
    elif case == "uneven":
        write_series(folder, ref, "axial", shift=2)
    else:
        write_series(folder, ref[:, :, :3], "axial")
        write_series(folder / "other", ref[:, :, 3:], "axial", uid="9.9")
        for path in (folder / "other").iterdir():
            path.rename(folder / f"other-{path.name}")
    volumes = synthaug.load_volumes("dicom-ct", tmp_path)  # lazy: refused when the volume is read
    with pytest.raises(SynthaugError, match=f"{folder}: {message}"):
        volumes[0]


# ---- end to end ---------------------------------------------------------------------------------

def test_dicom_and_16_bit_png_sets_balance_into_deep_stores_and_train(tmp_path):
    from PIL import Image

    for i in range(10):  # 12-bit DICOM, both photometric interpretations, 4 : 6
        cls = "covid" if i < 4 else "normal"
        write_dicom(tmp_path / "dcm" / cls / f"{i}.dcm", levels(12, i, (32, 32)),
                    photometric="MONOCHROME1" if i % 2 else "MONOCHROME2", PatientID=f"P{i}")
        path = tmp_path / "png" / cls / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(levels(16, i, (32, 32)).astype(np.uint16)).save(path)
    for name, source, bits in (("dcm", "dicom", 12), ("png", "imagefolder", 16)):
        data = synthaug.load_images(source, tmp_path / name, lazy=True)
        store = tmp_path / f"{name}.h5"
        synthaug.balance(data, "augment", test_per_class=1, seed=0, out=store)
        info = store_info(store)
        assert info["image_dtype"] == "uint16" and info["bit_depth"] == bits
        assert info["splits"]["train"]["classes"] == {"covid": 5, "normal": 5}
        test, read = read_store(store, "test"), data.in_memory()
        for image, origin in zip(test.images, test.origin):  # the real test images, exactly as read
            assert np.array_equal(image, read.images[list(read.origin).index(origin)])
        if name == "dcm":
            assert read_store(store, "train").extras["pixel_spacing_mm"].shape == (10, 2)
        run = synthaug.train(store, tmp_path / f"run-{name}", classifier="resnet50", epochs=1, batch_size=4,
                             classifier_options={"width": 0.25}, device="cpu", steps_per_epoch=1)
        import json

        manifest = json.loads((Path(run) / "manifest.json").read_text())
        assert manifest["status"] == "finished" and len(manifest["history"]) == 1
