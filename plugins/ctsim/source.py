"""``ctsim``: simulated chest radiographs (covid, normal, viral) and their labeled CT volumes.

Options (``SourceOptions.extra``, or keyword arguments of :func:`synthaug.load_images`):
``preset`` (``tiny``/``demo``/``paper``, default ``demo``), ``scale``, ``counts`` (class -> images,
overriding the scale-derived counts of the classes it names), ``volume_size``, ``work_spacing_mm``,
``projector``; ``size`` and ``seed`` are the common source options.
See docs/ctsim.md and :mod:`synthaug.data.ctsim`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from synthaug import DatasetSource, ImageSet, SourceOptions, SynthaugError, VolumeSet


@dataclass
class CTSimSourceConfig:
    """Declared for checking and listing (``synthaug plugins --options ctsim``); the values given reach
    :func:`config_from_options` as ``SourceOptions.extra``, so an option left out keeps the preset's."""

    preset: str = "demo"  # tiny, demo or paper: sizes and class counts (docs/ctsim.md)
    scale: float | None = None  # multiply the preset's class counts
    counts: Any = None  # (a dict or its JSON text; ctsim checks it) class -> images, overriding the scaled
    # counts of the classes it names
    volume_size: str | int | list | None = None  # CT volume X,Y,Z (e.g. 64x64x32); None: the preset's
    work_spacing_mm: float | None = None  # voxel size the lesions are drawn at; None: the preset's
    projector: str | None = None  # registered projector that renders the radiographs; None: the preset's
    image_size: int | None = None  # the radiograph size of the set whose volumes are wanted (load_volumes)


class CTSimSource(DatasetSource):
    name = "ctsim"
    Config = CTSimSourceConfig
    provides = frozenset({"images", "volumes"})
    needs_dir = False

    def load_images(self, data_dir: Path | None, options: SourceOptions) -> ImageSet:
        from synthaug_plugins.ctsim.generate import config_from_options, load_ctsim_images

        if options.channels not in (1, 3):
            raise SynthaugError(f"dataset 'ctsim' makes radiographs of 1 channel (or 3, the grey one repeated); "
                                f"got --channels {options.channels}")
        data = load_ctsim_images(config_from_options(options.size, options.seed, options.extra))
        if options.channels == 3:
            extras = {k: (np.repeat(v, 3, axis=1) if k == "twin" else v) for k, v in data.extras.items()}
            data = ImageSet(np.repeat(data.images, 3, axis=1), data.labels, data.class_names, data.patient_ids,
                            data.synth, data.origin, data.source_index, data.seed, extras)
        return data

    def load_volumes(self, data_dir: Path | None, options: SourceOptions) -> VolumeSet:
        from synthaug_plugins.ctsim.generate import config_from_options, load_ctsim_volumes

        extra = dict(options.extra)
        if options.size is not None and "volume_size" not in extra:
            extra["volume_size"] = (options.size, options.size, max(4, options.size // 4))
        return load_ctsim_volumes(config_from_options(None, options.seed, extra))
