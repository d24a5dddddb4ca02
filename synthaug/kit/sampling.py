"""Drawing sources for synthetic images: each candidate once per round, rounds shuffled."""

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


from synthaug.contract.interfaces import CHUNK_IMAGES as CHUNK  # noqa: E402,F401  (re-exported)
from synthaug.contract.interfaces import chunk_rows, part_seed  # noqa: E402,F401
