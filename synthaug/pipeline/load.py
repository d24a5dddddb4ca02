"""The first arrow: a registered data source's name (and directory) -> an ImageSet or a VolumeSet.

Every source is a plugin (the bundled ones live in ``plugins/sources`` and ``plugins/ctsim``) found
through the registry, so this module names none of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from synthaug.contract.interfaces import DatasetSource
from synthaug.contract.types import ImageSet, SourceOptions, VolumeSet
from synthaug.errors import SynthaugError
from synthaug.registry import create


def get_source(name: str) -> DatasetSource:
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
                skip_bad: bool = False, classes=None, seed: int = 0, **extra: Any) -> ImageSet:
    """Radiographs of a registered source as an :class:`~synthaug.ImageSet`."""
    src = get_source(source)
    return src.load_images(_dir(src, data_dir), _options(size, channels, skip_bad, classes, seed, extra))


def load_volumes(source: str, data_dir: str | Path | None = None, *, size: int | None = None, seed: int = 0,
                 **extra: Any) -> VolumeSet:
    """CT volumes of a registered source as a :class:`~synthaug.VolumeSet`."""
    src = get_source(source)
    return src.load_volumes(_dir(src, data_dir), _options(size, 1, False, None, seed, extra))
