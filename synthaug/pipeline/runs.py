"""Runs in the pipeline: a trained run's model (:func:`load_model`), batches and predictions over a
store, and the versions and RNG state a run records.

The run-directory format itself (paths, manifest, checkpoints, ``write_run`` for runs trained
elsewhere, ``load_run``) is :mod:`synthaug.kit.runs`, where plugins use it too; its names are
imported here so that ``train`` and ``evaluate`` keep one place to import the run from. Every
checkpoint is read back with ``torch.load(..., weights_only=True)``: nothing in a run directory is
unpickled.
"""

from __future__ import annotations

import platform
import random
from pathlib import Path
from typing import Any

import numpy as np

from synthaug.kit.runs import (
    KIND,
    RunPaths,
    load_checkpoint,
    load_run,
    read_manifest,
    save_checkpoint,
    write_manifest,
    write_run,
)
from synthaug.version import __version__

__all__ = [  # the run format's names from the kit, for train and evaluate, then this module's own
    "KIND", "RunPaths", "load_checkpoint", "load_run", "read_manifest", "save_checkpoint", "write_manifest",
    "write_run", "load_model", "loader", "predict", "versions", "rng_state", "set_rng_state",
]


def load_model(run: str | Path, device="cpu"):
    """The run's best model (eval mode) and its manifest."""
    from synthaug.registry import get_registry

    manifest, best = load_run(run)
    config = manifest["config"]
    classifier = get_registry().create("classifier", config["classifier"], **config.get("classifier_options", {}))
    data = manifest["data"]
    model = classifier.build(data["image_shape"][0], len(data["class_names"]))
    model.load_state_dict(load_checkpoint(best)["model"])
    return model.to(device).eval(), manifest


def loader(dataset, order: list[int] | list[list[int]], batch_size: int, num_workers: int, *,
           pin_memory: bool = False):
    """Batches of ``dataset`` in ``order``: indices cut into ``batch_size`` batches, or the batches
    themselves (a list of index lists: a distributed rank's share of each). ``pin_memory``: page-locked
    batches, copied to a CUDA device asynchronously (the training loop asks for it on CUDA)."""
    from torch.utils.data import DataLoader

    if order and isinstance(order[0], list):
        return DataLoader(dataset, batch_sampler=order, num_workers=num_workers, pin_memory=pin_memory)
    return DataLoader(dataset, batch_size=batch_size, sampler=order, num_workers=num_workers,
                      pin_memory=pin_memory)


def predict(model, dataset, indices, batch_size: int, device, num_workers: int = 0):
    """(true labels, softmax probabilities, summed cross-entropy) over ``indices``, in eval mode."""
    import torch
    import torch.nn.functional as F

    model.eval()
    labels, probabilities, loss = [], [], 0.0
    with torch.no_grad():
        for images, targets in loader(dataset, [int(i) for i in indices], batch_size, num_workers):
            logits = model(images.to(device))
            loss += float(F.cross_entropy(logits, targets.to(device), reduction="sum"))
            probabilities.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
            labels.append(targets.numpy())
    if not labels:
        return np.zeros(0, np.int64), np.zeros((0, 0)), 0.0
    return np.concatenate(labels), np.concatenate(probabilities), loss


def versions(entry=None) -> dict[str, str]:
    import kornia
    import monai
    import torch

    found = {"synthaug": __version__, "python": platform.python_version(), "torch": torch.__version__,
             "monai": monai.__version__, "kornia": kornia.__version__, "numpy": np.__version__}
    if entry is not None:
        found[f"plugin:{entry.plugin}"] = entry.version
    return found


def rng_state() -> dict[str, Any]:
    """Every RNG's state as tensors and plain numbers (loadable with ``weights_only=True``)."""
    import torch

    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, words, gauss = random.getstate()
    state = {"torch": torch.get_rng_state(),
             "numpy": {"kind": kind, "keys": torch.from_numpy(np.asarray(keys, np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached": float(cached)},
             "python": {"version": int(version), "words": torch.tensor(words, dtype=torch.int64),
                        "gauss": gauss if gauss is None else float(gauss)}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import torch

    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(w) for w in p["words"].tolist()), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
