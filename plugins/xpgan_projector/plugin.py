"""quan2021's XPGAN as a synthesizer and a projector, and the paper's DRR baseline synthesizer."""

from synthaug import hookimpl


@hookimpl
def register_synthesizers(register):
    register("xpgan", "synthaug_plugins.xpgan_projector.synthesizer:XPGANSynthesizer",
             summary="G(CT) of labeled CT volumes; CT encoder + StyleGAN2 decoder trained with D and C (quan2021)")
    register("drr", "synthaug_plugins.xpgan_projector.synthesizer:DRRSynthesizer",
             summary="siddon DRRs of labeled CT volumes in random poses (quan2021's DenseNet121 + DRR baseline)")


@hookimpl
def register_projectors(register):
    register("xpgan", "synthaug_plugins.xpgan_projector.projector:XPGANProjector",
             summary="a trained xpgan generator: CT -> CXR (option checkpoint=DIR)")
