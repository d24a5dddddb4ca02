"""balance: split off the real test set, fill each class's deficit with a synthesizer, write a store.

(The module is `balancing`, not `balance`, so that `synthaug.balance` stays the function: a submodule
of that name would replace it as an attribute of the package once imported.)

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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .data.imageset import ImageSet
from .data.split import SplitReport, split_test
from .data.store import atomic_dir, write_store
from .data.volumes import VolumeSet
from .errors import SynthaugError
from .interfaces import Synthesizer

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


def resolve_synthesizer(synthesizer: str | Synthesizer, options: Mapping[str, Any] | None = None,
                        checkpoint: str | Path | None = None) -> Synthesizer:
    if isinstance(synthesizer, Synthesizer):
        return synthesizer
    from .registry import get_registry

    cls = get_registry().entry("synthesizer", synthesizer).resolve()
    if checkpoint is not None:
        if not Path(checkpoint).is_dir():
            raise SynthaugError(f"{checkpoint}: no such synthesizer checkpoint directory")
        return cls.load(checkpoint)
    return cls(**dict(options or {}))


@dataclass
class BalanceResult:
    train: ImageSet
    test: ImageSet
    deficits: dict[str, int]
    split: SplitReport
    config: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def _split_fingerprint(test: ImageSet, report: SplitReport) -> dict[str, Any]:
    return {"per_class": report.per_class, "seed": report.seed, "test_origins": sorted(map(str, test.origin))}


def volumes_for_training(volumes: VolumeSet | None, test: ImageSet) -> tuple[VolumeSet | None, np.ndarray]:
    """The volumes a synthesizer may use: none of a test patient (ctsim's CTs are the same simulated
    patients as its radiographs; a DRR of a test patient's CT would put that patient into training).
    Returns the kept volumes and their indices in ``volumes``."""
    if volumes is None:
        return None, np.zeros(0, np.int64)
    kept = np.flatnonzero(~np.isin(volumes.patient_ids.astype(str), test.patient_ids.astype(str)))
    return (volumes if len(kept) == len(volumes) else volumes.subset(kept)), kept


def balance(data: ImageSet, synthesizer: str | Synthesizer = "augment", *, strategy: str | Mapping[str, int] = "auto",
            test_per_class: int = 60, seed: int = 0, out: str | Path | None = None,
            synth_options: Mapping[str, Any] | None = None, volumes: VolumeSet | None = None,
            synth_checkpoint: str | Path | None = None, source: Mapping[str, Any] | None = None) -> BalanceResult:
    """Hold out ``test_per_class`` real images per class, balance the rest, and write ``out`` (if given)."""
    synth = resolve_synthesizer(synthesizer, synth_options, synth_checkpoint)
    train, test, report = split_test(data, test_per_class, seed)
    n_volumes = 0 if volumes is None else len(volumes)
    volumes, kept_volumes = volumes_for_training(volumes, test)
    deficits = plan_counts(train.counts(), strategy)
    synth.check(train, deficits, volumes)
    if synth_checkpoint is not None:
        _check_checkpoint_split(Path(synth_checkpoint), test, report)
    else:
        synth.fit(train, volumes)
    made = []
    for name, n in deficits.items():
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
            provenance["source_index"] = kept_volumes[part.source_index]  # index in the VolumeSet given
        made.append(part.with_provenance(**provenance))
    balanced = ImageSet.concat([train, *made])
    config = {
        "command": "balance",
        "synthesizer": synth.describe(),
        "synth_checkpoint": str(synth_checkpoint) if synth_checkpoint else None,
        "strategy": strategy if isinstance(strategy, str) else dict(strategy),
        "seed": seed,
        "test_per_class": test_per_class,
        "deficits": deficits,
        "split": asdict(report),
        "volumes_held_out": n_volumes - len(kept_volumes),  # volumes of test patients the synthesizer never saw
        "source": dict(source or {}),
    }
    result = BalanceResult(balanced, test, deficits, report, config)
    if out is not None:
        result.path = write_store(out, {"train": balanced, "test": test}, config)
    return result


def fit_synthesizer(data: ImageSet, synthesizer: str | Synthesizer, out_dir: str | Path, *, test_per_class: int = 60,
                    seed: int = 0, synth_options: Mapping[str, Any] | None = None,
                    volumes: VolumeSet | None = None, strategy: str | Mapping[str, int] = "auto") -> Synthesizer:
    """Train a synthesizer alone on the training split (test held out exactly as ``balance`` does) and
    save it to ``out_dir``, for ``balance(..., synth_checkpoint=out_dir)``. Written atomically."""
    synth = resolve_synthesizer(synthesizer, synth_options)
    train, test, report = split_test(data, test_per_class, seed)
    volumes, _ = volumes_for_training(volumes, test)
    synth.check(train, plan_counts(train.counts(), strategy), volumes)
    with atomic_dir(out_dir) as tmp:
        synth.fit_dir = tmp  # where a synthesizer may write samples and measures during fit
        synth.fit(train, volumes)
        synth.save(tmp)
        (tmp / "split.json").write_text(json.dumps(_split_fingerprint(test, report)))
    return synth


def _check_checkpoint_split(directory: Path, test: ImageSet, report: SplitReport) -> None:
    path = directory / "split.json"
    if not path.is_file():
        return  # a checkpoint made outside fit_synthesizer: nothing recorded to compare
    saved = json.loads(path.read_text())
    if saved.get("test_origins") != _split_fingerprint(test, report)["test_origins"]:
        raise SynthaugError(
            f"{directory} was fitted with a different test split (seed {saved.get('seed')}, "
            f"{saved.get('per_class')} per class); use the same --seed and --test-per-class so that no test "
            f"image was seen in training")
