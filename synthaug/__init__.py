"""synthaug: balance imbalanced medical image sets by synthesizing the rare class.

Importing ``synthaug`` is cheap (no torch): the Python API below is loaded on first use.

    import synthaug
    data = synthaug.load_images("kaggle", "path/to/COVID-19 Radiography Database", size=64)
    store = synthaug.balance(data, "augment", out="balanced.h5")
    train = synthaug.open_store("balanced.h5", split="train")   # a torch Dataset (as_dict=True: MONAI dicts)
    synthaug.export_store("balanced.h5", "balanced-png")         # class folders of PNGs + provenance.csv
    X_res, y_res = synthaug.resample(X, y, "augment")             # imbalanced-learn's fit_resample, in memory

Plugin authors import everything from here: ``hookimpl``, ``Synthesizer``, ``Projector``,
``Classifier``, ``DatasetSource``, ``ImageSet``, ``Volume``, ``VolumeSet``, ``Geometry``,
``SourceOptions``, ``WeightsReport``, ``RunContext``, ``DEFAULT_RUN``, ``SynthaugError``
(docs/plugins.md); a synthesizer that trains networks builds on ``synthaug.kit.trainable``.
"""

from __future__ import annotations

import importlib

from synthaug.contract.hookspecs import hookimpl
from synthaug.errors import SynthaugError
from synthaug.version import __version__

_LAZY = {
    # the plugin contract (numpy only)
    "Synthesizer": "synthaug.contract.interfaces",
    "Projector": "synthaug.contract.interfaces",
    "Classifier": "synthaug.contract.interfaces",
    "DatasetSource": "synthaug.contract.interfaces",
    "ImageSet": "synthaug.contract.types",
    "LazyImages": "synthaug.contract.types",
    "Volume": "synthaug.contract.types",
    "VolumeSet": "synthaug.contract.types",
    "Geometry": "synthaug.contract.types",
    "SourceOptions": "synthaug.contract.types",
    "WeightsReport": "synthaug.contract.types",
    "RunContext": "synthaug.contract.run",
    "DEFAULT_RUN": "synthaug.contract.interfaces",
    # the pipeline
    "load_images": "synthaug.pipeline.load",
    "load_volumes": "synthaug.pipeline.load",
    "split_test": "synthaug.pipeline.split",
    "plan_counts": "synthaug.pipeline.balance",
    "Share": "synthaug.pipeline.balance",
    "write_store": "synthaug.pipeline.store",
    "read_store": "synthaug.pipeline.store",
    "store_info": "synthaug.pipeline.store",
    "open_store": "synthaug.pipeline.store",
    "export_store": "synthaug.pipeline.export",
    "fit_synthesizer": "synthaug.pipeline.checkpoint",
    "train": "synthaug.pipeline.train",
    "evaluate": "synthaug.pipeline.evaluate",
    "project": "synthaug.pipeline.project",
    "balance": "synthaug.api",
    "train_and_evaluate": "synthaug.api",
    "resample": "synthaug.api",
    "quality": "synthaug.assess.run",
    "get_registry": "synthaug.registry",
    "register_plugin": "synthaug.registry",
}

__all__ = ["SynthaugError", "hookimpl", "__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'synthaug' has no attribute {name!r}")
