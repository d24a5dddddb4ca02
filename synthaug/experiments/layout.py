"""The one owner of an experiment directory's layout: every path `synthaug experiment` (and ``synthaug
demo``) writes or reads in it is a method of :class:`Layout`, and no other module spells one.

::

    experiment.json                   the resolved spec, the last run's command, stages and seconds
    not-run.json                      cells that cannot run, and why
    fits/<synth>-<hash>-seed<S>/      a fitted synthesizer (synthaug.pipeline.checkpoint writes inside)
    fits/<synth>-<hash>-seed<S>.work/ its per-epoch state while the fit runs (removed when it is done)
    fits/<synth>-<hash>-seed<S>.json  how long fitting took
    stores/<arm>-seed<S>.h5           the arm's balanced training split + the seed's real test split
    stores/<arm>-seed<S>.json         how long balancing took
    cells/<arm>--<clf>--seed<S>/      run/ (a training run: synthaug.pipeline.runs) and cell.json (last);
                                      a pretrain arm's pretrain/ (its first run) too
    quality/features-seed<S>/         the feature network of `synthaug quality` (synthaug.assess.features)
    quality/<arm>-seed<S>/            `synthaug quality` of an arm's store (synthaug.assess.report)
    quality/seconds-seed<S>.json      how long measuring them took
    results.csv, comparisons.json, report.md
    figures/headline.png, figures/confusion-<arm>--<clf>.png, figures/samples-<arm>.png,
    figures/reliability-<arm>--<clf>.png

``<arm>`` is the arm's store key (:attr:`~synthaug.experiments.spec.Arm.store_key`) for stores and
quality, its key for cells and figures. The layout is what existing experiment directories hold: a
rerun finds its fits, stores and cells where an earlier run left them, so a change here is a change of
format (``tests/test_experiment_layout.py`` pins it, and checks that a run writes nothing else).
What lies inside a fit, a training run or a quality directory is the format of the module named above.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

from synthaug.assess.features import INFO_FILE as FEATURES_INFO
from synthaug.assess.figures import FIGURES_DIR as QUALITY_FIGURES
from synthaug.assess.report import JSON_FILE as QUALITY_JSON

if TYPE_CHECKING:
    from synthaug.experiments.spec import Arm, Cell

EXPERIMENT_FILE = "experiment.json"
NOT_RUN_FILE = "not-run.json"
RESULTS_FILE = "results.csv"
COMPARISONS_FILE = "comparisons.json"
REPORT_FILE = "report.md"
FIGURES = "figures"
FITS, STORES, CELLS, QUALITY = "fits", "stores", "cells", "quality"
CELL_FILE = "cell.json"
RUN = "run"
PRETRAIN = "pretrain"
WORK = ".work"
RECORD = ".json"  # a stage's seconds, beside the fit or the store it made
STORE = ".h5"
FEATURES = "features"
SECONDS = "seconds"
_SEEDED = re.compile(r"(?P<key>.+)-seed(?P<seed>\d+)")


def _sampling_options(synthesizer: str | None) -> tuple[str, ...]:
    """The registered synthesizer's sampling options (none for no synthesizer or an unregistered one)."""
    from synthaug.errors import SynthaugError
    from synthaug.registry import get_registry

    if synthesizer is None:
        return ()
    try:
        return tuple(get_registry().entry("synthesizer", synthesizer).resolve().sampling_options)
    except SynthaugError:
        return ()


def _seeded(key: str, seed: int) -> str:
    return f"{key}-seed{seed}"


class Layout:
    """The paths of experiment directory ``out``."""

    def __init__(self, out: str | Path):
        self.out = Path(out)

    def link(self, path: str | Path) -> str:
        """``path`` as report.md and cell.json name it: relative to the experiment directory, with ``/``."""
        return Path(path).resolve().relative_to(self.out.resolve()).as_posix()

    # ---- files of the whole experiment -----------------------------------------------------------
    @property
    def experiment_json(self) -> Path:
        return self.out / EXPERIMENT_FILE

    @property
    def not_run_json(self) -> Path:
        return self.out / NOT_RUN_FILE

    @property
    def results_csv(self) -> Path:
        return self.out / RESULTS_FILE

    @property
    def comparisons_json(self) -> Path:
        return self.out / COMPARISONS_FILE

    @property
    def report_md(self) -> Path:
        return self.out / REPORT_FILE

    # ---- the report's figures --------------------------------------------------------------------
    @property
    def figures_dir(self) -> Path:
        return self.out / FIGURES

    @property
    def headline_figure(self) -> Path:
        return self.figures_dir / "headline.png"

    def confusion_figure(self, arm_key: str, classifier_key: str) -> Path:
        return self.figures_dir / f"confusion-{arm_key}--{classifier_key}.png"

    def samples_figure(self, arm_key: str) -> Path:
        return self.figures_dir / f"samples-{arm_key}.png"

    def reliability_figure(self, arm_key: str, classifier_key: str) -> Path:
        """The arm's reliability diagram (calibration of its probabilities, every seed's test images)."""
        return self.figures_dir / f"reliability-{arm_key}--{classifier_key}.png"

    # ---- fitted synthesizers ---------------------------------------------------------------------
    @property
    def fits_dir(self) -> Path:
        return self.out / FITS

    def fit_dir(self, arm: Arm, seed: int) -> Path:
        """Named by the synthesizer and a hash of its options but its sampling options (which change no
        fit): arms that fit the same one share it."""
        sampling = _sampling_options(arm.synthesizer)
        options = {k: v for k, v in arm.options.items() if k not in sampling}
        text = json.dumps({"synthesizer": arm.synthesizer, "options": options}, sort_keys=True)
        digest = hashlib.sha256(text.encode()).hexdigest()[:8]
        return self.fits_dir / _seeded(f"{arm.synthesizer}-{digest}", seed)

    @staticmethod
    def work_dir_of(fit: Path) -> Path:
        """The fit's per-epoch state, kept while it is interrupted."""
        return fit.with_name(fit.name + WORK)

    @staticmethod
    def fit_record(fit: Path) -> Path:
        """How long the fit took (``{"fit_seconds": S}``)."""
        return fit.with_name(fit.name + RECORD)

    # ---- balanced stores -------------------------------------------------------------------------
    @property
    def stores_dir(self) -> Path:
        return self.out / STORES

    def store(self, arm: Arm, seed: int) -> Path:
        return self.stores_dir / (_seeded(arm.store_key, seed) + STORE)

    @staticmethod
    def store_record(store: Path) -> Path:
        """How long balancing took (``{"balance_seconds": S}``)."""
        return store.with_suffix(RECORD)

    # ---- cells -----------------------------------------------------------------------------------
    @property
    def cells_dir(self) -> Path:
        return self.out / CELLS

    def cell_dir(self, cell: Cell) -> Path:
        return self.cells_dir / cell.key

    def cell_json(self, cell: Cell) -> Path:
        """The cell's result, written last: a cell is finished when it exists."""
        return self.cell_dir(cell) / CELL_FILE

    def run_dir(self, cell: Cell) -> Path:
        """The cell's training run (none for a joint-classifier cell: that run is in the fit)."""
        return self.cell_dir(cell) / RUN

    def pretrain_dir(self, cell: Cell) -> Path:
        """A ``pretrain`` arm's first training run, on its synthetic-balanced store (``run/`` fine-tunes it)."""
        return self.cell_dir(cell) / PRETRAIN

    # ---- quality of the synthetic images ---------------------------------------------------------
    @property
    def quality_root(self) -> Path:
        return self.out / QUALITY

    def quality_dir(self, store_key: str, seed: int) -> Path:
        """``synthaug quality`` of the store of ``store_key`` (an arm's store key) and ``seed``."""
        return self.quality_root / _seeded(store_key, seed)

    def quality_json(self, store_key: str, seed: int) -> Path:
        return self.quality_dir(store_key, seed) / QUALITY_JSON

    def quality_figures(self, store_key: str, seed: int) -> Path:
        return self.quality_dir(store_key, seed) / QUALITY_FIGURES

    def quality_measured(self) -> list[tuple[str, int]]:
        """``(store key, seed)`` of every store whose quality was measured, sorted by directory name."""
        found = []
        for path in sorted(self.quality_root.glob(f"*-seed*/{QUALITY_JSON}")):
            match = _SEEDED.fullmatch(path.parent.name)
            if match is not None:
                found.append((match["key"], int(match["seed"])))
        return found

    def features_dir(self, seed: int) -> Path:
        """The feature network of the seed's quality measures, shared by its arms."""
        return self.quality_root / _seeded(FEATURES, seed)

    def features_info(self, seed: int) -> Path:
        """Present once the feature network is saved (reusable)."""
        return self.features_dir(seed) / FEATURES_INFO

    def quality_record(self, seed: int) -> Path:
        """How long measuring the seed's stores took (``{"quality_seconds": S}``)."""
        return self.quality_root / (_seeded(SECONDS, seed) + RECORD)
