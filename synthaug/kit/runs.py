"""The run-directory format: its paths, its manifest, its checkpoints, and :func:`write_run`.

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
``torch.load(..., weights_only=True)``: nothing in a run directory is unpickled. The format lives in
the kit so that a plugin can write a run of a classifier it trained itself (xpgan's C, through
:func:`write_run`, so that ``synthaug evaluate --run`` takes it like any other) and save or load its
own state with :func:`save_checkpoint` / :func:`load_checkpoint`; the training loop, evaluation and
model loading that use the format are the pipeline's (``synthaug.pipeline.runs``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthaug.errors import SynthaugError
from synthaug.kit.files import atomic_path, load_torch_file, save_torch_file, write_json

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


def read_manifest(run: str | Path) -> dict[str, Any]:
    path = RunPaths(Path(run)).manifest
    if not path.is_file():
        raise SynthaugError(f"{run}: not a training run (no manifest.json)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SynthaugError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc


def save_checkpoint(obj: dict[str, Any], path: Path) -> None:
    """``obj`` (tensors, numbers, strings, lists) written atomically to ``path`` with ``torch.save``."""
    with atomic_path(path) as tmp:
        save_torch_file(obj, tmp)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint written by :func:`save_checkpoint`, read with ``weights_only=True``."""
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
