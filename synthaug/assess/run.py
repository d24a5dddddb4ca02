"""``synthaug.quality(store)``: every quality measure for every synthesizer and class in a store.

For each synthesizer and class with synthetic training images, three sets of the class are compared:
the synthetic images S, the real training images T (what the synthesizer learned from) and the real
test images R (held out before any fit: no synthesizer saw them). Fidelity and diversity are S
against R, with T against R beside them as the reference a perfect synthesizer would match;
memorisation is S's nearest neighbours in T, judged by how close R's come. Results go to
``quality.json`` (and ``nearest.csv``, ``quality.md``, ``figures/``) in ``out`` when given.
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


@dataclass
class ClassSets:
    """Rows and features of one class's real images (training T, test R)."""

    train_rows: np.ndarray
    test_rows: np.ndarray
    train_features: np.ndarray
    train_features_flipped: np.ndarray
    test_features: np.ndarray
    train_pixels: np.ndarray
    train_pixels_flipped: np.ndarray
    test_pixels: np.ndarray
    reference: dict[str, Any] = field(default_factory=dict)


@dataclass
class Group:
    """One synthesizer's images of one class, measured."""

    synthesizer: str
    class_name: str
    rows: np.ndarray  # rows of the training split
    features: np.ndarray
    fidelity: dict[str, Any]
    memorisation: dict[str, dict[str, Any]]  # "features" / "pixels" -> memorise.memorisation(...)
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

    def to_dict(self) -> dict[str, Any]:
        return {
            "store": str(self.store), "features": self.features,
            "classes": {c: {"real_train": int(s.train_rows.size), "real_test": int(s.test_rows.size),
                            "reference": s.reference} for c, s in self.classes.items()},
            "groups": [g.summary() for g in self.groups],
            "checkpoint": self.checkpoint,
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


def _class_sets(train, test, net: FeatureNet, label: int) -> ClassSets:
    train_rows = np.flatnonzero((np.asarray(train.synth) == REAL) & (np.asarray(train.labels) == label))
    test_rows = np.flatnonzero((np.asarray(test.synth) == REAL) & (np.asarray(test.labels) == label))
    t, r = read_once(net, train, train_rows, mirrored=True), read_once(net, test, test_rows)
    return ClassSets(train_rows, test_rows, t["features"], t["features_mirrored"], r["features"],
                     t["pixels"], t["pixels_mirrored"], r["pixels"])


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
        sets: dict[str, ClassSets] = {}
        groups: list[Group] = []
        synth = np.asarray(train.synth).astype(str)
        source_index = _column(store, "train", "source_index")
        for name, class_name in wanted:
            label = train.class_names.index(class_name)
            if class_name not in sets:
                sets[class_name] = cs = _class_sets(train, test, net, label)
                if cs.test_rows.size == 0:
                    raise SynthaugError(f"{store}: no real test images of {class_name!r} to compare with")
                cs.reference = measures.fidelity(cs.test_features, cs.train_features, seed=seed)
            cs = sets[class_name]
            rows = np.flatnonzero((synth == name) & (np.asarray(train.labels) == label))
            read = read_once(net, train, rows)
            feats, pixels = read["features"], read["pixels"]
            memo = {}
            if cs.train_rows.size and cs.test_rows.size:
                memo["features"] = memorise.memorisation(feats, cs.test_features, cs.train_features,
                                                         cs.train_features_flipped)
                memo["pixels"] = memorise.memorisation(pixels, cs.test_pixels, cs.train_pixels,
                                                       cs.train_pixels_flipped, rms=True)
            pair = paired.in_store(train, rows, label, _image_sources(train, rows, source_index))
            groups.append(Group(name, class_name, rows, feats, measures.fidelity(cs.test_features, feats, seed=seed),
                                memo, pair))
        checkpoint = None
        if synth_checkpoint is not None:
            names = sorted({g.synthesizer for g in groups})
            if len(names) != 1:
                raise SynthaugError(f"--synth-checkpoint: the store holds several synthesizers ({', '.join(names)}); "
                                    f"measure one store a synthesizer")
            checkpoint = _checkpoint_measures(Path(synth_checkpoint), names[0], store)
        result = QualityResult(store, tuple(train.class_names), net.describe(), sets, groups, checkpoint, net)
        if out is not None:
            result.path = write_quality(result, out, train=train, test=test, figures=figures)
        return result
    finally:
        train.close()
        test.close()


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
