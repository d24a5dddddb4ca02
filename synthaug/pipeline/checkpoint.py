"""The fitted-synthesizer directory: the one owner of what ``synthaug fit`` writes and ``--synth-checkpoint`` reads.

Layout::

    synthesizer.json   name and config (written by the plugin's ``save``), plus whatever it adds
    ...                the plugin's own files (weights, sample grids)
    split.json         the test split it was fitted beside (seed, images per class or fraction, test origins)
    source.json        the data source it was fitted on (written by the CLI)
    measures.json      held-out measures, when the synthesizer offers them

The directory is written under a temporary name and renamed when complete. Resumable training state
lives in a separate work directory (default ``OUT.work``), kept while a fit is interrupted and removed
after it succeeds, so a finished checkpoint holds no optimizer state.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Mapping

from synthaug.contract.interfaces import Synthesizer, check_channels
from synthaug.contract.run import RunContext
from synthaug.contract.types import ImageSet, VolumeSet
from synthaug.errors import SynthaugError
from synthaug.kit import distributed
from synthaug.kit.files import atomic_dir, write_json
from synthaug.kit.state import keeps_state
from synthaug.pipeline.balance import data_for, plan, resolve_synthesizer, run_context
from synthaug.pipeline.split import DEFAULT_TEST_PER_CLASS, SplitReport
from synthaug.registry import get_registry

SPLIT_FILE = "split.json"


def default_work_dir(out_dir: str | Path) -> Path:
    out_dir = Path(out_dir)
    return out_dir.with_name(out_dir.name + ".work")


def split_fingerprint(test: ImageSet, report: SplitReport) -> dict[str, Any]:
    """What ``split.json`` records: the test images (compared) and how the split was asked for (shown)."""
    return {"per_class": report.per_class, "fraction": report.fraction, "seed": report.seed,
            "test_origins": test_origins(test)}


def test_origins(test: ImageSet) -> list[str]:
    """What identifies a test split: the sorted origins of its images."""
    return sorted(map(str, test.origin))


def _split_words(saved: Mapping[str, Any]) -> str:
    """``seed 0, 60 per class`` or ``seed 0, fraction 0.2``, as a saved fingerprint states it."""
    fraction = saved.get("fraction")
    size = f"fraction {fraction}" if fraction is not None else f"{saved.get('per_class')} per class"
    return f"seed {saved.get('seed')}, {size}"


@keeps_state
def fit_synthesizer(data: ImageSet, synthesizer: str | Synthesizer, out_dir: str | Path, *,
                    test_per_class: int = DEFAULT_TEST_PER_CLASS, seed: int = 0,
                    synth_options: Mapping[str, Any] | None = None, volumes: VolumeSet | None = None,
                    strategy: str | Mapping[str, int] = "auto", work_dir: str | Path | None = None,
                    source: Mapping[str, Any] | None = None, test_fraction: float | None = None,
                    device: str | None = None, run: RunContext | None = None) -> Synthesizer:
    """Train a synthesizer alone on the training split (test held out exactly as ``balance`` does) and
    save it to ``out_dir``, for ``balance(..., synth_checkpoint=out_dir)``. ``test_fraction`` replaces
    ``test_per_class`` as in ``balance``. ``seed``, ``device`` (None: ``auto``) and ``work_dir`` make the
    run context (``run`` gives one ready; its ``work_dir`` is then used as given).

    ``work_dir`` (default ``OUT.work``) keeps per-epoch state: an interrupted fit run again resumes from
    it. The default one is removed once ``out_dir`` is complete; one given explicitly is kept.
    """
    made_here = run is None and work_dir is None  # the default OUT.work: removed once OUT is complete
    run = run_context(run, seed=seed, device=device,
                      work_dir=Path(work_dir) if work_dir is not None else default_work_dir(out_dir))
    synth = resolve_synthesizer(synthesizer, synth_options)
    if not synth.trainable:
        raise SynthaugError(f"synthesizer {synth.name!r} learns nothing to save (it is not trainable); "
                            f"use it directly: synthaug balance --synth {synth.name}")
    planned = plan(data, synth, strategy=strategy, test_per_class=test_per_class, run=run, volumes=volumes,
                   test_fraction=test_fraction)
    if not planned.makes_images:  # plan skips the checks when balance would not use the synthesizer; a fit does
        check_channels(synth, planned.train)
        synth.check(planned.train, planned.deficits, planned.volumes, run=run)
    # Under torchrun every process fits (the synthesizer shares out each batch); rank 0 alone saves.
    world = distributed.world_of(run) if run.distributed else None
    if world is not None and not world.main:
        synth.fit(data_for(synth, planned.train), planned.volumes, run=run)
        world.barrier()  # rank 0 has saved
        return synth
    with atomic_dir(out_dir) as tmp:
        synth.fit(data_for(synth, planned.train), planned.volumes, run=run)
        synth.save(tmp)
        write_json(tmp / SPLIT_FILE, split_fingerprint(planned.test, planned.split))
        if source is not None:
            write_json(tmp / "source.json", dict(source))
        measure = getattr(synth, "measure", None)
        measures = measure(data_for(synth, planned.test)) if measure is not None else None  # held-out real test images
        if measures:
            write_json(tmp / "measures.json", measures)
    if made_here:
        shutil.rmtree(run.work_dir, ignore_errors=True)
    if world is not None:
        world.barrier()
    return synth


def load_fitted(directory: str | Path, name: str, test: ImageSet) -> Synthesizer:
    """The synthesizer ``name`` saved in ``directory``, refused if it was fitted beside another test split."""
    directory = Path(directory)
    if not directory.is_dir():
        raise SynthaugError(f"{directory}: no such synthesizer checkpoint directory")
    synth = get_registry().entry("synthesizer", name).resolve().load(directory)
    path = directory / SPLIT_FILE
    if path.is_file():  # a checkpoint made outside fit_synthesizer has nothing recorded to compare
        saved = json.loads(path.read_text())
        if saved.get("test_origins") != test_origins(test):
            raise SynthaugError(
                f"{directory} was fitted with a different test split ({_split_words(saved)}); use the same "
                f"--seed and --test-per-class or --test-fraction so that no test image was seen in training")
    return synth
