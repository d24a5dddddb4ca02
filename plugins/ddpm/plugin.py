"""Registers the ``ddpm`` synthesizer; the torch code is imported only when the name is used."""

from synthaug import hookimpl


@hookimpl
def register_synthesizers(register):
    register("ddpm", "synthaug_plugins.ddpm.synthesizer:DDPM",
             summary="class-conditional diffusion (MONAI U-Net, DDIM sampling, classifier-free guidance) sampling "
                     "new images of the rare class from noise")
