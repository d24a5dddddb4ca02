"""Helpers for the xpgan tests: a small CNN classifier plugin and chest-like CT phantoms.

The small CNN is C in the few-step objective test: with DenseNet-121 (batch norm, lr 0.002) the
first handful of joint steps are chaotic, so whether R(G) has fallen after 8 steps depends on the
initialisation; ``benchmarks/xpgan_figure.py`` shows R(G) falling with densenet121 over 64 steps.
"""

from __future__ import annotations

import numpy as np
import pytest

import synthaug
from synthaug.contract.interfaces import Classifier
from synthaug.contract.types import WeightsReport


class SmallCNN(Classifier):
    """Two conv layers and a linear head: enough to be trained jointly in a few CPU steps."""

    name = "xpgan-test-cnn"

    def build(self, in_channels, num_classes):
        from torch import nn

        return nn.Sequential(nn.Conv2d(in_channels, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                             nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                             nn.Flatten(), nn.Linear(16, num_classes))

    def load_weights(self, model, path):
        return WeightsReport(str(path))


class _Plugin:
    @synthaug.hookimpl
    def register_classifiers(self, register):
        register(SmallCNN.name, SmallCNN, summary="xpgan tests: a small CNN")


def register_small_classifier() -> str:
    from synthaug.registry import get_registry

    registry = get_registry()
    if SmallCNN.name not in registry.names("classifier"):
        registry.add_plugin(_Plugin(), "xpgan-test-plugin")
    return SmallCNN.name


@pytest.fixture(autouse=True)
def small_cnn():
    """The small CNN, registered after conftest's per-test registry reset (import this fixture)."""
    return register_small_classifier()


@pytest.fixture(scope="module")
def ctsim():
    """ctsim's tiny preset: 28 radiographs at 32 px (covid 2, normal 13, viral 13) and their 32x32x16 CTs."""
    return synthaug.load_images("ctsim", preset="tiny"), synthaug.load_volumes("ctsim", preset="tiny")


def phantom_hu(shape=(32, 32, 16), lesion: bool = False, seed: int = 0) -> np.ndarray:
    """A chest-like phantom: soft-tissue ellipse, two air lungs, a bony spine; a dense lesion if asked."""
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    hu = np.full(shape, -1000.0, np.float32)
    body = (x / 0.9) ** 2 + (y / 0.7) ** 2 < 1
    hu[body] = 40.0
    for side in (-0.4, 0.4):
        hu[((x - side) / 0.3) ** 2 + (y / 0.45) ** 2 + (z / 0.9) ** 2 < 1] = -850.0
    hu[(x / 0.1) ** 2 + ((y + 0.5) / 0.1) ** 2 < 1] = 700.0
    if lesion:
        hu[((x - 0.4) / 0.15) ** 2 + (y / 0.2) ** 2 + ((z - 0.2) / 0.3) ** 2 < 1] = -100.0
    return hu + rng.normal(0, 10, shape).astype(np.float32)
