"""Hooks only: registration is cheap, the synthesizer module is imported when `noise` is used."""

import synthaug


@synthaug.hookimpl
def register_synthesizers(register):
    register("noise", "synthaug_noise.synthesizer:Noise", summary="real images of the class plus Gaussian noise")
