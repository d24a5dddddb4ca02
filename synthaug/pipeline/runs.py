"""The run-directory format: the one owner of what ``train`` writes and ``evaluate`` reads.

A run directory::

    manifest.json          config, versions, data sha256, weights report, per-epoch history, status
    history.csv            the per-epoch history as a table (rewritten after each epoch)
    checkpoints/last.pt    model + optimizer + scheduler + RNG state after each epoch (--resume); removed
                           when the run finishes unless ``keep_optimizer`` (it doubles the run's size)
    checkpoints/best.pt    model weights of the epoch with the best validation macro-F1
    curves.png             learning curves (written by train)
    tensorboard/           TensorBoard event files (``log="tensorboard"`` only)
    metrics.json           test measures, confusion.png, roc.png (written by evaluate)
    predictions.csv        per test image: index, origin, true label, predicted label, class probabilities

Every checkpoint holds tensors, numbers, strings and lists only, so every one is read back with
``torch.load(..., weights_only=True)``: nothing in a run directory is unpickled.
Runs made outside the training loop (xpgan's jointly trained classifier) are written with
:func:`write_run` so that ``synthaug evaluate --run`` takes them like any other.
"""

from __future__ import annotations

import json
import platform
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from synthaug.errors import SynthaugError
from synthaug.kit.files import atomic_path, load_torch_file, save_torch_file, write_json
from synthaug.version import __version__

KIND = "synthaug-train-run"


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def last(self) -> Path:
        return self.root / "checkpoints" / "last.pt"

    @property
    def best(self) -> Path:
        return self.root / "checkpoints" / "best.pt"

    @property
    def curves(self) -> Path:
        return self.root / "curves.png"

    @property
    def history(self) -> Path:
        return self.root / "history.csv"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"

    def roc(self, suffix: str = "") -> Path:
        return self.root / f"roc{suffix}.png"

    def metrics(self, suffix: str = "") -> Path:
        return self.root / f"metrics{suffix}.json"

    def confusion(self, suffix: str = "") -> Path:
        return self.root / f"confusion{suffix}.png"

    def predictions(self, suffix: str = "") -> Path:
        return self.root / f"predictions{suffix}.csv"


def write_manifest(run: str | Path, manifest: dict[str, Any]) -> None:
    write_json(RunPaths(Path(run)).manifest, manifest)


def relocate_store(run: str | Path, store: str | Path) -> None:
    """Record that the run's store now lives at ``store`` (a run built in a temporary directory and moved)."""
    manifest = read_manifest(run)
    manifest["data"]["path"] = str(Path(store).resolve())
    write_manifest(run, manifest)


def read_manifest(run: str | Path) -> dict[str, Any]:
    path = RunPaths(Path(run)).manifest
    if not path.is_file():
        raise SynthaugError(f"{run}: not a training run (no manifest.json)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SynthaugError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc


def save_checkpoint(obj: dict[str, Any], path: Path) -> None:
    with atomic_path(path) as tmp:
        save_torch_file(obj, tmp)


def load_checkpoint(path: Path) -> dict[str, Any]:
    return load_torch_file(path, "synthaug checkpoint")


def write_run(run: str | Path, model, manifest: dict[str, Any], epoch: int) -> Path:
    """A finished run from a model trained elsewhere: best checkpoint + manifest, the layout ``evaluate`` reads."""
    paths = RunPaths(Path(run))
    save_checkpoint({"model": model.state_dict(), "epoch": int(epoch)}, paths.best)
    write_manifest(paths.root, {"kind": KIND, "status": "finished", "history": [], "weights": None,
                                "best": {"epoch": int(epoch), "score": None}, **manifest})
    return paths.root


def load_run(run: str | Path) -> tuple[dict[str, Any], Path]:
    """The run's manifest and its best checkpoint's path (checked to exist)."""
    manifest = read_manifest(run)
    best = RunPaths(Path(run)).best
    if not best.is_file():
        raise SynthaugError(f"{run}: no best checkpoint yet ({best}); train at least one epoch")
    return manifest, best


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
