"""Projector ``xpgan``: a CXR rendered from a CT by a trained G (``--checkpoint DIR`` from ``xpgan`` fit)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synthaug import Projector, SynthaugError

from . import ctprep


@dataclass
class XPGANProjectorConfig:
    checkpoint: str | None = None  # directory written by the xpgan synthesizer's save() (synth checkpoint)
    seed: int = 0  # seed of G's per-layer noise


class XPGANProjector(Projector):
    """G(CT): the volume is posed by ``geometry.pose``, resized to G's encoder grid and HU-normalised;
    the output is resized to the geometry's detector size. Other geometry fields do not apply: G has
    learned one view."""

    name = "xpgan"
    Config = XPGANProjectorConfig

    def __init__(self, config=None, **options):
        super().__init__(config, **options)
        if not self.config.checkpoint:
            raise SynthaugError("projector 'xpgan' needs a trained generator: pass --checkpoint DIR "
                                "(a directory written by synthaug.balancing.fit_synthesizer(data, 'xpgan', DIR, ...))")
        from .synthesizer import XPGANSynthesizer

        self.synthesizer = XPGANSynthesizer.load(self.config.checkpoint, with_classifier=False)

    def project(self, volume, geometry=None, *, mode="radiograph"):
        from .synthesizer import fit_to

        if mode != "radiograph":
            raise SynthaugError(f"projector 'xpgan' makes radiographs only; got mode={mode!r}")
        synth = self.synthesizer
        net = synth.generator.config
        posed = volume if geometry is None else ctprep.pose_volume(volume, geometry.pose)
        posed = ctprep.working_volume(posed, net.image_size, net.volume_shape)
        image = synth.render(ctprep.encoder_input(posed, net.volume_shape, synth.config.hu_window)[None],
                             self.config.seed)
        height, width = (geometry.height, geometry.width) if geometry is not None else (net.image_size,) * 2
        return fit_to(image, (1, height, width))[0].astype(np.float32)
