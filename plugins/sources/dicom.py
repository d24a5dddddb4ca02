"""``dicom``: one sub-folder of DICOM radiographs per class (class names = folder names, sorted), like
``imagefolder``; the files of a class folder are found at any depth below it.

A DICOM file is a ``.dcm`` or ``.dicom`` file, or a file without an extension (or with a numeric one,
as UID-named exports have) that starts with the 128-byte preamble and ``DICM``; ``DICOMDIR`` is not
an image. Stored values become [0, 1] the way a viewer shows them (DICOM PS3.3 C.11):

1. the modality LUT: ``RescaleSlope * k + RescaleIntercept``, or a Modality LUT Sequence;
2. with ``voi`` (the default), the VOI LUT Sequence's first table (over ``2**bits - 1`` of its output
   bits) or else the first ``WindowCenter``/``WindowWidth`` (with ``VOILUTFunction`` LINEAR,
   LINEAR_EXACT or SIGMOID), mapped so that the window spans [0, 1];
   without a VOI (none in the file, or ``voi=false``) the stored range is mapped onto [0, 1]:
   ``k / (2**BitsStored - 1)`` for unsigned pixels, ``(k + 2**(BitsStored - 1)) / (2**BitsStored - 1)``
   for signed ones (a negative slope turns it round), so a 12-bit image is exactly ``k / 4095``;
3. MONOCHROME1 is inverted, so that bright is dense as in MONOCHROME2.

``meta["bit_depth"]`` follows: BitsStored (or a LUT's output bits) where the values are whole levels,
None where a window made them floats. Each image's ``PixelSpacing`` (else ``ImagerPixelSpacing``) is
kept as ``extras["pixel_spacing_mm"]`` (row, column spacing in mm, NaN when absent), scaled with
``--size``; the patient id is ``PatientID`` (else the file stem). Size, resizing and channels behave
as for PNGs (:func:`synthaug_plugins.sources.images.to_chw`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synthaug import DatasetSource, ImageSet, SourceOptions, SynthaugError
from synthaug_plugins.sources.images import FileHeader, load_files, natural_key, to_chw

DICOM_SUFFIXES = (".dcm", ".dicom")
MONOCHROME = ("MONOCHROME1", "MONOCHROME2")


def is_dicom_file(path: Path) -> bool:
    """A DICOM file by name (``.dcm``, ``.dicom``), or by its preamble (no or a numeric extension)."""
    if path.name.startswith(".") or not path.is_file():
        return False
    suffix = path.suffix.lower()
    if suffix in DICOM_SUFFIXES:
        return True
    if path.name.upper() == "DICOMDIR" or (suffix and not suffix[1:].isdigit()):
        return False
    with open(path, "rb") as handle:
        head = handle.read(132)
    return len(head) == 132 and head[128:] == b"DICM"


def list_dicom(folder: Path, recursive: bool = True) -> list[Path]:
    """DICOM files in ``folder`` (and below it when ``recursive``), in a stable (natural) order."""
    found = folder.rglob("*") if recursive else folder.iterdir()
    files = [p for p in found
             if not any(part.startswith(".") for part in p.relative_to(folder).parts) and is_dicom_file(p)]
    return sorted(files, key=lambda p: [natural_key(Path(part)) for part in p.relative_to(folder).parts])


def read_dataset(path: Path, pixels: bool):
    """The file's dataset (``pixels=False``: the header only); SynthaugError naming the file."""
    import pydicom

    try:
        return pydicom.dcmread(path, stop_before_pixels=not pixels, force=path.suffix.lower() in DICOM_SUFFIXES)
    except Exception as exc:  # pydicom raises InvalidDicomError, EOFError, struct.error ... for junk
        raise SynthaugError(f"{path}: unreadable DICOM file ({type(exc).__name__}: {exc})") from exc


def check_decodable(ds, path: Path) -> None:
    """Refuse, from the header, compressed pixel data that no installed pydicom decoder reads."""
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if syntax is None:
        return
    try:
        from pydicom.pixels import get_decoder
    except ImportError:  # pydicom 2: the pixel read names the file instead
        return
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        raise SynthaugError(f"{path}: transfer syntax {syntax} has no pixel decoder; expected uncompressed or "
                            "JPEG/JPEG 2000/RLE DICOM") from None
    if not decoder.is_available:
        plugins = sorted({m.split(" - ")[0] for m in decoder.missing_dependencies})
        raise SynthaugError(f"{path}: pixel data compressed as {syntax.name} and no decoder for it is installed; "
                            f"expected uncompressed DICOM (or install one of: {', '.join(plugins)})")


def pixel_values(ds, path: Path) -> np.ndarray:
    """The stored values ``k`` as int64 ``(Rows, Columns)`` or ``(Rows, Columns, 3)``."""
    if "PixelData" not in ds:
        raise SynthaugError(f"{path}: no pixel data; expected a DICOM image")
    try:
        return np.asarray(ds.pixel_array).astype(np.int64)
    except Exception as exc:  # a missing decoder, a truncated or inconsistent pixel data element
        raise SynthaugError(f"{path}: cannot decode the pixel data ({type(exc).__name__}: {exc})") from exc


def _first(value) -> float:
    """One number of a value that may hold several (WindowCenter ``[40, 400]``: the first)."""
    try:
        return float(value)
    except TypeError:
        return float(value[0])


def window(x: np.ndarray, center: float, width: float, function: str, path: Path) -> np.ndarray:
    """The VOI window of PS3.3 C.11.2.1.2 with output range [0, 1]."""
    if function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(-4.0 * (x - center) / width))
    if function == "LINEAR_EXACT":
        return np.clip((x - center) / width + 0.5, 0.0, 1.0)
    if function != "LINEAR":
        raise SynthaugError(f"{path}: VOILUTFunction {function!r}; expected LINEAR, LINEAR_EXACT or SIGMOID")
    if width < 1:
        raise SynthaugError(f"{path}: WindowWidth {width} with VOILUTFunction LINEAR; expected a width of 1 or more")
    below, above = x <= center - 0.5 - (width - 1) / 2, x > center - 0.5 + (width - 1) / 2
    inside = (x - (center - 0.5)) / max(width - 1, 1.0) + 0.5  # width 1: a step, nothing inside
    return np.where(below, 0.0, np.where(above, 1.0, inside))


def _lut_bits(item, path: Path) -> int:
    bits = int(item.LUTDescriptor[2])
    if not 8 <= bits <= 16:
        raise SynthaugError(f"{path}: a LUT of {bits} bits per entry; expected 8 to 16")
    return bits


def _lut_functions():
    try:
        from pydicom.pixels import apply_modality_lut, apply_voi
    except ImportError:  # pydicom 2
        from pydicom.pixel_data_handlers.util import apply_modality_lut, apply_voi
    return apply_modality_lut, apply_voi


def _spacing(ds) -> tuple[float, float]:
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = ds.get(keyword)
        if value is not None and len(value) == 2 and all(float(v) > 0 for v in value):
            return float(value[0]), float(value[1])
    return math.nan, math.nan


class DicomReader:
    """DICOM radiographs for :func:`~synthaug_plugins.sources.images.load_files`."""

    what = "DICOM file"

    def __init__(self, voi: bool = True):
        self.voi = voi

    def _voi(self, ds) -> str | None:
        """Which VOI applies: ``"lut"`` (the VOI LUT Sequence), ``"window"``, or None."""
        if not self.voi or ds.get("SamplesPerPixel", 1) != 1:
            return None
        if ds.get("VOILUTSequence"):
            return "lut"
        if ds.get("WindowCenter") is not None and ds.get("WindowWidth") is not None:
            return "window"
        return None

    def _header(self, ds, path: Path, size: int | None) -> FileHeader:
        rows, columns = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
        if not rows or not columns:
            raise SynthaugError(f"{path}: not a DICOM image (no Rows/Columns); expected a DICOM radiograph")
        frames = int(ds.get("NumberOfFrames") or 1)
        if frames > 1:
            raise SynthaugError(f"{path}: {frames} frames; expected a single-frame radiograph")
        samples = int(ds.get("SamplesPerPixel") or 1)
        photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
        if (samples, photometric) not in ((1, "MONOCHROME1"), (1, "MONOCHROME2"), (3, "RGB")):
            raise SynthaugError(f"{path}: {samples} sample(s) per pixel, {photometric}; expected MONOCHROME1, "
                                "MONOCHROME2 or RGB")
        check_decodable(ds, path)
        bits = int(ds.get("BitsStored") or ds.get("BitsAllocated") or 8)
        if not 1 <= bits <= 16:
            raise SynthaugError(f"{path}: BitsStored {bits}; expected 1 to 16")
        voi = self._voi(ds)
        if voi == "lut":
            depth = _lut_bits(ds.VOILUTSequence[0], path)
        elif voi == "window":
            depth = None
        elif samples == 1 and ds.get("ModalityLUTSequence"):
            depth = _lut_bits(ds.ModalityLUTSequence[0], path)
        else:
            depth = bits
        row_mm, column_mm = _spacing(ds)
        if size is not None:  # the spacing of the image as delivered
            row_mm, column_mm = row_mm * rows / size, column_mm * columns / size
        name = path.stem if path.suffix.lower() in DICOM_SUFFIXES else path.name  # "1.2.840.99" keeps its ".99"
        patient = str(ds.get("PatientID") or "").strip() or name
        return FileHeader(columns, rows, depth, patient, {"pixel_spacing_mm": np.array([row_mm, column_mm])})

    def _values(self, ds, path: Path) -> tuple[np.ndarray, int | None]:
        """The image as levels over ``full`` (``(values, full)``) or, ``full`` None, floats in [0, 1]."""
        apply_modality_lut, apply_voi = _lut_functions()
        k = pixel_values(ds, path)
        bits = int(ds.get("BitsStored") or ds.get("BitsAllocated") or 8)
        signed = ds.get("PixelRepresentation", 0) == 1 and k.ndim == 2
        low = -(2 ** (bits - 1)) if signed else 0
        full = 2 ** bits - 1
        if k.size and (k.min() < low or k.max() > low + full):  # pydicom 3 masks bits above HighBit; 2 may not
            bad = int(k.min()) if k.min() < low else int(k.max())
            raise SynthaugError(f"{path}: stored value {bad} lies outside {low}..{low + full}, "
                                f"the range of BitsStored {bits}")
        if k.ndim == 3:  # RGB: no LUTs apply
            return k, full
        voi = self._voi(ds)
        if voi == "lut":
            values = apply_voi(np.rint(apply_modality_lut(k, ds)).astype(np.int64), ds).astype(np.int64)
            full = 2 ** _lut_bits(ds.VOILUTSequence[0], path) - 1
        elif voi == "window":
            function = str(ds.get("VOILUTFunction") or "LINEAR").upper()
            values = window(apply_modality_lut(k, ds).astype(np.float64), _first(ds.WindowCenter),
                            _first(ds.WindowWidth), function, path)
            full = None
        elif ds.get("ModalityLUTSequence"):
            values = apply_modality_lut(k, ds).astype(np.int64)
            full = 2 ** _lut_bits(ds.ModalityLUTSequence[0], path) - 1
        else:  # the stored range onto [0, 1]; the slope's sign says which end is bright
            values = k - low if float(ds.get("RescaleSlope", 1) or 1) >= 0 else low + full - k
        if str(ds.get("PhotometricInterpretation")) == "MONOCHROME1":
            values = (full - values) if full is not None else 1.0 - values  # on the grid: integers
        return values, full

    def header(self, path: Path, size: int | None, verify: bool) -> FileHeader:
        ds = read_dataset(path, pixels=verify)
        header = self._header(ds, path, size)
        if verify:
            self._values(ds, path)
        return header

    def read(self, path: Path, size: int | None, channels: int) -> tuple[np.ndarray, FileHeader]:
        ds = read_dataset(path, pixels=True)
        header = self._header(ds, path, size)
        values, full = self._values(ds, path)
        return to_chw(values, full, size, channels), header


@dataclass
class DicomSourceConfig:
    voi: bool = True  # apply the file's VOI LUT or window onto [0, 1]; false: the stored bits' whole range


class DicomSource(DatasetSource):
    name = "dicom"
    Config = DicomSourceConfig
    provides = frozenset({"images"})

    def load_images(self, data_dir: Path | None, options: SourceOptions) -> ImageSet:
        assert data_dir is not None
        config = self.config_for(options)
        folders = sorted(p for p in data_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
        if len(folders) < 2:
            raise SynthaugError(f"{data_dir}: expected one sub-folder of DICOM files per class (at least 2); "
                                f"found {len(folders)}")
        files: list[tuple[Path, str]] = []
        for folder in folders:
            found = list_dicom(folder)
            if not found:
                raise SynthaugError(f"{folder}: class folder holds no DICOM files (expected *.dcm, *.dicom, or files "
                                    "starting with the DICM preamble)")
            files += [(p, folder.name) for p in found]
        meta = {"source": "dicom", "root": str(data_dir), "voi": config.voi}
        return load_files(files, [f.name for f in folders], options, meta, DicomReader(config.voi))
