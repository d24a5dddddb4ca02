"""A store as class folders of PNG files, for tools that read images from folders (``synthaug export``).

Layout written (``DIR`` replaced as a whole, or not at all)::

    DIR/<split>/<class>/<row>_<synth>.png     e.g. train/covid/000123_real.png, train/covid/000701_augment.png
    DIR/provenance.csv                         split, file, class, label, synth, origin, source_index, seed, patient_id

``<row>`` is the image's row in its split of the store (zero-padded to at least six digits, so the
files sort in store order); ``<synth>`` is ``real`` or the synthesizer's name (characters other than
letters, digits and ``._+-`` written as ``-``; provenance.csv has the exact name).

Pixel values: a uint8 store gives 8-bit PNGs of the stored integers, a uint16 store 16-bit PNGs of the
stored integers, whatever the store's ``scale`` (a 12-bit store's PNGs hold 0..4095, not rescaled, with
an ``sBIT`` chunk of 12 so that readers scale them by 4095), and
a float32 store 16-bit PNGs of ``round(value * 65535)``, so reading a PNG back gives the stored integers
exactly (a float image to within 1/131070). One channel
is written as grey, three as RGB; other channel counts are refused. A class with no image in a split
gets no folder there.
"""

from __future__ import annotations

import csv
import re
import struct
import zlib
from pathlib import Path

import numpy as np

from synthaug.contract.interfaces import CHUNK_IMAGES
from synthaug.contract.types import BIT_DEPTHS
from synthaug.errors import SynthaugError
from synthaug.kit.files import atomic_dir
from synthaug.kit.progress import track
from synthaug.pipeline.store import read_store, store_info

PROVENANCE_COLUMNS = ("split", "file", "class", "label", "synth", "origin", "source_index", "seed", "patient_id")
#: What marks a directory as an earlier export, which ``overwrite`` may replace (and nothing else).
PROVENANCE_FILE = "provenance.csv"
_UNSAFE_IN_FILE_NAME = re.compile(r"[^A-Za-z0-9._+-]")


def check_folder_name(name: str, what: str) -> None:
    """Refuse a class (or split) name that is not one plain folder name."""
    if not name or name.startswith(".") or any(c in name for c in "/\\\0"):
        raise SynthaugError(f"{what} {name!r} cannot be a folder name (expected a name without '/', '\\' or a "
                            f"leading '.', not empty)")


def png_bytes(image: np.ndarray, significant_bits: int | None = None) -> bytes:
    """A PNG file of ``image`` (uint8 or uint16, ``(C, H, W)``, C = 1 grey or 3 RGB), 8 or 16 bits a sample.

    ``significant_bits`` (a 12-bit store's 12): written as the ``sBIT`` chunk, so that a reader
    (synthaug's own sources included) scales the samples by ``2**bits - 1`` rather than the sample
    width's maximum.

    Written here rather than with Pillow, which cannot write 16-bit RGB. Each row uses PNG's "Sub"
    filter (the byte-wise difference from the pixel to its left), which compresses radiographs better
    than no filter."""
    channels, height, width = image.shape
    bits = 8 * image.dtype.itemsize
    big_endian = np.ascontiguousarray(image.transpose(1, 2, 0)).astype(f">u{image.dtype.itemsize}")
    rows = big_endian.view(np.uint8).reshape(height, -1)
    step = channels * image.dtype.itemsize  # bytes a pixel
    filtered = rows.copy()
    filtered[:, step:] = rows[:, step:] - rows[:, :-step]  # uint8: wraps modulo 256, as PNG specifies
    raw = np.concatenate([np.ones((height, 1), np.uint8), filtered], axis=1).tobytes()  # filter type 1 per row

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, bits, 0 if channels == 1 else 2, 0, 0, 0)
    significant = b""
    if significant_bits is not None and significant_bits != bits:
        significant = chunk(b"sBIT", bytes([significant_bits]) * channels)  # before IDAT, as PNG requires
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + significant + chunk(b"IDAT", zlib.compress(raw, 6))
            + chunk(b"IEND", b""))


def _as_png_integers(images: np.ndarray) -> np.ndarray:
    """Stored images as the integers their PNGs hold: uint8/uint16 as stored, float32 on the 16-bit grid."""
    if images.dtype in (np.uint8, np.uint16):
        return images
    return np.rint(np.clip(images, 0.0, 1.0) * np.float32(BIT_DEPTHS[16][1])).astype(np.uint16)


def _check_exportable(store: Path, out: Path, split: str | None, overwrite: bool) -> tuple[list[str], dict]:
    """Everything that would refuse the export, checked before anything is written."""
    info = store_info(store)
    splits = [split] if split is not None else list(info["splits"])
    for name in splits:
        if name not in info["splits"]:
            raise SynthaugError(f"{store}: no split {name!r}; the store has {', '.join(info['splits']) or 'none'}")
        check_folder_name(name, f"{store}: split")
    for name in info["class_names"]:
        check_folder_name(name, f"{store}: class")
    channels = info["image_shape"][0] if info["image_shape"] else 1
    if channels not in (1, 3):
        raise SynthaugError(f"{store}: images have {channels} channels; PNG export takes 1 (grey) or 3 (RGB)")
    if out.exists() or out.is_symlink():
        if not overwrite:
            raise SynthaugError(f"{out} already exists; pass --overwrite to replace it, or choose another DIR")
        if not out.is_dir() or out.is_symlink() or not (out / PROVENANCE_FILE).is_file():
            raise SynthaugError(f"{out} exists and is not an earlier export (no {PROVENANCE_FILE} in it); "
                                f"--overwrite replaces only those: choose another DIR")
    return splits, info


def export_store(store: str | Path, out: str | Path, *, split: str | None = None,
                 overwrite: bool = False) -> dict:
    """Write every split of ``store`` (or only ``split``) to ``out`` as class folders of PNGs and a
    provenance.csv (layout and pixel values: this module's docstring). ``out`` must not exist, unless
    ``overwrite`` and it is an earlier export. Returns ``{"out", "bits", "splits": {split: {class: n}}}``."""
    import h5py

    store, out = Path(store), Path(out)
    splits, info = _check_exportable(store, out, split, overwrite)
    stored_dtype = info.get("image_dtype", "float32")
    bits = 8 if stored_dtype == "uint8" else 16
    significant = info.get("bit_depth")  # 12 for a 12-bit store: its PNGs say so in sBIT
    counts: dict[str, dict[str, int]] = {}
    with atomic_dir(out) as tmp, open(tmp / PROVENANCE_FILE, "w", newline="", encoding="utf-8") as sheet:
        writer = csv.writer(sheet)
        writer.writerow(PROVENANCE_COLUMNS)
        for name in splits:
            meta = read_store(store, name, images=False)  # provenance only: no image is read here
            n = len(meta)
            width = max(6, len(str(max(n - 1, 0))))
            counts[name] = {c: 0 for c in meta.class_names}
            with h5py.File(store, "r") as f:
                images = f[name]["images"]  # the stored integers (or floats), not the loader's floats
                for start in track(range(0, n, CHUNK_IMAGES), f"exporting {name}", total=-(-n // CHUNK_IMAGES)):
                    block = _as_png_integers(images[start:start + CHUNK_IMAGES])
                    for offset, image in enumerate(block):
                        row = start + offset
                        class_name = meta.class_names[meta.labels[row]]
                        synth = str(meta.synth[row])
                        relative = f"{name}/{class_name}/{row:0{width}d}_{_UNSAFE_IN_FILE_NAME.sub('-', synth)}.png"
                        (tmp / relative).parent.mkdir(parents=True, exist_ok=True)
                        (tmp / relative).write_bytes(png_bytes(image, significant))
                        writer.writerow([name, relative, class_name, int(meta.labels[row]), synth, meta.origin[row],
                                         int(meta.source_index[row]), int(meta.seed[row]), meta.patient_ids[row]])
                        counts[name][class_name] += 1
        sheet.flush()
    return {"out": str(out), "bits": bits, "splits": counts}
