"""The feature space the quality measures work in.

No weights can be downloaded, so by default a classifier is trained on the store's own *real*
training images (all classes; synthetic images never) and the input of its last linear layer is the
feature vector: a space in which the classes of this data set are told apart. Such features are only
comparable between stores with the same real training split (the report says so). A local
torchvision-format weights file of a standard network (``--features PATH``; its architecture is found
among the registered classifiers by the keys it matches) gives figures comparable across data sets.
A directory written by an earlier ``synthaug quality`` (``<out>/features``) reuses its network.

Images are resized to ``size`` (bilinear, antialiased) before the network; they are read in
batches from the lazily opened store, so memory does not grow with the store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from synthaug.errors import SynthaugError
from synthaug.kit.files import atomic_dir, file_hash, load_torch_file, save_torch_file, write_json
from synthaug.kit.state import keeps_state

#: The network trained on the store's real images when ``features`` names no other. A CLI-style
#: default (the one place outside cli/ and experiments/ that names a bundled plugin; docs/quality.md).
DEFAULT_NETWORK = "densenet121"
#: Its options: a quarter-width DenseNet-121 trains in seconds at 64 px on 2 cores.
DEFAULT_OPTIONS = {"width": 0.25}
#: Sides images are resized to: the trained default network, and ImageNet networks from a weights file.
TRAINED_SIZE, WEIGHTS_FILE_SIZE = 64, 224
WEIGHTS_FILE = "weights.pt"
INFO_FILE = "features.json"


@dataclass
class FeatureConfig:
    """How the default feature network is trained (ignored for a weights file or saved directory)."""

    size: int | None = None  # side images are resized to: 64 for a trained network, 224 for weights files
    # Few epochs on purpose: a network that has fitted its training images gives them features unlike
    # any new image's, and real training images would then look unlike real test images (the report's
    # reference row shows this bias; docs/quality.md).
    epochs: int = 2
    batch_size: int = 32
    lr: float = 1e-3
    max_images: int = 3000  # at most this many real training images (a class-stratified draw)
    seed: int = 0
    options: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_OPTIONS))


class FeatureNet:
    """A network and the rule that turns a batch of store images into feature vectors."""

    def __init__(self, model, *, network: str, size: int, source: str, info: dict[str, Any]):
        import torch

        self.model = model.eval()
        self.network, self.size, self.source, self.info = network, size, source, info
        self.linear = last_linear(model, network)
        self._captured: list = []
        self.linear.register_forward_pre_hook(lambda _m, args: self._captured.append(args[0]))
        self.dim = int(self.linear.in_features)
        self._torch = torch

    def __call__(self, images) -> np.ndarray:
        """Features ``(B, dim)`` of float images ``(B, C, H, W)`` in [0, 1] (torch or numpy)."""
        torch = self._torch
        x = torch.as_tensor(np.asarray(images, np.float32)) if not isinstance(images, torch.Tensor) else images.float()
        self._captured.clear()
        with torch.no_grad():
            self.model(resize(x, self.size))
        return self._captured[-1].flatten(1).double().numpy()

    def probabilities(self, images) -> np.ndarray:
        """Class probabilities ``(B, classes)`` of float images ``(B, C, H, W)``: for a network trained on the
        store's real images only (its classes are the store's; a weights file's are ImageNet's)."""
        torch = self._torch
        if "trained_on" not in self.info:
            raise SynthaugError(f"feature network {self.network} ({self.source}) was not trained on this data's "
                                f"classes; it gives no class probabilities")
        x = torch.as_tensor(np.asarray(images, np.float32)) if not isinstance(images, torch.Tensor) else images.float()
        with torch.no_grad():
            logits = self.model(resize(x, self.size))
        self._captured.clear()
        return torch.softmax(logits.double(), 1).numpy()

    def describe(self) -> dict[str, Any]:
        return {"network": self.network, "size": self.size, "dim": self.dim, "source": self.source, **self.info}

    def save(self, directory: str | Path) -> Path:
        """``weights.pt`` (a plain state dict) and ``features.json``: reusable as ``features=DIRECTORY``."""
        with atomic_dir(directory) as tmp:
            save_torch_file(self.model.state_dict(), tmp / WEIGHTS_FILE)
            write_json(tmp / INFO_FILE, self.describe())
        return Path(directory)


def last_linear(model, network: str):
    import torch

    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    if not linears:
        raise SynthaugError(f"classifier {network!r} has no linear layer whose input could serve as features")
    return linears[-1]


def resize(x, size: int):
    import torch.nn.functional as F

    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def batches(dataset, indices: Sequence[int], batch_size: int = 64) -> Iterable:
    """Float images ``(B, C, H, W)`` of ``indices`` read from a lazy store dataset, in order."""
    import torch

    indices = [int(i) for i in indices]
    for k in range(0, len(indices), batch_size):
        yield torch.stack([dataset[i][0] for i in indices[k:k + batch_size]])


# ---- making a FeatureNet ------------------------------------------------------------------------
@keeps_state
def feature_net(features: str | Path | FeatureNet | None, dataset, config: FeatureConfig | None = None) -> FeatureNet:
    """``features``: None or a registered classifier's name (trained on ``dataset``'s real images), a
    directory written by :meth:`FeatureNet.save`, or a torchvision-format weights file."""
    from synthaug.registry import get_registry

    config = config or FeatureConfig()
    if isinstance(features, FeatureNet):
        return same_channels(features, dataset, features.source)
    if features is None:
        features = DEFAULT_NETWORK
    path = Path(features)
    if path.is_dir():
        return same_channels(load_saved(path), dataset, str(path))
    if path.is_file():
        return from_weights_file(path, in_channels(dataset), config.size or WEIGHTS_FILE_SIZE)
    names = get_registry().names("classifier")
    if str(features) not in names:
        raise SynthaugError(f"features {str(features)!r}: expected a classifier name ({', '.join(names)}), a weights "
                            f"file or a directory saved by `synthaug quality`; no such file or classifier")
    options = config.options if str(features) == DEFAULT_NETWORK else {}
    return train_on_real(str(features), dataset, config, options)


def in_channels(dataset) -> int:
    return int(dataset.image_shape[0])


def same_channels(net: FeatureNet, dataset, where: str) -> FeatureNet:
    """``net``, refused in one line when it was built for another channel count than ``dataset``'s
    images (a network saved from a grey store cannot read a 4-channel one). Networks made here from a
    classifier name or a weights file are built for the store's own count (ImageNet weights adapted)."""
    taken = net.info.get("in_channels")
    if taken is not None and int(taken) != in_channels(dataset):
        raise SynthaugError(f"{where}: feature network {net.network!r} takes {taken}-channel images; "
                            f"{getattr(dataset, 'path', 'the store')} holds {in_channels(dataset)}-channel images")
    return net


def load_saved(directory: Path) -> FeatureNet:
    from synthaug.registry import get_registry

    info_path = directory / INFO_FILE
    if not info_path.is_file() or not (directory / WEIGHTS_FILE).is_file():
        raise SynthaugError(f"{directory}: not a saved feature network (expected {INFO_FILE} and {WEIGHTS_FILE})")
    try:
        info = json.loads(info_path.read_text())
        network, options = info["network"], dict(info.get("options", {}))
        channels, classes, size = int(info["in_channels"]), int(info["num_classes"]), int(info["size"])
    except (ValueError, KeyError, TypeError) as exc:
        raise SynthaugError(f"{info_path}: not a feature-network description ({exc})") from exc
    model = get_registry().create("classifier", network, **options).build(channels, classes)
    state = load_torch_file(directory / WEIGHTS_FILE, f"state dict of {network}")
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        first_line = str(exc).splitlines()[0][:160]
        raise SynthaugError(f"{directory / WEIGHTS_FILE}: does not hold {network}'s weights ({first_line})") from exc
    keep = {k: v for k, v in info.items() if k not in ("network", "size", "dim", "source")}
    return FeatureNet(model, network=network, size=size, source=info.get("source", str(directory)), info=keep)


def from_weights_file(path: Path, channels: int, size: int) -> FeatureNet:
    """The registered classifier whose layout the file fits best (all backbone tensors matched)."""
    from synthaug.registry import get_registry

    registry = get_registry()
    best = None
    for name in registry.names("classifier"):
        try:
            classifier = registry.create("classifier", name)
            model = classifier.build(channels, 1000)
            report = classifier.load_weights(model, path)
        except SynthaugError:
            continue
        if report.matched and not report.unexpected and (best is None or len(report.matched) > len(best[2].matched)):
            best = (name, model, report)
    if best is None:
        raise SynthaugError(f"{path}: its tensors fit no registered classifier's layout "
                            f"({', '.join(registry.names('classifier'))}); "
                            "expected torchvision-format ImageNet weights")
    name, model, report = best
    info = {"in_channels": channels, "num_classes": 1000, "options": {}, "weights_sha256": file_hash(path),
            "matched_tensors": len(report.matched)}
    return FeatureNet(model, network=name, size=size, source=str(path), info=info)


def train_on_real(network: str, dataset, config: FeatureConfig, options: dict[str, Any]) -> FeatureNet:
    """Train ``network`` to tell the classes apart on the real training images of ``dataset``, by the
    classifier loop's own epoch (:func:`synthaug.pipeline.train.train_epoch`) with a config of its own:
    Adam at ``lr``, no augmentation but the resize to ``size``, class-weighted cross-entropy, on the CPU."""
    import torch

    from synthaug.kit import progress
    from synthaug.kit.transfer import train_mode
    from synthaug.pipeline.train import Steps, TrainConfig, epoch_batches, stage_optimizer, train_epoch
    from synthaug.registry import get_registry

    real, labels, classes = real_rows(dataset, config)
    counts = np.bincount(labels[real], minlength=classes).astype(np.float64)
    weight = torch.tensor(np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / classes, 0.0),
                          dtype=torch.float32)
    size = config.size or TRAINED_SIZE
    recipe = TrainConfig(classifier=network, classifier_options=dict(options), epochs=config.epochs,
                         batch_size=config.batch_size, lr=config.lr, seed=config.seed, augment=False, device="cpu")
    steps = Steps(dataset, config.batch_size, torch.device("cpu"), augment=lambda x: resize(x, size),
                  class_weight=weight)
    # epochs numbered from 0 here (train's from 1): each epoch's order is what this network always drew
    epochs = [[b for b in epoch_batches(real, recipe, epoch) if len(b) > 1]  # BatchNorm needs two
              for epoch in range(config.epochs)]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        classifier = get_registry().create("classifier", network, **options)
        model = classifier.build(in_channels(dataset), classes)
        optimizer = stage_optimizer(model, classifier, recipe, "scratch")  # every parameter, at lr
        with progress.bar(f"feature network ({network}, real images)", sum(map(len, epochs))) as bar:
            for batches in epochs:
                train_mode(model)
                train_epoch(model, optimizer, batches, steps, bar)
    info = {"in_channels": in_channels(dataset), "num_classes": classes, "options": dict(options),
            "trained_on": {"images": int(real.size), "classes": list(dataset.class_names), "epochs": config.epochs,
                           "store": str(dataset.path), "seed": config.seed}}
    return FeatureNet(model, network=network, size=size, source="trained on the store's real training images",
                      info=info)


def real_rows(dataset, config: FeatureConfig) -> tuple[np.ndarray, np.ndarray, int]:
    """(the rows of the real training images the network trains on, every row's label, the class count):
    at most ``max_images``, a class-stratified draw (each class keeps its share) when there are more."""
    real = np.flatnonzero(np.asarray(dataset.synth) == "real")
    labels = np.asarray(dataset.labels)
    classes = len(dataset.class_names)
    if real.size == 0:
        raise SynthaugError(f"{dataset.path}: the training split has no real images to train a feature network on")
    rng = np.random.default_rng(config.seed)
    if real.size > config.max_images:  # class-stratified draw: each class keeps its share
        share = {c: max(1, round(config.max_images * np.mean(labels[real] == c))) for c in range(classes)}
        keep = np.concatenate([rng.permutation(real[labels[real] == c])[:share[c]]
                               for c in range(classes) if np.any(labels[real] == c)])
        real = np.sort(keep)
    return real, labels, classes
