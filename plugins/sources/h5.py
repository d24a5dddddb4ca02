"""``h5``: a store written by synthaug, as a source (``--data-dir`` names the .h5 file).

By default the *real* images of every split are returned (so a new balance re-splits them);
``split="train"`` (an extra option) returns one split as stored, synthetic images included.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from synthaug import DatasetSource, ImageSet, SourceOptions
from synthaug.contract.types import REAL
from synthaug.pipeline.store import read_store, store_info


class StoreSource(DatasetSource):
    name = "h5"
    provides = frozenset({"images"})

    def load_images(self, data_dir: Path | None, options: SourceOptions) -> ImageSet:
        assert data_dir is not None
        split = options.extra.get("split")
        if split:
            data = read_store(data_dir, split)
        else:
            parts = [read_store(data_dir, s) for s in store_info(data_dir)["splits"]]
            data = ImageSet.concat(parts)
            data = data.subset(np.flatnonzero(data.synth == REAL))
        if options.size is not None and data.image_shape[1:] != (options.size, options.size):
            import torch
            import torch.nn.functional as F

            resized = F.interpolate(torch.from_numpy(data.images), size=(options.size, options.size),
                                    mode="bilinear", align_corners=False, antialias=True).clamp(0, 1).numpy()
            data = data.with_provenance(images=resized)
        if options.channels != data.image_shape[0]:
            images = data.images.mean(1, keepdims=True) if options.channels == 1 else np.repeat(data.images, 3, 1)
            data = data.with_provenance(images=images.astype(np.float32))
        data.meta = dict(data.meta, source="h5", path=str(data_dir))
        return data
