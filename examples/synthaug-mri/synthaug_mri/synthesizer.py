"""``mixup``: new images of a class as Beta-weighted blends of two of its real images (Zhang et al.'s
mixup, kept within one class so the label stays true). A weighted sum treats every channel alike, so
it takes any channel count: grey radiographs, RGB, or the sequences of an MRI slice."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synthaug import DEFAULT_RUN, ImageSet, SynthaugError, Synthesizer


@dataclass
class MixupConfig:
    alpha: float = 0.4  # the blend weight is drawn from Beta(alpha, alpha): small alpha stays near one source

    def __post_init__(self) -> None:
        if not self.alpha > 0:
            raise SynthaugError(f"mixup alpha must be > 0; got {self.alpha}")


class Mixup(Synthesizer):
    name = "mixup"
    Config = MixupConfig
    accepted_channels = None  # any channel count
    reads_lazily = True  # reads only the two sources of each new image (train.images[idx])

    def check(self, train, deficits, volumes=None, *, run=DEFAULT_RUN):
        super().check(train, deficits, volumes, run=run)
        real = train.counts(synthetic=False)
        for target, n in deficits.items():
            if n > 0 and real[target] < 2:
                raise SynthaugError(f"synthesizer 'mixup' blends two real {target!r} images; the training split "
                                    f"has {real[target]}")

    def generate(self, train, target, n, *, seed, volumes=None, run=DEFAULT_RUN):
        rng = np.random.default_rng(seed)
        own = np.flatnonzero((train.labels == train.class_index(target)) & (train.synth == "real"))
        if len(own) < 2:
            raise SynthaugError(f"synthesizer 'mixup' blends two real {target!r} images; "
                                f"the training split has {len(own)}")
        first = rng.integers(0, len(own), n)
        second = (first + rng.integers(1, len(own), n)) % len(own)  # always another image of the class
        weight = rng.beta(self.config.alpha, self.config.alpha, n)
        weight = np.maximum(weight, 1.0 - weight)[:, None, None, None]  # the first image dominates: its provenance
        first, second = own[first], own[second]
        blend = (weight * np.asarray(train.images[first], np.float64)
                 + (1 - weight) * np.asarray(train.images[second], np.float64))
        return ImageSet(np.clip(blend, 0, 1).astype(np.float32), train.labels[first], train.class_names,
                        train.patient_ids[first], origin=train.origin[first], source_index=first)
