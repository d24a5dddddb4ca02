"""The experiment report's comparisons and intervals, from every finished cell's predictions.

- :class:`Predictions` reads each cell's ``predictions.csv`` once (labels, predicted labels, class
  probabilities) and the patient ids of its store's test split, the bootstrap's test units.
- :func:`arm_interval`: the interval of one arm's mean measure (a bootstrap over seeds and test units;
  one seed: over the test units alone), inside [0, 1] for every measure here.
- :func:`comparisons`: every synthesizer arm against every baseline the spec names (``compare_to``),
  on the headline measure and, where the cells kept their probabilities, on ROC-AUC and AUPRC; the
  p-values of all pairs of a table (one classifier) corrected together by Holm's method per measure,
  and each pair's verdict and sentence (:mod:`synthaug.experiments.stats`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from synthaug.errors import SynthaugError
from synthaug.experiments import stats
from synthaug.experiments.spec import JOINT, Cell, Spec
from synthaug.pipeline.metrics import POSITIVE_MEASURES, THRESHOLD_FREE

N_BOOT = 2000


@dataclass
class Row:
    """One cell: its place in the grid and, when it ran, its measures and predictions."""

    cell: Cell
    status: str  # "done" | "not run" | "not finished"
    reason: str = ""
    class_names: list[str] = field(default_factory=list)
    confusion: np.ndarray | None = None
    measures: dict[str, float] = field(default_factory=dict)
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)
    predictions: Path | None = None
    seconds: float = 0.0
    network: str = ""
    store: Path | None = None  # the cell's store: its test split holds the test images' patient ids

    @property
    def group(self) -> tuple[str, str]:
        return self.cell.arm.key, self.cell.classifier_key



@dataclass
class CellPredictions:
    """One cell's predictions on its seed's test images, in store order."""

    y: np.ndarray
    pred: np.ndarray
    probabilities: np.ndarray | None  # None: a predictions file without class probabilities
    origins: list[str]
    patients: np.ndarray | None  # patient id per test image; None when the store is gone


class Predictions:
    """Every cell's predictions and every store's test patient ids, each read once."""

    def __init__(self) -> None:
        self._sets: dict[Path, CellPredictions | None] = {}
        self._stores: dict[Path, tuple[list[str], np.ndarray] | None] = {}

    def of(self, row: Row) -> CellPredictions | None:
        """The row's test set; None when its predictions file is missing."""
        from synthaug.pipeline.evaluate import read_predictions, read_probabilities

        path = row.predictions
        if path is None:
            return None
        if path not in self._sets:
            if not Path(path).is_file():
                self._sets[path] = None
            else:
                y, pred, origins = read_predictions(path, row.class_names)
                self._sets[path] = CellPredictions(y, pred, read_probabilities(path, row.class_names), origins,
                                           self._patients(row.store, origins))
        return self._sets[path]

    def _patients(self, store: Path | None, origins: list[str]) -> np.ndarray | None:
        from synthaug.pipeline.store import read_store

        if store is None:
            return None
        if store not in self._stores:
            try:
                test = read_store(store, "test", images=False)
                self._stores[store] = ([str(o) for o in test.origin], np.asarray(test.patient_ids).astype(str))
            except (SynthaugError, OSError, KeyError):
                self._stores[store] = None  # gone or unreadable: the image is the unit
        found = self._stores[store]
        if found is None or found[0] != list(origins):
            return None
        return found[1]


def positive_for(spec: Spec, measure: str, names: list[str]) -> int | None:
    """The class index a measure is about: the positive class for the positive-class and threshold-free
    measures (threshold-free without one: None, the macro mean), None for the others."""
    if measure in POSITIVE_MEASURES or measure in THRESHOLD_FREE:
        return names.index(spec.positive) if spec.positive in names else None
    return None


def _arrays(test: CellPredictions | None, measure: str) -> np.ndarray | None:
    if test is None:
        return None
    return test.probabilities if measure in THRESHOLD_FREE else test.pred


def resampled_unit(rows: list[Row], loader: Predictions) -> dict[str, Any] | None:
    """What the bootstraps resample, from the first finished cell: ``{"unit", "images", "patients"}``
    (``patients`` None when the store holding the patient ids is gone)."""
    first = next((r for r in rows if r.status == "done"), None)
    test = loader.of(first) if first is not None else None
    if test is None:
        return None
    units, unit = stats.cluster_index(test.patients, len(test.y))
    return {"unit": unit, "images": len(test.y), "seed": first.cell.seed,
            "patients": None if test.patients is None else int(units.max()) + 1}


def arm_interval(spec: Spec, members: list[Row], measure: str, loader: Predictions,
                 positive: int | None = None, *, per_class: bool = False) -> dict | None:
    """The interval of an arm's mean ``measure`` over its seeds: a bootstrap over seeds and test units
    (one seed: over the test units alone), or without predictions a logit-scale t interval of the
    per-seed values. ``per_class``: ``measure`` (f1, precision, recall) of class ``positive``."""
    names = members[0].class_names
    if not per_class:
        positive = positive_for(spec, measure, names)
    sets = [(t.y, x) for r in members if (t := loader.of(r)) is not None and (x := _arrays(t, measure)) is not None]
    if len(sets) == len(members):
        result = stats.value_bootstrap(sets, measure, positive, N_BOOT, num_classes=len(names),
                                       clusters=[loader.of(r).patients for r in members],
                                       over_seeds=len(members) >= 2)
        return {**result, "n": len(members), "method": "bootstrap"}
    if per_class:
        values = [r.per_class[names[positive]][measure] for r in members]
    else:
        values = [r.measures.get(measure) for r in members]
    if not values or any(v is None for v in values):
        return None
    return stats.proportion_interval(values)


def _pair_sets(common: list[tuple[Row, Row]], measure: str, loader: Predictions) -> tuple[list, list] | None:
    """Per seed ``(y, baseline's, arm's)`` predictions and the test patients, or None when a seed has
    no predictions or the two cells were not measured on the same test images."""
    triples, clusters = [], []
    for base, arm in common:
        tb, ta = loader.of(base), loader.of(arm)
        xb, xa = _arrays(tb, measure), _arrays(ta, measure)
        if xb is None or xa is None or tb.origins != ta.origins or not np.array_equal(tb.y, ta.y):
            return None
        triples.append((ta.y, xb, xa))
        clusters.append(ta.patients)
    return triples, clusters


def pair_comparison(spec: Spec, arm_rows: list[Row], base_rows: list[Row], measure: str,
                    loader: Predictions) -> dict[str, Any] | None:
    """The paired comparison of an arm with a baseline on ``measure``: over seeds (t), by bootstrap over
    the test units alone (test-set noise) and over seeds and test units; ``p`` is the latter's (without
    predictions: the paired t test's), None with one seed. None when the arm's values are missing."""
    by_seed = {r.cell.seed: r for r in base_rows}
    common = [(by_seed[r.cell.seed], r) for r in arm_rows if r.cell.seed in by_seed]
    if not common:
        return None
    values = [(b.measures.get(measure), a.measures.get(measure)) for b, a in common]
    if any(v is None for pair in values for v in pair):
        return None
    seed = stats.paired_seed_comparison([b for b, _ in values], [a for _, a in values])
    names = common[0][1].class_names
    positive = positive_for(spec, measure, names)
    found = _pair_sets(common, measure, loader)
    boot = joint = None
    if found is not None:
        options = dict(num_classes=len(names), clusters=found[1])
        boot = stats.paired_bootstrap(found[0], measure, positive, N_BOOT, **options)
        if len(common) >= 2:
            joint = stats.paired_bootstrap(found[0], measure, positive, N_BOOT, over_seeds=True, **options)
    p = None if len(common) < 2 else (joint or seed).get("p")
    return {"measure": measure, "seeds": len(common), "seed": seed, "bootstrap": boot, "seed_bootstrap": joint,
            "p": p}


def _baseline_cells(spec: Spec, done: dict, base_key: str, clf_key: str, network: str) -> tuple[str, str] | None:
    """The baseline's group for an arm of classifier ``clf_key`` (a joint-classifier arm: the first
    classifier of the same network)."""
    if clf_key != JOINT:
        return (base_key, clf_key) if (base_key, clf_key) in done else None
    return next(((a, c) for (a, c), members in done.items()
                 if a == base_key and c != JOINT and members and members[0].network == network), None)


def strongest_baseline(spec: Spec, done: dict, clf_key: str, network: str) -> tuple[str, str, float] | None:
    """For information: the baseline arm (any, named or not) with the best mean headline measure among
    those trained with the same classifier (joint: the same network); ``(arm, classifier, mean)``."""
    found = []
    for arm in spec.arms:
        if arm.baseline and (group := _baseline_cells(spec, done, arm.key, clf_key, network)) is not None:
            values = [r.measures.get(spec.headline) for r in done[group]]
            if values and all(v is not None for v in values):
                found.append((float(np.mean(values)), group))
    if not found:
        return None
    mean, (arm_key, base_clf) = max(found, key=lambda f: f[0])
    return arm_key, base_clf, mean


def comparisons(spec: Spec, done: dict, loader: Predictions) -> list[dict[str, Any]]:
    """One entry per synthesizer arm x classifier x named baseline, in report order, Holm-adjusted and
    judged (:func:`judge`)."""
    entries = []
    for (arm_key, clf_key), members in done.items():
        if spec.arm(arm_key).baseline:
            continue
        network = members[0].network
        strongest = strongest_baseline(spec, done, clf_key, network)
        for base_key in spec.baselines_compared():
            group = _baseline_cells(spec, done, base_key, clf_key, network)
            entry: dict[str, Any] = {"arm": arm_key, "classifier": clf_key,
                                     "baseline": list(group) if group else [base_key, None],
                                     "strongest_baseline": bool(strongest and group and strongest[:2] == group)}
            if group is None:
                entry.update(measure=spec.headline, verdict=None,
                             sentence=f"{_arm_text(spec, arm_key, clf_key)} vs {spec.arm(base_key).label}: not "
                                      f"compared ({spec.arm(base_key).label} has no finished cell with this "
                                      f"classifier).")
                entries.append(entry)
                continue
            entry.update(pair_comparison(spec, members, done[group], spec.headline, loader) or
                         {"measure": spec.headline, "p": None})
            entry["threshold_free"] = {m: c for m in THRESHOLD_FREE
                                       if (c := pair_comparison(spec, members, done[group], m, loader))}
            entries.append(entry)
    judge(spec, entries)
    return entries


def _arm_text(spec: Spec, arm_key: str, clf_key: str) -> str:
    label = "its jointly trained classifier" if clf_key == JOINT else spec.classifier(clf_key).label
    return f"{spec.arm(arm_key).label} ({label})"


def judge(spec: Spec, entries: list[dict[str, Any]]) -> None:
    """Holm's correction over each table's comparisons (the baseline's classifier) per measure, then each
    comparison's verdict and sentence, in place."""
    families: dict[tuple[str, str], list[dict]] = {}
    for entry in entries:
        if entry.get("baseline", [None, None])[1] is None:
            continue
        for comp in [entry, *entry.get("threshold_free", {}).values()]:
            comp["arm_text"] = _arm_text(spec, entry["arm"], entry["classifier"])
            comp["baseline_text"] = spec.arm(entry["baseline"][0]).label
            families.setdefault((entry["baseline"][1], comp["measure"]), []).append(comp)
    for comps in families.values():
        adjusted = stats.holm([c.get("p") for c in comps])
        counted = sum(p is not None for p in adjusted)
        for comp, p_holm in zip(comps, adjusted):
            comp["p_holm"], comp["holm_comparisons"] = p_holm, counted
            comp["verdict"] = stats.verdict(comp) if comp.get("seed") else None
            arm, base, measure = comp.pop("arm_text"), comp.pop("baseline_text"), comp["measure"]
            comp["sentence"] = stats.verdict_sentence(arm, base, measure, comp) if comp.get("seed") else \
                f"{arm} vs {base}: {measure} not compared (no value in some of their cells)."
