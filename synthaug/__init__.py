"""synthaug: balance imbalanced medical image sets by synthesizing the rare class.

Importing ``synthaug`` is cheap (no torch): the Python API below is loaded on first use.

    import synthaug
    data = synthaug.load_images("kaggle", "path/to/COVID-19 Radiography Database", size=64)
    store = synthaug.balance(data, synthesizer="augment", out="balanced.h5")
    train = synthaug.open_store("balanced.h5", split="train")   # a torch Dataset
"""

from __future__ import annotations

import importlib

import pluggy

from .errors import SynthaugError

__version__ = "0.1.0"

#: Decorator for plugin hook implementations (see ``synthaug.hookspecs``).
hookimpl = pluggy.HookimplMarker("synthaug")

_LAZY = {
    "ImageSet": "synthaug.data.imageset",
    "Volume": "synthaug.data.volumes",
    "VolumeSet": "synthaug.data.volumes",
    "load_images": "synthaug.data.sources",
    "load_volumes": "synthaug.data.sources",
    "split_test": "synthaug.data.split",
    "write_store": "synthaug.data.store",
    "read_store": "synthaug.data.store",
    "open_store": "synthaug.data.store",
    "balance": "synthaug.balancing",
    "plan_counts": "synthaug.balancing",
    "fit_synthesizer": "synthaug.balancing",
    "get_registry": "synthaug.registry",
    "register_plugin": "synthaug.registry",
}

__all__ = ["SynthaugError", "hookimpl", "__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'synthaug' has no attribute {name!r}")
