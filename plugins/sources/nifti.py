"""NIfTI CT volumes: :func:`read_nifti` (one file) and the ``nifti`` dataset source (many).

Every volume is reoriented to RAS+ with ``nibabel.as_closest_canonical`` and its spacing taken
from the affine (the length of each voxel axis), so projectors see the same anatomy the same way
whatever the scanner wrote.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from synthaug import DatasetSource, SourceOptions, SynthaugError, Volume, VolumeSet
from synthaug.kit.sizes import parse_size
from synthaug.kit.volumes import resample_volume

SUFFIXES = (".nii", ".nii.gz")


def is_nifti(path: Path) -> bool:
    return path.name.lower().endswith(SUFFIXES)


def nifti_stem(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _check_affine(path: Path, affine) -> None:
    spacing = np.linalg.norm(np.asarray(affine, dtype=np.float64)[:3, :3], axis=0)
    if not np.all(np.isfinite(spacing) & (spacing > 0)):
        raise SynthaugError(f"{path}: the affine gives voxel spacing {tuple(round(float(v), 4) for v in spacing)} mm; "
                            "expected three positive spacings")


def _check_voxel_size(path: Path, image) -> None:
    """Reject zero voxel sizes that nibabel would silently replace by 1 mm.

    Unless an sform gives the affine, it is built from ``pixdim``; nibabel's loader rewrites a
    zero there to 1, which would project a wrong-sized patient without a word.
    """
    from nibabel.openers import ImageOpener

    header = image.header
    if "pixdim" not in header or int(header["sform_code"]) > 0:
        return _check_affine(path, image.affine)
    with ImageOpener(str(path)) as handle:
        raw = image.header_class.from_fileobj(handle, check=False)
    zooms = np.asarray(raw["pixdim"][1:4], dtype=np.float64)
    _check_affine(path, image.affine)
    if not np.all(np.isfinite(zooms) & (np.abs(zooms) > 0)):
        raise SynthaugError(f"{path}: voxel size (pixdim) {tuple(float(z) for z in zooms)} mm has a zero or "
                            "non-finite entry; expected three non-zero spacings")


def _canonical_array(path: Path, what: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    import nibabel as nib

    if not path.is_file():
        raise SynthaugError(f"{path}: no such NIfTI file ({what})")
    try:
        image = nib.load(str(path))
        _check_voxel_size(path, image)
        axcodes = tuple(nib.aff2axcodes(image.affine))
        image = nib.as_closest_canonical(image)
        # NIfTI stores x fastest (Fortran order); C order once here saves every projector a copy.
        data = np.ascontiguousarray(image.get_fdata(dtype=np.float32))
    except SynthaugError:
        raise
    except (EOFError, zlib.error) as exc:
        raise SynthaugError(f"{path}: truncated NIfTI file ({type(exc).__name__}: {exc}); "
                            f"expected a complete .nii/.nii.gz") from exc
    except Exception as exc:  # nibabel raises ImageFileError, OSError, ValueError ... for junk
        raise SynthaugError(f"{path}: unreadable NIfTI file ({type(exc).__name__}: {exc})") from exc
    while data.ndim > 3 and data.shape[-1] == 1:  # (X, Y, Z, 1) time/channel axes of one frame
        data = data[..., 0]
    if data.ndim != 3:
        raise SynthaugError(f"{path}: expected a 3-D CT volume; got shape {data.shape}")
    return data, image.affine, axcodes


def read_nifti(path: str | Path, *, mask_path: str | Path | None = None, label: int = -1,
               patient_id: str | None = None) -> Volume:
    """One CT volume in HU, RAS+ voxel order, spacing (mm) from the affine; optional label map."""
    path = Path(path)
    hu, affine, axcodes = _canonical_array(path, "CT volume")
    spacing = tuple(float(s) for s in np.linalg.norm(np.asarray(affine)[:3, :3], axis=0))
    mask = None
    if mask_path is not None:
        mask_data, _, _ = _canonical_array(Path(mask_path), f"label map of {path.name}")
        if mask_data.shape != hu.shape:
            raise SynthaugError(f"{mask_path}: label map shape {mask_data.shape} differs from the CT's {hu.shape}")
        mask = np.rint(mask_data).astype(np.int16)
    return Volume(hu, spacing, label=label, patient_id=patient_id if patient_id is not None else nifti_stem(path),
                  origin=str(path), mask=mask, meta={"affine": np.asarray(affine), "file_axcodes": axcodes})


def load_volume(path: Path, shape: tuple[int, int, int] | None = None, **kwargs) -> Volume:
    volume = read_nifti(path, **kwargs)
    return resample_volume(volume, shape) if shape is not None else volume


def target_shape(options: SourceOptions) -> tuple[int, int, int] | None:
    """``extra["shape"]``: resample every volume to (X, Y, Z), e.g. quan2021's (256, 256, 64)."""
    return volume_shape(options.extra.get("shape"))


def volume_shape(shape) -> tuple[int, int, int] | None:
    """A volume source's ``shape`` option (``"256x256x64"``, ``"256,256,64"`` or a list) as (X, Y, Z)."""
    if shape is None:
        return None
    return parse_size(shape, 3, "volume shape", expected="X,Y,Z or XxYxZ")  # type: ignore[return-value]


@dataclass
class VolumeSourceConfig:
    shape: str | list | None = None  # resample every volume to X,Y,Z (e.g. 256x256x64, quan2021); None: as stored


@dataclass
class NiftiSourceConfig(VolumeSourceConfig):
    class_name: str = "ct"  # the class of every volume when the folder has no class sub-folders


class NiftiSource(DatasetSource):
    """``.nii``/``.nii.gz`` CT volumes: a file, a folder (searched recursively), or a ``.txt`` list of paths.

    Labels: a folder whose subfolders hold the volumes gives one class per subfolder (sorted names,
    like ``imagefolder``); otherwise every volume gets the class ``extra["class_name"]`` (``"ct"``).
    """

    name = "nifti"
    Config = NiftiSourceConfig
    provides = frozenset({"volumes"})

    def load_volumes(self, data_dir: Path | None, options: SourceOptions) -> VolumeSet:
        assert data_dir is not None
        files = self._files(data_dir)
        shape = target_shape(options)
        root = data_dir if data_dir.is_dir() else None
        subfolders = (sorted({f.relative_to(root).parts[0] for f in files if len(f.relative_to(root).parts) > 1})
                      if root else [])
        if subfolders and all(len(f.relative_to(root).parts) > 1 for f in files):
            class_names = subfolders
            labels = [class_names.index(f.relative_to(root).parts[0]) for f in files]
        else:
            class_names = [str(options.extra.get("class_name", "ct"))]
            labels = [0] * len(files)
        loaders = [partial(load_volume, f, shape) for f in files]
        return VolumeSet(loaders, labels, class_names, [nifti_stem(f) for f in files], [str(f) for f in files])

    def _files(self, data_dir: Path) -> list[Path]:
        if data_dir.is_file() and is_nifti(data_dir):
            return [data_dir]
        if data_dir.is_file() and data_dir.suffix.lower() == ".txt":
            lines = [line.strip() for line in data_dir.read_text().splitlines()
                     if line.strip() and not line.startswith("#")]
            files = [(data_dir.parent / line) if not Path(line).is_absolute() else Path(line) for line in lines]
            missing = [f for f in files if not f.is_file()]
            if missing:
                raise SynthaugError(f"{data_dir}: listed file {missing[0]} does not exist")
        elif data_dir.is_dir():
            files = sorted(p for p in data_dir.rglob("*") if p.is_file() and is_nifti(p))
        else:
            raise SynthaugError(f"{data_dir}: expected a .nii/.nii.gz file, a folder of them, or a .txt list of paths")
        if not files:
            raise SynthaugError(f"{data_dir}: no .nii or .nii.gz files found")
        return files
