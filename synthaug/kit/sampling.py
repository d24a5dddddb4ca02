"""Drawing sources for synthetic images: each candidate once per round, rounds shuffled; the ImageSet of
images sampled from noise."""

from __future__ import annotations

import numpy as np

from synthaug.errors import SynthaugError


def each_once_per_round(candidates: np.ndarray, n: int, rng: np.random.Generator, what: str = "images") -> np.ndarray:
    """``n`` picks from ``candidates``: every candidate is used once before any is used twice.

    Why rounds and not ``rng.choice``: with replacement, a class of 200 images topped up by 200 would
    leave about 74 of them unused and copy others three times; rounds spread the copies evenly.
    """
    candidates = np.asarray(candidates)
    if n <= 0:
        return candidates[:0]
    if len(candidates) == 0:
        raise SynthaugError(f"no {what} to draw from")
    rounds = -(-n // len(candidates))
    return np.concatenate([rng.permutation(candidates) for _ in range(rounds)])[:n]


def from_noise(train, target: str, images: np.ndarray, rows: slice, synthesizer: str, origin: str,
               checkpoint: str):
    """Images ``rows`` of a class ``target`` that a synthesizer sampled from noise, as the ImageSet its
    ``generate_part`` returns: no source image (``source_index`` -1), each named ``"<origin> <row>"``,
    and the sampling network's hash (its first 16 hex digits) as the extra ``checkpoint``."""
    from synthaug.contract.types import ImageSet

    k = len(images)
    return ImageSet(images, np.full(k, train.class_index(target)), train.class_names, np.full(k, synthesizer),
                    origin=[f"{origin} {i}" for i in range(rows.start, rows.stop)], source_index=np.full(k, -1),
                    extras={"checkpoint": np.full(k, checkpoint[:16].encode(), dtype="S16")})


from synthaug.contract.interfaces import CHUNK_IMAGES as CHUNK  # noqa: E402,F401  (re-exported)
from synthaug.contract.interfaces import chunk_rows, part_seed  # noqa: E402,F401
