"""A complete synthesizer in a few lines: copies of real images of the class with Gaussian noise."""

from dataclasses import dataclass

import numpy as np

from synthaug import DEFAULT_RUN, ImageSet, Synthesizer


@dataclass
class NoiseConfig:
    sigma: float = 0.05  # standard deviation of the added noise, in image units ([0, 1])


class Noise(Synthesizer):
    name = "noise"
    Config = NoiseConfig

    def generate(self, train, target, n, *, seed, volumes=None, run=DEFAULT_RUN):
        rng = np.random.default_rng(seed)
        own = np.flatnonzero(train.labels == train.class_index(target))
        idx = rng.choice(own, size=n, replace=True)
        noisy = np.clip(train.images[idx] + rng.normal(0, self.config.sigma, train.images[idx].shape), 0, 1)
        return ImageSet(noisy.astype(np.float32), train.labels[idx], train.class_names, train.patient_ids[idx],
                        origin=train.origin[idx], source_index=idx)
