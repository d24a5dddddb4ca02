"""``ctsim``: simulated chest radiographs (covid, normal, viral) and their labeled CT volumes.

Options (``SourceOptions.extra``, or keyword arguments of :func:`synthaug.load_images`):
``preset`` (``tiny``/``demo``/``paper``, default ``demo``), ``scale``, ``counts`` (class -> images,
overriding the scale-derived counts of the classes it names), ``volume_size``, ``work_spacing_mm``,
``projector``; ``size`` and ``seed`` are the common source options.
See docs/ctsim.md and :mod:`synthaug.data.ctsim`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from synthaug import DatasetSource, ImageSet, SourceOptions, VolumeSet


class CTSimSource(DatasetSource):
    name = "ctsim"
    provides = frozenset({"images", "volumes"})
    needs_dir = False

    def load_images(self, data_dir: Path | None, options: SourceOptions) -> ImageSet:
        from synthaug_plugins.ctsim.generate import config_from_options, load_ctsim_images

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
