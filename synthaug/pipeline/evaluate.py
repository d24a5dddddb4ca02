"""Evaluate a trained run's best checkpoint on a store split: metrics.json and confusion.png.

``evaluate(run)`` measures the run's own store's ``test`` split and writes ``metrics.json`` and
``confusion.png`` in the run directory. Another store or split writes
``metrics-<split>-<store stem>.json`` and ``confusion-<split>-<store stem>.png`` beside them, so
the run's own test figures are never overwritten.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from synthaug.errors import SynthaugError
from synthaug.kit.device import resolve_device
from synthaug.kit.files import write_json
from synthaug.pipeline.metrics import classification_metrics
from synthaug.pipeline.report import plot_confusion
from synthaug.pipeline.runs import RunPaths, load_model, load_run, predict
from synthaug.pipeline.store import open_store


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
    dataset.close()
    metrics = classification_metrics(y, probabilities.argmax(1), class_names, probabilities,
                                      positive=positive_class or config.get("positive_class"))
    metrics.update(loss=loss / len(y), split=split, data=str(store.resolve()),
                   best_epoch=(manifest.get("best") or {}).get("epoch"))
    default = data is None or store.resolve() == own_store.resolve()
    suffix = "" if default and split == "test" else f"-{split}-{store.stem}"
    paths = RunPaths(run)
    write_json(paths.metrics(suffix), metrics)
    plot_confusion(metrics["confusion"], class_names, paths.confusion(suffix),
                   title=f"{config['classifier']} on {store.name} [{split}]")
    metrics["files"] = {"metrics": str(paths.metrics(suffix)), "confusion": str(paths.confusion(suffix))}
    return metrics
