"""The whole plugin contract: four hooks, each called once, each registering named factories.

Hooks register, they don't do the work. A hook receives a ``register`` callable and calls it once
per thing it provides::

    register(name, factory, summary="one line for `synthaug plugins`")

``factory`` is either a class (or any callable returning the object) or, to keep start-up fast, a
string ``"package.module:ClassName"`` that is imported only when the name is first used. Heavy
imports (torch, MONAI, kornia, numba) belong in the module the string names, never in the module
holding the hook implementations.

A plugin is any module with functions named like the hooks below and decorated with
``synthaug.hookimpl``, advertised by an entry point in the group ``synthaug``::

    [project.entry-points.synthaug]
    my_plugin = "my_package.plugin"
"""

from __future__ import annotations

from typing import Callable

import pluggy

hookspec = pluggy.HookspecMarker("synthaug")
#: Decorator for plugin hook implementations (re-exported as ``synthaug.hookimpl``).
hookimpl = pluggy.HookimplMarker("synthaug")

#: ``register(name, factory, *, summary="")``: what every hook receives.
Register = Callable[..., None]


@hookspec
def register_synthesizers(register: Register) -> None:
    """Register :class:`synthaug.Synthesizer` factories.

    A synthesizer learns from the training split (``fit``) and then makes ``n`` new images of a
    target class (``generate``), e.g. ``duplicate``, ``augment``, ``pix2pix``, ``xpgan``, ``drr``.
    """


@hookspec
def register_projectors(register: Register) -> None:
    """Register :class:`synthaug.Projector` factories.

    A projector turns a CT volume (Hounsfield units, spacing, geometry) into a radiograph, e.g.
    ``siddon`` (exact ray traversal), ``parallel`` (mean along an axis), ``xpgan`` (a trained G).
    """


@hookspec
def register_classifiers(register: Register) -> None:
    """Register :class:`synthaug.Classifier` factories.

    A classifier builds a network for ``in_channels`` and ``num_classes`` and knows how to load
    local ImageNet weights; the core's training loop does the rest (``resnet50``, ``densenet121``).
    """


@hookspec
def register_datasets(register: Register) -> None:
    """Register :class:`synthaug.DatasetSource` factories.

    A dataset source turns a name (and usually a directory) into an ``ImageSet`` of radiographs
    and/or a ``VolumeSet`` of CT volumes, e.g. ``kaggle``, ``imagefolder``, ``h5``, ``mosmed``,
    ``nifti``, ``example-ct``, ``ctsim``.
    """
