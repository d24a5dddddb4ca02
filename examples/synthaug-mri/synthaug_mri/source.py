"""``npy-slices``: class folders of ``.npy`` files, each one multi-sequence MRI slice.

Layout: ``DIR/CLASS/NAME.npy``, one folder per class (sorted by name: the class order). Each file holds
one slice with any number of channels (the sequences, e.g. T1, T1ce, T2, FLAIR): a ``(C, H, W)`` array
(``layout="chw"``, the default), an ``(H, W, C)`` one (``layout="hwc"``), or an ``(H, W)`` one (one
channel). Files are read with ``allow_pickle=False``: a file holding Python objects is refused.

MRI intensities have no absolute unit (unlike CT's Hounsfield units), so by default each channel of
each slice is scaled to [0, 1] by its own minimum and maximum (``scaling="minmax"``; a constant
channel becomes 0). ``scaling="none"`` takes values that already lie in [0, 1] and refuses others.

A file's patient is its name up to the first ``patient_separator`` (``p07_s12.npy``: ``p07``), so the
slices of one patient never straddle the test split.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synthaug import DatasetSource, ImageSet, SourceOptions, SynthaugError

LAYOUTS = ("chw", "hwc")
SCALINGS = ("minmax", "none")


@dataclass
class NpySlicesConfig:
    layout: str = "chw"  # axes of each file's array: "chw" (C, H, W) or "hwc" (H, W, C); an (H, W) array is one channel
    scaling: str = "minmax"  # "minmax": each channel of each slice to [0, 1] by its own min and max;
    #                          "none": values already in [0, 1]
    patient_separator: str = "_"  # a file's patient is its name before the first separator (p07_s12.npy: p07);
    #                               "": the whole name

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise SynthaugError(f"npy-slices layout must be one of {', '.join(LAYOUTS)}; got {self.layout!r}")
        if self.scaling not in SCALINGS:
            raise SynthaugError(f"npy-slices scaling must be one of {', '.join(SCALINGS)}; got {self.scaling!r}")


class NpySlices(DatasetSource):
    name = "npy-slices"
    Config = NpySlicesConfig
    provides = frozenset({"images"})

    def load_images(self, data_dir: Path | None, options: SourceOptions) -> ImageSet:
        folders = sorted(d for d in Path(data_dir).iterdir() if d.is_dir() and any(d.glob("*.npy")))
        if not folders:
            raise SynthaugError(f"{data_dir}: no class folders of .npy files (expected DIR/CLASS/NAME.npy)")
        images, labels, patients, origins, skipped = [], [], [], [], []
        for label, folder in enumerate(folders):
            for path in sorted(folder.glob("*.npy")):
                try:
                    image = self.read_slice(path, options)
                    if images and image.shape != images[0].shape:
                        raise SynthaugError(f"{path}: shape {image.shape}; {origins[0]} has {images[0].shape} "
                                            f"(pass --size to resize every slice)")
                except SynthaugError:
                    if not options.skip_bad:
                        raise
                    skipped.append(str(path))
                    continue
                images.append(image)
                labels.append(label)
                patients.append(self.patient_of(path))
                origins.append(str(path))
        if not images:
            raise SynthaugError(f"{data_dir}: no readable .npy slice ({len(skipped)} skipped)")
        meta = {"source": self.name, "layout": self.config.layout, "scaling": self.config.scaling,
                "skipped": len(skipped), "skipped_files": skipped}
        return ImageSet(np.stack(images), np.array(labels), tuple(f.name for f in folders), patients,
                        origin=origins, meta=meta)

    def patient_of(self, path: Path) -> str:
        separator = self.config.patient_separator
        return path.stem.split(separator, 1)[0] if separator else path.stem

    def read_slice(self, path: Path, options: SourceOptions) -> np.ndarray:
        """One file as float32 ``(C, H, W)`` in [0, 1], resized to ``options.size`` when given."""
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise SynthaugError(f"{path}: not a readable .npy array ({reason})") from None
        if not isinstance(array, np.ndarray) or array.dtype.kind not in "biuf" or array.ndim not in (2, 3):
            raise SynthaugError(f"{path}: expected a 2-D or 3-D array of numbers; got {getattr(array, 'dtype', '?')} "
                                f"of shape {getattr(array, 'shape', '?')}")
        image = array.astype(np.float64)[None] if array.ndim == 2 else array.astype(np.float64)
        if array.ndim == 3 and self.config.layout == "hwc":
            image = image.transpose(2, 0, 1)
        if image.shape[0] != options.channels:
            raise SynthaugError(f"{path}: {image.shape[0]} channels in layout {self.config.layout!r} "
                                f"(shape {array.shape}); {options.channels} asked: pass --channels {image.shape[0]}")
        if image.shape[1] < 2 or image.shape[2] < 2:
            raise SynthaugError(f"{path}: a slice of {image.shape[1]}x{image.shape[2]} pixels; "
                                "check --source-option layout")
        if not np.isfinite(image).all():
            raise SynthaugError(f"{path}: holds NaN or infinite values")
        image = self.scaled(image, path)
        if options.size is not None and image.shape[1:] != (options.size, options.size):
            image = resize(image, options.size)
        return np.clip(image, 0.0, 1.0).astype(np.float32)

    def scaled(self, image: np.ndarray, path: Path) -> np.ndarray:
        if self.config.scaling == "none":
            if image.min() < 0 or image.max() > 1:
                raise SynthaugError(f"{path}: values in [{image.min():g}, {image.max():g}]; scaling 'none' takes "
                                    f"[0, 1] (or --source-option scaling=minmax)")
            return image
        low = image.min(axis=(1, 2), keepdims=True)
        span = image.max(axis=(1, 2), keepdims=True) - low
        return np.where(span > 0, (image - low) / np.where(span > 0, span, 1.0), 0.0)


def resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in)`` weights of a triangle (linear) filter widened by the shrink factor: bilinear when
    enlarging, antialiased (every input pixel counts) when shrinking. Rows sum to 1."""
    scale = n_in / n_out
    support = max(scale, 1.0)
    centres = (np.arange(n_out) + 0.5) * scale - 0.5
    weights = np.clip(1.0 - np.abs(np.arange(n_in)[None, :] - centres[:, None]) / support, 0.0, None)
    return weights / weights.sum(axis=1, keepdims=True)


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """``(C, H, W)`` -> ``(C, size, size)``, every channel alike."""
    rows, cols = resize_matrix(image.shape[1], size), resize_matrix(image.shape[2], size)
    return np.einsum("ih,chw,jw->cij", rows, image, cols)
