"""Experiment specs: a TOML file that names the data, the split, the task, the grid of arms (ways of
balancing the training split) x classifiers (networks with a training recipe), the seeds and the
measures. ``synthaug experiment run SPEC`` runs it; see docs/experiments.md for the format.

Everything a spec names is checked here, before any data is read or any network trained: unknown
keys at every level, unregistered synthesizers / classifiers / sources, synthesizer options (through
the plugin's own Config), training recipes (through :class:`~synthaug.pipeline.train.TrainConfig`),
strategies and measures. Each error names the key, e.g. ``arms.pix2pix.options: unknown option 'epoch'``.

Presets (``[presets.NAME]``) are overrides merged into the spec: ``seeds``, ``data``, ``split``
(replaced whole), ``arms.KEY`` / ``classifiers.KEY`` (merged into the arm or classifier of that key),
and ``recipe`` (merged into every classifier's recipe). An arm's own ``recipe`` (e.g. ``{ loss_weights =
"balanced" }``) is merged over its classifier's in each of its cells (:attr:`Cell.recipe`).
"""

from __future__ import annotations

import copy
import json
import tomllib
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from synthaug.errors import SynthaugError

SPEC_KEYS = ("name", "title", "description", "paper", "seeds", "measures", "headline", "positive", "default_preset",
             "data", "task", "split", "arms", "classifiers", "presets", "quality", "compare_to")
DATA_KEYS = ("source", "dir", "size", "channels", "seed", "options", "volumes", "volumes_dir")
TASK_KEYS = ("binary",)
SPLIT_KEYS = ("test_per_class", "test_fraction")
ARM_KEYS = ("label", "synthesizer", "strategy", "options", "baseline", "measure", "note", "recipe", "ratio", "on",
            "pretrain", "pool", "filter")
#: ``pretrain = { epochs = N }`` and ``pool = { per_image = k, p = 0.5 }``: their keys.
PRETRAIN_KEYS = ("epochs",)
POOL_KEYS = ("per_image", "p")
FILTER_KEYS = ("confidence", "copies", "cap")
#: The ways of using synthesis that exclude each other in one arm.
WAYS = ("ratio", "pretrain", "pool", "filter")
#: What a synthetic share (``ratio``) comes on top of: nothing, a classical synthesizer balancing the
#: classes first (``fill``), or a recipe balancing the training (the recipe entries it adds).
SHARE_ON = {"none": {}, "duplicate": {}, "augment": {}, "sampler": {"sampler": "balanced"},
            "loss_weights": {"loss_weights": "balanced"}}
CLASSIFIER_KEYS = ("label", "classifier", "recipe", "note")
PRESET_KEYS = ("description", "seeds", "data", "split", "arms", "classifiers", "recipe", "quality")
#: ``[quality]``: how many seeds' stores get ``synthaug quality`` (0: none), and its feature network.
QUALITY_KEYS = ("seeds", "feature_epochs", "feature_size")
DEFAULT_QUALITY = {"seeds": 1}
#: Spec fields a rerun may change: more seeds, another file holding the spec, [quality] (measured
#: after the cells from their stores, it changes no cell) and compare_to (the report's comparisons).
NOT_IDENTITY = ("seeds", "origin", "quality", "compare_to")
#: How an arm is measured: a fresh classifier trained on its store, or the synthesizer's own jointly
#: trained classifier (quan2021 measures XPGAN through its classifier C).
ARM_MEASURES = ("classifier", "joint")
#: Recipe modes that start from local ImageNet weights (``--weights``).
WEIGHTED_MODES = ("transfer", "finetune")
BUNDLED = "synthaug.experiments"
#: Arm names the experiment directory's layout uses for folders of its own (synthaug.experiments.layout).
RESERVED_ARM_KEYS = ("features",)
JOINT = "joint"  # the classifier column of arms measured through their synthesizer's own classifier


@dataclass(frozen=True)
class Arm:
    key: str
    label: str
    synthesizer: str | None  # None: nothing is generated (strategy "none")
    strategy: Any = "auto"
    options: dict = field(default_factory=dict)
    baseline: bool = False  # a classical arm: compare_to defaults to these; synthesis is compared with each
    measure: str = "classifier"
    note: str = ""
    recipe: dict = field(default_factory=dict)  # training options merged over each classifier's recipe
    ratio: Any = None  # synthetic images per real image of each rare class (or a table of counts), on top of `on`
    on: str = "none"  # what the share (or the fine-tuning after `pretrain`) comes on top of (SHARE_ON)
    #: ``{"epochs": N}``: the classifier first trains N epochs on this arm's store (synthetic-balanced), then
    #: fine-tunes on the seed's real training split with the classifier's recipe and the arm's; None: one stage
    pretrain: dict | None = None
    #: ``{"per_image": k, "p": p}``: a replacement pool of k synthetic variants per real rare-class image,
    #: each training item swapped for one with probability p (synthaug.pipeline.pool); None: no pool
    pool: dict | None = None
    #: ``{"confidence": 0.8, "copies": "drop", "cap": 4.0}``: only the synthetic images the seed's feature
    #: network gives the intended class with that confidence, and no near-copies (synthaug.assess.filter)
    filter: dict | None = None

    @property
    def balance_strategy(self) -> Any:
        """The strategy its store is balanced with: a :class:`~synthaug.pipeline.balance.Share` for a
        ``ratio`` arm."""
        if self.ratio is None and self.pool is None:
            return self.strategy
        from synthaug.pipeline.balance import Share

        return Share.of(self.ratio if self.pool is None else self.pool["per_image"])

    @property
    def fill(self) -> str | None:
        """The classical synthesizer balancing the classes under a synthetic share, if any."""
        return self.on if self.ratio is not None and self.on in ("duplicate", "augment") else None

    @property
    def store_key(self) -> str:
        """Arms with the same store share it: every unbalanced arm, and joint-classifier arms (which only
        need the test split) use the seed's unbalanced store."""
        return "unbalanced" if self.synthesizer is None or self.measure == "joint" else self.key


@dataclass(frozen=True)
class ClassifierArm:
    key: str
    label: str
    classifier: str
    recipe: dict = field(default_factory=dict)
    note: str = ""

    @property
    def needs_weights(self) -> bool:
        return self.recipe.get("mode", "scratch") in WEIGHTED_MODES


@dataclass
class Spec:
    name: str
    title: str
    description: str
    paper: str
    preset: str
    seeds: int
    measures: list[str]
    headline: str
    positive: str | None
    data: dict
    binary: str | None
    split: dict
    arms: list[Arm]
    classifiers: list[ClassifierArm]
    origin: str = ""  # the file the spec came from
    quality: dict = field(default_factory=lambda: dict(DEFAULT_QUALITY))
    #: The baseline arms every synthesizer arm is compared with, named before the run (``compare_to``;
    #: default every arm with ``baseline = true``). None: an experiment.json written before the key.
    compare_to: list[str] | None = None

    def baselines_compared(self) -> list[str]:
        """The keys of the baseline arms the report compares every synthesizer arm with."""
        return list(self.compare_to) if self.compare_to is not None else [a.key for a in self.arms if a.baseline]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for arm in out["arms"]:  # an arm without a recipe (share) reads as one from before the key (experiment.json)
            if not arm["recipe"]:
                del arm["recipe"]
            if all(arm[way] is None for way in WAYS):
                del arm["on"]
            for way in WAYS:
                if arm[way] is None:
                    del arm[way]
        return out

    def identity(self) -> dict[str, Any]:
        """What must not change when an experiment directory is run again (the seed count may grow)."""
        return {k: v for k, v in self.to_dict().items() if k not in NOT_IDENTITY}

    def arm(self, key: str) -> Arm:
        return next(a for a in self.arms if a.key == key)

    def classifier(self, key: str) -> ClassifierArm:
        return next(c for c in self.classifiers if c.key == key)


@dataclass(frozen=True)
class Cell:
    arm: Arm
    classifier: ClassifierArm | None  # None: the synthesizer's jointly trained classifier
    seed: int

    @property
    def recipe(self) -> dict[str, Any]:
        """The cell's training recipe: the arm's ``recipe`` merged over its classifier's."""
        return _merge(self.classifier.recipe, self.arm.recipe) if self.classifier is not None else {}

    @property
    def classifier_key(self) -> str:
        return JOINT if self.classifier is None else self.classifier.key

    @property
    def key(self) -> str:
        return f"{self.arm.key}--{self.classifier_key}--seed{self.seed}"


def grid(spec: Spec) -> list[Cell]:
    """Every cell of the spec, in report order: arms, then classifiers, then seeds."""
    cells = []
    for arm in spec.arms:
        for clf in ([None] if arm.measure == JOINT else spec.classifiers):
            cells.extend(Cell(arm, clf, seed) for seed in range(spec.seeds))
    return cells


# ---------------------------------------------------------------------------------------------
# finding and reading
# ---------------------------------------------------------------------------------------------
def bundled_specs() -> dict[str, Path]:
    """The specs that ship with synthaug: name -> file."""
    folder = resources.files(BUNDLED) / "specs"
    return {Path(str(p)).stem: Path(str(p)) for p in folder.iterdir() if str(p).endswith(".toml")}


def read_spec_file(spec: str | Path) -> tuple[dict[str, Any], str]:
    """The raw TOML table of a spec file or bundled spec name, and where it came from."""
    path = Path(spec)
    if not path.is_file():
        bundled = bundled_specs()
        if str(spec) not in bundled:
            raise SynthaugError(f"experiment {str(spec)!r}: no such spec file, and the bundled experiments are "
                                f"{', '.join(sorted(bundled))}")
        path = bundled[str(spec)]
    try:
        return tomllib.loads(path.read_text()), str(path)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SynthaugError(f"{path}: not a valid TOML experiment spec ({exc})") from None


def _keys(table: Any, allowed: tuple[str, ...], where: str) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise SynthaugError(f"{where}: expected a table; got {table!r}")
    for key in table:
        if key not in allowed:
            raise SynthaugError(f"{where}: unknown key {key!r}; expected one of {', '.join(allowed)}")
    return table


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply_preset(raw: dict[str, Any], preset: str, where: str) -> dict[str, Any]:
    """The spec table with preset ``preset`` merged in (``paper`` may be absent: the spec as written)."""
    presets = raw.get("presets", {})
    _keys(presets, tuple(presets) if isinstance(presets, dict) else (), f"{where}: presets")
    if preset not in presets:
        if preset == "paper":
            return raw
        raise SynthaugError(f"{where}: unknown preset {preset!r}; the spec has "
                            f"{', '.join(sorted(set(presets) | {'paper'}))}")
    over = _keys(presets[preset], PRESET_KEYS, f"presets.{preset}")
    out = copy.deepcopy(raw)
    for key in ("seeds", "description"):
        if key in over:
            out[key if key == "seeds" else "preset_description"] = over[key]
    out.pop("preset_description", None)
    if "data" in over:
        out["data"] = _merge(out.get("data", {}), over["data"])
    if "split" in over:
        out["split"] = copy.deepcopy(over["split"])
    if "quality" in over:
        out["quality"] = _merge(out.get("quality", {}), over["quality"])
    for group in ("arms", "classifiers"):
        for key, value in _keys(over.get(group, {}), tuple(out.get(group, {})), f"presets.{preset}.{group}").items():
            out[group][key] = _merge(out[group][key], value)
    if "recipe" in over:
        for key, value in out.get("classifiers", {}).items():
            value["recipe"] = _merge(value.get("recipe", {}), over["recipe"])
    return out


# ---------------------------------------------------------------------------------------------
# resolving and checking
# ---------------------------------------------------------------------------------------------
def load_spec(spec: str | Path, *, preset: str | None = None, seeds: int | None = None,
              data: Mapping[str, Any] | None = None) -> Spec:
    """A checked :class:`Spec` from a file or bundled name, with a preset and command-line overrides.

    ``data``: overrides of the ``[data]`` table (``source``, ``dir``, ``size``, ``options``, ``volumes``,
    ``volumes_dir``). Another source than the spec's drops the spec's source options (they belong to
    its source) and makes ``paper`` the default preset (real data: the papers' sizes).
    """
    raw, origin = read_spec_file(spec)
    where = Path(origin).name
    _keys(raw, SPEC_KEYS, where)
    data = {k: v for k, v in dict(data or {}).items() if v not in (None, {}, ())}
    spec_source = raw.get("data", {}).get("source")
    other_source = "source" in data and data["source"] != spec_source
    if preset is None:
        preset = "paper" if other_source else raw.get("default_preset", "paper")
    table = apply_preset(raw, preset, where)
    data_table = dict(_keys(table.get("data", {}), DATA_KEYS, "data"))
    if other_source:
        data_table = {k: v for k, v in data_table.items() if k not in ("options", "dir", "volumes", "volumes_dir")}
    extra_options = data.pop("options", {})
    data_table.update(data)
    data_table["options"] = {**data_table.get("options", {}), **extra_options}
    if seeds is not None:
        table["seeds"] = seeds
    return check_spec(table, data_table, preset, origin)


def _int(value: Any, where: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise SynthaugError(f"{where}: expected an integer >= {low}; got {value!r}")
    return value


def check_spec(table: dict[str, Any], data: dict[str, Any], preset: str, origin: str) -> Spec:
    from synthaug.pipeline.metrics import MEASURES, POSITIVE_MEASURES

    name = table.get("name") or Path(origin).stem
    seeds = _int(table.get("seeds", 1), "seeds", 1)
    measures = list(table.get("measures", ["accuracy", "macro_f1"]))
    headline = table.get("headline", measures[0] if measures else "macro_f1")
    positive = table.get("positive")
    for key, value in [*((f"measures[{i}]", m) for i, m in enumerate(measures)), ("headline", headline)]:
        if value not in MEASURES:
            raise SynthaugError(f"{key}: unknown measure {value!r}; measures are {', '.join(MEASURES)}")
        if value in POSITIVE_MEASURES and positive is None:
            raise SynthaugError(f"{key}: measure {value!r} is about the positive class; set positive = \"CLASS\"")
    task = _keys(table.get("task", {}), TASK_KEYS, "task")
    binary = task.get("binary")
    if binary is not None and positive is not None and positive != binary:
        raise SynthaugError(f"task.binary is {binary!r} but positive is {positive!r}; a binary task's positive class "
                            f"is its named class")
    positive = positive or binary
    split = dict(_keys(table.get("split", {"test_per_class": 60}), SPLIT_KEYS, "split"))
    if len(split) != 1:
        raise SynthaugError("split: give exactly one of test_per_class (images per class) or test_fraction (0..1)")
    if "test_per_class" in split:
        _int(split["test_per_class"], "split.test_per_class", 1)
    elif not (isinstance(split["test_fraction"], float) and 0 < split["test_fraction"] < 1):
        raise SynthaugError(f"split.test_fraction: expected a number in (0, 1); got {split['test_fraction']!r}")
    data = check_data(data)
    arms = [check_arm(key, value) for key, value in expand_sweeps(_keys(table.get("arms", {}),
                                                                        tuple(table.get("arms", {})), "arms"))]
    classifiers = [check_classifier(key, value) for key, value in table.get("classifiers", {}).items()]
    if not arms:
        raise SynthaugError(f"{Path(origin).name}: the spec names no arms ([arms.NAME] tables)")
    if not classifiers and any(a.measure == "classifier" for a in arms):
        raise SynthaugError(f"{Path(origin).name}: the spec names no classifiers ([classifiers.NAME] tables)")
    check_arm_recipes(arms, classifiers)
    return Spec(name=name, title=table.get("title", name), description=table.get("description", ""),
                paper=table.get("paper", ""), preset=preset, seeds=seeds, measures=measures, headline=headline,
                positive=positive, data=data, binary=binary, split=split, arms=arms, classifiers=classifiers,
                origin=origin, quality=check_quality(table.get("quality", {})),
                compare_to=check_compare_to(table.get("compare_to"), arms))


def check_compare_to(value: Any, arms: list[Arm]) -> list[str]:
    """``compare_to``: the baseline arms (``baseline = true``) every synthesizer arm is compared with;
    default all of them."""
    baselines = [a.key for a in arms if a.baseline]
    if value is None:
        return baselines
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise SynthaugError(f"compare_to: expected a list of baseline arm names; got {value!r}")
    for name in value:
        if name not in baselines:
            raise SynthaugError(f"compare_to: {name!r} is not a baseline arm (arms with baseline = true: "
                                f"{', '.join(baselines) or 'none'})")
    return list(dict.fromkeys(value))


def check_quality(value: Any) -> dict[str, Any]:
    """The ``[quality]`` table: ``seeds`` (default 1; 0 turns it off), ``feature_epochs``, ``feature_size``."""
    quality = {**DEFAULT_QUALITY, **_keys(value, QUALITY_KEYS, "quality")}
    _int(quality["seeds"], "quality.seeds", 0)
    for key in ("feature_epochs", "feature_size"):
        if key in quality:
            _int(quality[key], f"quality.{key}", 1)
    return quality


def check_data(data: dict[str, Any]) -> dict[str, Any]:
    from synthaug.registry import get_registry

    if not data.get("source"):
        raise SynthaugError("data.source: missing (a registered data source, e.g. kaggle or ctsim)")
    get_registry().entry("dataset", data["source"])
    if data.get("volumes"):
        get_registry().entry("dataset", data["volumes"])
    if data.get("size") is not None:
        _int(data["size"], "data.size", 8)
    _int(data.get("channels", 1), "data.channels", 1)  # any count the source gives (1 grey, 3 RGB, 4 MRI sequences)
    _keys(data.get("options", {}), tuple(data.get("options", {})), "data.options")
    return {"source": data["source"], "dir": data.get("dir"), "size": data.get("size"),
            "channels": data.get("channels", 1), "seed": _int(data.get("seed", 0), "data.seed", 0),
            "options": dict(data.get("options", {})), "volumes": data.get("volumes"),
            "volumes_dir": data.get("volumes_dir")}


#: The arm tables whose values may be swept (a list there gives one arm per value), and the arm keys
#: that may be swept themselves.
SWEPT_TABLES = ("options", "recipe")
SWEPT_KEYS = ("ratio",)


def expand_sweeps(arms: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Each ``(key, arm table)`` of ``arms``, a swept arm expanded into one arm per value (per
    combination of values where several options are swept, the first varying slowest).

    A synthesizer option or recipe value given as a list is a sweep (``options.guidance = [1, 2, 4]``):
    arm ``ddpm`` becomes ``ddpm-guidance1``, ``ddpm-guidance2``, ``ddpm-guidance4``, labelled
    ``LABEL (guidance 1)``... An option that itself takes a list (ddpm's ``channels``) is swept by a list
    of lists. Each expanded arm is an arm like any other: compared, and counted by the multiplicity
    correction, on its own.
    """
    out: list[tuple[str, dict[str, Any]]] = []
    for key, value in arms.items():
        swept = _swept_values(key, value) if isinstance(value, dict) else []
        if not swept:
            out.append((key, value))
            continue
        combos: list[list[tuple[str, str, Any]]] = [[]]
        for table, name, values in swept:
            combos = [[*combo, (table, name, v)] for combo in combos for v in values]
        for combo in combos:
            arm = copy.deepcopy(value)
            for table, name, v in combo:
                (arm if table is None else arm[table])[name] = v
            suffix = "-".join(f"{name}{_value_text(v)}" for _, name, v in combo)
            words = ", ".join(f"{name} {v}" for _, name, v in combo)
            arm["label"] = f"{value.get('label', key)} ({words})"
            out.append((f"{key}-{suffix}", arm))
    keys = [k for k, _ in out]
    for k in keys:
        if keys.count(k) > 1:
            raise SynthaugError(f"arms.{k}: two arms have this name once the sweeps are expanded; rename one")
    return out


def _swept_values(key: str, arm: dict[str, Any]) -> list[tuple[str, str, list]]:
    """``(table, option, values)`` of every swept value of arm ``key``, checked to be a non-empty list."""
    swept = []
    for name in SWEPT_KEYS:
        if isinstance(arm.get(name), list):
            swept.append((None, name, _sweep_list(f"arms.{key}.{name}", arm[name])))
    for table in SWEPT_TABLES:
        values = arm.get(table)
        if not isinstance(values, dict):
            continue
        sequences = _sequence_options(arm.get("synthesizer")) if table == "options" else set()
        for name, value in values.items():
            if not isinstance(value, list) or (name in sequences and not all(isinstance(v, list) for v in value)):
                continue
            swept.append((table, name, _sweep_list(f"arms.{key}.{table}.{name}", value)))
    return swept


def _sweep_list(where: str, value: list) -> list:
    if not value:
        raise SynthaugError(f"{where}: an empty list sweeps nothing; give the values to try, e.g. [1, 2, 4]")
    if len(set(json.dumps(v, sort_keys=True) for v in value)) < len(value):
        raise SynthaugError(f"{where}: the sweep {value!r} repeats a value")
    return value


def _sequence_options(synthesizer: Any) -> set[str]:
    """The options of synthesizer ``synthesizer`` whose value is itself a list (``channels``): a flat list
    there is one value, not a sweep."""
    from dataclasses import fields

    from synthaug.registry import get_registry

    if not isinstance(synthesizer, str):
        return set()
    try:
        config = getattr(get_registry().entry("synthesizer", synthesizer).resolve(), "Config", None)
    except SynthaugError:
        return set()  # check_arm names the unknown synthesizer
    if config is None:
        return set()
    return {f.name for f in fields(config)
            if isinstance(f.default, (list, tuple)) or any(w in str(f.type) for w in ("tuple", "list"))}


def _value_text(value: Any) -> str:
    """A swept value as it reads in an arm's name (a file name: letters, digits, ``.``, ``-`` and ``_``)."""
    text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
    return "".join(c if c.isalnum() or c in ".-_" else "_" for c in text.replace(",", "_")).lower()


def check_strategy(value: Any, where: str) -> Any:
    from synthaug.pipeline.balance import parse_strategy

    if isinstance(value, dict):
        for cls, count in value.items():
            _int(count, f"{where}.{cls}", 0)
        return dict(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        from synthaug.pipeline.balance import check_ratio

        try:
            return check_ratio(value)
        except SynthaugError as exc:
            raise SynthaugError(f"{where}: {exc}") from None
    if not isinstance(value, str):
        raise SynthaugError(f"{where}: expected a strategy name, a ratio or a table of final counts; got {value!r}")
    try:
        return parse_strategy(value)
    except SynthaugError as exc:
        raise SynthaugError(f"{where}: {exc}") from None


def check_arm(key: str, value: dict[str, Any]) -> Arm:
    from synthaug.pipeline.balance import resolve_synthesizer
    from synthaug.registry import get_registry

    where = f"arms.{key}"
    _keys(value, ARM_KEYS, where)
    if key in RESERVED_ARM_KEYS:  # quality/<key>-seed<S> would be the feature network's own folder
        raise SynthaugError(f"{where}: the name {key!r} is reserved (the experiment directory uses it); "
                            f"choose another arm name")
    synth = value.get("synthesizer")
    strategy = check_strategy(value.get("strategy", "auto" if synth else "none"), f"{where}.strategy")
    if synth is None and strategy != "none":
        raise SynthaugError(f"{where}: strategy {strategy!r} needs a synthesizer; an arm without one is unbalanced "
                            f"(strategy = \"none\")")
    measure = value.get("measure", "classifier")
    if measure not in ARM_MEASURES:
        raise SynthaugError(f"{where}.measure: expected one of {', '.join(ARM_MEASURES)}; got {measure!r}")
    options = dict(value.get("options", {}))
    if synth is not None:
        try:
            cls = get_registry().entry("synthesizer", synth).resolve()
        except SynthaugError as exc:
            raise SynthaugError(f"{where}.synthesizer: {exc}") from None
        try:
            resolve_synthesizer(synth, options)  # the plugin's Config refuses unknown or ill-typed options
        except SynthaugError as exc:
            raise SynthaugError(f"{where}.options: {exc}") from None
        if measure == "joint" and not getattr(cls, "classifier_run", None):
            raise SynthaugError(f"{where}.measure: synthesizer {synth!r} trains no classifier of its own; "
                                f"measure = \"joint\" needs one (e.g. xpgan's C)")
    elif measure == "joint":
        raise SynthaugError(f"{where}.measure: \"joint\" needs a synthesizer that trains a classifier")
    baseline = value.get("baseline", synth is None)
    if not isinstance(baseline, bool):
        raise SynthaugError(f"{where}.baseline: expected true or false; got {baseline!r}")
    recipe = dict(_keys(value.get("recipe", {}), tuple(value.get("recipe", {})), f"{where}.recipe"))
    if recipe and measure == JOINT:
        raise SynthaugError(f"{where}.recipe: measure = \"joint\" trains no fresh classifier for a recipe to apply to")
    if "mode" in recipe:
        raise SynthaugError(f"{where}.recipe.mode: the schedule is the classifier's (classifiers.NAME.recipe); an "
                            f"arm's recipe changes how its training split is used (loss_weights, sampler, augment...)")
    given = [way for way in WAYS if way in value]
    if len(given) > 1:
        raise SynthaugError(f"{where}: give one of {', '.join(given)} (each is a way of using the synthetic images)")
    pretrain = check_pretrain(value, where, synth, measure)
    pool = check_pool(value, where, synth, measure)
    rules = check_filter(value, where, synth, measure)
    ratio, on = check_share(value, where, synth, measure, pretrain is not None or pool is not None or
                            rules is not None)
    if ratio is not None or pretrain is not None or pool is not None:
        recipe = {**SHARE_ON[on], **({"pool_p": pool["p"]} if pool else {}), **recipe}
    return Arm(key, str(value.get("label", key)), synth, strategy, options, baseline, measure,
               str(value.get("note", "")), recipe, ratio, on, pretrain, pool, rules)


def _way_table(value: dict[str, Any], way: str, keys: tuple[str, ...], where: str, synth: str | None,
               measure: str) -> dict[str, Any] | None:
    """The table of way ``way`` (``pool``, ``filter``, ``pretrain``) of an arm, its keys checked, and the arm
    checked to have a synthesizer whose images a fresh classifier trains on; None when not given."""
    if way not in value:
        return None
    table = _keys(value[way], keys, f"{where}.{way}")
    if synth is None or measure == JOINT:
        raise SynthaugError(f"{where}.{way}: needs a synthesizer whose store a fresh classifier trains on")
    return table


def check_filter(value: dict[str, Any], where: str, synth: str | None, measure: str) -> dict | None:
    """An arm's ``filter = { confidence = 0.8, copies = "drop", cap = 4 }``, checked."""
    from dataclasses import asdict

    from synthaug.assess.filter import Filter

    table = _way_table(value, "filter", FILTER_KEYS, where, synth, measure)
    if table is None:
        return None
    if synth in ("duplicate", "augment"):
        raise SynthaugError(f"{where}.filter: {synth}'s images are real images (copied or flipped); there is "
                            f"nothing to filter")
    from synthaug.registry import get_registry

    if get_registry().entry("synthesizer", synth).resolve().needs_volumes:
        raise SynthaugError(f"{where}.filter: {synth} projects CT volumes; filtering is built for synthesizers that "
                            f"make images from images or noise")
    try:
        return asdict(Filter(**table))
    except SynthaugError as exc:
        raise SynthaugError(f"{where}.{exc}") from None


def check_pool(value: dict[str, Any], where: str, synth: str | None, measure: str) -> dict | None:
    """An arm's ``pool = { per_image = k, p = 0.5 }``, checked."""
    from synthaug.pipeline.pool import check_pool_p

    table = _way_table(value, "pool", POOL_KEYS, where, synth, measure)
    if table is None:
        return None
    try:
        p = check_pool_p(table.get("p", 0.5), f"{where}.pool.p")
    except SynthaugError as exc:
        raise SynthaugError(str(exc)) from None
    if "strategy" in value:
        raise SynthaugError(f"{where}: give strategy or pool, not both (a pool makes per_image variants per image)")
    return {"per_image": _int(table.get("per_image"), f"{where}.pool.per_image", 1), "p": p}


def check_pretrain(value: dict[str, Any], where: str, synth: str | None, measure: str) -> dict | None:
    """An arm's ``pretrain = { epochs = N }``, checked: a synthesizer arm trained by a fresh classifier."""
    table = _way_table(value, "pretrain", PRETRAIN_KEYS, where, synth, measure)
    if table is None:
        return None
    return {"epochs": _int(table.get("epochs"), f"{where}.pretrain.epochs", 1)}


def check_share(value: dict[str, Any], where: str, synth: str | None, measure: str,
                pretrain: bool = False) -> tuple[Any, str]:
    """An arm's ``ratio`` (synthetic images per real image of each rare class, or a table of counts) and
    ``on`` (what the share, or the fine-tuning after ``pretrain``, comes on top of), checked."""
    from synthaug.pipeline.balance import Share

    ratio, on = value.get("ratio"), value.get("on", "none")
    if pretrain:
        if on not in ("none", "sampler", "loss_weights"):
            way = ("the fine-tuning after pretrain is on the real training split" if "pretrain" in value else
                   "a pool trains on the real training split" if "pool" in value else
                   "a filtered store holds the synthesizer's images alone")
            raise SynthaugError(f"{where}.on: {way}, with on = \"none\", \"sampler\" or \"loss_weights\" (the "
                                f"recipe); got {on!r}")
        return None, on
    if ratio is None:
        if "on" in value:
            raise SynthaugError(f"{where}.on: says what a synthetic share comes on top of; give the share "
                                f"(ratio = 0.25)")
        return None, "none"
    if synth is None or measure == JOINT:
        raise SynthaugError(f"{where}.ratio: a synthetic share needs a synthesizer whose images a fresh classifier "
                            f"trains on")
    if "strategy" in value:
        raise SynthaugError(f"{where}: give strategy or ratio, not both (ratio is the strategy of a synthetic share)")
    if on not in SHARE_ON:
        raise SynthaugError(f"{where}.on: expected one of {', '.join(SHARE_ON)}; got {on!r}")
    try:
        Share.of(ratio)
    except SynthaugError as exc:
        raise SynthaugError(f"{where}.{exc}") from None
    if isinstance(ratio, dict):
        for cls, count in ratio.items():
            _int(count, f"{where}.ratio.{cls}", 0)
        ratio = dict(ratio)
    return ratio, on


def check_arm_recipes(arms: list[Arm], classifiers: list[ClassifierArm]) -> None:
    """Each arm's ``recipe`` merged over every classifier's, checked through TrainConfig as theirs are."""
    for arm in arms:
        for clf in classifiers if arm.recipe else ():
            _check_recipe(Cell(arm, clf, 0).recipe, clf.classifier, f"arms.{arm.key}.recipe",
                          f" (over classifiers.{clf.key}.recipe)")


def check_classifier(key: str, value: dict[str, Any]) -> ClassifierArm:
    from synthaug.registry import get_registry

    where = f"classifiers.{key}"
    _keys(value, CLASSIFIER_KEYS, where)
    name = value.get("classifier")
    if not name:
        raise SynthaugError(f"{where}.classifier: missing (a registered classifier, e.g. resnet50)")
    try:
        get_registry().entry("classifier", name)
    except SynthaugError as exc:
        raise SynthaugError(f"{where}.classifier: {exc}") from None
    recipe = dict(_keys(value.get("recipe", {}), tuple(value.get("recipe", {})), f"{where}.recipe"))
    _check_recipe(recipe, name, f"{where}.recipe")
    return ClassifierArm(key, str(value.get("label", key)), name, recipe, str(value.get("note", "")))


def _check_recipe(recipe: dict[str, Any], name: str, where: str, over: str = "") -> None:
    """A recipe for classifier ``name`` checked through TrainConfig; the options the experiment sets refused."""
    from synthaug.pipeline.train import TrainConfig

    for fixed in ("classifier", "seed", "weights", "device"):
        if fixed in recipe:
            raise SynthaugError(f"{where}.{fixed}: set by the experiment (classifier, seed, --weights, "
                                f"--device), not by the recipe")
    probe = {**recipe, "classifier": name}
    if recipe.get("mode") in WEIGHTED_MODES:
        probe["weights"] = "imagenet.pt"  # a placeholder: the real file comes with --weights
    try:
        TrainConfig.from_dict(probe)
    except SynthaugError as exc:
        raise SynthaugError(f"{where}{over}: {exc}") from None


def parse_weights(values: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``--weights PATH`` (every classifier) or ``--weights CLASSIFIER=PATH``, each file checked to exist."""
    out: dict[str, str] = {}
    for value in values:
        name, sep, path = value.partition("=")
        key, path = (name.strip(), path) if sep and not Path(value).is_file() else ("*", value)
        if not Path(path).is_file():
            raise SynthaugError(f"--weights {value}: no such file {path!r} "
                                "(a local torchvision-format ImageNet state dict)")
        out[key] = str(Path(path).resolve())
    return out


def weights_for(weights: Mapping[str, str], classifier: str) -> str | None:
    return weights.get(classifier) or weights.get("*")


def spec_json(spec: Spec) -> str:
    return json.dumps(spec.to_dict(), indent=2, default=str)
