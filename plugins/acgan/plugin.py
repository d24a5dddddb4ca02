"""Registers the ``acgan`` synthesizer; the torch code is imported only when the name is used."""

from synthaug import hookimpl


@hookimpl
def register_synthesizers(register):
    register("acgan", "synthaug_plugins.acgan.synthesizer:ACGAN",
             summary="CovidGAN (waheed2020): class-conditional ACGAN sampling new images of the rare class from noise")
