"""Reading radiograph files into an ImageSet: PNG/JPEG/BMP/TIFF (grey or RGB, 8 or 16 bit) here, and
the shared flow (:func:`load_files`) that the DICOM source feeds with its own :class:`FileReader`.

Depth: an 8-bit file gives ``k / 255``. A 16-bit grey PNG or TIFF (PIL modes I;16, I;16B, I;16L, I)
is read at full depth, ``k / (2**bits - 1)``, where ``bits`` is the PNG ``sBIT`` chunk's count of
significant bits when the file has one, else 16. The set's ``meta["bit_depth"]`` is the one grid
holding every image (:func:`synthaug.contract.types.common_bit_depth`), decided from the headers alone.
"""

from __future__ import annotations

import struct
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from synthaug import ImageSet, SourceOptions, SynthaugError
from synthaug.contract.types import common_bit_depth

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
#: PIL modes of 16-bit (and 32-bit integer) grey images, read at full depth.
DEEP_MODES = ("I;16", "I;16B", "I;16L", "I")
#: Channel counts an image file can give: grey, or RGB.
FILE_CHANNELS = (1, 3)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class FileHeader:
    """What a file's header says, known before its pixels are decoded (what lazy loading reads)."""

    width: int
    height: int
    bit_depth: int | None  # the file's values are k / (2**bit_depth - 1); None: floats on no grid
    patient_id: str
    extras: dict = field(default_factory=dict)  # per-image values for ImageSet.extras (DICOM pixel spacing)


class FileReader(Protocol):
    """One kind of image file: its header (cheap), and its pixels (float32 ``(channels, H, W)``)."""

    what: str  # the files' name in messages: "image", "DICOM file"

    def header(self, path: Path, size: int | None, verify: bool) -> FileHeader:
        """The header (every pixel decoded and checked too when ``verify``); SynthaugError naming the file."""

    def read(self, path: Path, size: int | None, channels: int) -> tuple[np.ndarray, FileHeader]:
        """The image resized to ``size`` (None: kept) with ``channels``, and its header."""


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, in a stable (natural) order."""
    files = [p for p in folder.iterdir()
             if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")]
    return sorted(files, key=natural_key)


def natural_key(path: Path):
    import re

    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def check_channels(channels: int, what: str = "image") -> None:
    """Image files give grey or RGB: any other channel count is refused here, before anything is read."""
    if channels not in FILE_CHANNELS:
        raise SynthaugError(f"channels={channels}: {what}s give 1 (grey) or 3 (RGB) channels; expected channels 1 or 3")


# ---- PIL files ----------------------------------------------------------------------------------

def png_significant_bits(path: Path) -> int | None:
    """The ``sBIT`` chunk of a PNG (its largest count, over the channels), or None when the file is no
    PNG or has none. PIL skips the chunk; it precedes the first IDAT, so only chunk headers are read."""
    with open(path, "rb") as handle:
        if handle.read(8) != PNG_SIGNATURE:
            return None
        while True:
            head = handle.read(8)
            if len(head) < 8:
                return None
            length, kind = struct.unpack(">I4s", head)
            if kind == b"sBIT":
                data = handle.read(length)
                return max(data) if data else None
            if kind in (b"IDAT", b"IEND"):
                return None
            handle.seek(length + 4, 1)  # the chunk's data and CRC


def file_bit_depth(im, path: Path) -> int:
    """Bits of an opened PIL image, from its header: 8 unless a deep mode (then ``sBIT`` or 16)."""
    if im.mode not in DEEP_MODES:
        return 8
    bits = png_significant_bits(path) if im.format == "PNG" else None
    return bits if bits is not None and 1 <= bits <= 16 else 16


def _replicated(levels: np.ndarray, bits: int) -> np.ndarray:
    """``bits``-bit levels scaled to 16 bits by left bit replication (the PNG specification's way)."""
    out, position = np.zeros_like(levels), 16
    while position > 0:
        position -= bits
        out |= (levels << position) if position >= 0 else (levels >> -position)
    return out


def deep_levels(im, path: Path, bits: int) -> np.ndarray:
    """The integer levels ``k`` (0 .. 2**bits - 1) of a deep grey image, as int64 ``(H, W)``.

    With ``sBIT`` = ``bits`` < 16 the samples are either ``k`` itself (how most medical exporters write
    12 bits into a 16-bit PNG) or ``k`` moved to the top bits (the PNG specification's scaling, the low
    bits zero or replicated): both are read as ``k``. Any other sample is refused, naming the file."""
    values = np.asarray(im, dtype=np.int64)
    if values.size == 0:
        return values
    low, high = int(values.min()), int(values.max())
    if low < 0 or high > 65535:
        bad = low if low < 0 else high
        raise SynthaugError(f"{path}: sample {bad} lies outside 0..65535; expected a 16-bit grey image")
    full = 2 ** bits - 1
    if high <= full:
        return values
    shift = 16 - bits
    levels = values >> shift
    if np.array_equal(levels << shift, values) or np.array_equal(_replicated(levels, bits), values):
        return levels
    raise SynthaugError(f"{path}: sample {high} exceeds {full}, the largest value of the {bits} significant bits "
                        f"its sBIT chunk declares; expected samples 0..{full} (or shifted to the top bits)")


def _eight_bit(im, size: int | None, channels: int) -> np.ndarray:
    from PIL import Image

    im = im.convert("L" if channels == 1 else "RGB")
    if size is not None and im.size != (size, size):
        im = im.resize((size, size), Image.BILINEAR)
    arr = np.asarray(im, dtype=np.float32) / np.float32(255)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def to_chw(values: np.ndarray, full: int | None, size: int | None, channels: int) -> np.ndarray:
    """float32 ``(channels, H, W)`` in [0, 1] from ``(H, W)`` or ``(H, W, 3)`` values: integer levels
    over ``full`` (2**bits - 1), or with ``full=None`` floats in [0, 1].

    Resizing (bilinear, antialiased: PIL's) and channel conversion (ITU-R 601-2 luma, repetition) are
    those of an 8-bit PNG; the levels are rounded back onto their grid afterwards, as PIL rounds an
    8-bit resize, so a resized 12-bit image is still ``k / 4095``. 8-bit levels go through PIL itself.
    """
    from PIL import Image

    if full == 255:
        return _eight_bit(Image.fromarray(np.asarray(values).astype(np.uint8)), size, channels)
    values = np.asarray(values, dtype=np.float32)
    if values.ndim == 3 and channels == 1:
        values = values @ np.float32([0.299, 0.587, 0.114])
        values = np.rint(values) if full else values
    planes = [values] if values.ndim == 2 else [values[..., c] for c in range(values.shape[-1])]
    if size is not None and values.shape[:2] != (size, size):
        planes = [np.asarray(Image.fromarray(p).resize((size, size), Image.BILINEAR)) for p in planes]
        if full:
            planes = [np.rint(p) for p in planes]
    arr = np.stack(planes)
    if channels == 3 and arr.shape[0] == 1:
        arr = np.repeat(arr, 3, axis=0)
    if full:
        return np.clip(arr, 0, full).astype(np.float32) / np.float32(full)  # the store's own division
    return np.clip(arr, 0.0, 1.0).astype(np.float32)


def _pil_errors() -> tuple:
    from PIL import Image, UnidentifiedImageError

    return (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError)


class PillowReader:
    """PNG, JPEG, BMP and TIFF through PIL."""

    what = "image"

    def header(self, path: Path, size: int | None, verify: bool) -> FileHeader:
        from PIL import Image

        try:
            with Image.open(path) as im:
                bits = file_bit_depth(im, path)
                if verify:
                    im.load()
                    if im.mode in DEEP_MODES:
                        deep_levels(im, path, bits)
                return FileHeader(im.size[0], im.size[1], bits, path.stem)
        except _pil_errors() as exc:
            raise SynthaugError(f"{path}: unreadable image ({type(exc).__name__}: {exc})") from exc

    def read(self, path: Path, size: int | None, channels: int) -> tuple[np.ndarray, FileHeader]:
        from PIL import Image

        try:
            with Image.open(path) as im:
                bits = file_bit_depth(im, path)
                im.load()
                header = FileHeader(im.size[0], im.size[1], bits, path.stem)
                if im.mode in DEEP_MODES:
                    return to_chw(deep_levels(im, path, bits), 2 ** bits - 1, size, channels), header
                return _eight_bit(im, size, channels), header
        except _pil_errors() as exc:
            raise SynthaugError(f"{path}: unreadable image ({type(exc).__name__}: {exc})") from exc


PILLOW = PillowReader()


def read_image(path: Path, size: int | None, channels: int) -> np.ndarray:
    """float32 ``(channels, H, W)`` in [0, 1]; raises SynthaugError naming the file if unreadable."""
    check_channels(channels)
    return PILLOW.read(path, size, channels)[0]


# ---- many files into an ImageSet --------------------------------------------------------------

def _pool_map(function, items, what: str, total: int) -> list:
    from synthaug.kit.progress import track

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(track(pool.map(function, items), what, total=total))


def load_files(files: Sequence[tuple[Path, str]], class_names: Sequence[str], options: SourceOptions,
               meta: dict, reader: FileReader = PILLOW) -> ImageSet:
    """Read ``(path, class_name)`` pairs into an ImageSet; patient id from the header (an image file's:
    its stem, one image a patient), ``meta["bit_depth"]`` the grid holding every image.

    ``options.lazy``: nothing but headers is read here (and, with ``skip_bad``, every file is decoded
    once to find the unreadable ones); the images are read when indexed, so memory does not grow with
    the number of files. Either way the values are those of ``reader.read`` (8-bit: ``k / 255``).
    """
    check_channels(options.channels, reader.what)
    if options.lazy:
        return _lazy_files(files, class_names, options, meta, reader)

    read = _skipping_bad(lambda path: reader.read(path, options.size, options.channels), options.skip_bad)
    results = _pool_map(read, files, f"reading {reader.what}s", len(files))
    keep = [i for i, r in enumerate(results) if r is not None]
    if keep:
        _check_sizes({results[i][0].shape for i in keep})
    images = np.stack([results[i][0] for i in keep]) if keep else None
    return _image_set(images, files, keep, [r[1] if r else None for r in results], class_names, meta, reader)


def _skipping_bad(function, skip_bad: bool):
    """``function(path)`` over ``(path, class)`` items; with ``skip_bad`` an unreadable file gives None
    (skipped and counted) instead of its one-line error."""
    def call(item):
        try:
            return function(item[0])
        except SynthaugError:
            if skip_bad:
                return None
            raise
    return call


def _check_sizes(shapes: set) -> None:
    if len(shapes) > 1:
        raise SynthaugError(f"images have different sizes {sorted(shapes)[:3]}...; pass --size N to resize them")


def _image_set(images, files, keep: list[int], headers: list, class_names, meta: dict, reader: FileReader) -> ImageSet:
    if not keep:
        raise SynthaugError(f"no readable {reader.what}s found")
    skipped = [str(files[i][0]) for i in sorted(set(range(len(files))) - set(keep))]
    labels = [class_names.index(files[i][1]) for i in keep]
    paths = [files[i][0] for i in keep]
    kept = [headers[i] for i in keep]
    extras = {key: np.stack([np.asarray(h.extras[key]) for h in kept]) for key in kept[0].extras}
    meta = dict(meta, skipped=len(skipped), skipped_files=skipped[:20],
                bit_depth=common_bit_depth(h.bit_depth for h in kept))
    return ImageSet(images, labels, tuple(class_names), [h.patient_id for h in kept], origin=[str(p) for p in paths],
                    extras=extras, meta=meta)


def _lazy_files(files, class_names, options: SourceOptions, meta: dict, reader: FileReader) -> ImageSet:
    from synthaug import LazyImages

    scan = _skipping_bad(lambda path: reader.header(path, options.size, options.skip_bad), options.skip_bad)
    headers = _pool_map(scan, files, f"scanning {reader.what}s", len(files))
    keep = [i for i, h in enumerate(headers) if h is not None]
    if not keep:
        raise SynthaugError(f"no readable {reader.what}s found")
    if options.size is None:
        _check_sizes({(options.channels, headers[i].height, headers[i].width) for i in keep})
        height, width = headers[keep[0]].height, headers[keep[0]].width
    else:
        height = width = options.size
    paths = [files[i][0] for i in keep]

    def read(positions: np.ndarray) -> np.ndarray:
        def one(k):
            return reader.read(paths[k], options.size, options.channels)[0]
        if len(positions) == 1:
            return one(int(positions[0]))[None]
        with ThreadPoolExecutor(max_workers=4) as pool:
            return np.stack(list(pool.map(one, positions.tolist())))

    images = LazyImages(read, len(keep), (options.channels, height, width))
    return _image_set(images, files, keep, headers, class_names, meta, reader)
