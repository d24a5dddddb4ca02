"""Loading a data source by name: ``load_images("kaggle", dir, size=64)``, ``load_volumes("mosmed", dir)``.

The core's own sources (``kaggle``, ``imagefolder``, ``h5``) are registered by
:mod:`synthaug.data.sources.plugin` through the same entry-point mechanism as every other plugin.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import SynthaugError
from ...interfaces import DatasetSource, SourceOptions


def get_source(name: str) -> DatasetSource:
    from ...registry import create

    return create("dataset", name)


def _dir(source: DatasetSource, data_dir: str | Path | None) -> Path | None:
    if data_dir is None:
        if source.needs_dir:
            raise SynthaugError(f"dataset {source.name!r} needs a directory: pass --data-dir")
        return None
    path = Path(data_dir)
    if not path.exists():
        raise SynthaugError(f"{path}: no such directory (dataset {source.name!r})")
    return path


def _options(size, channels, skip_bad, classes, seed, extra) -> SourceOptions:
    return SourceOptions(size=size, channels=channels, skip_bad=skip_bad,
                         classes=tuple(classes) if classes else None, seed=seed, extra=dict(extra))


def load_images(source: str, data_dir: str | Path | None = None, *, size: int | None = None, channels: int = 1,
                skip_bad: bool = False, classes=None, seed: int = 0, **extra: Any):
    """Radiographs of a registered source as an :class:`~synthaug.data.imageset.ImageSet`."""
    src = get_source(source)
    return src.load_images(_dir(src, data_dir), _options(size, channels, skip_bad, classes, seed, extra))


def load_volumes(source: str, data_dir: str | Path | None = None, *, size: int | None = None, seed: int = 0,
                 **extra: Any):
    """CT volumes of a registered source as a :class:`~synthaug.data.volumes.VolumeSet`."""
    src = get_source(source)
    return src.load_volumes(_dir(src, data_dir), _options(size, 1, False, None, seed, extra))
