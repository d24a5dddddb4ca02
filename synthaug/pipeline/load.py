"""The first arrow: a registered data source's name (and directory) -> an ImageSet or a VolumeSet.

Every source is a plugin (the bundled ones live in ``plugins/sources`` and ``plugins/ctsim``) found
through the registry, so this module names none of them. :func:`as_binary` turns a loaded set into a
one-class-against-the-rest task (``--binary covid``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from synthaug.contract.interfaces import DatasetSource
from synthaug.contract.types import ImageSet, SourceOptions, VolumeSet
from synthaug.errors import SynthaugError
from synthaug.kit.state import keeps_state
from synthaug.registry import create


def get_source(name: str, options: dict[str, Any] | None = None) -> DatasetSource:
    """The registered source ``name`` with its options (``--source-option``) checked against its
    ``Config``: an unknown or ill-typed key, or any key for a source that declares none, is refused in
    one line naming the source, the key and what it takes (see :func:`synthaug.contract.config.make_config`)."""
    return create("dataset", name, **dict(options or {}))


def _dir(source: DatasetSource, data_dir: str | Path | None) -> Path | None:
    if data_dir is None:
        if source.needs_dir:
            raise SynthaugError(f"dataset {source.name!r} needs a directory: pass --data-dir")
        return None
    path = Path(data_dir)
    if not path.exists():
        raise SynthaugError(f"{path}: no such directory (dataset {source.name!r})")
    return path


def _options(size, channels, skip_bad, classes, seed, extra, lazy=False) -> SourceOptions:
    return SourceOptions(size=size, channels=channels, skip_bad=skip_bad,
                         classes=tuple(classes) if classes else None, seed=seed, extra=dict(extra), lazy=lazy)


@keeps_state
def load_images(source: str, data_dir: str | Path | None = None, *, size: int | None = None, channels: int = 1,
                skip_bad: bool = False, classes=None, seed: int = 0, lazy: bool = False, **extra: Any) -> ImageSet:
    """Radiographs of a registered source as an :class:`~synthaug.ImageSet`.

    ``lazy=True``: a source that can returns :class:`~synthaug.LazyImages` (read when indexed), so a
    data set larger than memory streams through :func:`synthaug.balance` into a store.
    """
    src = get_source(source, extra)
    return src.load_images(_dir(src, data_dir), _options(size, channels, skip_bad, classes, seed, extra, lazy))


@keeps_state
def load_volumes(source: str, data_dir: str | Path | None = None, *, size: int | None = None, seed: int = 0,
                 **extra: Any) -> VolumeSet:
    """CT volumes of a registered source as a :class:`~synthaug.VolumeSet`."""
    src = get_source(source, extra)
    return src.load_volumes(_dir(src, data_dir), _options(size, 1, False, None, seed, extra))


Labeled = TypeVar("Labeled", ImageSet, VolumeSet)


def as_binary(data: Labeled, positive: str, rest: str = "rest") -> Labeled:
    """``data`` as a two-class task: ``class_names`` become ``(positive, rest)``, ``positive``'s images
    (or volumes) keep label 0 and every other class's get label 1. Provenance, patient ids, extras and
    meta are kept; a VolumeSet stays lazy (its loaders are shared, nothing is loaded).
    """
    names = tuple(data.class_names)
    if positive not in names:
        raise SynthaugError(f"binary class {positive!r} is not a class; classes are {', '.join(names)}")
    if rest in names:
        raise SynthaugError(f"cannot name the other classes {rest!r}: a class is already called {rest!r}")
    labels = np.where(np.asarray(data.labels) == names.index(positive), 0, 1).astype(np.int64)
    binary = (positive, rest)
    if isinstance(data, ImageSet):
        meta = {**data.meta, "binary": {"positive": positive, "rest": rest, "classes": list(names)}}
        return replace(data, labels=labels, class_names=binary, meta=meta)
    out = data.subset(np.arange(len(data)))  # a new set over the same loaders
    out.labels, out.class_names = labels, binary
    return out


def binary_volumes(volumes: VolumeSet, binary: str | None) -> VolumeSet:
    """``--binary CLASS`` applied to CT volumes that have that class; volumes with other classes
    (MosMed's CT-0..CT-4) keep them, for the synthesizer's ``label_map`` to map."""
    if binary is None or binary not in volumes.class_names:
        return volumes
    return as_binary(volumes, binary)
