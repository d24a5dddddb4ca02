"""The balance arrow: split off the real test set, plan each class's deficit, fit, generate -> a result.

No file is read or written here: :mod:`synthaug.pipeline.store` writes the result and
:mod:`synthaug.pipeline.checkpoint` saves and reloads fitted synthesizers; :mod:`synthaug.api` composes
them into ``synthaug.balance(..., out=...)``.

``sampling_strategy`` follows imbalanced-learn's over-sampling semantics: the final count of every
resampled class is the majority class's count.

- ``"auto"`` = ``"not majority"``: every class but the majority;
- ``"minority"``: only the smallest class;  ``"not minority"``: every class but the smallest;
- ``"all"``: every class;
- a dict ``{class: final_count}``: exactly those final counts (never fewer than exist).

Everything is validated (strategy, classes, sizes, the synthesizer's own ``check``) before any
training starts, and the synthesizer only ever sees the training split.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from synthaug.contract.interfaces import Synthesizer
from synthaug.contract.types import ImageSet, VolumeSet
from synthaug.errors import SynthaugError
from synthaug.pipeline.split import DEFAULT_TEST_PER_CLASS, SplitReport, split_test
from synthaug.registry import get_registry

STRATEGIES = ("auto", "minority", "not minority", "not majority", "all")


def parse_strategy(text: str) -> str | dict[str, int]:
    """CLI form: a strategy name, or ``covid=1254,normal=1254`` / a JSON object of final counts."""
    text = text.strip()
    if text in STRATEGIES:
        return text
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
    raise SynthaugError(f"unknown strategy {text!r}; expected one of {', '.join(STRATEGIES)} or CLASS=COUNT,...")


def plan_counts(counts: Mapping[str, int], strategy: str | Mapping[str, int] = "auto") -> dict[str, int]:
    """How many images to add per class (the deficits) for ``strategy`` given current ``counts``."""
    if not counts:
        raise SynthaugError("no classes to balance")
    if isinstance(strategy, Mapping):
        deficits = {name: 0 for name in counts}
        for name, final in strategy.items():
            if name not in counts:
                raise SynthaugError(f"strategy names class {name!r}; classes are {', '.join(counts)}")
            if not isinstance(final, (int, np.integer)) or isinstance(final, bool):
                raise SynthaugError(f"strategy count for {name!r} must be an integer; got {final!r}")
            if final < counts[name]:
                raise SynthaugError(
                    f"strategy asks for {final} images of {name!r} but the training split already has "
                    f"{counts[name]}; over-sampling never removes images")
            deficits[name] = int(final - counts[name])
        return deficits
    if strategy not in STRATEGIES:
        raise SynthaugError(f"unknown strategy {strategy!r}; expected one of {', '.join(STRATEGIES)} or a dict of final counts")
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
    }[strategy]
    return {name: (majority - n if name in chosen else 0) for name, n in counts.items()}


def class_seed(seed: int, class_index: int) -> int:
    """A per-class generation seed derived from the run seed (same seed, same bytes)."""
    return int(np.random.SeedSequence([seed, class_index]).generate_state(1)[0])


def resolve_synthesizer(synthesizer: str | Synthesizer, options: Mapping[str, Any] | None = None, *,
                        seed: int | None = None) -> Synthesizer:
    """The synthesizer object for a name (or the object itself).

    ``seed``: the run's seed reaches a synthesizer whose Config has a ``seed`` field unless the options
    set one, so two ``balance --seed`` values train two different generators.
    """
    if isinstance(synthesizer, Synthesizer):
        return synthesizer
    cls = get_registry().entry("synthesizer", synthesizer).resolve()
    options = dict(options or {})
    config_cls = getattr(cls, "Config", None)
    if seed is not None and "seed" not in options and config_cls is not None and \
            "seed" in {f.name for f in fields(config_cls)}:
        options["seed"] = int(seed)
    return cls(**options)


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

    train: ImageSet
    test: ImageSet
    split: SplitReport
    deficits: dict[str, int]
    volumes: VolumeSet | None  # the volumes the synthesizer may see (no test patient's)
    volume_index: np.ndarray  # their indices in the VolumeSet given
    volumes_held_out: int


def plan(data: ImageSet, synth: Synthesizer, *, strategy: str | Mapping[str, int] = "auto",
         test_per_class: int = DEFAULT_TEST_PER_CLASS, seed: int = 0, volumes: VolumeSet | None = None) -> BalancePlan:
    """Split off the real test set, count the deficits and let the synthesizer check its inputs."""
    train, test, report = split_test(data, test_per_class, seed)
    n_volumes = 0 if volumes is None else len(volumes)
    kept, index = volumes_for_training(volumes, test)
    deficits = plan_counts(train.counts(), strategy)
    synth.check(train, deficits, kept)
    return BalancePlan(train, test, report, deficits, kept, index, n_volumes - len(index))


def generate(synth: Synthesizer, planned: BalancePlan, seed: int) -> ImageSet:
    """The training split with every deficit filled by ``synth`` (already fitted), provenance stamped."""
    train, volumes = planned.train, planned.volumes
    made = []
    for name, n in planned.deficits.items():
        if n <= 0:
            continue
        c_seed = class_seed(seed, train.class_index(name))
        part = synth.generate(train, name, n, seed=c_seed, volumes=volumes)
        if len(part) != n or part.image_shape != train.image_shape or part.class_names != train.class_names:
            raise SynthaugError(
                f"synthesizer {synth.name!r} returned {len(part)} images of shape {part.image_shape} for class "
                f"{name!r}; expected {n} of shape {train.image_shape}")
        if np.any(part.labels != train.class_index(name)):
            raise SynthaugError(f"synthesizer {synth.name!r} returned images of other classes when asked for {name!r}")
        provenance = {"synth": np.full(n, synth.name, dtype=object), "seed": np.full(n, c_seed)}
        if synth.needs_volumes and volumes is not None and len(volumes) and (part.source_index >= 0).all():
            provenance["source_index"] = planned.volume_index[part.source_index]  # index in the VolumeSet given
        made.append(part.with_provenance(**provenance))
    return ImageSet.concat([train, *made])


@dataclass
class BalanceResult:
    train: ImageSet
    test: ImageSet
    deficits: dict[str, int]
    split: SplitReport
    config: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def balance(data: ImageSet, synthesizer: str | Synthesizer, *, strategy: str | Mapping[str, int] = "auto",
            test_per_class: int = DEFAULT_TEST_PER_CLASS, seed: int = 0,
            synth_options: Mapping[str, Any] | None = None, volumes: VolumeSet | None = None,
            fitted: bool = False, work_dir: str | Path | None = None,
            source: Mapping[str, Any] | None = None) -> BalanceResult:
    """Hold out ``test_per_class`` real images per class and fill the training split's deficits.

    ``fitted=True``: the synthesizer object given is already trained (a loaded checkpoint); it is not
    fitted again. ``work_dir``: where a trainable synthesizer keeps resumable state during ``fit``.
    Nothing is written here; :func:`synthaug.balance` with ``out=`` writes the store.
    """
    synth = resolve_synthesizer(synthesizer, synth_options, seed=seed)
    planned = plan(data, synth, strategy=strategy, test_per_class=test_per_class, seed=seed, volumes=volumes)
    if not fitted:
        synth.work_dir = Path(work_dir) if work_dir is not None else None
        synth.fit(planned.train, planned.volumes)
    balanced = generate(synth, planned, seed)
    config = {
        "command": "balance",
        "synthesizer": synth.describe(),
        "strategy": strategy if isinstance(strategy, str) else dict(strategy),
        "seed": seed,
        "test_per_class": test_per_class,
        "deficits": planned.deficits,
        "split": asdict(planned.split),
        "volumes_held_out": planned.volumes_held_out,  # volumes of test patients the synthesizer never saw
        "source": dict(source or {}),
    }
    return BalanceResult(balanced, planned.test, planned.deficits, planned.split, config)
