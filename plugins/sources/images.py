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
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise SynthaugError(f"{path}: unreadable image ({type(exc).__name__}: {exc})") from exc
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def _header(path: Path, verify: bool) -> tuple[int, int] | None:
    """``(width, height)`` from the file's header (every pixel decoded too when ``verify``); ``None``
    if it is not a readable image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if verify:
                im.load()
            return im.size
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None


def _pool_map(function, items, what: str, total: int) -> list:
    from synthaug.kit.progress import track

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(track(pool.map(function, items), what, total=total))


def load_files(files: Sequence[tuple[Path, str]], class_names: Sequence[str], options: SourceOptions,
               meta: dict) -> ImageSet:
    """Read ``(path, class_name)`` pairs into an ImageSet; patient id = file stem (one image a patient).

    ``options.lazy``: nothing but headers is read here (and, with ``skip_bad``, every file is decoded
    once to find the unreadable ones); the images are read when indexed, so memory does not grow with
    the number of files. Either way the values are those of :func:`read_image` (8-bit: ``k / 255``).
    """
    if options.lazy:
        return _lazy_files(files, class_names, options, meta)

    def read(item):
        path, _ = item
        try:
            return read_image(path, options.size, options.channels)
        except SynthaugError:
            if options.skip_bad:
                return None
            raise

    arrays = _pool_map(read, files, "reading images", len(files))
    keep = [i for i, a in enumerate(arrays) if a is not None]
    if keep:
        _check_sizes({arrays[i].shape for i in keep})
    images = np.stack([arrays[i] for i in keep]) if keep else None
    return _image_set(images, files, keep, class_names, meta)


def _check_sizes(shapes: set) -> None:
    if len(shapes) > 1:
        raise SynthaugError(f"images have different sizes {sorted(shapes)[:3]}...; pass --size N to resize them")


def _image_set(images, files, keep: list[int], class_names, meta: dict) -> ImageSet:
    if not keep:
        raise SynthaugError("no readable images found")
    skipped = [str(files[i][0]) for i in sorted(set(range(len(files))) - set(keep))]
    labels = [class_names.index(files[i][1]) for i in keep]
    paths = [files[i][0] for i in keep]
    meta = dict(meta, skipped=len(skipped), skipped_files=skipped[:20], bit_depth=8)
    return ImageSet(images, labels, tuple(class_names), [p.stem for p in paths], origin=[str(p) for p in paths], meta=meta)


def _lazy_files(files, class_names, options: SourceOptions, meta: dict) -> ImageSet:
    from synthaug import LazyImages

    sizes = _pool_map(lambda item: _header(item[0], options.skip_bad), files, "scanning images", len(files))
    bad = [i for i, size in enumerate(sizes) if size is None]
    if bad and not options.skip_bad:
        read_image(files[bad[0]][0], options.size, options.channels)  # raises the named error
    keep = [i for i, size in enumerate(sizes) if size is not None]
    if not keep:
        raise SynthaugError("no readable images found")
    if options.size is None:
        _check_sizes({(options.channels, sizes[i][1], sizes[i][0]) for i in keep})
        height, width = sizes[keep[0]][1], sizes[keep[0]][0]
    else:
        height = width = options.size
    paths = [files[i][0] for i in keep]

    def read(positions: np.ndarray) -> np.ndarray:
        def one(k):
            return read_image(paths[k], options.size, options.channels)
        if len(positions) == 1:
            return one(int(positions[0]))[None]
        with ThreadPoolExecutor(max_workers=4) as pool:
            return np.stack(list(pool.map(one, positions.tolist())))

    images = LazyImages(read, len(keep), (options.channels, height, width))
    return _image_set(images, files, keep, class_names, meta)
