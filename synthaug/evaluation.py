"""Evaluate a trained run's best checkpoint on a store split: metrics.json and confusion.png.

``evaluate(run)`` measures the run's own store's ``test`` split and writes ``metrics.json`` and
``confusion.png`` in the run directory. Another store or split writes
``metrics-<split>-<store stem>.json`` and ``confusion-<split>-<store stem>.png`` beside them, so
the run's own test figures are never overwritten.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .errors import SynthaugError


def load_run(run: str | Path) -> tuple[dict[str, Any], Path]:
    """The run's manifest and its best checkpoint's path (checked to exist)."""
    run = Path(run)
    manifest_path = run / "manifest.json"
    if not manifest_path.is_file():
        raise SynthaugError(f"{run}: not a training run (no manifest.json)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as exc:
        raise SynthaugError(f"{manifest_path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    best = run / "checkpoints" / "best.pt"
    if not best.is_file():
        raise SynthaugError(f"{run}: no best checkpoint yet ({best}); train at least one epoch")
    return manifest, best


def load_model(run: str | Path, device="cpu"):
    """The run's best model (eval mode) and its manifest."""
    import torch

    from .registry import get_registry

    manifest, best = load_run(run)
    config = manifest["config"]
    classifier = get_registry().create("classifier", config["classifier"], **config.get("classifier_options", {}))
    data = manifest["data"]
    model = classifier.build(data["image_shape"][0], len(data["class_names"]))
    model.load_state_dict(torch.load(best, map_location="cpu", weights_only=True)["model"])
    return model.to(device).eval(), manifest


def evaluate(run: str | Path, data: str | Path | None = None, split: str = "test", *,
             positive_class: str | None = None, device: str | None = None) -> dict[str, Any]:
    """Measure the run's best model on ``split`` of ``data`` (default: the run's store); return the metrics."""
    from .data.store import open_store
    from .metrics import classification_metrics
    from .report import plot_confusion
    from .train import predict, resolve_device, write_json

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
    write_json(run / f"metrics{suffix}.json", metrics)
    plot_confusion(metrics["confusion"], class_names, run / f"confusion{suffix}.png",
                   title=f"{config['classifier']} on {store.name} [{split}]")
    metrics["files"] = {"metrics": str(run / f"metrics{suffix}.json"), "confusion": str(run / f"confusion{suffix}.png")}
    return metrics
