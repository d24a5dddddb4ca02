"""Evaluate a trained run's best checkpoint on a store split: metrics.json, confusion.png and roc.png.

``evaluate(run)`` measures the run's own store's ``test`` split and writes ``metrics.json`` and
``confusion.png`` in the run directory. Another store or split writes
``metrics-<split>-<store stem>.json``, ``confusion-<split>-<store stem>.png`` and ``roc-...png`` beside them, so
the run's own test figures are never overwritten.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from synthaug.errors import SynthaugError
from synthaug.kit.device import resolve_device
from synthaug.kit.files import atomic_path, write_json
from synthaug.kit.state import keeps_state
from synthaug.pipeline.metrics import classification_metrics
from synthaug.pipeline.report import plot_confusion, plot_roc
from synthaug.pipeline.runs import RunPaths, load_model, load_run, predict
from synthaug.pipeline.store import open_store


@keeps_state
def evaluate(run: str | Path, data: str | Path | None = None, split: str = "test", *,
             positive_class: str | None = None, device: str | None = None) -> dict[str, Any]:
    """Measure the run's best model on ``split`` of ``data`` (default: the run's store); return the metrics."""
    run = Path(run)
    manifest, _ = load_run(run)
    config = manifest["config"]
    own_store = Path(manifest["data"]["path"])
    store = Path(data) if data is not None else own_store
    if data is None and not store.is_file():
        raise SynthaugError(f"{run} was trained on {store}, which no longer exists; pass --data STORE")
    device = resolve_device(device or config.get("device", "auto"))
    dataset = open_store(store, split)
    class_names = list(manifest["data"]["class_names"])
    if list(dataset.class_names) != class_names:
        raise SynthaugError(f"{store}: classes {list(dataset.class_names)} differ from the run's {class_names}")
    if dataset.image_shape[0] != manifest["data"]["image_shape"][0]:
        raise SynthaugError(f"{store}: images have {dataset.image_shape[0]} channels; the run's network takes "
                            f"{manifest['data']['image_shape'][0]}")
    if len(dataset) == 0:
        raise SynthaugError(f"{store}: split {split!r} is empty")
    model, _ = load_model(run, device)
    y, probabilities, loss = predict(model, dataset, np.arange(len(dataset)), config["batch_size"], device)
    origins = [str(o) for o in dataset.origin]
    dataset.close()
    metrics = classification_metrics(y, probabilities.argmax(1), class_names, probabilities,
                                      positive=positive_class or config.get("positive_class"))
    metrics.update(loss=loss / len(y), split=split, data=str(store.resolve()),
                   best_epoch=(manifest.get("best") or {}).get("epoch"))
    default = data is None or store.resolve() == own_store.resolve()
    suffix = "" if default and split == "test" else f"-{split}-{store.stem}"
    paths = RunPaths(run)
    write_predictions(paths.predictions(suffix), y, probabilities, class_names, origins)
    write_json(paths.metrics(suffix), metrics)
    title = f"{config['classifier']} on {store.name} [{split}]"
    plot_confusion(metrics["confusion"], class_names, paths.confusion(suffix), title=title)
    plot_roc(y, probabilities, class_names, paths.roc(suffix), title=title,
             auc=(metrics.get("roc_auc") or {}).get("per_class"))
    metrics["files"] = {"metrics": str(paths.metrics(suffix)), "confusion": str(paths.confusion(suffix)),
                        "roc": str(paths.roc(suffix)), "predictions": str(paths.predictions(suffix))}
    return metrics


PREDICTION_COLUMNS = ("index", "origin", "label", "prediction")


def write_predictions(path: Path, labels: np.ndarray, probabilities: np.ndarray, class_names, origins) -> Path:
    """One row per image, in store order: what a paired comparison between two runs resamples."""
    import csv

    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([*PREDICTION_COLUMNS, *(f"p[{name}]" for name in class_names)])
        for i, (label, probs) in enumerate(zip(labels, probabilities)):
            writer.writerow([i, origins[i], class_names[int(label)], class_names[int(probs.argmax())],
                             *(f"{p:.6g}" for p in probs)])
    return path


def read_predictions(path: str | Path, class_names) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(true label indices, predicted label indices, origins) from a predictions file."""
    import csv

    path = Path(path)
    if not path.is_file():
        raise SynthaugError(f"{path}: no predictions file (evaluate the run first)")
    index = {name: k for k, name in enumerate(class_names)}
    labels, predictions, origins = [], [], []
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            try:
                labels.append(index[row["label"]])
                predictions.append(index[row["prediction"]])
            except KeyError as exc:
                raise SynthaugError(f"{path}: class {exc.args[0]!r} is not one of {', '.join(class_names)}") from None
            origins.append(row["origin"])
    return np.asarray(labels, np.int64), np.asarray(predictions, np.int64), origins


def read_probabilities(path: str | Path, class_names) -> np.ndarray | None:
    """The class probabilities of a predictions file, ``(n, K)`` in store order and class order; None
    when the file has no ``p[CLASS]`` column for every class (or no file): the threshold-free measures
    and calibration of that run are then missing, not guessed."""
    import csv

    path = Path(path)
    if not path.is_file():
        return None
    columns = [f"p[{name}]" for name in class_names]
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if not set(columns) <= set(reader.fieldnames or ()):
            return None
        try:
            rows = [[float(row[c]) for c in columns] for row in reader]
        except (TypeError, ValueError):
            raise SynthaugError(f"{path}: a class probability is not a number") from None
    return np.asarray(rows, float).reshape(len(rows), len(columns))
