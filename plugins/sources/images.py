"""Reading radiograph files (PNG/JPEG, grey or RGB, 8 or 16 bit) into an ImageSet."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np

from synthaug import ImageSet, SourceOptions, SynthaugError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, in a stable (natural) order."""
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")]
    return sorted(files, key=_natural_key)


def _natural_key(path: Path):
    import re

    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def read_image(path: Path, size: int | None, channels: int) -> np.ndarray:
    """float32 ``(channels, H, W)`` in [0, 1]; raises SynthaugError naming the file if unreadable."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float32) / (65535.0 if im.mode.startswith("I;16") else max(1.0, float(np.asarray(im).max())))
                im = Image.fromarray((np.clip(arr, 0, 1) * 255).astype(np.uint8), "L")
            im = im.convert("L" if channels == 1 else "RGB")
            if size is not None and im.size != (size, size):
                im = im.resize((size, size), Image.BILINEAR)
            arr = np.asarray(im, dtype=np.float32) / 255.0
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise SynthaugError(f"{path}: unreadable image ({type(exc).__name__}: {exc})") from exc
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def load_files(files: Sequence[tuple[Path, str]], class_names: Sequence[str], options: SourceOptions,
               meta: dict) -> ImageSet:
    """Read ``(path, class_name)`` pairs into an ImageSet; patient id = file stem (one image a patient)."""
    def read(item):
        path, _ = item
        try:
            return read_image(path, options.size, options.channels)
        except SynthaugError:
            if options.skip_bad:
                return None
            raise

    from synthaug.kit.progress import track

    with ThreadPoolExecutor(max_workers=4) as pool:
        arrays = list(track(pool.map(read, files), "reading images", total=len(files)))
    keep = [i for i, a in enumerate(arrays) if a is not None]
    skipped = [str(files[i][0]) for i, a in enumerate(arrays) if a is None]
    if not keep:
        raise SynthaugError("no readable images found")
    shapes = {arrays[i].shape for i in keep}
    if len(shapes) > 1:
        raise SynthaugError(f"images have different sizes {sorted(shapes)[:3]}...; pass --size N to resize them")
    images = np.stack([arrays[i] for i in keep])
    labels = [class_names.index(files[i][1]) for i in keep]
    paths = [files[i][0] for i in keep]
    meta = dict(meta, skipped=len(skipped), skipped_files=skipped[:20])
    return ImageSet(images, labels, tuple(class_names), [p.stem for p in paths], origin=[str(p) for p in paths], meta=meta)
