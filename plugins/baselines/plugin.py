"""Baseline synthesizers of the papers: ``duplicate`` (liang2021's 8x duplication) and ``augment``."""

from synthaug import hookimpl


@hookimpl
def register_synthesizers(register):
    register("duplicate", "synthaug_plugins.baselines.synthesizers:Duplicate",
             summary="random duplication of real images of the class (liang2021's baseline)")
    register("augment", "synthaug_plugins.baselines.synthesizers:Augment",
             summary="albumentations: horizontal flip + rotation up to 5 degrees of real images")
