"""Tiny synthetic stores and torchvision-format weight files for the classifier tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from synthaug.contract.types import ImageSet
from synthaug.pipeline.store import write_store


def shapes(n_per_class: int, size: int = 32, channels: int = 1, seed: int = 0,
           classes=("covid", "normal")) -> ImageSet:
    """An easy two-class set: a bright disc (class 0) or a bright horizontal bar (class 1) on noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    images, labels = [], []
    for label in range(2):
        for _ in range(n_per_class):
            cy, cx = rng.uniform(size * 0.3, size * 0.7, 2)
            if label == 0:
                shape = (yy - cy) ** 2 + (xx - cx) ** 2 <= (size * rng.uniform(0.15, 0.25)) ** 2
            else:
                shape = (np.abs(yy - cy) <= size * 0.06) & (np.abs(xx - cx) <= size * rng.uniform(0.3, 0.45))
            image = 0.2 + 0.1 * rng.standard_normal((size, size)) + 0.6 * shape
            images.append(np.repeat(np.clip(image, 0, 1)[None], channels, axis=0))
            labels.append(label)
    n = len(labels)
    return ImageSet(np.stack(images), np.array(labels), classes, [f"p{i}" for i in range(n)])


def shapes_store(path: Path, n_train: int = 8, n_test: int = 4, **kwargs) -> Path:
    """A store with train and test splits of :func:`shapes` (different seeds)."""
    seed = kwargs.pop("seed", 0)
    return write_store(path, {"train": shapes(n_train, seed=seed, **kwargs),
                              "test": shapes(n_test, seed=seed + 1000, **kwargs)})


# ---- torchvision key layouts of the standard ImageNet networks, written out independently -------
def _bn(prefix: str, channels: int, with_counter: bool = True) -> dict:
    keys = {f"{prefix}.weight": (channels,), f"{prefix}.bias": (channels,),
            f"{prefix}.running_mean": (channels,), f"{prefix}.running_var": (channels,)}
    if with_counter:
        keys[f"{prefix}.num_batches_tracked"] = ()
    return keys


def torchvision_resnet50_shapes() -> dict:
    """Key -> shape of torchvision's ``resnet50()`` state dict (ResNet v1.5)."""
    shapes = {"conv1.weight": (64, 3, 7, 7), **_bn("bn1", 64)}
    in_ch = 64
    for layer, (blocks, planes) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512)), start=1):
        for b in range(blocks):
            p = f"layer{layer}.{b}"
            shapes[f"{p}.conv1.weight"] = (planes, in_ch, 1, 1)
            shapes.update(_bn(f"{p}.bn1", planes))
            shapes[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
            shapes.update(_bn(f"{p}.bn2", planes))
            shapes[f"{p}.conv3.weight"] = (planes * 4, planes, 1, 1)
            shapes.update(_bn(f"{p}.bn3", planes * 4))
            if b == 0:
                shapes[f"{p}.downsample.0.weight"] = (planes * 4, in_ch, 1, 1)
                shapes.update(_bn(f"{p}.downsample.1", planes * 4))
            in_ch = planes * 4
    shapes["fc.weight"], shapes["fc.bias"] = (1000, 2048), (1000,)
    return shapes


def torchvision_densenet121_shapes(old_style: bool = False) -> dict:
    """Key -> shape of torchvision's ``densenet121()`` state dict; ``old_style``: ``norm.1`` names, no counters."""
    counter = not old_style
    shapes = {"features.conv0.weight": (64, 3, 7, 7), **_bn("features.norm0", 64, counter)}
    ch = 64
    for block, layers in enumerate((6, 12, 24, 16), start=1):
        for i in range(1, layers + 1):
            p = f"features.denseblock{block}.denselayer{i}"
            n1, c1, n2, c2 = (("norm.1", "conv.1", "norm.2", "conv.2") if old_style
                              else ("norm1", "conv1", "norm2", "conv2"))
            shapes.update(_bn(f"{p}.{n1}", ch, counter))
            shapes[f"{p}.{c1}.weight"] = (128, ch, 1, 1)
            shapes.update(_bn(f"{p}.{n2}", 128, counter))
            shapes[f"{p}.{c2}.weight"] = (32, 128, 3, 3)
            ch += 32
        if block < 4:
            shapes.update(_bn(f"features.transition{block}.norm", ch, counter))
            shapes[f"features.transition{block}.conv.weight"] = (ch // 2, ch, 1, 1)
            ch //= 2
    shapes.update(_bn("features.norm5", ch, counter))
    shapes["classifier.weight"], shapes["classifier.bias"] = (1000, 1024), (1000,)
    return shapes


def write_state_dict(path: Path, shapes: dict, seed: int = 0) -> dict:
    """Random tensors of the given shapes saved with ``torch.save``; returns the dict."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=generator) + 0.5
        else:
            state[key] = torch.randn(shape, generator=generator) * 0.05
    torch.save(state, path)
    return state
