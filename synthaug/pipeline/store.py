"""The HDF5 store: a balanced data set on disk, with provenance and the run config.

Layout (schema version 2)::

    /                     attrs: schema_version, class_names (JSON), config (JSON), synthaug_version
    /<split>/images       uint8, uint16 or float32 (N, C, H, W), chunked one image a chunk, gzip + shuffle;
                          attr ``scale`` (2**b - 1 for a b-bit set: 255, 4095, 65535; 1 for float32):
                          the loader's float image is ``images / scale``
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

Streaming: a split is written :data:`CHUNK_IMAGES` images at a time, from an ImageSet (lazy or not)
or from parts that make their images when asked (``balance``'s synthetic images), so writing a store
holds one chunk in memory, not the data set. A set whose ``meta["bit_depth"]`` is b is kept as the
integers ``k`` of ``k / (2**b - 1)``: uint8 with scale 255 for 8 bits, uint16 with scale 4095 for 12,
65535 for 16 (:data:`~synthaug.contract.types.BIT_DEPTHS`), and the float read back is the float written;
reading reports the depth from the dtype and ``scale`` together.
Schema version 1 stores (float32 images, no ``scale``) still open.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from synthaug.contract.types import BIT_DEPTHS, REAL, ImageSet, LazyImages, images_in, on_grid, stored_bit_depth
from synthaug.errors import SynthaugError
from synthaug.kit.files import GuardedFile, atomic_path
from synthaug.version import __version__

SCHEMA_VERSION = 2
#: Images read, made or written at a time when a split streams through (one chunk in memory).
from synthaug.contract.interfaces import CHUNK_IMAGES  # noqa: E402  (a split is written this many images at a time)


def store_format(bit_depth: int | None) -> tuple[str, float]:
    """(dtype name, scale) of a store's images for a source of ``bit_depth`` (None: float32)."""
    return BIT_DEPTHS.get(bit_depth, ("float32", 1.0)) if bit_depth is not None else ("float32", 1.0)


def to_stored(images: np.ndarray, bit_depth: int | None) -> np.ndarray:
    """Float images in [0, 1] as the store keeps them (on the integer grid of ``bit_depth``, if any)."""
    return on_grid(images, bit_depth) if bit_depth in BIT_DEPTHS else np.asarray(images, np.float32)


def from_stored(images: np.ndarray, scale: float) -> np.ndarray:
    """The loader's float32 images: ``stored / scale`` (the same float division a source made)."""
    if images.dtype == np.float32 and scale == 1.0:
        return images
    return images.astype(np.float32) / np.float32(scale)


def _chunks(part, size: int):
    """ImageSets of at most ``size`` images each: an ImageSet cut into pieces (lazy ones read a piece at
    a time), or what a streamed part (with ``chunks()``) makes."""
    if isinstance(part, ImageSet):
        for start in range(0, len(part), size):
            yield part.subset(np.arange(start, min(start + size, len(part))))
    else:
        yield from part.chunks()


def _parts(split) -> list:
    return list(split.parts) if hasattr(split, "parts") else [split]


def write_store(path: str | Path, splits: Mapping[str, Any], config: Mapping[str, Any] | None = None) -> Path:
    """Write ``splits`` (e.g. ``{"train": ..., "test": ...}``) and the run config to ``path``, atomically.

    A split is an :class:`ImageSet` or a streamed split: an object with ``parts`` (ImageSets, and
    objects with ``__len__`` and ``chunks()`` yielding ImageSets) and ``class_names``, ``image_shape``
    and ``bit_depth`` (what :func:`synthaug.balance` builds). Either way the images pass through
    :data:`CHUNK_IMAGES` at a time. The first split's ``bit_depth`` (an ImageSet's ``meta``) picks the
    images' dtype for every split.
    """
    import h5py

    if not splits:
        raise SynthaugError("a store needs at least one split")
    first = next(iter(splits.values()))
    for name, data in splits.items():
        if tuple(data.class_names) != tuple(first.class_names):
            raise SynthaugError(f"split {name!r} has classes {data.class_names}; expected {first.class_names}")
    depth = first.meta.get("bit_depth") if isinstance(first, ImageSet) else getattr(first, "bit_depth", None)
    with atomic_path(path) as tmp:
        guard = GuardedFile(tmp)  # a full disk stops the writing here, not inside HDF5 (see GuardedFile)
        try:
            with h5py.File(guard, "w", track_order=True) as f:
                f.attrs["schema_version"] = SCHEMA_VERSION
                f.attrs["class_names"] = json.dumps(list(first.class_names))
                f.attrs["config"] = json.dumps(dict(config or {}), sort_keys=True, default=str)
                f.attrs["synthaug_version"] = __version__
                for name, data in splits.items():
                    _write_split(f.create_group(name), _parts(data), tuple(first.image_shape), depth, guard)
            guard.flush()
        finally:
            guard.close()
        guard.check()
    return Path(path)


def _write_split(g, parts: list, shape: tuple, depth: int | None, guard=None) -> None:
    import h5py

    dtype, scale = store_format(depth)
    n = sum(len(p) for p in parts)
    images = g.create_dataset("images", shape=(n, *shape), dtype=dtype, chunks=(1, *shape) if n else None,
                              compression="gzip", compression_opts=4, shuffle=True)
    images.attrs["scale"] = scale
    columns: dict[str, list] = {k: [] for k in ("labels", "patient_ids", "synth", "origin", "source_index", "seed")}
    extras: dict[str, Any] = {}
    at = 0
    for part in parts:
        made = 0
        for chunk in _chunks(part, CHUNK_IMAGES):
            k = len(chunk)
            if chunk.image_shape != shape and k:
                raise SynthaugError(f"images of shape {chunk.image_shape} in a split of shape {shape}")
            images[at:at + k] = to_stored(images_in(chunk.images, 0, k), depth)
            for col in columns:
                columns[col].append(getattr(chunk, col))
            for key, value in chunk.extras.items():
                if key not in extras:  # rows of parts without this extra read zeros (HDF5's fill value)
                    big = value.ndim > 1
                    extras[key] = g.require_group("extras").create_dataset(
                        key, shape=(n, *value.shape[1:]), dtype=value.dtype,
                        chunks=(1, *value.shape[1:]) if big and n else None, compression="gzip" if big and n else None)
                extras[key][at:at + k] = value
            at += k
            made += k
            if guard is not None:
                g.file.flush()  # the chunk reaches the disk now: a full disk is seen at this chunk
                guard.check()
        if made != len(part):
            raise SynthaugError(f"a part of {len(part)} images gave {made} images")
    text = h5py.string_dtype()
    join = lambda col, dt: np.concatenate(columns[col]).astype(dt) if columns[col] else np.zeros(0, dt)  # noqa: E731
    g.create_dataset("labels", data=join("labels", np.int64))
    for col in ("patient_ids", "synth", "origin"):
        g.create_dataset(col, data=join(col, object), dtype=text)
    g.create_dataset("source_index", data=join("source_index", np.int64))
    g.create_dataset("seed", data=join("seed", np.int64))


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
    version = int(f.attrs["schema_version"])
    if version > SCHEMA_VERSION:
        f.close()
        raise SynthaugError(f"{path}: schema version {version} is newer than this synthaug reads ({SCHEMA_VERSION}); "
                            f"expected {SCHEMA_VERSION} or older (upgrade synthaug to read it)")
    return f


def _split_group(f, path, split: str):
    if split not in f:
        raise SynthaugError(f"{path}: no split {split!r}; the store has {', '.join(f.keys()) or 'none'}")
    return f[split]


def _strings(ds) -> np.ndarray:
    return np.asarray([v.decode() if isinstance(v, bytes) else str(v) for v in ds[()]], dtype=object)


def _scale(images_ds) -> float:
    return float(images_ds.attrs.get("scale", 1.0))  # schema 1: float32 images, no scale


def _bit_depth(images_ds) -> int | None:
    """The depth the images were kept at, from their dtype *and* ``scale``: uint16 is 16-bit over
    65535 but 12-bit over 4095."""
    return stored_bit_depth(str(images_ds.dtype), _scale(images_ds))


class _StoredImages:
    """``read(positions)`` of :class:`LazyImages` over one split of a store (the file opened per read,
    so it is safe across threads and DataLoader workers; nothing stays open)."""

    def __init__(self, path: Path, split: str):
        self.path, self.split = path, split

    def __call__(self, positions: np.ndarray) -> np.ndarray:
        import h5py

        unique, inverse = np.unique(positions, return_inverse=True)
        with h5py.File(self.path, "r") as f:
            ds = f[self.split]["images"]
            if unique[-1] - unique[0] + 1 == len(unique):  # contiguous: one slice
                block = ds[int(unique[0]):int(unique[-1]) + 1]
            else:
                block = ds[unique]
            return from_stored(block, _scale(ds))[inverse.reshape(-1)]


def read_store(path: str | Path, split: str = "train", *, images: bool = True, lazy: bool = False) -> ImageSet:
    """One split as an ImageSet: in memory, or with ``lazy=True`` as :class:`LazyImages` read when
    indexed (use that, or :func:`open_store`, for large stores). Extras are read into memory."""
    with _open(path) as f:
        g = _split_group(f, path, split)
        class_names = tuple(json.loads(f.attrs["class_names"]))
        shape = g["images"].shape
        if not images:
            arr = np.zeros((len(g["labels"]), *shape[1:2], 1, 1), np.float32)
        elif lazy:
            arr = LazyImages(_StoredImages(Path(path), split), shape[0], shape[1:])
        else:
            arr = from_stored(g["images"][()], _scale(g["images"]))
        extras = {k: v[()] for k, v in g["extras"].items()} if "extras" in g and images else {}
        depth = _bit_depth(g["images"])
        return ImageSet(arr, g["labels"][()], class_names, _strings(g["patient_ids"]), _strings(g["synth"]),
                        _strings(g["origin"]), g["source_index"][()], g["seed"][()], extras,
                        {"bit_depth": depth} if depth else {})


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
            info["image_dtype"] = str(g["images"].dtype)
            info["bit_depth"] = _bit_depth(g["images"])
        info["schema_version"] = int(f.attrs["schema_version"])
        return info


class StoreDataset:
    """A lazy torch ``Dataset`` over one split of a store (what :func:`open_store` returns).

    Items: ``(image, label)``, the image a float32 tensor ``(C, H, W)`` in [0, 1] and the label an
    int, like torchvision's ``ImageFolder``: ``transform`` takes the image, ``target_transform`` the
    label. With ``as_dict=True`` an item is the dictionary MONAI's dictionary transforms take,
    ``{"image", "label", "synth", "patient_id", "origin"}``, and ``transform`` takes the whole
    dictionary (``target_transform`` still takes the label first).

    ``classes``, ``class_to_idx`` and ``targets`` are ImageFolder's names; ``class_names``, ``labels``
    (int64 array), ``synth``, ``patient_ids``, ``origin``, ``image_shape`` and ``config`` are the
    store's. The file is opened on first access in each process (so DataLoader workers each get their
    own handle) and one image is read per item: memory does not grow with the file.
    """

    def __new__(cls, *args, **kwargs):
        # Every instance is of the torch subclass, so isinstance(ds, torch.utils.data.Dataset) holds,
        # yet importing this module imports no torch: the subclass is built on first use.
        if cls is StoreDataset:
            cls = _torch_store_dataset()
        return super().__new__(cls)

    def __init__(self, path: str | Path, split: str = "train", *, transform=None, target_transform=None,
                 as_dict: bool = False):
        self.path, self.split = Path(path), split
        with _open(path) as f:
            g = _split_group(f, path, split)
            self.class_names = tuple(json.loads(f.attrs["class_names"]))
            self.labels = g["labels"][()]
            self.synth = _strings(g["synth"])
            self.patient_ids = _strings(g["patient_ids"])
            self.origin = _strings(g["origin"])
            self.source_index = g["source_index"][()]
            self.image_shape = tuple(g["images"].shape[1:])
            self.scale = _scale(g["images"])
            self.config = json.loads(f.attrs["config"])
        self.classes = list(self.class_names)
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}
        self.targets = [int(label) for label in self.labels]
        self.transform, self.target_transform, self.as_dict = transform, target_transform, bool(as_dict)
        self._file = None

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        import torch

        i = int(index)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"index {index} out of range for a split of {len(self)} images")
        if self._file is None:
            import h5py
            self._file = h5py.File(self.path, "r")
        image = torch.from_numpy(np.ascontiguousarray(from_stored(self._file[self.split]["images"][i], self.scale)))
        label = int(self.labels[i])
        if self.target_transform is not None:
            label = self.target_transform(label)
        if self.as_dict:
            item = {"image": image, "label": label, "synth": str(self.synth[i]),
                    "patient_id": str(self.patient_ids[i]), "origin": str(self.origin[i])}
            return self.transform(item) if self.transform is not None else item
        return (self.transform(image) if self.transform is not None else image), label

    def __reduce__(self):  # picklable for DataLoader workers: the handle is reopened there
        state = dict(self.__dict__)
        state["_file"] = None
        return _rebuilt_store_dataset, (state,)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


_TORCH_STORE_DATASET: list = []  # the subclass, once built


def _torch_store_dataset() -> type:
    """StoreDataset with ``torch.utils.data.Dataset`` as a second base (so ``ds + other`` concatenates)."""
    if not _TORCH_STORE_DATASET:
        from torch.utils.data import Dataset

        _TORCH_STORE_DATASET.append(type("StoreDataset", (StoreDataset, Dataset),
                                         {"__module__": __name__, "__doc__": StoreDataset.__doc__}))
    return _TORCH_STORE_DATASET[0]


def _rebuilt_store_dataset(state: dict) -> StoreDataset:
    dataset = StoreDataset.__new__(StoreDataset)
    dataset.__dict__.update(state)
    return dataset


def open_store(path: str | Path, split: str = "train", transform=None, target_transform=None,
               as_dict: bool = False, pool: float | None = None, seed: int = 0):
    """One split of a store as a lazy torch ``Dataset`` (:class:`StoreDataset`: its items, attributes
    and ``as_dict`` form). ``pool=p``: the store is a replacement pool (an experiment arm's ``pool``):
    a :class:`~synthaug.pipeline.pool.PoolDataset` of its real images, each item replaced by one of its
    synthetic variants with probability ``p``, drawn from ``seed`` and the epoch (``set_epoch``)."""
    dataset = StoreDataset(path, split, transform=transform, target_transform=target_transform, as_dict=as_dict)
    if pool is None:
        return dataset
    from synthaug.pipeline.pool import PoolDataset

    return PoolDataset(dataset, pool, seed)
