"""``h5``: a store written by synthaug, as a source (``--data-dir`` names the .h5 file).

By default the *real* images of every split are returned (so a new balance re-splits them);
``split="train"`` (an extra option) returns one split as stored, synthetic images included.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

import synthaug
from synthaug import DatasetSource, ImageSet, LazyImages, SourceOptions, SynthaugError
from synthaug.contract.types import REAL


@dataclass
class StoreSourceConfig:
    split: str | None = None  # one split as stored (synthetic images included); None: the real images of every split


class StoreSource(DatasetSource):
    name = "h5"
    Config = StoreSourceConfig
    provides = frozenset({"images"})

    def load_images(self, data_dir: Path | None, options: SourceOptions) -> ImageSet:
        assert data_dir is not None
        split = options.extra.get("split")
        lazy = options.lazy
        if split:
            data = synthaug.read_store(data_dir, split, lazy=lazy)
        else:
            parts = [synthaug.read_store(data_dir, s, lazy=lazy) for s in synthaug.store_info(data_dir)["splits"]]
            data = ImageSet.concat(parts)
            data = data.subset(np.flatnonzero(data.synth == REAL))
        size = data.image_shape[1:] if options.size is None else (options.size, options.size)
        shape = (options.channels, *size)
        if shape != data.image_shape:
            have = data.image_shape[0]
            if have != options.channels and 1 not in (have, options.channels):  # grey <-> C is a mean or a copy
                raise SynthaugError(f"{data_dir}: the store's images have {have} channels; "
                                    f"--channels {options.channels} cannot be made from them (ask for {have} or 1)")
            convert = _converter(data.image_shape, shape)
            if data.is_lazy:  # converted a chunk at a time, when read
                base = data.images
                images = LazyImages(lambda positions: convert(base.read(positions)), len(base), shape)
            else:
                images = convert(data.images)
            meta = {k: v for k, v in data.meta.items() if k != "bit_depth" or size == data.image_shape[1:]}
            data = data.with_provenance(images=images, meta=meta)
        data.meta = dict(data.meta, source="h5", path=str(data_dir))
        return data


def _converter(have: tuple, want: tuple):
    """float32 images of shape ``have`` -> ``want`` (resized bilinearly with antialiasing, channels
    averaged or repeated)."""
    def convert(images: np.ndarray) -> np.ndarray:
        if have[1:] != want[1:]:
            import torch
            import torch.nn.functional as F

            images = F.interpolate(torch.from_numpy(np.ascontiguousarray(images)), size=want[1:], mode="bilinear",
                                   align_corners=False, antialias=True).clamp(0, 1).numpy()
        if want[0] != images.shape[1]:
            images = images.mean(1, keepdims=True) if want[0] == 1 else np.repeat(images, want[0], 1)
        return images.astype(np.float32)
    return convert
