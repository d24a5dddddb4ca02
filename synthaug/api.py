"""The public Python calls that span several arrows, each a short composition of pipeline steps.

``synthaug.balance(data, synth, out=...)`` is plan -> fit (or load a fitted checkpoint) -> generate ->
write the store; ``synthaug.fit_synthesizer`` lives in :mod:`synthaug.pipeline.checkpoint`;
``train_and_evaluate`` is train -> evaluate, what ``synthaug train`` runs; ``synthaug.resample(X, y)`` is
imbalanced-learn's ``fit_resample`` for arrays in memory: balance (no test split held out) -> arrays.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from synthaug.contract.interfaces import Synthesizer
from synthaug.contract.types import ImageSet, VolumeSet
from synthaug.errors import SynthaugError
from synthaug.kit import distributed
from synthaug.kit.state import keeps_state
from synthaug.pipeline import balance as balance_step
from synthaug.pipeline.checkpoint import load_fitted
from synthaug.pipeline.evaluate import evaluate
from synthaug.pipeline.split import DEFAULT_TEST_PER_CLASS, split_test
from synthaug.pipeline.store import read_store, write_store
from synthaug.pipeline.train import TrainConfig, train


@keeps_state
def balance(data: ImageSet, synthesizer: str | Synthesizer | None, *, strategy: str | Mapping[str, int] = "auto",
            test_per_class: int = DEFAULT_TEST_PER_CLASS, seed: int = 0, out: str | Path | None = None,
            synth_options: Mapping[str, Any] | None = None, volumes: VolumeSet | None = None,
            synth_checkpoint: str | Path | None = None, work_dir: str | Path | None = None,
            source: Mapping[str, Any] | None = None,
            test_fraction: float | None = None, device: str | None = None,
            fill: str | None = None) -> balance_step.BalanceResult:
    """Hold out ``test_per_class`` real images per class (or ``test_fraction`` of each class's, which
    then replaces ``test_per_class``), balance the rest, and write ``out`` (if given).

    ``synth_checkpoint``: a directory written by :func:`synthaug.fit_synthesizer` (fitted beside the same
    test split) used instead of fitting; ``synth_options`` may then set its sampling options
    (ddpm's ``guidance``, ``steps``), and any other option only to the fitted value. ``device``:
    where the synthesizer fits and generates (``auto``, ``cpu``, ``cuda``, ``cuda:N``; None: its own,
    ``auto`` unless an option set it). ``fill``: a classical synthesizer balancing every class first,
    with ``strategy=Share(ratio=r)`` adding ``synthesizer``'s images on top. See
    :func:`synthaug.pipeline.balance.balance` for the rest.
    """
    run = balance_step.run_context(seed=seed, device=device, work_dir=work_dir)
    fitted = synth_checkpoint is not None
    if fitted:
        if synthesizer is None:
            raise SynthaugError(f"synth_checkpoint {str(synth_checkpoint)!r}: name the synthesizer it holds")
        if not isinstance(synthesizer, str):
            synthesizer = synthesizer.name
        _, test, _ = split_test(data, test_per_class, seed, fraction=test_fraction)
        synthesizer = load_fitted(synth_checkpoint, synthesizer, test).with_sampling_options(synth_options or {})
        synth_options = None
    result = balance_step.balance(data, synthesizer, strategy=strategy, test_per_class=test_per_class,
                                  synth_options=synth_options, volumes=volumes, fitted=fitted, source=source,
                                  test_fraction=test_fraction, run=run, fill=fill)
    result.config["synth_checkpoint"] = str(synth_checkpoint) if fitted else None
    if out is None:  # no store: the balanced split is made now, in memory (by every process under torchrun)
        result._train = result.parts.in_memory()
        return result
    # streamed: one chunk of images in memory at a time
    made = result.parts.parts[1:]  # one Generated per class deficit
    world = None
    if run.distributed:  # under torchrun: the chunks are shared out, rank 0 writes the store
        world = distributed.world_of(run)
        for part in made:
            part.world = world
    if world is None or world.main:
        result.path = write_store(out, {"train": result.parts, "test": result.test}, result.config)
    else:
        for part in made:
            for _ in part.chunks():  # this process's share of the synthetic images, sent to rank 0
                pass
        result.path = Path(out)
    if world is not None:
        world.barrier()  # the store is complete before any process reads it
    result._train = read_store(result.path, "train", lazy=True)
    return result


@keeps_state
def train_and_evaluate(data: str | Path, out: str | Path, config: TrainConfig | None = None, *,
                       resume: bool = False, **options: Any) -> dict[str, Any]:
    """Train into run directory ``out``, then measure its best checkpoint on the store's test split."""
    run = train(data, out, config, resume=resume, **options)
    return evaluate(run)


#: What ``resample`` takes besides float images in [0, 1]: integer images, scaled by their bit depth's maximum.
_INTEGER_IMAGES = {np.dtype(np.uint8): 8, np.dtype(np.uint16): 16}


@keeps_state
def resample(X: Any, y: Any, synth: str | Synthesizer = "augment",
             sampling_strategy: str | float | Mapping[Any, int] = "auto",
             seed: int = 0, synth_options: Mapping[str, Any] | None = None,
             device: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """imbalanced-learn's ``fit_resample`` for images already in memory: ``(X_res, y_res)``, the images
    of ``X`` first, in order, then the synthetic ones ``synth`` made, class after class.

    ``X``: float ``(N, C, H, W)`` or ``(N, H, W)`` in [0, 1], or uint8 (uint16) images, divided by 255
    (65535); ``X_res`` is float32 in the layout given (synthetic images of integer input lie on the same
    ``k / 255`` grid). ``y``: integer or string labels; ``y_res`` has the same kind. No test split is
    held out: ``X`` is taken to be the caller's own training data, and all of it is balanced and
    returned. ``sampling_strategy``: the values of :func:`balance`'s ``strategy`` (``"auto"``,
    ``"minority"``, ``"not minority"``, ``"not majority"``, ``"all"``, ``"none"``, ``"per-source"``, a
    float in (0, 1] for a binary task: the minority/majority ratio wanted, as imbalanced-learn takes it,
    or a dict of final counts keyed by label; a final count below a class's count drops that many of its
    images, so only the rest come first).

    ``X_res`` has the dtype of ``X``, as ``fit_resample`` returns: float images come back float32, uint8
    (uint16) images uint8 (uint16), the real ones byte for byte and the synthetic ones rounded to the
    same grid.
    """
    given = np.asarray(X).dtype
    data, classes, flat = _image_set_from_arrays(X, y)
    if isinstance(sampling_strategy, Mapping):
        sampling_strategy = {str(label): count for label, count in sampling_strategy.items()}
    result = balance_step.balance(data, synth, strategy=sampling_strategy, test_per_class=0, seed=seed,
                                  synth_options=synth_options, device=device)
    balanced = result.parts.in_memory()
    images = np.asarray(balanced.images, np.float32)
    depth = _INTEGER_IMAGES.get(given)
    if depth is not None:  # k / (2^depth - 1) back to k: exact for the real images
        images = np.rint(np.clip(images, 0, 1) * np.float32((1 << depth) - 1)).astype(given)
    return (images[:, 0] if flat else images), classes[balanced.labels]


def _image_set_from_arrays(X: Any, y: Any) -> tuple[ImageSet, np.ndarray, bool]:
    """``(ImageSet, the sorted distinct labels, whether X was (N, H, W))``; each image its own patient."""
    images, labels = np.asarray(X), np.asarray(y)
    if images.ndim not in (3, 4) or not len(images):
        raise SynthaugError(f"X: expected images (N, C, H, W) or (N, H, W) with N >= 1; got shape {images.shape}")
    if labels.shape != (len(images),):
        raise SynthaugError(f"y: expected {len(images)} labels, one per image of X; got shape {labels.shape}")
    if labels.dtype.kind not in "iuUO" or (labels.dtype.kind == "O" and not all(isinstance(v, str) for v in labels)):
        raise SynthaugError(f"y: expected integer or string labels; got {labels.dtype}")
    depth = _INTEGER_IMAGES.get(images.dtype)
    if depth is not None:
        images = images.astype(np.float32) / np.float32((1 << depth) - 1)
    elif images.dtype.kind != "f":
        raise SynthaugError(f"X: expected float images in [0, 1], uint8 or uint16; got {images.dtype}")
    else:
        images = images.astype(np.float32)
        low, high = float(np.min(images)), float(np.max(images))
        if not (0.0 <= low and high <= 1.0):  # NaN fails both comparisons
            raise SynthaugError(f"X: float images must lie in [0, 1]; got values from {low} to {high}")
    flat = images.ndim == 3
    if flat:
        images = images[:, None]
    classes, index = np.unique(labels, return_inverse=True)
    ids = [str(i) for i in range(len(images))]
    data = ImageSet(images, index.reshape(-1), tuple(str(c) for c in classes), ids, origin=[f"X[{i}]" for i in ids],
                    meta={"source": "arrays", **({"bit_depth": depth} if depth else {})})
    return data, classes, flat
