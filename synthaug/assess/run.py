"""``synthaug.quality(store)``: every quality measure for every synthesizer and class in a store.

For each synthesizer and class with synthetic training images, three sets of the class are compared:
the synthetic images S, the real training images T (what the synthesizer learned from) and the real
test images R (held out before any fit: no synthesizer saw them). Fidelity and diversity are S
against R, with T against R beside them as the reference a perfect synthesizer would match (the
two-sample test's folds grouped by source image or patient: :func:`synthetic_groups`);
memorisation is S's nearest neighbours among the real training images of every class, judged by how
close R's come. Results go to ``quality.json`` (and ``nearest.csv``, ``quality.md``, ``figures/``) in
``out`` when given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from synthaug.assess import measures, memorise, paired
from synthaug.assess.features import FeatureConfig, FeatureNet, batches, feature_net
from synthaug.assess.report import summary_rows, write_quality  # noqa: F401 (summary_rows: re-exported)
from synthaug.errors import SynthaugError
from synthaug.kit.state import keeps_state

REAL = "real"
#: How the figures were computed (quality.json's ``method``): what changed with issue #26.
METHOD = {
    "two_sample": "cross-validation folds grouped by source image or patient (StratifiedGroupKFold), scores averaged "
                  f"over up to {measures.REPEATS} fold assignments (two_sample.repeats), interval a bootstrap over "
                  "groups",
    "fid_prdc": f"larger set subsampled to the smaller's size, mean and std over {measures.SUBSAMPLES} subsamples",
    "memorisation": "nearest real training image of any class",
}


@dataclass
class RealTrain:
    """Every class's real training images (rows, labels, features and pixel thumbnails, each also of the
    mirrored image): the images the memorisation search looks through, whatever a synthetic image's class."""

    rows: np.ndarray
    labels: np.ndarray
    features: np.ndarray
    features_flipped: np.ndarray
    pixels: np.ndarray
    pixels_flipped: np.ndarray


@dataclass
class ClassSets:
    """Rows, features and two-sample groups (patients) of one class's real images (training T, test R)."""

    train_rows: np.ndarray
    test_rows: np.ndarray
    train_features: np.ndarray
    test_features: np.ndarray
    test_pixels: np.ndarray
    train_groups: np.ndarray
    test_groups: np.ndarray
    reference: dict[str, Any] = field(default_factory=dict)


@dataclass
class Group:
    """One synthesizer's images of one class, measured."""

    synthesizer: str
    class_name: str
    rows: np.ndarray  # rows of the training split
    features: np.ndarray
    fidelity: dict[str, Any]
    memorisation: dict[str, dict[str, Any]]  # "features" / "pixels" -> memorise.memorisation(...), with
    # "nearest_row" (the nearest image's row of the training split) and "nearest_class" (its class) added
    paired: dict[str, Any] | None

    def summary(self) -> dict[str, Any]:
        """The JSON-able figures (per-image distances go to nearest.csv)."""
        memo = {space: {k: v for k, v in m.items() if not isinstance(v, np.ndarray)}
                for space, m in self.memorisation.items()}
        return {"synthesizer": self.synthesizer, "class": self.class_name, "n": int(self.rows.size),
                "fidelity": self.fidelity, "memorisation": memo, "paired": self.paired}


@dataclass
class QualityResult:
    store: Path
    class_names: tuple[str, ...]
    features: dict[str, Any]
    classes: dict[str, ClassSets]
    groups: list[Group]
    checkpoint: dict[str, Any] | None
    net: FeatureNet | None = None
    path: Path | None = None  # the output directory, when written
    real_train: RealTrain | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "store": str(self.store), "features": self.features,
            "classes": {c: {"real_train": int(s.train_rows.size), "real_test": int(s.test_rows.size),
                            "reference": s.reference} for c, s in self.classes.items()},
            "groups": [g.summary() for g in self.groups],
            "checkpoint": self.checkpoint,
            "method": METHOD,
        }


def _groups_to_measure(train, classes: Sequence[str] | None) -> list[tuple[str, str]]:
    synth = np.asarray(train.synth).astype(str)
    labels = np.asarray(train.labels)
    if classes:
        unknown = [c for c in classes if c not in train.class_names]
        if unknown:
            raise SynthaugError(f"--class {unknown[0]!r}: the store's classes are {', '.join(train.class_names)}")
    wanted = [c for c in train.class_names if not classes or c in classes]
    found = [(name, c) for name in sorted(set(synth) - {REAL}) for c in wanted
             if np.any((synth == name) & (labels == train.class_names.index(c)))]
    if not found:
        which = f" of class {', '.join(wanted)}" if classes else ""
        raise SynthaugError(f"{train.path}: the training split holds no synthetic images{which}; nothing to measure")
    return found


def read_once(net: FeatureNet, dataset, indices: Sequence[int], *, mirrored: bool = False,
              batch_size: int = 64) -> dict[str, np.ndarray]:
    """Features and pixel thumbnails (:func:`memorise.shrink`) of ``indices``, each image read from the store
    once; with ``mirrored`` also those of the horizontally flipped images (``*_mirrored``)."""
    suffixes = ("", "_mirrored") if mirrored else ("",)
    parts: dict[str, list] = {kind + suffix: [] for suffix in suffixes for kind in ("features", "pixels")}
    for batch in batches(dataset, indices, batch_size):
        for suffix in suffixes:
            images = batch.flip(-1) if suffix else batch
            parts["features" + suffix].append(net(images))
            parts["pixels" + suffix].append(memorise.shrink(images))
    empty = {"features": np.zeros((0, net.dim)), "pixels": np.zeros((0, 0), np.float32)}
    return {key: np.concatenate(chunks) if chunks else empty[key.split("_")[0]] for key, chunks in parts.items()}


def _real_train(train, net: FeatureNet) -> RealTrain:
    rows = np.flatnonzero(np.asarray(train.synth) == REAL)
    read = read_once(net, train, rows, mirrored=True)
    return RealTrain(rows, np.asarray(train.labels)[rows], read["features"], read["features_mirrored"],
                     read["pixels"], read["pixels_mirrored"])


def patient_keys(dataset, rows: np.ndarray) -> np.ndarray:
    return np.asarray([f"patient:{p}" for p in np.asarray(dataset.patient_ids)[rows]], dtype=object)


def _class_sets(train, test, net: FeatureNet, real: RealTrain, label: int) -> ClassSets:
    own = real.labels == label
    test_rows = np.flatnonzero((np.asarray(test.synth) == REAL) & (np.asarray(test.labels) == label))
    r = read_once(net, test, test_rows)
    return ClassSets(real.rows[own], test_rows, real.features[own], r["features"], r["pixels"],
                     patient_keys(train, real.rows[own]), patient_keys(test, test_rows))


def synthetic_groups(train, rows: np.ndarray, source_index: np.ndarray, known: set[str]) -> np.ndarray:
    """The two-sample test's group of each synthetic row: the patient of the real training image it was
    made from (copies of one image, and the translations of one patient, are one group); else its own
    patient, when it was made from something (a volume: ``source_index`` >= 0) or names a patient of the
    store (``known``); else the image alone (acgan names every image ``"acgan"``: no patient)."""
    patients = np.asarray(train.patient_ids)[rows].astype(str)
    keys = np.asarray([f"patient:{p}" for p in patients], dtype=object)
    sources = _image_sources(train, rows, source_index)
    if sources is not None:
        made = sources >= 0
        keys[made] = patient_keys(train, sources[made])
    alone = (source_index[rows] < 0) & ~np.isin(patients, list(known))
    keys[alone] = [f"image:{row}" for row in rows[alone]]
    return keys


def _memorisation(feats: np.ndarray, pixels: np.ndarray, cs: ClassSets, real: RealTrain, label: int,
                  class_names: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Both spaces' :func:`memorise.memorisation` against every class's real training images."""
    if not real.rows.size or not cs.test_rows.size:
        return {}
    memo = {"features": memorise.memorisation(feats, cs.test_features, real.features, real.features_flipped,
                                              labels=real.labels, own=label, class_names=class_names),
            "pixels": memorise.memorisation(pixels, cs.test_pixels, real.pixels, real.pixels_flipped, rms=True,
                                            labels=real.labels, own=label, class_names=class_names)}
    for found in memo.values():
        found["nearest_row"] = real.rows[found["nearest"]]
        found["nearest_class"] = np.asarray(class_names, dtype=object)[found["nearest_label"]]
    return memo


def _checkpoint_measures(directory: Path, synthesizer: str, store: Path) -> dict[str, Any]:
    """A fitted synthesizer's own paired measures (``measure(test split)``) on the store's test images."""
    from synthaug.pipeline.checkpoint import load_fitted
    from synthaug.pipeline.store import read_store

    test = read_store(store, "test")
    synth = load_fitted(directory, synthesizer, test)  # refused if fitted beside another test split
    measure = getattr(synth, "measure", None)
    result = measure(test) if measure is not None else None
    return {"directory": str(directory), "synthesizer": synthesizer,
            "measures": result, "note": None if result else f"{synthesizer} offers no paired measure on this data"}


@keeps_state
def quality(store: str | Path, *, classes: Sequence[str] | None = None,
            features: str | Path | FeatureNet | None = None, out: str | Path | None = None, seed: int = 0,
            synth_checkpoint: str | Path | None = None, feature_config: FeatureConfig | None = None,
            figures: bool = True) -> QualityResult:
    """Measure the synthetic images of ``store`` (see the module docstring); write ``out`` if given.

    ``features``: a registered classifier's name trained on the store's real training images (default
    :data:`synthaug.assess.features.DEFAULT_NETWORK`), a weights file, or a directory saved by an
    earlier run (``<out>/features``), or a :class:`FeatureNet`.
    """
    from synthaug.pipeline.store import open_store

    store = Path(store)
    train, test = open_store(store, "train"), open_store(store, "test")
    try:
        wanted = _groups_to_measure(train, classes)
        config = feature_config or FeatureConfig(seed=seed)
        net = feature_net(features, train, config)
        real = _real_train(train, net)
        sets: dict[str, ClassSets] = {}
        groups = [_measure_group(store, train, test, net, real, sets, name, class_name, seed)
                  for name, class_name in wanted]
        checkpoint = None
        if synth_checkpoint is not None:
            names = sorted({g.synthesizer for g in groups})
            if len(names) != 1:
                raise SynthaugError(f"--synth-checkpoint: the store holds several synthesizers ({', '.join(names)}); "
                                    f"measure one store a synthesizer")
            checkpoint = _checkpoint_measures(Path(synth_checkpoint), names[0], store)
        result = QualityResult(store, tuple(train.class_names), net.describe(), sets, groups, checkpoint, net,
                               real_train=real)
        if out is not None:
            result.path = write_quality(result, out, train=train, test=test, figures=figures)
        return result
    finally:
        train.close()
        test.close()


def _measure_group(store: Path, train, test, net: FeatureNet, real: RealTrain, sets: dict[str, ClassSets],
                   name: str, class_name: str, seed: int) -> Group:
    """One synthesizer's images of one class, measured (the class's real sets added to ``sets`` once)."""
    label = train.class_names.index(class_name)
    if class_name not in sets:
        sets[class_name] = cs = _class_sets(train, test, net, real, label)
        if cs.test_rows.size == 0:
            raise SynthaugError(f"{store}: no real test images of {class_name!r} to compare with")
        cs.reference = measures.fidelity(cs.test_features, cs.train_features, seed=seed,
                                         real_groups=cs.test_groups, fake_groups=cs.train_groups)
    cs = sets[class_name]
    source_index = _column(store, "train", "source_index")
    rows = np.flatnonzero((np.asarray(train.synth).astype(str) == name) & (np.asarray(train.labels) == label))
    read = read_once(net, train, rows)
    feats, pixels = read["features"], read["pixels"]
    memo = _memorisation(feats, pixels, cs, real, label, tuple(train.class_names))
    known = {str(p) for p in np.asarray(train.patient_ids)[real.rows]} | {str(p) for p in test.patient_ids}
    fidelity = measures.fidelity(cs.test_features, feats, seed=seed, real_groups=cs.test_groups,
                                 fake_groups=synthetic_groups(train, rows, source_index, known))
    pair = paired.in_store(train, rows, label, _image_sources(train, rows, source_index))
    return Group(name, class_name, rows, feats, fidelity, memo, pair)


def _column(store: Path, split: str, name: str) -> np.ndarray:
    import h5py

    with h5py.File(store, "r") as f:
        return f[split][name][()]


def _image_sources(train, rows: np.ndarray, source_index: np.ndarray) -> np.ndarray | None:
    """Training rows the synthetic ``rows`` were made from, when they were made from real images of the
    split (their origin is that image's); -1 elsewhere; None when no row was."""
    src = source_index[rows]
    origins = np.asarray(train.origin).astype(str)
    ok = (src >= 0) & (src < len(origins))
    ok[ok] &= (origins[src[ok]] == origins[rows[ok]]) & (np.asarray(train.synth)[src[ok]] == REAL)
    if not ok.any():
        return None
    return np.where(ok, src, -1)
