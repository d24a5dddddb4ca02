"""``duplicate`` and ``augment``: new images of a class made from that class's own real images."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synthaug import DEFAULT_RUN, ImageSet, SynthaugError, Synthesizer
from synthaug.kit.sampling import each_once_per_round, part_seed


class _FromOwnClass(Synthesizer):
    accepted_channels = None  # copies, flips and rotations treat every channel alike: any count
    reads_lazily = True  # sources are read a chunk at a time (train.images[idx])
    splits_generation = True  # any chunk is made from the seed and its rows alone (generate_part)

    def generate(self, train, target, n, *, seed, volumes=None, run=DEFAULT_RUN):
        return ImageSet.concat(list(self.generate_chunks(train, target, n, seed=seed, volumes=volumes, run=run)))

    def check(self, train, deficits, volumes=None, *, run=DEFAULT_RUN):
        super().check(train, deficits, volumes, run=run)
        for target, n in deficits.items():
            if n > 0 and train.counts(synthetic=False)[target] == 0:
                raise SynthaugError(f"synthesizer {self.name!r} needs real images of class {target!r}; "
                                    f"the training split has none")

    def _sources(self, train: ImageSet, target: str, n: int, rng) -> np.ndarray:
        own = np.flatnonzero((train.labels == train.class_index(target)) & (train.synth == "real"))
        return each_once_per_round(own, n, rng, f"real {target!r} images")

    def _result(self, train: ImageSet, images: np.ndarray, idx: np.ndarray) -> ImageSet:
        return ImageSet(images, train.labels[idx], train.class_names, train.patient_ids[idx],
                        origin=train.origin[idx], source_index=idx)


class Duplicate(_FromOwnClass):
    """Exact copies of real images of the class, each used once per round."""

    name = "duplicate"

    def generate_part(self, train, target, n, *, seed, rows, volumes=None, run=DEFAULT_RUN):
        idx = self._sources(train, target, n, np.random.default_rng(seed))[rows]
        return self._result(train, np.array(train.images[idx], np.float32), idx)


@dataclass
class AugmentConfig:
    """liang2021's augmentation: a random horizontal flip and a random rotation of up to 5 degrees."""

    flip_p: float = 0.5  # probability of a horizontal flip
    max_rotation: float = 5.0  # degrees, uniform in [-max, +max]


class Augment(_FromOwnClass):
    """Real images of the class, flipped and rotated with albumentations."""

    name = "augment"
    Config = AugmentConfig

    def generate_part(self, train, target, n, *, seed, rows, volumes=None, run=DEFAULT_RUN):
        import albumentations as A
        import cv2

        rng = np.random.default_rng(seed)
        idx = self._sources(train, target, n, rng)[rows]
        if rows.start:  # the first chunk goes on with the sources' stream; the others start their own
            rng = np.random.default_rng(part_seed(seed, rows))
        pipeline = A.Compose([
            A.HorizontalFlip(p=self.config.flip_p),
            A.Rotate(limit=self.config.max_rotation, border_mode=cv2.BORDER_REFLECT_101, p=1.0),
        ], seed=int(rng.integers(2**31)))
        sources = train.images[idx]
        out = np.empty(sources.shape, np.float32)
        for k, image in enumerate(sources):
            hwc = np.ascontiguousarray(image.transpose(1, 2, 0))
            out[k] = np.clip(pipeline(image=hwc)["image"].reshape(hwc.shape), 0, 1).transpose(2, 0, 1)
        return self._result(train, out, idx)
