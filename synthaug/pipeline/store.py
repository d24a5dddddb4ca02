"""The HDF5 store: a balanced data set on disk, with provenance and the run config.

Layout (schema version 1)::

    /                     attrs: schema_version, class_names (JSON), config (JSON), synthaug_version
    /<split>/images       float32 (N, C, H, W), chunked one image a chunk, gzip + shuffle
    /<split>/labels       int64 (N,)
    /<split>/patient_ids  str (N,)
    /<split>/synth        str (N,)    "real" or the synthesizer's name
    /<split>/origin       str (N,)    file or volume the sample came from / was made from
    /<split>/source_index int64 (N,)
    /<split>/seed         int64 (N,)
    /<split>/extras/<k>   per-sample arrays (e.g. ctsim's lesion-free "twin")

Splits are ``train`` and ``test`` (``all`` for a raw source cached as a store). The file is written
under a temporary name beside the target and renamed only when complete, so an interrupted run
leaves nothing half-written. Reading is lazy: :class:`StoreDataset` keeps the file open and reads
one image per ``__getitem__``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from synthaug.contract.types import REAL, ImageSet
from synthaug.errors import SynthaugError
from synthaug.kit.files import atomic_path
from synthaug.version import __version__

SCHEMA_VERSION = 1


def write_store(path: str | Path, splits: Mapping[str, ImageSet], config: Mapping[str, Any] | None = None) -> Path:
    """Write ``splits`` (e.g. ``{"train": ..., "test": ...}``) and the run config to ``path``, atomically."""
    import h5py

    if not splits:
        raise SynthaugError("a store needs at least one split")
    first = next(iter(splits.values()))
    for name, data in splits.items():
        if data.class_names != first.class_names:
            raise SynthaugError(f"split {name!r} has classes {data.class_names}; expected {first.class_names}")
    text = h5py.string_dtype()
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w", track_order=True) as f:
            f.attrs["schema_version"] = SCHEMA_VERSION
            f.attrs["class_names"] = json.dumps(list(first.class_names))
            f.attrs["config"] = json.dumps(dict(config or {}), sort_keys=True, default=str)
            f.attrs["synthaug_version"] = __version__
            for name, data in splits.items():
                g = f.create_group(name)
                n = len(data)
                shape = (n,) + (data.image_shape if n else first.image_shape)
                g.create_dataset("images", data=data.images.reshape(shape), chunks=(1,) + shape[1:] if n else None,
                                 compression="gzip", compression_opts=4, shuffle=True)
                g.create_dataset("labels", data=data.labels)
                for col in ("patient_ids", "synth", "origin"):
                    g.create_dataset(col, data=np.asarray(getattr(data, col), dtype=object), dtype=text)
                g.create_dataset("source_index", data=data.source_index)
                g.create_dataset("seed", data=data.seed)
                if data.extras:
                    e = g.create_group("extras")
                    for key, value in data.extras.items():
                        big = value.ndim > 1 and n
                        e.create_dataset(key, data=value, chunks=(1,) + value.shape[1:] if big else None,
                                         compression="gzip" if big else None)
    return Path(path)


def _open(path: str | Path):
    import h5py

    path = Path(path)
    if not path.is_file():
        raise SynthaugError(f"{path}: no such store file")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise SynthaugError(f"{path}: not a readable HDF5 store ({exc})") from exc
    if "schema_version" not in f.attrs:
        f.close()
        raise SynthaugError(f"{path}: not a synthaug store (no schema_version)")
    if int(f.attrs["schema_version"]) > SCHEMA_VERSION:
        f.close()
        raise SynthaugError(f"{path}: schema version {int(f.attrs['schema_version'])} is newer than this synthaug reads ({SCHEMA_VERSION})")
    return f


def _split_group(f, path, split: str):
    if split not in f:
        raise SynthaugError(f"{path}: no split {split!r}; the store has {', '.join(f.keys()) or 'none'}")
    return f[split]


def _strings(ds) -> np.ndarray:
    return np.asarray([v.decode() if isinstance(v, bytes) else str(v) for v in ds[()]], dtype=object)


def read_store(path: str | Path, split: str = "train", *, images: bool = True) -> ImageSet:
    """Load one split into memory as an ImageSet (use :func:`open_store` for large stores)."""
    with _open(path) as f:
        g = _split_group(f, path, split)
        class_names = tuple(json.loads(f.attrs["class_names"]))
        arr = g["images"][()] if images else np.zeros((len(g["labels"]), *g["images"].shape[1:2], 1, 1), np.float32)
        extras = {k: v[()] for k, v in g["extras"].items()} if "extras" in g and images else {}
        return ImageSet(arr, g["labels"][()], class_names, _strings(g["patient_ids"]), _strings(g["synth"]),
                        _strings(g["origin"]), g["source_index"][()], g["seed"][()], extras)


def store_info(path: str | Path) -> dict[str, Any]:
    """Class counts per split (real and synthetic) and the image shape: what ``inspect`` prints."""
    with _open(path) as f:
        class_names = json.loads(f.attrs["class_names"])
        info: dict[str, Any] = {"splits": {}, "image_shape": None, "class_names": class_names}
        for split in f:
            g = f[split]
            labels = g["labels"][()]
            synthetic = _strings(g["synth"]) != REAL
            info["splits"][split] = {
                "classes": {c: int((labels == i).sum()) for i, c in enumerate(class_names)},
                "synthetic": {c: int(((labels == i) & synthetic).sum()) for i, c in enumerate(class_names)},
            }
            info["image_shape"] = list(g["images"].shape[1:])
        info["schema_version"] = int(f.attrs["schema_version"])
        return info


class StoreDataset:
    """A lazy torch ``Dataset`` over one split: ``(image float32 (C, H, W), label int)`` per item.

    The file is opened on first access in each process (so DataLoader workers each get their own
    handle) and one image is read per item: memory does not grow with the file.
    """

    def __init__(self, path: str | Path, split: str = "train"):
        self.path, self.split = Path(path), split
        with _open(path) as f:
            g = _split_group(f, path, split)
            self.class_names = tuple(json.loads(f.attrs["class_names"]))
            self.labels = g["labels"][()]
            self.synth = _strings(g["synth"])
            self.patient_ids = _strings(g["patient_ids"])
            self.origin = _strings(g["origin"])
            self.image_shape = tuple(g["images"].shape[1:])
            self.config = json.loads(f.attrs["config"])
        self._file = None

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        import torch

        if self._file is None:
            import h5py
            self._file = h5py.File(self.path, "r")
        image = self._file[self.split]["images"][int(index)]
        return torch.from_numpy(np.ascontiguousarray(image)), int(self.labels[index])

    def __getstate__(self):  # picklable for DataLoader workers: the handle is reopened there
        state = dict(self.__dict__)
        state["_file"] = None
        return state

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def open_store(path: str | Path, split: str = "train") -> StoreDataset:
    return StoreDataset(path, split)
