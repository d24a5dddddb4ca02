"""``dicom-ct``: CT series from DICOM files as volumes in HU, RAS+ voxel order.

Layouts (``--data-dir ROOT``)::

    ROOT/*.dcm                      one series (class ``class_name``)
    ROOT/<series>/*.dcm             one series per sub-folder (class ``class_name``)
    ROOT/<class>/<series>/*.dcm     class folders of series (class names = folder names, sorted)

A series folder holds the slices of one series, nothing else. Slices are ordered by
``ImagePositionPatient`` projected on the slice normal (the cross product of the row and column
cosines of ``ImageOrientationPatient``); HU = ``RescaleSlope * k + RescaleIntercept`` per slice; the
spacing is ``PixelSpacing`` in-plane and the distance between consecutive slice positions along the
normal. DICOM's patient frame is LPS, so the voxel axes (columns, rows, slices) get an affine in LPS,
turned to RAS by negating x and y, and the volume is reoriented like ``nibabel.as_closest_canonical``:
index grows towards the patient's Right, Anterior and Superior (the Volume conventions). A folder of
mixed series or orientations, a missing slice, uneven spacing, or slices not stacked along their
normal (a gantry tilt) is refused in one line naming the folder.
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import numpy as np

from synthaug import DatasetSource, SourceOptions, SynthaugError, Volume, VolumeSet
from synthaug.kit.volumes import resample_volume
from synthaug_plugins.sources.dicom import is_dicom_file, list_dicom, pixel_values, read_dataset
from synthaug_plugins.sources.images import natural_key
from synthaug_plugins.sources.nifti import NiftiSourceConfig, volume_shape

#: Relative tolerance on slice gaps: scanners write positions to about a micrometre, so 1% is slack
#: enough for rounding and still finds a missing slice (a gap of 2x) or a shifted one.
GAP_TOLERANCE = 0.01


def _numbers(ds, keyword: str, count: int, path: Path) -> np.ndarray:
    value = ds.get(keyword)
    if value is None or len(value) != count:
        raise SynthaugError(f"{path}: no {keyword} ({count} numbers); expected a CT slice with its geometry")
    return np.asarray([float(v) for v in value], dtype=np.float64)


def _stack(folder: Path, slices: list) -> tuple[np.ndarray, np.ndarray, float]:
    """The slices ordered along their normal: (order, 3x3 LPS direction cosines as columns, slice gap)."""
    paths = [p for p, _ in slices]
    orientations = np.stack([_numbers(ds, "ImageOrientationPatient", 6, p) for p, ds in slices])
    if not np.allclose(orientations, orientations[0], atol=1e-4):
        raise SynthaugError(f"{folder}: slices have different ImageOrientationPatient; expected one series per folder")
    row, column = orientations[0, :3], orientations[0, 3:]
    normal = np.cross(row, column)
    positions = np.stack([_numbers(ds, "ImagePositionPatient", 3, p) for p, ds in slices])
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    along, positions = along[order], positions[order]
    if len(slices) < 2:
        raise SynthaugError(f"{folder}: 1 slice; expected a CT series of at least 2 slices")
    gaps = np.diff(along)
    if gaps.min() <= 1e-3:
        i = int(np.argmin(gaps))
        raise SynthaugError(f"{folder}: {paths[order[i]].name} and {paths[order[i + 1]].name} lie at the same "
                            "position; expected one series per folder, each slice once")
    gap = float(np.median(gaps))
    uneven = np.flatnonzero(np.abs(gaps - gap) > GAP_TOLERANCE * gap)
    if len(uneven):
        i = int(uneven[0])
        steps = round(gaps[i] / gap)
        missing = steps >= 2 and abs(gaps[i] - steps * gap) <= GAP_TOLERANCE * gap
        what = "a missing slice" if missing else "uneven slice spacing"
        raise SynthaugError(f"{folder}: {what}: {gaps[i]:.4g} mm between {paths[order[i]].name} and "
                            f"{paths[order[i + 1]].name}, where the series' spacing is {gap:.4g} mm; "
                            "expected evenly spaced slices")
    in_plane = (positions - positions[0]) - np.outer(along - along[0], normal)
    if np.abs(in_plane).max() > GAP_TOLERANCE * gap:
        raise SynthaugError(f"{folder}: slice positions drift across the image plane (a gantry tilt?); "
                            "expected slices stacked along their normal")
    return order, np.stack([row, column, normal], axis=1), gap


def read_series(folder: Path, *, label: int = -1, patient_id: str | None = None) -> Volume:
    """One CT series (the DICOM files directly in ``folder``) as a Volume in HU, RAS+ voxel order."""
    from nibabel.orientations import aff2axcodes, apply_orientation, inv_ornt_aff, io_orientation

    files = list_dicom(folder, recursive=False)
    if not files:
        raise SynthaugError(f"{folder}: no DICOM files; expected the slices of one CT series")
    slices = [(p, read_dataset(p, pixels=True)) for p in files]
    series = sorted({str(ds.get("SeriesInstanceUID", "")) for _, ds in slices})
    if len(series) > 1:
        raise SynthaugError(f"{folder}: holds {len(series)} series ({', '.join(series[:2])}, ...); expected one "
                            "series per folder")
    sizes = {(int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)) for _, ds in slices}
    pixel = {tuple(_numbers(ds, "PixelSpacing", 2, p)) for p, ds in slices}
    if len(sizes) > 1 or len(pixel) > 1:
        raise SynthaugError(f"{folder}: slices differ in size {sorted(sizes)} or PixelSpacing {sorted(pixel)}; "
                            "expected one series per folder")
    order, cosines, gap = _stack(folder, slices)
    row_mm, column_mm = next(iter(pixel))
    hu = []
    for i in order:
        path, ds = slices[i]
        k = pixel_values(ds, path)
        if k.ndim != 2:
            raise SynthaugError(f"{path}: pixel array of shape {k.shape}; expected one grey CT slice")
        slope, intercept = float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)
        hu.append(k * slope + intercept)
    # (slices, rows, columns) -> voxel axes (column j, row i, slice s): along the row cosine, the
    # column cosine and the normal, the columns of the LPS affine.
    voxels = np.stack(hu).transpose(2, 1, 0).astype(np.float32)
    lps = np.eye(4)
    lps[:3, :3] = cosines * np.array([column_mm, row_mm, gap])
    lps[:3, 3] = _numbers(slices[order[0]][1], "ImagePositionPatient", 3, slices[order[0]][0])
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    turn = io_orientation(ras)
    data = np.ascontiguousarray(apply_orientation(voxels, turn), dtype=np.float32)
    affine = ras @ inv_ornt_aff(turn, voxels.shape)
    spacing = tuple(float(s) for s in np.linalg.norm(affine[:3, :3], axis=0))
    first = slices[order[0]][1]
    patient = patient_id if patient_id is not None else (str(first.get("PatientID") or "").strip() or folder.name)
    return Volume(data, spacing, label=label, patient_id=patient, origin=str(folder),
                  meta={"affine": affine, "file_axcodes": tuple(aff2axcodes(ras)), "series_uid": series[0]})


def _load(folder: Path, shape: tuple[int, int, int] | None, patient_id: str) -> Volume:
    volume = read_series(folder, patient_id=patient_id)
    return resample_volume(volume, shape) if shape is not None else volume


def series_folders(root: Path) -> list[Path]:
    """Folders below ``root`` (itself included) that directly hold DICOM files, in natural order."""
    found = []
    for here, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        if any(is_dicom_file(Path(here) / name) for name in names):
            found.append(Path(here))
    return sorted(found, key=lambda p: [natural_key(Path(part)) for part in p.relative_to(root).parts])


class DicomCTSource(DatasetSource):
    name = "dicom-ct"
    Config = NiftiSourceConfig  # shape and class_name, as for NIfTI volumes
    provides = frozenset({"volumes"})

    def load_volumes(self, data_dir: Path | None, options: SourceOptions) -> VolumeSet:
        assert data_dir is not None
        config = self.config_for(options)
        shape = volume_shape(config.shape)
        if not data_dir.is_dir():
            raise SynthaugError(f"{data_dir}: expected a folder of DICOM series")
        folders = series_folders(data_dir)
        depths = sorted({len(f.relative_to(data_dir).parts) for f in folders})
        if not folders:
            raise SynthaugError(f"{data_dir}: no DICOM files found; expected ROOT/<series>/*.dcm or "
                                "ROOT/<class>/<series>/*.dcm")
        if len(depths) > 1 or depths[0] > 2:
            raise SynthaugError(f"{data_dir}: DICOM series at depths {depths} below it; expected ROOT/*.dcm, "
                                "ROOT/<series>/*.dcm or ROOT/<class>/<series>/*.dcm")
        if depths[0] == 2:
            class_names = sorted({f.relative_to(data_dir).parts[0] for f in folders})
            labels = [class_names.index(f.relative_to(data_dir).parts[0]) for f in folders]
        else:
            class_names, labels = [config.class_name], [0] * len(folders)
        patients = [self._patient(f) for f in folders]
        loaders = [partial(_load, f, shape, p) for f, p in zip(folders, patients)]
        return VolumeSet(loaders, labels, class_names, patients, [str(f) for f in folders])

    @staticmethod
    def _patient(folder: Path) -> str:
        """PatientID of the series' first file (its header only), else the folder's name."""
        ds = read_dataset(list_dicom(folder, recursive=False)[0], pixels=False)
        return str(ds.get("PatientID") or "").strip() or folder.name
