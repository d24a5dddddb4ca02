"""The lifecycle of a synthesizer that trains networks: a plugin writes a step, the kit does the rest.

Subclass :class:`TrainableSynthesizer` and supply:

- ``start(train, volumes, run, part)``: build the networks (on the CPU, from the seeded global torch
  generator: the same weights on any device), their optimisers and the plugin's own random
  generators, and return them in a :class:`Training`;
- ``epoch(training, epoch)``: one pass over the data, yielding one dict of losses per step (the global
  batch drawn on every process, this process's share from ``training.world.share``, the step through
  :func:`synthaug.kit.gan.adversarial_step` or a loop of the plugin's own);
- ``finish(training)``: keep the trained networks; ``weights()``: the modules ``save`` writes;
  ``networks(info)``: fresh modules of the same shapes for ``load``; ``generate`` (or ``generate_part``).

Optional: ``check_inputs`` (refusals before any training), ``estimate(train, volumes, run)`` (the memory
guard), ``parts(train)`` (several independent fits, e.g. one per target class), ``samples(training,
path)`` (a figure each epoch), ``checkpoint_info()``/``restore_info(info)`` (what synthesizer.json keeps).

The kit then gives every such plugin, the same way:

- the seed: ``torch.manual_seed(run.seed)`` before ``start``; ``self.seed`` is the fit's seed;
- the device: the modules of the Training placed on ``run.device`` (SyncBatchNorm under torchrun on
  CUDA); ``training.device`` says where, ``training.bf16`` whether to autocast;
- the work directory: after every epoch rank 0 writes ``train_state[_PART].pt`` (tensors, numbers,
  strings and lists: read back with ``weights_only=True``) holding every module, optimiser, scheduler
  and random generator of the Training, the global torch generator and the loss history; a rerun after
  a kill resumes from it and ends with the same weights as an uninterrupted fit. A state of another fit
  (other options, seed, classes, image shape or training images) is refused in one line;
- torchrun: every process runs the same fit, ranks 1.. get dropout streams of their own, the epoch's
  losses are averaged over the processes, and at the end every process holds rank 0's modules;
- the memory estimate and its guard (refused before any training, the measured peak recorded);
- ``save``/``load``: ``synthesizer.json`` (options, fit seed, weight hashes, memory) and one
  tensors-only file per module of ``weights()``, each checked against its hash when loaded.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterator

import numpy as np

from synthaug.contract.config import config_dict
from synthaug.contract.interfaces import DEFAULT_RUN, Synthesizer, saved_options
from synthaug.contract.run import RunContext
from synthaug.contract.types import REAL
from synthaug.errors import SynthaugError
from synthaug.kit import distributed, progress
from synthaug.kit.device import resolve_device
from synthaug.kit.files import save_torch_file
from synthaug.kit.gan import weights_hash
from synthaug.kit.memory import TrainingEstimate, check_memory, finish_record, parameter_bytes
from synthaug.kit.runs import load_checkpoint, save_checkpoint

__all__ = ["Training", "TrainableSynthesizer", "Estimate", "DEFAULT_RUN", "RunContext"]


@dataclass
class Estimate:
    """What ``estimate`` returns: the training peak, and the options that would lower it (one phrase)."""

    memory: TrainingEstimate
    advice: str


@dataclass
class Training:
    """One fit in progress, as ``start`` builds it and ``epoch`` uses it.

    ``modules``, ``optimizers``, ``schedulers`` and ``state`` (any object with ``state_dict`` and
    ``load_state_dict``) are saved after every epoch and restored on resume; ``generators`` (numpy
    ``Generator``s or torch ``Generator``s) too, so the draws go on where they stopped. Schedulers are
    stepped by the kit after every epoch. ``data``: whatever the plugin's ``epoch`` reads.
    """

    epochs: int
    steps: int  # global batches per epoch (the progress bar's unit)
    modules: dict[str, Any]
    optimizers: dict[str, Any] = field(default_factory=dict)
    schedulers: dict[str, Any] = field(default_factory=dict)
    generators: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
    data: Any = None
    label: str = ""  # the progress bar's text (default: the synthesizer's name)
    fingerprint: dict[str, Any] = field(default_factory=dict)  # more that a resumed state must share
    total_steps: int | None = None  # all epochs' steps when the last epochs are shorter (None: epochs x steps)
    # ---- set by the kit ----
    part: str = ""
    run: RunContext = DEFAULT_RUN
    world: Any = None  # synthaug.kit.distributed.World
    device: Any = None  # torch.device
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def bf16(self) -> bool:
        """Whether forward passes autocast to bfloat16 (on CUDA; the losses stay float32)."""
        return getattr(self.device, "type", "cpu") == "cuda"

    def grad_sync(self, share: float | None = None):
        """The call that averages a network's gradients over the processes after its backward (weighted
        by this process's ``share`` of the global batch); None in a world of one."""
        if self.world is None or not self.world.distributed:
            return None
        return lambda module: self.world.average_gradients(module, share)


class TrainableSynthesizer(Synthesizer):
    """A synthesizer whose ``fit`` trains networks; see the module's text for what a plugin supplies."""

    trainable: ClassVar[bool] = True
    #: The option that sets the global batch size (checked to give every torchrun process an image).
    batch_option: ClassVar[str | None] = "batch_size"
    #: Options a saved training state may differ in and still be resumed (e.g. a cache size); the
    #: :attr:`sampling_options` may differ too.
    resumable_options: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: Any = None, **options: Any):
        super().__init__(config, **options)
        self.seed: int | None = None  # the fit's seed (run.seed of fit; from synthesizer.json when loaded)
        self.hashes: dict[str, str] = {}  # sha256 of each module of weights(), by name
        self.image_shape: tuple[int, int, int] | None = None
        self.class_names: tuple[str, ...] | None = None
        #: per epoch: its mean losses over the steps and processes ("part" added for a fit of several parts)
        self.history: list[dict[str, Any]] = []
        self._work_dir: Path | None = None  # the fit's run.work_dir: save() copies its samples
        self._memory_checked: tuple | None = None  # (what was estimated, the record)

    # ---- what a plugin supplies ------------------------------------------------------------------
    def start(self, train, volumes, run: RunContext, part: str) -> Training:
        raise NotImplementedError(f"synthesizer {self.name!r} has no start()")

    def epoch(self, training: Training, epoch: int) -> Iterator[dict[str, float]]:
        raise NotImplementedError(f"synthesizer {self.name!r} has no epoch()")

    def finish(self, training: Training) -> None:
        """Keep the trained networks (default: nothing)."""

    def weights(self) -> dict[str, Any]:
        """The modules ``save`` writes, by file stem (``{"generator": G}`` -> ``generator.pt``)."""
        return {}

    def networks(self, info: dict[str, Any]) -> dict[str, Any]:
        """Fresh modules for ``load``, by the names of ``weights()``, shaped from ``synthesizer.json``."""
        return {}

    def use_networks(self, modules: dict[str, Any]) -> None:
        """Take the modules ``load`` read (default: keep them as ``self.modules``)."""
        self.modules = modules

    def generate(self, train, target: str, n: int, *, seed: int, volumes=None, run: RunContext = DEFAULT_RUN):
        """The chunks of ``generate_chunks`` joined: a plugin that ``splits_generation`` writes only
        ``generate_part``."""
        from synthaug.contract.types import ImageSet

        return ImageSet.concat(list(self.generate_chunks(train, target, n, seed=seed, volumes=volumes, run=run)))

    # ---- optional hooks ----------------------------------------------------------------------------
    def check_inputs(self, train, deficits: dict[str, int], volumes=None, *, run: RunContext = DEFAULT_RUN) -> None:
        """Refuse what would fail later, before any training (default: nothing more)."""

    def estimate(self, train, volumes, run: RunContext) -> Estimate | None:
        """The training peak, for the memory guard (None: no guard). The default counts the weights of
        ``start``'s modules, built on torch's ``meta`` device (nothing allocated), with their gradients and
        Adam state, and the training split's images in float32; it does not count activations: override
        it to add them (``kit.memory.saved_bytes`` of one step's forwards at the batch size). A ``start``
        that cannot run on the meta device leaves the fit unguarded (None)."""
        import torch

        try:
            with torch.random.fork_rng(devices=[]), torch.device("meta"):
                modules = self.start(train, volumes, run, self.parts(train, volumes)[0]).modules
        except Exception:  # noqa: BLE001 (a start() doing real work: no default estimate)
            return None
        batch = getattr(self.config, self.batch_option, None) if self.batch_option else None
        memory = TrainingEstimate(f"{self.name}" + (f" (batch {batch})" if batch else ""),
                                  str(resolve_device(run.device)), parameter_bytes(*modules.values()), 0,
                                  len(train) * int(np.prod(train.image_shape)) * 4)
        advice = f"use a smaller --synth-option {self.batch_option} (now {batch}) or a smaller --size" if batch \
            else "use a smaller --size"
        return Estimate(memory, advice)

    def parts(self, train, volumes=None) -> tuple[str, ...]:
        """Independent fits, each with a state file of its own (pix2pix: one per target class)."""
        return ("",)

    def samples(self, training: Training, path: Path) -> None:
        """Write a figure of the fit so far to ``path`` (a ``.png``) after every epoch (default: none)."""

    def checkpoint_info(self) -> dict[str, Any]:
        """More for ``synthesizer.json`` (default: nothing)."""
        return {}

    def restore_info(self, info: dict[str, Any]) -> None:
        """Read back what ``checkpoint_info`` wrote (default: nothing)."""

    @classmethod
    def upgrade_info(cls, info: dict[str, Any]) -> dict[str, Any]:
        """``synthesizer.json`` of a checkpoint written before this plugin used the kit, in the kit's
        form (``weights``: file stem -> hash); default: as it is."""
        return info

    # ---- the lifecycle -----------------------------------------------------------------------------
    @property
    def fitted(self) -> bool:
        return bool(self.hashes)

    def check(self, train, deficits: dict[str, int], volumes=None, *, run: RunContext = DEFAULT_RUN) -> None:
        super().check(train, deficits, volumes, run=run)
        self.check_inputs(train, deficits, volumes, run=run)
        if self.fitted:
            self._check_fitted_data(train)
            return  # fitted: generates on the run's device, wherever it was trained
        resolve_device(run.device)  # training on cuda without CUDA: refused before it starts
        self.image_shape, self.class_names = tuple(train.image_shape), tuple(train.class_names)  # start() builds for it
        for part in self.parts(train, volumes):
            self._read_state(train, volumes, run, part)
        self._check_memory(train, volumes, run)

    def check_sampling(self, train, target: str) -> None:
        """The refusals of a synthesizer that samples a class from noise (acgan, ddpm): not fitted, data of
        other classes or shape than the fit's, no real images of ``target`` to have learnt it from."""
        if not self.fitted:
            raise SynthaugError(f"{self.name} is not fitted: call fit() or load a checkpoint")
        if tuple(train.class_names) != tuple(self.class_names) or train.image_shape != tuple(self.image_shape):
            raise SynthaugError(f"{self.name} was trained on {shape_text(self.image_shape)} images of classes "
                                f"{', '.join(self.class_names)}; got {shape_text(train.image_shape)} images of "
                                f"{', '.join(train.class_names)}")
        if not np.any((train.synth == REAL) & (train.labels == train.class_index(target))):
            raise SynthaugError(f"{self.name} learns class {target!r} from its real training images; "
                                f"the training split has no real {target!r} images")

    def _check_fitted_data(self, train) -> None:
        if self.image_shape is not None and tuple(self.image_shape) != tuple(train.image_shape):
            raise SynthaugError(f"{self.name} checkpoint was trained on {shape_text(self.image_shape)} images; "
                                f"the data is {shape_text(train.image_shape)}")
        if self.class_names is not None and tuple(self.class_names) != tuple(train.class_names):
            raise SynthaugError(f"{self.name} checkpoint was trained on classes {', '.join(self.class_names)}; "
                                f"the data has {', '.join(train.class_names)}")

    def _check_memory(self, train, volumes, run: RunContext) -> dict | None:
        """The memory guard: estimated once per data, options and device; refused in one line."""
        key = (tuple(train.image_shape), tuple(train.class_names), len(train), train.is_lazy,
               0 if volumes is None else len(volumes),
               str(resolve_device(run.device)), json.dumps(config_dict(self.config), sort_keys=True, default=str))
        if self._memory_checked is not None and self._memory_checked[0] == key:
            return self._memory_checked[1]
        estimate = self.estimate(train, volumes, run)
        record = None if estimate is None else check_memory(estimate.memory, estimate.advice)
        self._memory_checked = (key, record)
        return record

    def fit(self, train, volumes=None, *, run: RunContext = DEFAULT_RUN) -> None:
        """Train every part; see the module's text for what the kit does around the plugin's step."""
        self.check(train, {}, volumes, run=run)
        if self.batch_option is not None:
            distributed.check_batch(int(getattr(self.config, self.batch_option)), f"--synth-option {self.batch_option}")
        record = self._check_memory(train, volumes, run)
        world = distributed.world_of(run)
        self.seed, self._work_dir = run.seed, run.work_dir
        self.image_shape, self.class_names = tuple(train.image_shape), tuple(train.class_names)
        self.history = []
        for part in self.parts(train, volumes):
            training = self._train(train, volumes, run, world, part)
            self.history += [{**h, "part": part} if part else h for h in training.history]
            self.finish(training)
        self.hashes = {name: weights_hash(module) for name, module in self.weights().items()}
        self.memory = finish_record(record)

    def _train(self, train, volumes, run: RunContext, world, part: str) -> Training:
        import torch

        torch.manual_seed(run.seed)
        training = self.start(train, volumes, run, part)
        training.part, training.run, training.world = part, run, world
        training.device = resolve_device(run.device)
        for name, module in training.modules.items():
            training.modules[name] = world.sync_batchnorm(module, training.device).to(training.device)
        first = self._resume(training, self._read_state(train, volumes, run, part, training))
        if world.rank:  # this rank's own images get noise of their own (rank 0's stream is one process's)
            torch.manual_seed(world.rank_seed(run.seed, first))
        total = (training.total_steps if training.total_steps is not None else training.epochs * training.steps) \
            - first * training.steps
        with progress.bar(training.label or self.name, total, shown=run.progress) as bar:
            for epoch in range(first, training.epochs):
                self._one_epoch(training, epoch, bar)
                for scheduler in training.schedulers.values():
                    scheduler.step()
                if world.main and run.work_dir is not None:
                    self._save_state(training, epoch + 1, train, volumes)
        world.broadcast(list(training.modules.values()))  # every process holds what rank 0 saves
        return training

    def _one_epoch(self, training: Training, epoch: int, bar) -> None:
        sums: dict[str, float] = {}
        steps = 0
        for losses in self.epoch(training, epoch):
            for key, value in losses.items():
                sums[key] = sums.get(key, 0.0) + float(value)
            steps += 1
            bar.update(epoch=epoch + 1, **losses)
        keys = sorted(sums)
        world = training.world
        totals = dict(zip(keys, world.sum([sums[k] for k in keys])))
        training.history.append({"epoch": epoch + 1, **{k: totals[k] / max(steps, 1) / world.size for k in keys},
                                 "processes": world.size})

    # ---- the per-epoch state (resume) --------------------------------------------------------------
    def state_path(self, run: RunContext, part: str = "") -> Path | None:
        """``train_state.pt`` (``train_state_PART.pt``) in the run's work directory; None: none kept."""
        if run.work_dir is None:
            return None
        return Path(run.work_dir) / (f"train_state_{part}.pt" if part else "train_state.pt")

    def _fingerprint(self, train, volumes, run: RunContext, part: str, training: Training | None) -> dict:
        skip = (*self.resumable_options, *self.sampling_options)
        options = {k: v for k, v in config_dict(self.config).items() if k not in skip}
        real = np.flatnonzero(train.synth == REAL)
        return json.loads(json.dumps({
            "synthesizer": self.name, "options": options, "seed": run.seed, "part": part,
            "image_shape": list(train.image_shape), "class names": list(train.class_names),
            "training images": [int(len(real)), [int(n) for n in np.bincount(train.labels[real],
                                                                              minlength=len(train.class_names))]],
            **(training.fingerprint if training is not None else {})}, sort_keys=True, default=str))

    def _read_state(self, train, volumes, run: RunContext, part: str, training: Training | None = None):
        """The saved state of this part, checked to come from the same fit; None when there is none."""
        path = self.state_path(run, part)
        if path is None or not path.is_file():
            return None
        state = load_checkpoint(path)
        saved = json.loads(state.get("fingerprint", "{}")) if isinstance(state.get("fingerprint"), str) else {}
        now = self._fingerprint(train, volumes, run, part, training)
        if training is None:  # check(): only what is known before start()
            saved = {k: v for k, v in saved.items() if k in now}
        differing = _first_difference(saved, now)
        if differing is not None:
            what, was, is_now = differing
            raise SynthaugError(f"{path}: the state of another {self.name} fit ({what}: {was} there, {is_now} in this "
                                f"run); remove it or choose another --work-dir")
        return state

    def _save_state(self, training: Training, epoch: int, train, volumes) -> None:
        import torch

        path = self.state_path(training.run, training.part)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {"epoch": epoch,
                 "fingerprint": json.dumps(self._fingerprint(train, volumes, training.run, training.part, training)),
                 "history": training.history, "torch_rng": torch.get_rng_state(),
                 **{group: {k: v.state_dict() for k, v in getattr(training, group).items()}
                    for group in ("modules", "optimizers", "schedulers", "state")},
                 "generators": {k: _generator_state(g) for k, g in training.generators.items()}}
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        save_checkpoint(state, path)  # atomic; loadable with weights_only=True
        samples = path.parent / "samples"
        samples.mkdir(exist_ok=True)
        name = f"{training.part}_epoch{epoch:03d}.png" if training.part else f"epoch{epoch:03d}.png"
        with torch.random.fork_rng(devices=[]):  # a figure draws nothing from the training's streams
            self.samples(training, samples / name)
        if not any(samples.iterdir()):  # a plugin without figures leaves no empty folder
            samples.rmdir()

    def _resume(self, training: Training, state: dict | None) -> int:
        """The epoch to start from: 0, or where the saved state stopped (everything restored)."""
        if state is None:
            return 0
        import torch

        for group in ("modules", "optimizers", "schedulers", "state"):
            for key, obj in getattr(training, group).items():
                obj.load_state_dict(state[group][key])
        for key, generator in training.generators.items():
            _set_generator_state(generator, state["generators"][key])
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        training.history = list(state.get("history", []))
        return min(int(state["epoch"]), training.epochs)

    # ---- save / load -------------------------------------------------------------------------------
    def save(self, directory) -> None:
        if not self.fitted:
            raise SynthaugError(f"{self.name} is not fitted: nothing to save")
        directory = Path(directory)
        super().save(directory)
        for name, module in self.weights().items():
            save_torch_file({k: v.detach().cpu() for k, v in module.state_dict().items()}, directory / f"{name}.pt")
        work = self._work_dir
        if work is not None and (work / "samples").is_dir() and work.resolve() != directory.resolve():
            shutil.copytree(work / "samples", directory / "samples", dirs_exist_ok=True)
        info = json.loads((directory / "synthesizer.json").read_text())
        info.update(seed=self.seed, weights=self.hashes, image_shape=list(self.image_shape or ()),
                    class_names=list(self.class_names or ()), history=self.history, **self.checkpoint_info())
        (directory / "synthesizer.json").write_text(json.dumps(info, indent=2))

    @classmethod
    def load(cls, directory) -> "TrainableSynthesizer":
        directory = Path(directory)
        path = directory / "synthesizer.json"
        if not path.is_file():
            raise SynthaugError(f"{directory}: not a synthesizer checkpoint (no synthesizer.json)")
        info = json.loads(path.read_text())
        if info.get("name") != cls.name:
            raise SynthaugError(f"{directory} holds a {info.get('name')!r} checkpoint; expected {cls.name!r}")
        info = cls.upgrade_info(info)
        if not info.get("weights"):
            raise SynthaugError(f"{directory}: {cls.name} checkpoint holds no fitted network")
        synth = cls(**saved_options(cls, info.get("config", {})))
        synth.memory, synth.seed, synth.history = info.get("memory"), info.get("seed"), list(info.get("history", []))
        synth.image_shape = tuple(info["image_shape"]) if info.get("image_shape") else None
        synth.class_names = tuple(info["class_names"]) if info.get("class_names") else None
        synth.restore_info(info)
        modules = synth.networks(info)
        for name, expected in info["weights"].items():
            synth.hashes[name] = _load_weights(modules.get(name), directory / f"{name}.pt", expected)
        synth.use_networks(modules)
        return synth

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(image_shape=list(self.image_shape or ()), checkpoints=dict(self.hashes))
        return info


def _load_weights(module, path: Path, expected: str) -> str:
    """Read ``path`` (tensors only) into ``module``; its hash, checked against ``expected``."""
    if module is None:
        raise SynthaugError(f"{path}: synthesizer.json names weights that its networks do not have")
    if not path.is_file():
        raise SynthaugError(f"{path}: missing weights ({path.name})")
    try:
        module.load_state_dict(load_checkpoint(path))  # weights_only: nothing unpickled
    except RuntimeError as exc:  # tensors of another network
        first = str(exc).strip().splitlines()[0]
        raise SynthaugError(f"{path}: weights do not fit the network of synthesizer.json ({first[:160]})") from exc
    digest = weights_hash(module)
    if digest != expected:
        raise SynthaugError(f"{path}: weights hash {digest[:16]} does not match synthesizer.json")
    return digest


def _generator_state(generator):
    return generator.bit_generator.state if hasattr(generator, "bit_generator") else generator.get_state()


def _set_generator_state(generator, state) -> None:
    if hasattr(generator, "bit_generator"):
        generator.bit_generator.state = state
    else:
        generator.set_state(state)


def _first_difference(saved: dict, now: dict):
    """(what, saved value, this run's value) of the first entry that differs, options first; None if equal."""
    options_then, options_now = saved.get("options", {}), now.get("options", {})
    for key in sorted(set(options_then) | set(options_now)):
        if options_then.get(key) != options_now.get(key):
            return f"option {key}", options_then.get(key), options_now.get(key)
    for key in sorted(set(saved) | set(now)):
        if key != "options" and saved.get(key) != now.get(key):
            return key, _short(saved.get(key)), _short(now.get(key))
    return None


def _short(value) -> str:
    if isinstance(value, list) and len(value) == 3 and all(isinstance(v, int) for v in value):
        return shape_text(value)
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def shape_text(shape) -> str:
    """``32x32x1`` for ``(1, 32, 32)``: how messages write an image shape (H x W x C)."""
    c, h, w = shape
    return f"{h}x{w}x{c}"
