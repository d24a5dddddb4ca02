"""``synthaug experiment run``: every cell (arm x classifier x seed) of a spec, resumable.

An experiment directory holds the resolved spec (experiment.json), the fitted synthesizers (shared by
arms that fit the same one), one balanced store per arm and seed (its training split + the real test
split of seed S), one training run and result per cell, the cells that could not run and why, the
quality of each synthesizing arm's store, and the report (:mod:`synthaug.experiments.report`); where
each lives is :class:`~synthaug.experiments.layout.Layout`'s alone.

The seed S fixes the test split (every arm of a seed is measured on the same real test images), the
synthesizer's fit and images and the classifier's training; the data set itself is generated/read once. Every file
is written atomically, a cell's ``cell.json`` last: a rerun skips finished cells, resumes a training
run from its last epoch, and reuses finished stores and fits, so a killed experiment loses at most
the cell in progress.

Every stage (the data, each fit, each store's balance, each cell, quality, the report) is timed by a
:class:`StageClock`: one line on stderr as it finishes (unless quiet), and a ``stages`` list in
experiment.json that the report's Time section shows. A stage reused from an earlier, interrupted
run keeps the seconds that run measured (in the records the layout keeps beside each fit and store,
per quality seed, and in the cell's result) and is marked ``reused``.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from synthaug.errors import SynthaugError
from synthaug.experiments.layout import Layout
from synthaug.experiments.report import write_report
from synthaug.experiments.spec import (
    NOT_IDENTITY,
    Arm,
    Cell,
    Spec,
    grid,
    weights_for,
)
from synthaug.kit.files import hold, write_json

#: The seed's real training split as an arm: the store every arm without a synthesizer shares (pretrain's
#: fine-tuning and the feature network train on it).
REAL_SPLIT = Arm("unbalanced", "unbalanced", None, "none")


class StageClock:
    """The experiment's stages in the order they finished, with their seconds.

    Each stage is announced on stderr as it finishes (``progress.note``: nothing when quiet), so that a
    user watching a long run sees where the time goes; ``stages`` is what experiment.json and the
    report keep. A name is recorded once: a store shared by several cells is one stage.
    """

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.stages: list[dict[str, Any]] = []
        self.total: float | None = None

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.record(name, time.perf_counter() - started)

    @contextmanager
    def measured(self, name: str, record: Path, key: str) -> Iterator[dict[str, Any]]:
        """Time the body as stage ``name`` and keep its seconds in ``record`` (``{key: seconds}``), where a
        rerun that reuses the work finds them (:meth:`reused`)."""
        started = time.perf_counter()
        extra: dict[str, Any] = {}  # more for the record (a filtered store's counts)
        yield extra
        seconds = time.perf_counter() - started
        write_json(record, {key: seconds, **extra})
        self.record(name, seconds)

    def record(self, name: str, seconds: float | None, *, reused: bool = False) -> None:
        """``seconds`` measured now, or (``reused``) by the earlier run that did the work; None if that
        run left no record of it."""
        from synthaug.kit.progress import note

        if any(s["name"] == name for s in self.stages):
            return
        entry: dict[str, Any] = {"name": name, "seconds": None if seconds is None else round(float(seconds), 3)}
        if reused:
            entry["reused"] = True
        self.stages.append(entry)
        note(stage_line(entry))

    def reused(self, name: str, record: Path, key: str) -> None:
        """A stage done by an earlier run: its seconds as that run wrote them in ``record``."""
        try:
            seconds = json.loads(record.read_text()).get(key)
        except (OSError, ValueError, AttributeError):
            seconds = None  # an experiment directory from before the record was written
        self.record(name, seconds, reused=True)

    def stop(self) -> float:
        """Freeze the total wall time of this run (the report and experiment.json show the same figure)."""
        self.total = round(time.perf_counter() - self.started, 3)
        return self.total


def stage_line(entry: Mapping[str, Any]) -> str:
    """``stage cell augment--resnet50--seed0: 41.2 s`` (and where it came from, if reused)."""
    seconds = "time not recorded" if entry["seconds"] is None else f"{entry['seconds']:.1f} s"
    return f"stage {entry['name']}: {seconds}" + (" (reused from an earlier run)" if entry.get("reused") else "")


class Experiment:
    """An experiment directory and the resolved spec it holds."""

    def __init__(self, out: str | Path, spec: Spec, *, weights: Mapping[str, str] | None = None,
                 device: str = "auto"):
        self.out, self.spec, self.weights, self.device = Path(out), spec, dict(weights or {}), device
        self.layout = Layout(self.out)
        self._data: tuple[Any, Any] | None = None
        self.clock = StageClock()

    # ---- the experiment file ----------------------------------------------------------------
    def claim(self) -> None:
        """Write experiment.json, or check that the directory holds this very experiment (one process at
        a time: shards of one grid claim it in turn)."""
        with hold(self.layout.experiment_json, wait=True):
            self._claim()

    def _claim(self) -> None:
        path = self.layout.experiment_json
        if path.is_file():
            saved = json.loads(path.read_text())
            now = json.loads(json.dumps(self.spec.identity(), default=str))
            before = {k: v for k, v in saved.get("spec", {}).items() if k not in NOT_IDENTITY}
            differing = sorted(k for k in set(before) | set(now) if k != "arms" and before.get(k) != now.get(k))
            arms_now = {a["key"]: a for a in now.get("arms", [])}
            for arm in before.get("arms", []):  # a rerun may add arms; each earlier one must be the same
                if arms_now.get(arm["key"]) != arm:
                    differing.append(f"arms.{arm['key']}" + ("" if arm["key"] in arms_now else " (not in this spec)"))
            if differing:
                raise SynthaugError(f"{self.out} holds another experiment ({', '.join(differing)} differ); "
                                    f"choose another --out or run it with the same spec and options")
        elif self.out.exists() and any(p for p in self.out.iterdir() if not p.name.startswith(".")):
            raise SynthaugError(f"{self.out} is not empty and holds no {path.name}; choose another --out")
        self.out.mkdir(parents=True, exist_ok=True)
        write_json(path, {"kind": "synthaug-experiment", "spec": self.spec.to_dict()})

    # ---- data -------------------------------------------------------------------------------
    def data(self):
        """(images, volumes or None), read once: the task applied (binary: positive vs rest)."""
        if self._data is None:
            with self.clock.stage("data"):
                self._data = self._read_data()
        return self._data

    def _read_data(self):
        from synthaug.pipeline.load import (
            as_binary,
            binary_volumes,
            load_images,
            load_volumes,
        )

        d = self.spec.data
        images = load_images(d["source"], d["dir"], size=d["size"], channels=d["channels"], seed=d["seed"],
                             **d["options"])
        volumes = None
        if d["volumes"]:
            # The same source as the images gives the CTs of the very patients the radiographs show.
            extra = d["options"] if d["volumes"] == d["source"] else {}
            folder = d["volumes_dir"] or (d["dir"] if d["volumes"] == d["source"] else None)
            volumes = load_volumes(d["volumes"], folder, seed=d["seed"], **extra)
        if self.spec.binary:
            images = as_binary(images, self.spec.binary)
            volumes = binary_volumes(volumes, self.spec.binary) if volumes is not None else None
        return images, volumes

    def split_options(self) -> dict[str, Any]:
        split = self.spec.split
        if "test_fraction" in split:
            return {"test_fraction": split["test_fraction"]}
        return {"test_per_class": split["test_per_class"]}

    # ---- why a cell cannot run ----------------------------------------------------------------
    def not_runnable(self, cell: Cell) -> str | None:
        from synthaug.registry import get_registry

        if cell.arm.synthesizer is not None:
            cls = get_registry().entry("synthesizer", cell.arm.synthesizer).resolve()
            if cls.needs_volumes and not self.spec.data["volumes"]:
                return (f"synthesizer {cell.arm.synthesizer!r} needs labeled CT volumes; the data source gives "
                        f"none (pass --volumes SOURCE)")
        if cell.classifier is not None and cell.classifier.needs_weights and \
                not weights_for(self.weights, cell.classifier.classifier):
            return (f"{cell.classifier.recipe['mode']} training starts from ImageNet weights: pass --weights "
                    f"{cell.classifier.classifier}=PATH (a local torchvision-format state dict)")
        return None

    # ---- fitting and balancing ----------------------------------------------------------------
    def fitted(self, arm: Arm, seed: int) -> Path | None:
        """The fitted synthesizer's directory (fitted now if missing), or None for one that learns nothing."""
        from synthaug.registry import get_registry

        if arm.synthesizer is None or not get_registry().entry("synthesizer", arm.synthesizer).resolve().trainable:
            return None
        directory = self.layout.fit_dir(arm, seed)
        with hold(directory, wait=True):  # another shard making this fit: wait for it, then reuse it
            if directory.is_dir():
                self.clock.reused(*_fit_stage(directory))
                return directory
            return self._fit(arm, seed, directory)

    def _fit(self, arm: Arm, seed: int, directory: Path) -> Path:
        from synthaug.pipeline.checkpoint import fit_synthesizer

        images, volumes = self.data()
        with self.clock.measured(*_fit_stage(directory)):
            fit_synthesizer(images, arm.synthesizer, directory, seed=seed, synth_options=self.synth_options(arm),
                            # the arm's strategy (auto for a share or pool: a superset of its rare classes), so
                            # that arms sharing this fit find every class they need fitted
                            volumes=volumes, strategy=arm.strategy,
                            work_dir=self.layout.work_dir_of(directory), device=self.device,
                            **self.split_options())
            shutil.rmtree(self.layout.work_dir_of(directory), ignore_errors=True)
        return directory

    def synth_options(self, arm: Arm) -> dict[str, Any]:
        """The arm's options, with, for a synthesizer that trains a classifier from ImageNet weights
        (``classifier_weights``), the --weights of that classifier unless the spec names a file."""
        from dataclasses import fields

        from synthaug.registry import get_registry

        options = dict(arm.options)
        config = getattr(get_registry().entry("synthesizer", arm.synthesizer).resolve(), "Config", None)
        names = {f.name for f in fields(config)} if config is not None else set()
        if "classifier_weights" in names and not options.get("classifier_weights"):
            default = next((f.default for f in fields(config) if f.name == "classifier"), None)
            path = weights_for(self.weights, options.get("classifier", default) or "")
            if path:
                options["classifier_weights"] = path
        return options

    def store(self, arm: Arm, seed: int) -> Path:
        """The arm's store for ``seed`` (fitting its synthesizer first if it learns), built once."""
        path = self.layout.store(arm, seed)
        with hold(path, wait=True):  # another shard balancing this store: wait for it, then reuse it
            return self._store(arm, seed, path)

    def _store(self, arm: Arm, seed: int, path: Path) -> Path:
        from synthaug.api import balance

        name = f"balance {path.stem}"
        if path.is_file():
            fit = None if arm.synthesizer is None else self.layout.fit_dir(arm, seed)
            if fit is not None and fit.is_dir():  # the store was made with this fit: its stage
                self.clock.reused(*_fit_stage(fit))
            self.clock.reused(name, self.layout.store_record(path), "balance_seconds")
            return path
        images, volumes = self.data()
        # fitted first, so that the balance stage's seconds are the balancing alone (the fit is a stage)
        checkpoint = None if arm.store_key == "unbalanced" else self.fitted(arm, seed)
        with self.clock.measured(name, self.layout.store_record(path), "balance_seconds") as extra:
            if arm.filter is not None:
                extra["filter"] = self._filtered_store(arm, seed, path, checkpoint)
            elif arm.store_key == "unbalanced":
                balance(images, None, strategy="none", seed=seed, out=path, source=self.spec.data,
                        **self.split_options())
            else:
                balance(images, arm.synthesizer, strategy=arm.balance_strategy, fill=arm.fill, seed=seed, out=path,
                        synth_options=self.synth_options(arm), volumes=volumes,
                        synth_checkpoint=checkpoint, source=self.spec.data, device=self.device,
                        **self.split_options())
        return path

    def _filtered_store(self, arm: Arm, seed: int, path: Path, checkpoint: Path | None) -> dict[str, Any]:
        """A ``filter`` arm's store: candidates scored by the seed's feature network, the kept ones balanced
        in (:mod:`synthaug.assess.filter`); the record of what was made and kept."""
        from synthaug.api import balance
        from synthaug.assess.filter import Filter, Prepared, filtered
        from synthaug.pipeline.balance import data_for, plan_counts, resolve_synthesizer, run_context
        from synthaug.pipeline.checkpoint import load_fitted
        from synthaug.pipeline.split import split_test

        images, _ = self.data()
        options = self.split_options()
        train, test, _ = split_test(images, options.get("test_per_class", 0), seed,
                                    fraction=options.get("test_fraction"))
        run = run_context(seed=seed, device=self.device)
        if checkpoint is not None:
            synth = load_fitted(checkpoint, arm.synthesizer, test).with_sampling_options(self.synth_options(arm))
            view = data_for(synth, train)
        else:  # a synthesizer that learns nothing: its fit, if any, is cheap
            synth = resolve_synthesizer(arm.synthesizer, self.synth_options(arm))
            view = data_for(synth, train)
            synth.fit(view, run=run)
        net, _ = self.feature_network(seed)
        deficits = plan_counts(train.counts(), arm.strategy)
        kept, record = filtered(synth, view, deficits, seed, net.probabilities, Filter(**arm.filter), run)
        finals = {name: n + (len(kept[name]) if name in kept else 0) for name, n in train.counts().items()}
        balance(images, Prepared(kept, synth.name), strategy=finals, seed=seed, out=path, source=self.spec.data,
                **options)
        return record

    # ---- one cell ------------------------------------------------------------------------------
    def run_cell(self, cell: Cell) -> dict[str, Any]:
        with hold(self.layout.cell_json(cell), wait=True):
            return self._run_cell(cell)

    def _run_cell(self, cell: Cell) -> dict[str, Any]:
        from synthaug.pipeline.evaluate import evaluate
        from synthaug.pipeline.runs import read_manifest
        from synthaug.pipeline.train import TrainConfig

        done = self.layout.cell_json(cell)
        if done.is_file():
            if self.layout.store(cell.arm, cell.seed).is_file():  # its store's (and fit's) stages, as reused
                self.store(cell.arm, cell.seed)
            self.clock.reused(f"cell {cell.key}", done, "seconds")
            return json.loads(done.read_text())
        store = self.store(cell.arm, cell.seed)
        started = time.perf_counter()
        if cell.classifier is None:  # the synthesizer's own classifier, on this seed's test split
            from synthaug.registry import get_registry

            fit = self.fitted(cell.arm, cell.seed)
            run = fit / get_registry().entry("synthesizer", cell.arm.synthesizer).resolve().classifier_run
            metrics = evaluate(run, data=store, positive_class=self.spec.positive, device=self.device)
            classifier_name = read_manifest(run)["config"]["classifier"]
        else:
            run = self.layout.run_dir(cell)
            clf = cell.classifier
            common = {"classifier": clf.classifier, "seed": cell.seed, "device": self.device,
                      "positive_class": self.spec.positive,
                      "weights": weights_for(self.weights, clf.classifier) if clf.needs_weights else None}
            if cell.arm.pretrain is None:
                _train_run(store, run, TrainConfig.from_dict({**cell.recipe, **common}))
            else:  # the classifier's recipe on the synthetic-balanced store, then all layers on the real split
                first = self.layout.pretrain_dir(cell)
                _train_run(store, first, TrainConfig.from_dict({**clf.recipe, **common,
                                                                "epochs": cell.arm.pretrain["epochs"]}))
                real = self.store(REAL_SPLIT, cell.seed)
                recipe = {k: v for k, v in cell.recipe.items() if k != "finetune_epochs"}
                _train_run(real, run, TrainConfig.from_dict({**recipe, **common, "mode": "scratch", "weights": None,
                                                             "init": str(first)}))
            metrics = evaluate(run, positive_class=self.spec.positive, device=self.device)
            classifier_name = clf.classifier
        result = {"cell": cell.key, "arm": cell.arm.key, "classifier": cell.classifier_key,
                  "network": classifier_name, "seed": cell.seed, "status": "done",
                  "store": self.layout.link(store),
                  "predictions": self.layout.link(metrics["files"]["predictions"]),
                  "metrics": {k: v for k, v in metrics.items() if k not in ("files", "data")},
                  "train_counts": _train_counts(store), "seconds": time.perf_counter() - started}
        write_json(done, result)
        self.clock.record(f"cell {cell.key}", result["seconds"])
        return result

    # ---- quality of the synthetic images ---------------------------------------------------------
    def measure_quality(self, seed: int) -> None:
        """``synthaug quality`` of every synthesizing arm's store of ``seed`` (each once), in one feature
        space: a network trained on the real training images of the seed's split, shared by the arms
        so that their figures compare."""
        with hold(self.layout.quality_record(seed), wait=True):
            self._quality(seed)

    def _quality(self, seed: int) -> None:
        layout = self.layout
        arms = [a for a in self.spec.arms if a.synthesizer is not None and layout.store(a, seed).is_file()
                and _has_synthetic(layout.store(a, seed))]
        arms = list({a.store_key: a for a in arms}.values())
        todo = [a for a in arms if not layout.quality_json(a.store_key, seed).is_file()]
        record = layout.quality_record(seed)
        if not todo:
            if arms:
                self.clock.reused(f"quality seed{seed}", record, "quality_seconds")
            return
        with self.clock.measured(f"quality seed{seed}", record, "quality_seconds"):
            self._measure_quality(seed, arms, todo)

    def feature_network(self, seed: int, source: Path | None = None):
        """The seed's feature network (``[quality]``'s settings): a classifier trained on the real training
        images of the seed's split, once (``source``: a store of the seed holding them; default the
        unbalanced store); with its config."""
        from synthaug.assess.features import FeatureConfig, feature_net, load_saved
        from synthaug.pipeline.store import open_store

        settings = self.spec.quality
        config = FeatureConfig(seed=seed, **{k: settings[f"feature_{k}"] for k in ("epochs", "size")
                                            if f"feature_{k}" in settings})
        layout = self.layout
        with hold(layout.features_dir(seed), wait=True):
            if layout.features_info(seed).is_file():
                return load_saved(layout.features_dir(seed)), config
            source = source or self.store(REAL_SPLIT, seed)
            dataset = open_store(source, "train")  # every real training image of the split
            try:
                net = feature_net(None, dataset, config)
            finally:
                dataset.close()
            net.save(layout.features_dir(seed))
        return net, config

    def _measure_quality(self, seed: int, arms: list[Arm], todo: list[Arm]) -> None:
        from synthaug.assess.run import quality

        layout = self.layout
        unbalanced = [a for a in self.spec.arms if a.store_key == "unbalanced" and layout.store(a, seed).is_file()]
        net, config = self.feature_network(seed, layout.store((unbalanced or arms)[0], seed))
        for arm in todo:
            checkpoint = layout.fit_dir(arm, seed)
            # the fit's own paired measure applies to a store of its images alone, not one with a fill's
            paired = checkpoint.is_dir() and arm.fill is None
            quality(layout.store(arm, seed), features=net, out=layout.quality_dir(arm.store_key, seed), seed=seed,
                    synth_checkpoint=checkpoint if paired else None, feature_config=config)


def _train_run(store: Path, run: Path, config) -> None:
    """Train ``config`` on ``store`` into ``run``: resumed where it stopped, nothing done if it finished."""
    from synthaug.pipeline.runs import RunPaths, read_manifest
    from synthaug.pipeline.train import train

    paths = RunPaths(run)
    finished = paths.manifest.is_file() and paths.best.is_file() and \
        read_manifest(run).get("status") == "finished"  # a finished run keeps best.pt alone
    resume = finished or (paths.last.is_file() and paths.manifest.is_file())
    if run.exists() and not resume:
        shutil.rmtree(run)  # killed before its first epoch ended: nothing to keep
    if not finished:
        train(store, run, config, resume=resume)


def _fit_stage(directory: Path) -> tuple[str, Path, str]:
    """A fit's stage name, the file beside it that keeps its seconds, and their key there."""
    return f"fit {directory.name}", Layout.fit_record(directory), "fit_seconds"


def _has_synthetic(store: Path) -> bool:
    from synthaug.pipeline.store import store_info

    return any(store_info(store)["splits"]["train"]["synthetic"].values())


def _train_counts(store: Path) -> dict[str, Any]:
    from synthaug.pipeline.store import store_info

    info = store_info(store)["splits"]
    return {"train": info["train"]["classes"], "synthetic": info["train"]["synthetic"], "test": info["test"]["classes"]}


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``--shard i/N`` (1 <= i <= N): ``(i, N)``; None for none."""
    if text is None:
        return None
    i, sep, n = str(text).partition("/")
    try:
        shard = (int(i), int(n))
    except ValueError:
        shard = None
    if not sep or shard is None or not 1 <= shard[0] <= shard[1]:
        raise SynthaugError(f"--shard {text}: expected I/N with 1 <= I <= N, e.g. 1/4 (the first of four shares)")
    return shard


def shard_cells(cells: list[Cell], shard: tuple[int, int] | None) -> list[Cell]:
    """The cells of share ``i`` of ``N``: every N-th cell of the grid from the i-th, the grid's order
    (arms, classifiers, seeds) with the seeds varying fastest so that the shares fit different seeds."""
    if shard is None:
        return cells
    i, n = shard
    return cells[i - 1::n]


def run_experiment(spec: Spec, out: str | Path, *, weights: Mapping[str, str] | None = None, device: str = "auto",
                   on_cell=None, command: str | None = None, shard: tuple[int, int] | None = None) -> Path:
    """Run (or finish) every cell of ``spec`` in ``out``, then write the report; return ``out``.

    ``on_cell(cell, result)`` is called after each finished cell (progress, or a test's interruption).
    ``shard=(i, N)``: only the i-th share of the cells (:func:`shard_cells`), and the quality of the
    seeds ``s`` with ``s % N == i - 1``; other processes run the other shares in the same directory at
    the same time. Each fit, store, cell and quality measurement is claimed through its lock, so a
    shard needing a fit another is making waits for it; the report (any shard's, or ``experiment
    report``) covers whatever has finished.
    """
    from synthaug.kit.device import resolve_device

    resolve_device(device)  # an unusable --device fails before any work
    experiment = Experiment(out, spec, weights=weights, device=device)
    experiment.claim()
    cells = grid(spec)
    reasons = {cell.key: experiment.not_runnable(cell) for cell in cells}
    with hold(experiment.layout.not_run_json, wait=True):
        write_json(experiment.layout.not_run_json, {k: v for k, v in reasons.items() if v})
    mine = [c for c in shard_cells(cells, shard) if reasons[c.key] is None]
    if mine:
        experiment.data()  # a bad source, class or split fails here, before any training
        _check_task(experiment)
    for cell in mine:
        result = experiment.run_cell(cell)
        if on_cell is not None:
            on_cell(cell, result)
    for seed in range(min(spec.quality["seeds"], spec.seeds)):
        if shard is None or seed % shard[1] == shard[0] - 1:
            if shard is not None:  # the seed's stores may be another shard's: made (or waited for) first
                for cell in cells:
                    if cell.seed == seed and reasons[cell.key] is None and cell.arm.synthesizer is not None:
                        experiment.store(cell.arm, seed)
            experiment.measure_quality(seed)
    _finish(experiment, command, merge=shard is not None, total=shard is None)
    return experiment.out


def run_workers(spec: Spec, out: str | Path, workers: int, arguments: list[str], *,
                weights: Mapping[str, str] | None = None, device: str = "auto", command: str | None = None) -> Path:
    """Run the grid as ``workers`` local processes, ``python -m synthaug ARGUMENTS --shard i/N`` for i =
    1..N (each with 1/N of the cores' torch threads unless ``OMP_NUM_THREADS`` is set), then write the
    report with every shard's stages and the wall time of the whole. A failed worker is a one-line
    error naming it; the others' work is kept, and the same command finishes the grid."""
    import os
    import subprocess
    import sys

    experiment = Experiment(out, spec, weights=weights, device=device)
    experiment.claim()  # a directory of another experiment is refused before any process starts
    env = dict(os.environ)
    if "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))
    processes = [subprocess.Popen([sys.executable, "-m", "synthaug", *arguments, "--shard", f"{i}/{workers}"], env=env)
                 for i in range(1, workers + 1)]
    codes = [p.wait() for p in processes]
    failed = [(i, code) for i, code in enumerate(codes, start=1) if code != 0]
    if failed:
        i, code = failed[0]
        raise SynthaugError(f"worker {i}/{workers} failed (exit code {code}; its error is above); the finished "
                            f"cells are kept: run the same command again to finish the grid")
    _finish(experiment, command, merge=True, total=True)  # the total: this process's clock, the whole wall time
    return experiment.out


def _finish(experiment: Experiment, command: str | None, *, merge: bool, total: bool) -> None:
    """Record the stages in experiment.json and write the report. ``merge`` (a shard, or the run of the
    shards): this process's stages are added to those the shards recorded (a stage by name once).
    ``total``: this process's wall time is recorded as the run's; a shard records none, since the shards
    overlap in time."""
    clock = experiment.clock
    path = experiment.layout.experiment_json
    with hold(path, wait=True), hold(experiment.layout.report_md, wait=True):
        saved = {**json.loads(path.read_text()), "command": command}
        saved.pop("seconds", None)
        if merge:
            mine = {stage["name"] for stage in clock.stages}
            clock.stages[:0] = [st for st in saved.get("stages") or [] if st["name"] not in mine]
        write_json(path, {**saved, "stages": clock.stages})  # the report reads the command from here
        write_report(experiment.out, clock=clock)  # records the "report" stage and stops the clock
        write_json(path, {**saved, "stages": clock.stages, **({"seconds": clock.total} if total else {})})


def _check_task(experiment: Experiment) -> None:
    """The split and the positive class are checked on the real data before anything trains."""
    from synthaug.pipeline.split import split_test

    images, _ = experiment.data()
    positive = experiment.spec.positive
    if positive is not None and positive not in images.class_names:
        raise SynthaugError(f"positive = {positive!r} is not a class of the data ({', '.join(images.class_names)})")
    options = experiment.split_options()
    split_test(images, options.get("test_per_class", 0), 0, fraction=options.get("test_fraction"))
