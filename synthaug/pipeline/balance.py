"""The balance arrow: split off the real test set, plan each class's deficit, fit, generate -> a result.

No file is read or written here: :mod:`synthaug.pipeline.store` writes the result and
:mod:`synthaug.pipeline.checkpoint` saves and reloads fitted synthesizers; :mod:`synthaug.api` composes
them into ``synthaug.balance(..., out=...)``.

``sampling_strategy`` follows imbalanced-learn's over-sampling semantics: the final count of every
resampled class is the majority class's count.

- ``"auto"`` = ``"not majority"``: every class but the majority;
- ``"minority"``: only the smallest class;  ``"not minority"``: every class but the smallest;
- ``"all"``: every class;
- ``"none"``: no class (the store holds the unbalanced training split beside the same test split);
  the old spelling ``{}`` (a dict naming no class) still means the same;
- ``"per-source"``: not a top-up: one synthetic image per source the synthesizer draws from, for
  every class that has sources (quan2021's "+DRR": one DRR of every training CT volume of every
  class). The count comes from ``Synthesizer.sources_per_class`` (default: the real training images
  of each class; the volume synthesizers: the training volumes mapped to each class);
- a dict ``{class: final_count}``: exactly those final counts. **Departure from imbalanced-learn**
  (whose over-samplers never remove): a final count *below* what the training split holds trims the
  class, dropping real training images of it at random (whole images, seeded by the run seed, so
  the same seed drops the same ones) down to that count; above it, synthetic images are added as
  usual. liang2021 balanced the first Kaggle release to 1,254 images per class (3,762 = 3 x 1,254)
  although, after 60 test images per class, normal has 1,281 and viral 1,285 training images:
  ``covid=1254,normal=1254,viral=1254`` adds 1,095 covid images and drops 27 normal and 31 viral ones.

A strategy that leaves nothing to add (``"none"``, or final counts at or below the current ones) never
fits the synthesizer nor asks it to check anything: no deficits, no training. The run config then
records the synthesizer as ``None``.

Everything is validated (strategy, classes, sizes, the channel counts the synthesizer declares in
``accepted_channels``, its own ``check``) before any training starts, and the synthesizer only ever
sees the training split.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from synthaug.contract.interfaces import DEFAULT_RUN, Synthesizer, check_channels, check_run_keyword, chunk_rows
from synthaug.contract.run import RunContext
from synthaug.contract.types import BIT_DEPTHS, REAL, ImageSet, VolumeSet, on_grid
from synthaug.errors import SynthaugError
from synthaug.kit import memory, progress
from synthaug.pipeline.split import DEFAULT_TEST_PER_CLASS, SplitReport, split_test
from synthaug.registry import get_registry

#: A synthesizer that does not stream may take at most this share of the free memory for the training
#: split's images: the rest is for its networks and their training.
IN_MEMORY_SHARE = memory.IN_MEMORY_SHARE
#: One synthetic image per source of the synthesizer (see the module docstring).
PER_SOURCE = "per-source"
STRATEGIES = ("auto", "minority", "not minority", "not majority", "all", "none", PER_SOURCE)


def parse_strategy(text: str) -> str | float | dict[str, int]:
    """CLI form: a strategy name, a ratio (``0.5``: imbalanced-learn's float strategy, binary tasks), or
    ``covid=1254,normal=1254`` / a JSON object of final counts."""
    text = text.strip()
    if text in STRATEGIES:
        return text
    try:
        return check_ratio(float(text))
    except ValueError:
        pass
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SynthaugError(f"strategy {text!r} is not valid JSON ({exc.msg})") from exc
        return {str(k): v for k, v in value.items()}
    if "=" in text:
        out: dict[str, int] = {}
        for part in text.split(","):
            name, _, count = part.partition("=")
            try:
                out[name.strip()] = int(count)
            except ValueError:
                raise SynthaugError(f"strategy entry {part!r}: expected CLASS=COUNT with an integer count") from None
        return out
    raise SynthaugError(f"unknown strategy {text!r}; expected one of {', '.join(STRATEGIES)}, a ratio in (0, 1] "
                        f"(binary tasks) or CLASS=COUNT,...")


@dataclass(frozen=True)
class Share:
    """A strategy that adds synthetic images *on top of* the real ones, by their share of the real
    images rather than up to the majority: ``ratio`` synthetic images per real training image of each
    rare class (each class with fewer images than the median class count: of 22 / 134 / 135, covid;
    of 400 / 800, the 400), ``ratio * n`` rounded half up; or
    ``counts``, an absolute number per class. With ``fill`` (:func:`balance`) a classical synthesizer
    first balances the classes and the share comes on top of that."""

    ratio: float | None = None
    counts: tuple[tuple[str, int], ...] | None = None

    def __post_init__(self) -> None:
        if (self.ratio is None) == (self.counts is None):
            raise SynthaugError("a synthetic share is a ratio or a table of counts per class, exactly one of them")
        if self.ratio is not None and (isinstance(self.ratio, bool) or not 0 < self.ratio <= 100):
            raise SynthaugError(f"ratio {self.ratio!r}: expected synthetic images per real image, a number in (0, 100]")

    @classmethod
    def of(cls, value: Any) -> "Share":
        """``0.25`` or ``{"covid": 50}``."""
        if isinstance(value, Mapping):
            return cls(counts=tuple((str(k), v) for k, v in value.items()))
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return cls(ratio=float(cls(ratio=value).ratio))  # checked as given, kept as a float
        raise SynthaugError(f"ratio {value!r}: expected synthetic images per real image (e.g. 0.25) or a table "
                            f"of counts per class")

    def deficits(self, counts: Mapping[str, int]) -> dict[str, int]:
        if self.counts is not None:
            table = dict(self.counts)
            _check_class_counts(counts, table, "ratio")
            return {name: int(table.get(name, 0)) for name in counts}
        median = float(np.median(list(counts.values())))  # rare: below the median class (22 / 134 / 135: covid)
        return {name: (0 if n >= median else int(np.floor(self.ratio * n + 0.5))) for name, n in counts.items()}

    def describe(self) -> dict[str, Any]:
        return {"ratio": self.ratio} if self.counts is None else {"ratio": dict(self.counts)}


def check_ratio(value: float) -> float:
    """imbalanced-learn's float ``sampling_strategy``: the minority/majority ratio wanted after
    resampling, in (0, 1]."""
    if isinstance(value, bool) or not 0 < value <= 1:
        raise SynthaugError(f"strategy {value!r}: a ratio is the minority/majority count wanted after balancing, "
                            f"in (0, 1]")
    return float(value)


def _ratio_deficits(counts: Mapping[str, int], ratio: float) -> dict[str, int]:
    """A ratio strategy's deficits, as imbalanced-learn computes them: the minority class grows to
    ``int(ratio * majority)`` images; a binary task only, and never fewer than it has."""
    check_ratio(ratio)
    if len(counts) != 2:
        raise SynthaugError(f"strategy {ratio}: a ratio is for a binary task (two classes, as in imbalanced-learn); "
                            f"this one has {len(counts)} ({', '.join(counts)}): give final counts instead")
    major = max(counts, key=lambda k: counts[k])
    minor = min(counts, key=lambda k: counts[k])
    wanted = int(ratio * counts[major])
    if major == minor or wanted < counts[minor]:
        raise SynthaugError(f"strategy {ratio}: {minor!r} already has {counts[minor]} images for {counts[major]} "
                            f"{major!r} (ratio {counts[minor] / counts[major]:.3f}); a ratio only adds images")
    return {name: (wanted - counts[name] if name == minor else 0) for name in counts}


def _check_class_counts(counts: Mapping[str, int], given: Mapping[str, Any], what: str) -> None:
    """``given`` against the classes of ``counts``: known names, whole numbers >= 0."""
    for name, value in given.items():
        if name not in counts:
            raise SynthaugError(f"{what} names class {name!r}; classes are {', '.join(counts)}")
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
            raise SynthaugError(f"{what} count for {name!r} must be a whole number >= 0; got {value!r}")


def _final_counts(counts: Mapping[str, int], strategy: Mapping[str, int]) -> dict[str, int]:
    """A dict strategy's final count per class (a class it does not name keeps its count)."""
    _check_class_counts(counts, strategy, "strategy")
    return {name: int(strategy.get(name, n)) for name, n in counts.items()}


def plan_counts(counts: Mapping[str, int], strategy: str | float | Mapping[str, int] = "auto", *,
                sources: Mapping[str, int] | None = None) -> dict[str, int]:
    """How many images to add per class (the deficits) for ``strategy`` given current ``counts``.

    ``sources``: for ``"per-source"``, the synthesizer's sources per class (``sources_per_class``).
    A dict strategy's final count below the current one adds nothing here; :func:`plan_trims` says
    how many images it drops.
    """
    if not counts:
        raise SynthaugError("no classes to balance")
    if isinstance(strategy, Mapping):
        finals = _final_counts(counts, strategy)
        return {name: max(0, finals[name] - counts[name]) for name in counts}
    if isinstance(strategy, Share):
        return strategy.deficits(counts)
    if isinstance(strategy, (float, int)) and not isinstance(strategy, bool):
        return _ratio_deficits(counts, float(strategy))
    if strategy == PER_SOURCE:
        if sources is None:
            raise SynthaugError(f"strategy {PER_SOURCE!r} needs the synthesizer's sources per class")
        _check_class_counts(counts, sources, "sources per class")
        return {name: int(sources.get(name, 0)) for name in counts}
    if strategy not in STRATEGIES:
        raise SynthaugError(f"unknown strategy {strategy!r}; "
                            f"expected one of {', '.join(STRATEGIES)}, a ratio in (0, 1] (binary tasks) or a dict "
                            f"of final counts")
    majority = max(counts.values())
    # Ties: like imbalanced-learn, the first class in order is *the* majority/minority.
    major = max(counts, key=lambda k: counts[k])
    minor = min(counts, key=lambda k: counts[k])
    chosen = {
        "auto": [c for c in counts if c != major],
        "not majority": [c for c in counts if c != major],
        "minority": [minor],
        "not minority": [c for c in counts if c != minor],
        "all": list(counts),
        "none": [],
    }[strategy]
    return {name: (majority - n if name in chosen else 0) for name, n in counts.items()}


def plan_trims(counts: Mapping[str, int], strategy: str | float | Mapping[str, int] = "auto") -> dict[str, int]:
    """How many real training images a dict strategy drops per class (final count below the current
    one); zero for every other strategy."""
    if not isinstance(strategy, Mapping):
        return {name: 0 for name in counts}
    finals = _final_counts(counts, strategy)
    return {name: max(0, counts[name] - finals[name]) for name in counts}


def trim_classes(train: ImageSet, trims: Mapping[str, int], seed: int) -> ImageSet:
    """``train`` without ``trims[class]`` real images of each class, drawn at random per class from
    ``SeedSequence([seed, 0x7219, class index])`` (same seed, same images dropped)."""
    drop = []
    for c, name in enumerate(train.class_names):
        k = int(trims.get(name, 0))
        if k <= 0:
            continue
        real = np.flatnonzero((train.labels == c) & (train.synth == REAL))
        if k > len(real):
            raise SynthaugError(f"cannot drop {k} images of {name!r}: the training split has {len(real)} real ones")
        drop.append(np.random.default_rng([seed, 0x7219, c]).choice(real, k, replace=False))
    if not drop:
        return train
    return train.subset(np.setdiff1d(np.arange(len(train)), np.concatenate(drop)))


def class_seed(seed: int, class_index: int) -> int:
    """A per-class generation seed derived from the run seed (same seed, same bytes)."""
    return int(np.random.SeedSequence([seed, class_index]).generate_state(1)[0])


def resolve_synthesizer(synthesizer: str | Synthesizer, options: Mapping[str, Any] | None = None) -> Synthesizer:
    """The synthesizer object for a name (built from ``options``), or the object itself. The run's seed,
    device and work directory are not options: they reach ``check``/``fit``/``generate`` as ``run``."""
    synth = synthesizer if isinstance(synthesizer, Synthesizer) else \
        get_registry().entry("synthesizer", synthesizer).resolve()(**dict(options or {}))
    check_run_keyword(synth)
    return synth


def run_context(run: RunContext | None = None, *, seed: int = 0, device: str | None = None,
                work_dir: str | Path | None = None) -> RunContext:
    """``run`` itself, or the context of a call that gave its parts as arguments (the Python API's
    ``seed``/``device``/``work_dir``), with this process's torchrun world and the progress setting."""
    if run is not None:
        return run
    return RunContext.from_environment(seed=seed, device=device or "auto", work_dir=work_dir,
                                       progress=not progress.is_quiet())


def volumes_for_training(volumes: VolumeSet | None, test: ImageSet) -> tuple[VolumeSet | None, np.ndarray]:
    """The volumes a synthesizer may use: none of a test patient (ctsim's CTs are the same simulated
    patients as its radiographs; a DRR of a test patient's CT would put that patient into training).
    Returns the kept volumes and their indices in ``volumes``."""
    if volumes is None:
        return None, np.zeros(0, np.int64)
    kept = np.flatnonzero(~np.isin(volumes.patient_ids.astype(str), test.patient_ids.astype(str)))
    return (volumes if len(kept) == len(volumes) else volumes.subset(kept)), kept


@dataclass
class BalancePlan:
    """What balancing will do, decided and checked before any training."""

    train: ImageSet  # the training split, trimmed where a final count asked for fewer images
    test: ImageSet
    split: SplitReport
    deficits: dict[str, int]
    volumes: VolumeSet | None  # the volumes the synthesizer may see (no test patient's)
    volume_index: np.ndarray  # their indices in the VolumeSet given
    volumes_held_out: int
    trimmed: dict[str, int] = field(default_factory=dict)  # real training images dropped per class
    #: what the ``fill`` synthesizer adds per class before the synthesizer's own images (up to the majority)
    fill_deficits: dict[str, int] = field(default_factory=dict)

    @property
    def makes_images(self) -> bool:
        """Whether any class gets synthetic images (if not, the synthesizer is neither checked nor fitted)."""
        return any(n > 0 for n in self.deficits.values())


def plan(data: ImageSet, synth: Synthesizer | None, *, strategy: str | float | Mapping[str, int] = "auto",
         test_per_class: int = DEFAULT_TEST_PER_CLASS, run: RunContext = DEFAULT_RUN, volumes: VolumeSet | None = None,
         test_fraction: float | None = None, fill: Synthesizer | None = None) -> BalancePlan:
    """Split off the real test set (``test_per_class`` per class, or ``test_fraction`` of each class,
    drawn from ``run.seed``), trim and count the deficits, and let the synthesizer check its inputs if it
    is to make any. ``synth=None`` plans a store without synthetic images (a strategy that adds some is
    refused). ``fill``: a synthesizer that learns nothing (duplicate, augment) balancing every class up
    to the majority first; ``strategy`` (a :class:`Share`) then adds ``synth``'s images on top."""
    seed = run.seed
    train, test, report = split_test(data, test_per_class, seed, fraction=test_fraction)
    n_volumes = 0 if volumes is None else len(volumes)
    kept, index = volumes_for_training(volumes, test)
    trims = plan_trims(train.counts(), strategy)
    train = trim_classes(train, trims, seed)
    if strategy == PER_SOURCE and synth is None:
        raise SynthaugError(f"strategy {PER_SOURCE!r} counts a synthesizer's sources; name a synthesizer")
    sources = synth.sources_per_class(train, kept) if strategy == PER_SOURCE else None
    deficits = plan_counts(train.counts(), strategy, sources=sources)
    planned = BalancePlan(train, test, report, deficits, kept, index, n_volumes - len(index), trims)
    if fill is not None:
        if fill.trainable:
            raise SynthaugError(f"fill {fill.name!r} learns from the data; the images under a synthetic share "
                                f"come from a classical synthesizer (duplicate, augment)")
        planned.fill_deficits = plan_counts(train.counts(), "auto")
        if any(planned.fill_deficits.values()):
            check_channels(fill, train)
            fill.check(train, planned.fill_deficits, kept, run=run)
    if planned.makes_images and synth is None:
        raise SynthaugError(f"strategy {strategy!r} adds images ({deficits}); name a synthesizer to make them")
    if planned.makes_images:
        check_channels(synth, train)  # the declared channel counts first: one line, before any work
        synth.check(train, deficits, kept, run=run)
    return planned


def data_for(synth: Synthesizer, train: ImageSet) -> ImageSet:
    """The training split as ``synth`` takes it: as given (lazy or not) to one that ``reads_lazily``,
    read into memory for the rest (whose ``fit``/``generate`` may treat ``images`` as one array).

    Reading it in is refused, before a byte is read, when the float32 images would not fit in the
    memory this machine has free: one line naming the synthesizer, the size, and what would fit."""
    if synth.reads_lazily or not train.is_lazy:
        return train
    need = len(train) * int(np.prod(train.image_shape)) * 4
    if not memory.fits_in_memory(need, IN_MEMORY_SHARE):
        free = memory.process_cpu_bytes()
        c, h, w = train.image_shape
        raise SynthaugError(
            f"synthesizer {synth.name!r} reads the training split into memory ({len(train)} images of "
            f"{c}x{h}x{w}: {memory.gigabytes(need)}) and {memory.gigabytes(free)} are available: pass a smaller "
            f"--size, or balance with a synthesizer that streams (duplicate, augment)")
    return train.in_memory()


def quantize(images: np.ndarray, bit_depth: int | None) -> np.ndarray:
    """Synthetic images of a ``bit_depth``-bit set rounded to that depth (``k / 255``), as the store
    keeps them: the balanced set in memory equals the one on disk. ``None``: unchanged."""
    if bit_depth not in BIT_DEPTHS:
        return images
    return on_grid(images, bit_depth).astype(np.float32) / np.float32(BIT_DEPTHS[bit_depth][1])


@dataclass
class Generated:
    """One class's deficit, made chunk by chunk by ``synth.generate_chunks`` when read (nothing is made
    until then): checked, provenance stamped, rounded to the set's bit depth."""

    synth: Synthesizer
    train: ImageSet
    target: str
    n: int
    seed: int
    volumes: VolumeSet | None
    volume_index: np.ndarray
    bit_depth: int | None = None
    #: The run's context, handed to every ``generate`` call.
    run: RunContext = DEFAULT_RUN
    #: Under torchrun (a ``synthaug.kit.distributed.World`` of several processes): every process reads
    #: ``chunks()`` in step; a synthesizer that ``splits_generation`` makes its chunks round-robin across
    #: them and rank 0 receives them in order, one that does not is run by rank 0 alone. Only rank 0's
    #: ``chunks()`` yields images (the others yield nothing): it is the one that writes.
    world: Any = None

    def __len__(self) -> int:
        return self.n

    def _made(self):
        """The synthesizer's chunks, in order: made here, or shared out among the processes."""
        synth, world = self.synth, self.world
        args = dict(seed=self.seed, volumes=self.volumes, run=self.run)
        if world is None or not world.distributed:
            yield from synth.generate_chunks(self.train, self.target, self.n, **args)
        elif synth.splits_generation:
            rows = list(chunk_rows(self.n))
            for first in range(0, len(rows), world.size):  # a round: chunk first + r on rank r
                group = rows[first:first + world.size]
                mine = (synth.generate_part(self.train, self.target, self.n, rows=group[world.rank], **args)
                        if world.rank < len(group) else None)
                gathered = world.gather(mine)
                if world.main:
                    yield from gathered[:len(group)]
        elif world.main:
            yield from synth.generate_chunks(self.train, self.target, self.n, **args)

    def chunks(self):
        synth, train, name, made = self.synth, self.train, self.target, 0
        label = train.class_index(name)
        if self.world is not None and not self.world.main:
            for _ in self._made():  # this process's share of the work; rank 0 checks and writes it
                pass
            return
        for part in self._made():
            made += len(part)
            if made > self.n or part.image_shape != train.image_shape or part.class_names != train.class_names:
                raise SynthaugError(
                    f"synthesizer {synth.name!r} returned {made} images of shape {part.image_shape} for class "
                    f"{name!r}; expected {self.n} of shape {train.image_shape}")
            if np.any(part.labels != label):
                raise SynthaugError(f"synthesizer {synth.name!r} returned images of other classes "
                                    f"when asked for {name!r}")
            k = len(part)
            provenance = {"synth": np.full(k, synth.name, dtype=object), "seed": np.full(k, self.seed),
                          "images": quantize(np.asarray(part.images, np.float32), self.bit_depth)}
            has_volumes = self.volumes is not None and len(self.volumes) > 0
            if synth.needs_volumes and has_volumes and (part.source_index >= 0).all():
                provenance["source_index"] = self.volume_index[part.source_index]  # index in the VolumeSet given
            yield part.with_provenance(**provenance)
        if made != self.n:
            raise SynthaugError(f"synthesizer {synth.name!r} returned {made} images for class {name!r}; "
                                f"expected {self.n}")


@dataclass
class BalancedSplit:
    """The balanced training split as parts: the real training images (an ImageSet, lazy or not), then
    one :class:`Generated` per class with a deficit. Streamed into a store by
    :func:`synthaug.pipeline.store.write_store`, or read into memory by :meth:`in_memory`."""

    parts: list
    class_names: tuple[str, ...]
    image_shape: tuple[int, int, int]
    bit_depth: int | None

    def __len__(self) -> int:
        return sum(len(p) for p in self.parts)

    def in_memory(self) -> ImageSet:
        real, *made = self.parts
        chunks = [c for part in made for c in part.chunks()]
        return ImageSet.concat([real.in_memory(), *chunks])


def generate(synth: Synthesizer | None, planned: BalancePlan, run: RunContext,
             train: ImageSet | None = None, fill: Synthesizer | None = None) -> BalancedSplit:
    """The training split with every deficit to be filled by ``synth`` (already fitted; unused, and may
    be ``None``, when the plan makes nothing), after ``fill``'s images where the plan has them (the
    same images as ``fill`` balancing alone with this seed). ``train``: the split as the synthesizer
    takes it (:func:`data_for`; default the plan's). Nothing is made until the parts are read."""
    train = planned.train if train is None else train
    depth = planned.train.meta.get("bit_depth")
    layers = [(fill, planned.train, planned.fill_deficits)] if fill is not None else []
    made = [Generated(maker, view, name, n, class_seed(run.seed, view.class_index(name)), planned.volumes,
                      planned.volume_index, depth, run)
            for maker, view, deficits in [*layers, (synth, train, planned.deficits)]
            for name, n in deficits.items() if n > 0]
    return BalancedSplit([train, *made], train.class_names, train.image_shape, depth)


@dataclass
class BalanceResult:
    """What :func:`balance` decided. ``parts``: the balanced training split, made when read;
    ``train``: the same as an ImageSet (made and held in memory on first access; once
    :func:`synthaug.balance` has written the store, that store's split, read lazily)."""

    parts: BalancedSplit
    test: ImageSet
    deficits: dict[str, int]
    split: SplitReport
    config: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    _train: ImageSet | None = field(default=None, repr=False)

    @property
    def train(self) -> ImageSet:
        if self._train is None:
            self._train = self.parts.in_memory()
        return self._train


def balance(data: ImageSet, synthesizer: str | Synthesizer | None, *,
            strategy: str | float | Mapping[str, int] = "auto",
            test_per_class: int = DEFAULT_TEST_PER_CLASS, seed: int = 0,
            synth_options: Mapping[str, Any] | None = None, volumes: VolumeSet | None = None,
            fitted: bool = False, work_dir: str | Path | None = None,
            source: Mapping[str, Any] | None = None, test_fraction: float | None = None,
            device: str | None = None, run: RunContext | None = None,
            fill: str | Synthesizer | None = None) -> BalanceResult:
    """Hold out ``test_per_class`` real images per class (or ``test_fraction`` of each class's real
    images, which then replaces ``test_per_class``) and fill the training split's deficits.
    ``seed``, ``device`` (None: ``auto``) and ``work_dir`` make the run context the synthesizer is handed
    (:func:`run_context`); ``run`` gives one ready instead.

    ``fitted=True``: the synthesizer object given is already trained (a loaded checkpoint); it is not
    fitted again. ``work_dir``: where a trainable synthesizer keeps resumable state during ``fit``.
    ``fill``: a classical synthesizer (``"duplicate"``, ``"augment"``) that first balances every class up
    to the majority; ``strategy`` (a :class:`Share`, e.g. ``Share(ratio=0.25)``) then says how many of
    ``synthesizer``'s images come on top.
    A plan with no deficits fits nothing; ``synthesizer=None`` is allowed for one (``strategy="none"``).
    Nothing is written here; :func:`synthaug.balance` with ``out=`` writes the store.
    """
    run = run_context(run, seed=seed, device=device, work_dir=work_dir)
    synth = None if synthesizer is None else resolve_synthesizer(synthesizer, synth_options)
    filler = None if fill is None else resolve_synthesizer(fill)
    planned = plan(data, synth, strategy=strategy, test_per_class=test_per_class, run=run, volumes=volumes,
                   test_fraction=test_fraction, fill=filler)
    view = data_for(synth, planned.train) if planned.makes_images else planned.train
    if planned.makes_images and not fitted:
        synth.fit(view, planned.volumes, run=run)
    balanced = generate(synth, planned, run, view, fill=filler)
    config = {
        "command": "balance",
        "synthesizer": synth.describe() if planned.makes_images else None,  # None: nothing was generated
        "strategy": dict(strategy) if isinstance(strategy, Mapping) else
        strategy.describe() if isinstance(strategy, Share) else strategy,

        "seed": run.seed,
        "test_per_class": test_per_class if test_fraction is None else None,
        "test_fraction": test_fraction,
        "deficits": planned.deficits,
        "trimmed": planned.trimmed,  # real training images dropped where a final count asked for fewer
        "split": asdict(planned.split),
        "volumes_held_out": planned.volumes_held_out,  # volumes of test patients the synthesizer never saw
        "source": dict(source or {}),
    }
    if filler is not None:  # the classical balancing under a synthetic share: what it added per class
        config["fill"] = {"synthesizer": filler.describe(), "added": planned.fill_deficits}
    return BalanceResult(balanced, planned.test, planned.deficits, planned.split, config)
