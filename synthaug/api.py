"""The public Python calls that span several arrows, each a short composition of pipeline steps.

``synthaug.balance(data, synth, out=...)`` is plan -> fit (or load a fitted checkpoint) -> generate ->
write the store; ``synthaug.fit_synthesizer`` lives in :mod:`synthaug.pipeline.checkpoint`;
``train_and_evaluate`` is train -> evaluate, what ``synthaug train`` runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from synthaug.contract.interfaces import Synthesizer
from synthaug.contract.types import ImageSet, VolumeSet
from synthaug.errors import SynthaugError
from synthaug.kit import distributed
from synthaug.kit.device import resolve_device
from synthaug.pipeline import balance as balance_step
from synthaug.pipeline.checkpoint import load_fitted
from synthaug.pipeline.evaluate import evaluate
from synthaug.pipeline.split import DEFAULT_TEST_PER_CLASS, split_test
from synthaug.pipeline.store import read_store, write_store
from synthaug.pipeline.train import TrainConfig, train


def balance(data: ImageSet, synthesizer: str | Synthesizer | None, *, strategy: str | Mapping[str, int] = "auto",
            test_per_class: int = DEFAULT_TEST_PER_CLASS, seed: int = 0, out: str | Path | None = None,
            synth_options: Mapping[str, Any] | None = None, volumes: VolumeSet | None = None,
            synth_checkpoint: str | Path | None = None, work_dir: str | Path | None = None,
            source: Mapping[str, Any] | None = None,
            test_fraction: float | None = None, device: str | None = None) -> balance_step.BalanceResult:
    """Hold out ``test_per_class`` real images per class (or ``test_fraction`` of each class's, which
    then replaces ``test_per_class``), balance the rest, and write ``out`` (if given).

    ``synth_checkpoint``: a directory written by :func:`synthaug.fit_synthesizer` (fitted beside the same
    test split) used instead of fitting. ``device``: where the synthesizer fits and generates (``auto``,
    ``cpu``, ``cuda``, ``cuda:N``; None: its own, ``auto`` unless an option set it). See
    :func:`synthaug.pipeline.balance.balance` for the rest.
    """
    fitted = synth_checkpoint is not None
    if fitted:
        if synthesizer is None:
            raise SynthaugError(f"synth_checkpoint {str(synth_checkpoint)!r}: name the synthesizer it holds")
        if not isinstance(synthesizer, str):
            synthesizer = synthesizer.name
        _, test, _ = split_test(data, test_per_class, seed, fraction=test_fraction)
        synthesizer = load_fitted(synth_checkpoint, synthesizer, test)
    result = balance_step.balance(data, synthesizer, strategy=strategy, test_per_class=test_per_class, seed=seed,
                                  synth_options=synth_options, volumes=volumes, fitted=fitted, work_dir=work_dir,
                                  source=source, test_fraction=test_fraction, device=device)
    result.config["synth_checkpoint"] = str(synth_checkpoint) if fitted else None
    if out is None:  # no store: the balanced split is made now, in memory (by every process under torchrun)
        result._train = result.parts.in_memory()
        return result
    # streamed: one chunk of images in memory at a time
    made = result.parts.parts[1:]  # one Generated per class deficit
    world = None
    if distributed.processes() > 1:  # under torchrun: the chunks are shared out, rank 0 writes the store
        world = distributed.world(resolve_device(device or (made[0].synth.device if made else "cpu")).type)
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


def train_and_evaluate(data: str | Path, out: str | Path, config: TrainConfig | None = None, *,
                       resume: bool = False, **options: Any) -> dict[str, Any]:
    """Train into run directory ``out``, then measure its best checkpoint on the store's test split."""
    run = train(data, out, config, resume=resume, **options)
    return evaluate(run)
