"""The interfaces plugins implement: Synthesizer, Projector, Classifier, DatasetSource.

Each is a small abstract class; a plugin registers a factory (usually the class itself) through a hook
in :mod:`synthaug.contract.hookspecs`. The core moves ImageSets, VolumeSets and provenance between them
and contains no model code. numpy only: importing this module never imports torch.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Iterator, Mapping

import numpy as np

from synthaug.contract.config import config_dict, make_config
from synthaug.contract.run import RunContext
from synthaug.contract.types import Geometry, ImageSet, SourceOptions, Volume, VolumeSet, WeightsReport
from synthaug.errors import SynthaugError

__all__ = ["Configurable", "Synthesizer", "Projector", "Classifier", "DatasetSource", "RunContext", "DEFAULT_RUN",
           # re-exported: the old ``synthaug.interfaces`` held these too
           "Geometry", "SourceOptions", "WeightsReport", "make_config", "config_dict"]


class Configurable:
    """What all four interfaces share: a user-visible ``name`` and options in a ``Config`` dataclass.

    ``Plugin(**options)`` builds ``Config`` from the options (unknown or ill-typed keys refused with a
    message naming the plugin, the key and the expected type); ``Plugin(config)`` takes a ready one.
    """

    #: Name users type (``--synth NAME``, ``--classifier NAME``); set by the class.
    name: ClassVar[str] = ""
    #: Dataclass of options with documented defaults (``None``: no options).
    Config: ClassVar[type | None] = None
    #: What the plugin is, in the messages: "synthesizer", "projector", ...
    kind: ClassVar[str] = "plugin"

    def __init__(self, config: Any = None, **options: Any):
        self.config = config if config is not None else make_config(self.Config, options, f"{self.kind} {self.name!r}")


#: Images a synthesizer makes (or the core reads) at a time when it streams: the chunks of
#: ``Synthesizer.generate_chunks``, and the unit ``balance`` shares out among processes under torchrun.
CHUNK_IMAGES = 256

#: The context of a call that names none (a script calling ``fit`` directly): seed 0, device ``auto``,
#: no work directory, one process.
DEFAULT_RUN = RunContext()


def chunk_rows(n: int, size: int = CHUNK_IMAGES):
    """Consecutive slices covering ``range(n)``, ``size`` at a time (none when ``n`` is 0)."""
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def part_seed(seed: int, rows: slice) -> int:
    """The seed of the chunk of images ``rows`` of a class whose images have seed ``seed``: ``seed``
    itself for the first chunk (a class of at most one chunk is made as before chunks existed), one
    derived from ``seed`` and the chunk's first row for the others."""
    start = int(rows.start or 0)
    if start == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed), start]).generate_state(1)[0])


class Synthesizer(Configurable, ABC):
    """Learns from the training split, then makes new images of a target class.

    Lifecycle used by :func:`synthaug.balance`:

    1. ``check(train, deficits, volumes)``: raise :class:`SynthaugError` for anything that would fail
       later (no images of the source class, volumes missing, sizes the network can't take), *before*
       any training.
    2. ``fit(train, volumes)``: learn (a no-op for ``duplicate``). Never sees the test split. Neither
       ``check`` nor ``fit`` runs when the strategy leaves nothing to generate.
    3. ``generate(train, target, n, seed=..., volumes=...)``: an ImageSet of exactly ``n`` images of
       class ``target`` with provenance filled in (``origin``, ``source_index``); the core stamps the
       synthesizer name and seed.
    4. ``save(dir)`` / ``load(dir)``: a fitted synthesizer reused with ``--synth-checkpoint``.
    """

    kind: ClassVar[str] = "synthesizer"
    #: True if the synthesizer projects labeled CT volumes (xpgan, drr).
    needs_volumes: ClassVar[bool] = False
    #: True if ``fit`` trains something worth saving.
    trainable: ClassVar[bool] = False
    #: The image channel counts (C of ``(N, C, H, W)``) the synthesizer can take; ``None``: any count.
    #: ``balance`` and ``fit`` refuse a training split of another count, naming the synthesizer, before
    #: ``check`` and any training (:func:`check_channels`). The default is (1, 3) because every
    #: synthesizer written before channel counts were declared could assume grey or RGB (PNG grids,
    #: RGB networks); one that handles any count says so with ``None``.
    accepted_channels: ClassVar[tuple[int, ...] | None] = (1, 3)
    #: True if ``check``/``fit``/``generate`` only index ``train.images`` (``train.images[idx]``, a
    #: batch or a chunk at a time) and never take it whole: the core then hands over the training split
    #: lazily (:class:`~synthaug.LazyImages`, read from disk when indexed), so memory does not grow with
    #: the data set. False (the default, safe for any plugin): the split is read into memory first.
    reads_lazily: ClassVar[bool] = False
    #: True if :meth:`generate_part` makes any chunk of a class's images on its own, from the seed and
    #: the chunk's rows alone (not from the chunks before it). ``generate_chunks`` is then those parts in
    #: order, and under torchrun ``synthaug balance`` shares the chunks out among the processes (the
    #: store is byte-identical to one process's). False: one process makes them all.
    splits_generation: ClassVar[bool] = False
    #: A synthesizer that trains a classifier of its own (xpgan's C, jointly with G and D) names the
    #: subdirectory of its saved checkpoint holding that classifier as a training run (the layout
    #: of a training run, docs/training.md); an experiment arm with ``measure = "joint"``
    #: evaluates it there. ``None``: no classifier of its own.
    classifier_run: ClassVar[str | None] = None
    #: Options that change only what ``generate`` makes from a fitted synthesizer, never what ``fit``
    #: learns (ddpm's ``guidance`` and ``steps``). A fitted (loaded) synthesizer takes new values for them
    #: (:meth:`with_sampling_options`: ``balance --synth-checkpoint DIR -o guidance=4``), experiment
    #: arms that differ only in them share one fit, and a saved training state resumes across them.
    sampling_options: ClassVar[tuple[str, ...]] = ()
    #: What a trainable synthesizer's ``fit`` estimated and measured of its peak memory (the record of
    #: ``synthaug.kit.memory.check_memory``, completed by ``finish_record``): ``save`` writes it,
    #: ``describe`` gives the estimate. None: not trained here.
    memory: dict[str, Any] | None = None

    def check(self, train: ImageSet, deficits: dict[str, int], volumes: VolumeSet | None = None, *,
              run: RunContext = DEFAULT_RUN) -> None:
        """Validate inputs before any training (default: volumes present when needed)."""
        if self.needs_volumes and (volumes is None or len(volumes) == 0):
            raise SynthaugError(f"synthesizer {self.name!r} needs labeled CT volumes; pass --volumes SOURCE")

    def fit(self, train: ImageSet, volumes: VolumeSet | None = None, *, run: RunContext = DEFAULT_RUN) -> None:
        """Learn from the training split (default: nothing to learn). ``run``: the seed, device, work
        directory and torchrun world of this run (:class:`~synthaug.RunContext`)."""

    def with_sampling_options(self, options: Mapping[str, Any]) -> "Synthesizer":
        """This (fitted) synthesizer with new values of its :attr:`sampling_options`, checked by its
        ``Config`` as at construction. Any other option must keep the fitted value: a new one would need
        a new fit, and is refused in one line."""
        options = dict(options)
        if not options:
            return self
        where = f"{self.kind} {self.name!r}"
        now = config_dict(self.config)
        config = make_config(self.Config, {**now, **options}, where)
        after = config_dict(config)
        for key in sorted(options):
            if key not in self.sampling_options and after.get(key) != now.get(key):
                allowed = ", ".join(self.sampling_options) or "none"
                raise SynthaugError(f"{where} is fitted with {key}={now.get(key)!r}; {key}={options[key]!r} "
                                    f"would need a new fit (a fitted {self.name} takes new values only for "
                                    f"its sampling options: {allowed})")
        self.config = config
        return self

    def sources_per_class(self, train: ImageSet, volumes: VolumeSet | None = None) -> dict[str, int]:
        """How many sources ``generate`` draws from per class of ``train``: the size of strategy
        ``"per-source"`` (one synthetic image per source). Default: the real training images of each
        class; a synthesizer drawing from something else (CT volumes) counts that instead."""
        return train.counts(synthetic=False)

    @abstractmethod
    def generate(self, train: ImageSet, target: str, n: int, *, seed: int,
                 volumes: VolumeSet | None = None, run: RunContext = DEFAULT_RUN) -> ImageSet:
        """Exactly ``n`` new images of class ``target`` (same shape and classes as ``train``). ``seed``:
        this class's generation seed (derived from ``run.seed`` by the core); ``run``: where to run."""

    def generate_chunks(self, train: ImageSet, target: str, n: int, *, seed: int,
                        volumes: VolumeSet | None = None, run: RunContext = DEFAULT_RUN) -> Iterator[ImageSet]:
        """The same ``n`` images as :meth:`generate`, as consecutive ImageSets of a few hundred images
        (``source_index`` still indexes ``train``): what ``balance`` calls, writing each chunk to the
        store before asking for the next, so memory holds one chunk. Default: one chunk,
        ``generate(...)``; a synthesizer making many images overrides it (and lets ``generate`` join them),
        or sets ``splits_generation`` and implements :meth:`generate_part`, in which case this is the
        parts of :func:`chunk_rows` ``(n)`` in order."""
        if not self.splits_generation:
            yield self.generate(train, target, n, seed=seed, volumes=volumes, run=run)
            return
        for rows in list(chunk_rows(n)) or [slice(0, 0)]:  # n = 0: one empty part
            yield self.generate_part(train, target, n, seed=seed, rows=rows, volumes=volumes, run=run)

    def generate_part(self, train: ImageSet, target: str, n: int, *, seed: int, rows: slice,
                      volumes: VolumeSet | None = None, run: RunContext = DEFAULT_RUN) -> ImageSet:
        """Images ``rows`` (a slice of ``range(n)``, :func:`chunk_rows`' chunks) of the ``n`` images of
        ``target`` for ``seed``: the same images whichever other chunks are made, in this process or
        another. Only called when ``splits_generation`` is True."""
        raise NotImplementedError(f"synthesizer {self.name!r} sets splits_generation but has no generate_part")

    def save(self, directory: str | Path) -> None:
        """Write what ``load`` needs; the default writes the config as JSON."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        info = {"name": self.name, "config": config_dict(self.config)}
        if self.memory is not None:
            info["memory"] = self.memory
        (directory / "synthesizer.json").write_text(json.dumps(info, indent=2))

    @classmethod
    def load(cls, directory: str | Path) -> "Synthesizer":
        path = Path(directory) / "synthesizer.json"
        if not path.is_file():
            raise SynthaugError(f"{directory}: not a synthesizer checkpoint (no synthesizer.json)")
        info = json.loads(path.read_text())
        if info.get("name") != cls.name:
            raise SynthaugError(f"{directory} holds a {info.get('name')!r} checkpoint; expected {cls.name!r}")
        synth = cls(**saved_options(cls, info.get("config", {})))
        synth.memory = info.get("memory")
        return synth

    def describe(self) -> dict[str, Any]:
        """What goes into the store's run config about this synthesizer; with its memory estimate when it
        was trained (the measured peak stays in the checkpoint's ``synthesizer.json``: a store's bytes
        must not depend on a measurement)."""
        info = {"name": self.name, "config": config_dict(self.config)}
        if self.memory is not None:
            info["memory"] = {k: self.memory.get(k) for k in ("device", "estimate_bytes")}
        return info


#: The methods of a synthesizer that the core calls with ``run=``.
RUN_METHODS = ("check", "fit", "generate", "generate_part", "generate_chunks")


def check_run_keyword(synth: Synthesizer) -> None:
    """Refuse, in one line, a synthesizer whose own ``check``/``fit``/``generate``/``generate_part``/
    ``generate_chunks`` takes no ``run`` keyword (the core passes the run context to each)."""
    import inspect

    for method in RUN_METHODS:
        params = inspect.signature(getattr(synth, method)).parameters
        if "run" not in params and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            raise SynthaugError(f"synthesizer {synth.name!r}: {method}() takes no run= keyword; the core hands the "
                                f"run context to it (def {method}(..., run=DEFAULT_RUN): docs/plugins.md, The run "
                                f"context)")


def check_channels(synth: Synthesizer, train: ImageSet) -> None:
    """Refuse, in one line naming the synthesizer, a training split whose channel count it does not
    take (``Synthesizer.accepted_channels``): called before ``check`` and any training."""
    accepted = synth.accepted_channels
    channels = int(train.image_shape[0])
    if accepted is None or channels in accepted:
        return
    counts = [str(c) for c in sorted(int(c) for c in accepted)]
    takes = counts[0] if len(counts) == 1 else ", ".join(counts[:-1]) + f" or {counts[-1]}"
    unit = "channel" if counts == ["1"] else "channels"
    raise SynthaugError(f"synthesizer {synth.name!r} takes images with {takes} {unit}; the training split's images "
                        f"have {channels}: use a synthesizer that declares {channels} (docs/plugins.md, Channels)")


def _has_field(config_cls: type | None, name: str) -> bool:
    return config_cls is not None and name in getattr(config_cls, "__dataclass_fields__", {})


#: Options the core owns now (the run context) that checkpoints written before it may still hold.
CORE_OWNED = ("device", "seed", "work_dir")


def saved_options(cls: type, config: dict[str, Any]) -> dict[str, Any]:
    """A saved checkpoint's config as options for ``cls``, without the run's own settings (``device``,
    ``seed``, ``work_dir``) where the class has no such option: checkpoints written when they were
    plugin options. Where and with which seed a checkpoint was trained says nothing about the run that
    uses it; the run context does."""
    config_cls = getattr(cls, "Config", None)
    return {k: v for k, v in config.items() if k not in CORE_OWNED or _has_field(config_cls, k)}


class Projector(Configurable, ABC):
    """Turns a CT volume into a radiograph.

    ``project`` is the one call every user of a projector needs: a :class:`Volume` (HU, spacing) and a
    :class:`Geometry` in, a float32 ``(1, H, W)`` image out. ``mode="raw"`` returns the line integral
    of the linear attenuation (mm⁻¹ · mm); ``mode="radiograph"`` the training-image appearance in
    [0, 1]. Projectors that can (``siddon``'s torch path) also accept torch tensors and keep gradients.
    """

    kind: ClassVar[str] = "projector"

    @abstractmethod
    def project(self, volume: Volume, geometry: Geometry | None = None, *, mode: str = "radiograph") -> np.ndarray:
        """float32 ``(1, H, W)``."""


class Classifier(Configurable, ABC):
    """Builds a network; the core's training loop (``synthaug.train``) trains and evaluates it.

    ``build`` returns an ``nn.Module`` mapping ``(B, in_channels, H, W)`` in [0, 1] to logits
    ``(B, num_classes)``. For transfer learning the classifier names its parameter groups by prefix:
    ``head_prefixes`` (new, always trained) and ``last_block_prefixes`` (unfrozen for fine-tuning).
    ``load_weights`` maps a torchvision-format ImageNet state dict onto the network.
    """

    kind: ClassVar[str] = "classifier"
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
class DatasetSource(Configurable, ABC):
    """Turns a name (and usually a directory) into images and/or volumes."""

    kind: ClassVar[str] = "dataset"
    #: What ``load_images``/``load_volumes`` provide: {"images"}, {"volumes"} or both.
    provides: ClassVar[frozenset[str]] = frozenset({"images"})
    #: Whether a ``data_dir`` is required.
    needs_dir: ClassVar[bool] = True

    def load_images(self, data_dir: Path | None, options: SourceOptions) -> ImageSet:
        raise SynthaugError(f"dataset {self.name!r} provides no radiographs; "
                            f"it provides {', '.join(sorted(self.provides))}")

    def load_volumes(self, data_dir: Path | None, options: SourceOptions) -> VolumeSet:
        raise SynthaugError(f"dataset {self.name!r} provides no CT volumes; "
                            f"it provides {', '.join(sorted(self.provides))}")

    def config_for(self, options: SourceOptions) -> Any:
        """This source's ``Config`` for a load: ``self.config``, which the core built from the same
        ``--source-option``s, or, for a caller that made the source without options and put them in
        ``options.extra`` only, one built (and checked) from those."""
        if options.extra and self.Config is not None:
            return make_config(self.Config, options.extra, f"{self.kind} {self.name!r}")
        return self.config
