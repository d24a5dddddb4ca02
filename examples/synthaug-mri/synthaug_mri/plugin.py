"""Hooks only: registration is cheap, the source and synthesizer modules are imported when used."""

import synthaug


@synthaug.hookimpl
def register_datasets(register):
    register("npy-slices", "synthaug_mri.source:NpySlices",
             summary="class folders of .npy MRI slices, (C, H, W) or (H, W, C), any number of sequences")


@synthaug.hookimpl
def register_synthesizers(register):
    register("mixup", "synthaug_mri.synthesizer:Mixup",
             summary="within-class mixup: a Beta-weighted blend of two real images of the class, any channels")
