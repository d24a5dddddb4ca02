"""Filtering synthetic images before they train anything (He et al. 2023; arXiv 2411.18602).

A classifier trained on the real training split (the experiment's quality feature network of the seed)
scores every candidate the synthesizer makes; a candidate is kept when it gives the intended class
at least ``confidence``, and, with ``copies = "drop"``, when it is no near-copy of a real training
image. Candidates are made in rounds until the class's deficit is met or ``cap`` candidates per wanted
image have been made; a class may then get fewer images than asked, and the record says how many were
made, kept and why the others were not.

Near-copy, here, uses the training images alone (never the test split): a candidate closer, in pixels
(``synthaug.assess.memorise``'s thumbnails, mirrors included), to a real training image than
``NEAR_PERCENTILE`` % of the real training images are to their nearest other training image.
Every kept image carries its scores as store extras: ``filter_score`` (the intended class's
probability) and ``filter_distance`` (to its nearest training image); real rows read 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np

from synthaug.contract.interfaces import DEFAULT_RUN, Synthesizer
from synthaug.contract.run import RunContext
from synthaug.contract.types import REAL, ImageSet
from synthaug.errors import SynthaugError

COPIES = ("drop", "keep")


@dataclass(frozen=True)
class Filter:
    confidence: float = 0.8  # the intended class's probability a candidate needs, in [0, 1]
    copies: str = "drop"  # "drop": near-copies of real training images are rejected; "keep": not checked
    cap: float = 4.0  # at most this many candidates per wanted image (>= 1)

    def __post_init__(self) -> None:
        if isinstance(self.confidence, bool) or not 0 <= self.confidence <= 1:
            raise SynthaugError(f"filter confidence must lie in [0, 1]; got {self.confidence!r}")
        if self.copies not in COPIES:
            raise SynthaugError(f"filter copies must be one of {', '.join(COPIES)}; got {self.copies!r}")
        if isinstance(self.cap, bool) or not self.cap >= 1:
            raise SynthaugError(f"filter cap must be at least 1 (candidates per wanted image); got {self.cap!r}")


def _thumbs(images: np.ndarray) -> np.ndarray:
    import torch

    from synthaug.assess.memorise import shrink

    return shrink(torch.as_tensor(np.asarray(images, np.float32)))


def copy_threshold(train: ImageSet) -> tuple[np.ndarray, np.ndarray, float]:
    """The real training images' thumbnails, their mirrors', and the near-copy distance: the
    ``NEAR_PERCENTILE`` percentile of each real training image's distance to its nearest *other* one.
    ``train`` may be lazy: its images are read a chunk at a time."""
    from synthaug.assess.memorise import NEAR_PERCENTILE
    from synthaug.contract.interfaces import chunk_rows

    parts, mirror_parts = [], []
    for rows in chunk_rows(len(train)):  # a chunk of full-size images in memory at a time, thumbnails kept
        block = np.asarray(train.images[np.arange(rows.start, rows.stop)], np.float32)
        parts.append(_thumbs(block))
        mirror_parts.append(_thumbs(block[..., ::-1].copy()))
    if not parts:
        return np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32), 0.0
    thumbs, mirrored = np.concatenate(parts), np.concatenate(mirror_parts)
    if len(thumbs) < 2:
        return thumbs, mirrored, 0.0
    from sklearn.neighbors import NearestNeighbors

    both = np.concatenate([thumbs, mirrored])
    distance, which = NearestNeighbors(n_neighbors=3, algorithm="brute").fit(both).kneighbors(thumbs)
    own = np.arange(len(thumbs))
    others = np.where((which % len(thumbs)) == own[:, None], np.inf, distance).min(1)  # itself and its mirror out
    rms = others / np.sqrt(thumbs.shape[1])
    return thumbs, mirrored, float(np.percentile(rms[np.isfinite(rms)], NEAR_PERCENTILE))


def filtered(synth: Synthesizer, train: ImageSet, deficits: dict[str, int], seed: int,
             probabilities: Callable[[np.ndarray], np.ndarray], rules: Filter,
             run: RunContext = DEFAULT_RUN) -> tuple[dict[str, ImageSet], dict[str, Any]]:
    """The kept images per class with a deficit (at most the deficit), and the record: per class how many
    were wanted, made and kept, and rejected for confidence or as near-copies."""
    from synthaug.assess.memorise import nearest
    from synthaug.pipeline.balance import class_seed

    real = train.subset(np.flatnonzero(train.synth == REAL))
    thumbs, mirrored, near = copy_threshold(real) if rules.copies == "drop" else (None, None, 0.0)
    kept: dict[str, ImageSet] = {}
    record: dict[str, Any] = {"rules": asdict(rules), "near_copy_distance": near, "classes": {}}
    for name, n in deficits.items():
        if n <= 0:
            continue
        c = train.class_index(name)
        parts, made, low, copies, rounds = [], 0, 0, 0, 0
        have = 0
        while have < n and made < rules.cap * n:
            ask = int(min(max(2 * (n - have), 8), np.ceil(rules.cap * n) - made))
            batch = synth.generate(train, name, ask, seed=int(np.random.SeedSequence(
                [class_seed(seed, c), 0xF17, rounds]).generate_state(1)[0]), run=run)
            made, rounds = made + len(batch), rounds + 1
            score = probabilities(np.asarray(batch.images, np.float32))[:, c]
            ok = score >= rules.confidence
            low += int((~ok).sum())
            distance = np.full(len(batch), np.nan)
            if thumbs is not None and len(thumbs):
                distance = nearest(_thumbs(batch.images), np.concatenate([thumbs, mirrored]), rms=True)[0]
                copy = ok & (distance < near)
                copies += int(copy.sum())
                ok &= ~copy
            keep = np.flatnonzero(ok)[:n - have]
            if len(keep):
                chosen = batch.subset(keep)
                chosen.extras.update(filter_score=score[keep].astype(np.float32),
                                     filter_distance=distance[keep].astype(np.float32))
                parts.append(chosen)
                have += len(keep)
        if parts:
            kept[name] = ImageSet.concat(parts)
        record["classes"][name] = {"wanted": int(n), "made": int(made), "kept": int(have),
                                   "below_confidence": low, "near_copies": copies, "rounds": rounds}
    return kept, record


class Prepared(Synthesizer):
    """Images made and chosen beforehand (:func:`filtered`), handed to ``balance`` as a synthesizer: it
    returns them, in order, under the name of the synthesizer that made them."""

    def __init__(self, images: dict[str, ImageSet], name: str):
        super().__init__()
        self.images, self.name = images, name
        self.accepted_channels = None

    def generate(self, train, target, n, *, seed, volumes=None, run: RunContext = DEFAULT_RUN) -> ImageSet:
        found = self.images.get(target)
        if found is None or len(found) < n:
            raise SynthaugError(f"{n} filtered {self.name} images of {target!r} asked for; "
                                f"{0 if found is None else len(found)} were kept")
        return found.subset(np.arange(n))
