"""Old module paths (synthaug 0.1's flat layout) as aliases of the layered core's modules.

A plugin written against ``from synthaug.interfaces import Synthesizer`` or
``from synthaug.data.imageset import ImageSet`` keeps working: importing an old name gives a module
whose attributes are looked up, in order, in the new modules that now hold them. New code imports
from the top-level ``synthaug`` package instead (docs/plugins.md).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types

#: old module -> the new modules that hold its names, searched in order.
MOVED: dict[str, tuple[str, ...]] = {
    "synthaug.hookspecs": ("synthaug.contract.hookspecs",),
    "synthaug.interfaces": ("synthaug.contract.interfaces", "synthaug.contract.types", "synthaug.contract.config"),
    "synthaug.data": (),
    "synthaug.data.imageset": ("synthaug.contract.types",),
    "synthaug.data.volumes": ("synthaug.contract.types", "synthaug.kit.volumes"),
    "synthaug.data.split": ("synthaug.pipeline.split",),
    "synthaug.data.store": ("synthaug.pipeline.store", "synthaug.kit.files"),
    "synthaug.data.sources": ("synthaug.pipeline.load",),
    "synthaug.imaging": ("synthaug.kit.xray",),
    "synthaug.progress": ("synthaug.kit.progress",),
    "synthaug.transfer": ("synthaug.kit.transfer",),
    "synthaug.metrics": ("synthaug.pipeline.metrics",),
    "synthaug.report": ("synthaug.pipeline.report",),
    "synthaug.project": ("synthaug.pipeline.project",),
    "synthaug.balancing": ("synthaug.api", "synthaug.pipeline.balance", "synthaug.pipeline.checkpoint"),
    "synthaug.train": ("synthaug.pipeline.train", "synthaug.pipeline.runs", "synthaug.kit.device", "synthaug.kit.files"),
    "synthaug.evaluation": ("synthaug.pipeline.evaluate", "synthaug.pipeline.runs"),
}


class _Alias(types.ModuleType):
    def __init__(self, name: str, targets: tuple[str, ...]):
        super().__init__(name, f"Moved: see {', '.join(targets) or 'synthaug'}.")
        self.__path__ = []  # a package, so that old sub-module paths resolve too
        self._targets = targets

    def __getattr__(self, attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)
        for target in self._targets:
            module = importlib.import_module(target)
            if hasattr(module, attr):
                return getattr(module, attr)
        raise AttributeError(f"module {self.__name__!r} has no attribute {attr!r}")


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname in MOVED:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        return _Alias(spec.name, MOVED[spec.name])

    def exec_module(self, module):
        pass


def install() -> None:
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.append(_Finder())
