"""Registers the ``pix2pix`` synthesizer; the torch code is imported only when the name is used."""

from synthaug import hookimpl


@hookimpl
def register_synthesizers(register):
    register("pix2pix", "synthaug_plugins.pix2pix_translator.synthesizer:Pix2Pix",
             summary="liang2021 cGAN: U-Net + PatchGAN translating normal radiographs into the target class")
