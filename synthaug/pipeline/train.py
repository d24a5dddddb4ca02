"""The classifier training loop shared by every classifier plugin (no network code here).

``train(store, out, config)`` trains the registered classifier ``config.classifier`` on the store's
``train`` split into a run directory (its format: :mod:`synthaug.pipeline.runs`). It does not look at
the ``test`` split: :func:`synthaug.pipeline.evaluate.evaluate` measures the finished run.

Schedules: ``scratch`` trains everything for ``epochs`` (liang2021: 60). ``transfer`` loads local
ImageNet weights, trains the new head on a frozen backbone (liang2021: 50 epochs), then unfreezes the
last block and fine-tunes at ``finetune_lr`` = 1e-5 (liang2021: 10 epochs); ``epochs`` counts both.
``finetune`` loads the ImageNet weights and trains the whole network from the first epoch at ``lr``
(quan2021's DenseNet121 baseline: lr 0.002, cosine annealing over all epochs, augmentation off).

Under torchrun (``torchrun --nproc_per_node N synthaug train ...``) the same call trains one model in
N processes (:mod:`synthaug.kit.distributed`): every rank draws the same epoch order from the seed and
takes its share of each batch, DistributedDataParallel averages the gradients (BatchNorm becomes
SyncBatchNorm on CUDA; on the CPU, gloo has none and each rank normalises its own share), training
sums are added across ranks, and rank 0 alone validates, writes checkpoints and the manifest. The run
directory is the single-process layout, so ``--resume`` works at any number of processes.

Imbalance recipes (all off by default): ``loss_weights`` (a class-weighted loss), ``sampler = "balanced"``
(each draw a class picked uniformly, then an image of it) and ``logit_adjust`` (Menon et al. 2021's
logit-adjusted loss); :func:`imbalance_recipe` resolves them on the training split, the manifest keeps
them (``config`` and ``recipe``).

One epoch's steps (:func:`train_epoch` over :func:`epoch_batches`, with an optimizer from
:func:`stage_optimizer`) are also how ``synthaug quality`` trains its feature network
(:func:`synthaug.assess.features.train_on_real`), with a config of its own.
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np

from synthaug.contract.types import REAL
from synthaug.errors import SynthaugError
from synthaug.kit import distributed
from synthaug.kit.device import check_device, resolve_device
from synthaug.kit.files import file_hash
from synthaug.kit.memory import (
    TrainingEstimate,
    check_memory,
    finish_record,
    parameter_bytes,
    saved_bytes,
    too_small_error,
)
from synthaug.kit.state import keeps_state
from synthaug.pipeline.runs import (
    KIND,
    RunPaths,
    load_checkpoint,
    loader,
    predict,
    rng_state,
    save_checkpoint,
    set_rng_state,
    versions,
    write_manifest,
)
from synthaug.pipeline.split import validation_split
from synthaug.pipeline.store import open_store, store_info

MODES = ("scratch", "transfer", "finetune")
#: Modes that start from a local ImageNet state dict (``weights`` required).
PRETRAINED_MODES = ("transfer", "finetune")
OPTIMIZERS = ("adam", "sgd")
SCHEDULERS = ("none", "cosine")
LOGS = ("none", "tensorboard")
#: ``sampler``: each training image once per epoch, shuffled; or a class drawn uniformly, then one of its images.
SAMPLERS = ("none", "balanced")
#: ``loss_weights`` by name (or a table ``{class: weight}``).
LOSS_WEIGHTS = ("none", "balanced")
#: Fields that may differ when resuming: they change where and how fast, or what is kept, not what is computed.
RESUMABLE_DIFFERENCES = ("device", "num_workers", "bf16", "compile", "log", "keep_optimizer")
#: DataLoader workers on CUDA when ``num_workers`` is not given (at most the CPU count).
CUDA_WORKERS = 4


@dataclass
class TrainConfig:
    """Training options. Defaults follow liang2021 where it states them, Keras (which it used) elsewhere."""

    classifier: str | None = None  # a registered classifier name (required)
    mode: str = "scratch"  # "scratch": all layers, random init; "transfer": ImageNet weights, staged schedule;
    #                        "finetune": ImageNet weights, all layers from epoch 1 at `lr` (quan2021's baseline)
    weights: str | Path | None = None  # local torchvision-format state dict (transfer and finetune)
    epochs: int = 60  # liang2021: 60 from scratch; 50 frozen + 10 fine-tuning in transfer
    finetune_epochs: int | None = None  # transfer: epochs (within `epochs`) with the last block unfrozen;
    #                                     None: epochs/6 (10 of 60)
    batch_size: int = 32  # not stated in liang2021: Keras' default
    lr: float = 1e-3  # scratch, finetune, and the head in transfer stage 1: Adam's (and Keras') default
    finetune_lr: float = 1e-5  # liang2021: transfer stage 2
    optimizer: str = "adam"  # "adam" or "sgd" (momentum below)
    momentum: float = 0.9
    weight_decay: float = 0.0
    scheduler: str = "none"  # "none" (liang2021 states none) or "cosine" (annealed to 0 over each stage; one stage
    #                          spanning all epochs in scratch and finetune)
    val_fraction: float = 0.1  # stratified share of the train split held out for checkpoint selection
    augment: bool = True  # liang2021: horizontal flip + rotation up to 5 degrees
    hflip_p: float = 0.5
    rotation_degrees: float = 5.0
    seed: int = 0
    positive_class: str | None = None  # for sensitivity/specificity; None: "covid" if present
    classifier_options: dict = field(default_factory=dict)  # e.g. {"width": 0.25} for tests only
    num_workers: int | None = None  # DataLoader workers reading the store; None: 0 on the CPU, 4 on CUDA
    steps_per_epoch: int | None = None  # cap on the batches of an epoch (smoke runs, benchmarks); None: all
    device: str = "auto"  # "auto" (cuda if available), "cpu", "cuda" or "cuda:N"
    bf16: bool = True  # CUDA only: bfloat16 autocast of the forward pass (the CPU trains in float32)
    compile: bool = False  # torch.compile the network (opt-in: slow to start, faster steps after)
    log: str = "none"  # "tensorboard": also write TensorBoard event files in RUN/tensorboard
    #                    (needs the tensorboard package)
    keep_optimizer: bool = False  # keep checkpoints/last.pt (optimizer state) once the run has finished;
    #                               False: best.pt only
    # The classical ways to train on an imbalanced split (docs/classifiers.md, "Recipes for imbalance"):
    loss_weights: str | dict = "none"  # "none"; "balanced": each class's weight is the inverse of its frequency
    #                                    in the training split, scaled to average 1 over its images; or a table
    #                                    {class: weight}. The loss is the batch's mean of weight * cross-entropy
    sampler: str = "none"  # "none": every image once per epoch; "balanced": each draw picks a class uniformly,
    #                        then one of its images (with replacement), as many draws as the split has images
    logit_adjust: float = 0.0  # tau of Menon et al. 2021: the training loss is on logits + tau * log(class prior
    #                            of the training split); predictions use the plain logits. 0: off
    pool_p: float = 0.0  # a replacement pool (an experiment arm's `pool`): an epoch visits the store's real
    #                      training images, each replaced by one of its synthetic variants with this
    #                      probability (synthaug.pipeline.pool); 0: every image of the store, real or not
    init: str | None = None  # a finished run directory (its best checkpoint) or a checkpoint file of this
    #                          classifier, whose network weights this run starts from: fine-tuning after
    #                          pretraining on synthetic-balanced data (scratch mode); None: random init

    def __post_init__(self) -> None:
        choices = {"mode": MODES, "optimizer": OPTIMIZERS, "scheduler": SCHEDULERS, "log": LOGS, "sampler": SAMPLERS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise SynthaugError(f"{name} must be one of {', '.join(allowed)}; got {getattr(self, name)!r}")
        self.device = check_device(self.device)
        if self.num_workers is not None and int(self.num_workers) < 0:
            raise SynthaugError(f"num_workers must be >= 0; got {self.num_workers}")
        for name in ("epochs", "batch_size") + (("steps_per_epoch",) if self.steps_per_epoch is not None else ()):
            if int(getattr(self, name)) < 1:
                raise SynthaugError(f"{name} must be at least 1; got {getattr(self, name)}")
        for name in ("lr", "finetune_lr"):
            if not float(getattr(self, name)) > 0:
                raise SynthaugError(f"{name} must be > 0; got {getattr(self, name)}")
        if not 0 <= self.val_fraction < 1:
            raise SynthaugError(f"val_fraction must lie in [0, 1); got {self.val_fraction}")
        if self.mode in PRETRAINED_MODES and not self.weights:
            raise SynthaugError(f"mode {self.mode!r} needs --weights PATH "
                                "(a local torchvision-format ImageNet state dict)")
        if self.mode == "scratch" and self.weights:
            raise SynthaugError(f"--weights {self.weights} applies to --mode transfer or finetune only; "
                                "got --mode scratch")
        if self.finetune_epochs is not None and self.mode != "transfer":
            raise SynthaugError(f"finetune_epochs applies to --mode transfer only (its last-block stage); "
                                f"got --mode {self.mode}")
        if self.finetune_epochs is not None and not 0 <= self.finetune_epochs <= self.epochs:
            raise SynthaugError(f"finetune_epochs must lie in [0, epochs={self.epochs}]; got {self.finetune_epochs}")
        if self.weights is not None:
            self.weights = str(self.weights)
        from synthaug.pipeline.pool import check_pool_p

        self.pool_p = check_pool_p(self.pool_p, "pool_p")
        if self.init is not None:
            if self.mode != "scratch":
                raise SynthaugError(f"init {self.init} (weights of an earlier run) applies to --mode scratch only; "
                                    f"got --mode {self.mode}")
            self.init = str(self.init)
        self.loss_weights = _check_loss_weights(self.loss_weights)
        if isinstance(self.logit_adjust, bool) or not isinstance(self.logit_adjust, (int, float)) or \
                not 0 <= self.logit_adjust < float("inf"):
            raise SynthaugError(f"logit_adjust must be a number >= 0 (tau; 0: off); got {self.logit_adjust}")
        self.logit_adjust = float(self.logit_adjust)

    @property
    def stage_two_epochs(self) -> int:
        """Fine-tuning epochs of the transfer schedule (0 for scratch)."""
        if self.mode != "transfer":
            return 0
        if self.finetune_epochs is not None:
            return self.finetune_epochs
        return min(self.epochs - 1, max(1, round(self.epochs / 6)))  # liang2021: 10 of 60

    def stage(self, epoch: int) -> str:
        """``scratch``, ``finetune-all`` (mode finetune), or ``frozen`` / ``finetune`` (transfer) for 1-based
        ``epoch``."""
        if self.mode == "scratch":
            return "scratch"
        if self.mode == "finetune":
            return "finetune-all"
        return "frozen" if epoch <= self.epochs - self.stage_two_epochs else "finetune"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], where: str = "") -> "TrainConfig":
        """A config from ``values`` (a manifest's config, a ``--config`` file, ``--train-option``s), each
        checked by name and against its field's type, as plugin options are; ``where`` (a file) is
        named in the message."""
        from synthaug.contract.config import make_config

        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        prefix = f"{where}: " if where else ""
        if unknown:
            raise SynthaugError(f"{prefix}unknown training option {unknown[0]!r}; "
                                f"options are {', '.join(sorted(known))}")
        try:
            return make_config(cls, values, "training")
        except SynthaugError as exc:
            raise SynthaugError(f"{prefix}{exc}") from None


def _check_loss_weights(value: Any) -> str | dict[str, float]:
    """``loss_weights`` checked: a name of :data:`LOSS_WEIGHTS`, or a table {class: weight > 0} (also
    written ``"covid=4,normal=1"``, as ``--loss-weights`` takes it); the class names are checked
    against the store's when training starts."""
    if isinstance(value, str) and value not in LOSS_WEIGHTS and "=" in value:
        value = dict(part.partition("=")[::2] for part in value.split(","))
    if isinstance(value, str) and value in LOSS_WEIGHTS:
        return value
    if not isinstance(value, dict) or not value:
        raise SynthaugError(f"loss_weights must be one of {', '.join(LOSS_WEIGHTS)} or a table {{class: weight}} "
                            f"(e.g. covid=4,normal=1); got {value!r}")
    table = {}
    for name, weight in value.items():
        try:
            table[str(name).strip()] = float(weight)
        except (TypeError, ValueError):
            table[str(name).strip()] = float("nan")
        if not 0 < table[str(name).strip()] < float("inf"):
            raise SynthaugError(f"loss_weights.{str(name).strip()} must be a number > 0; got {weight!r}")
    return table


# ---------------------------------------------------------------------------------------------
# pieces
# ---------------------------------------------------------------------------------------------
def epoch_order(indices: np.ndarray, seed: int, epoch: int, batch_size: int) -> list[int]:
    """The shuffled sample order of one epoch: a function of (seed, epoch) only, so resume repeats it.

    A last batch of one sample is dropped: BatchNorm cannot train on a single 1x1 feature map.
    """
    order = np.random.default_rng([seed, epoch]).permutation(indices)
    return _without_lone_last(order, batch_size)


def balanced_order(indices: np.ndarray, labels: np.ndarray, seed: int, epoch: int, batch_size: int) -> list[int]:
    """The sample order of one epoch of the class-balanced sampler (``sampler = "balanced"``): as many
    draws as ``indices`` holds, each a class picked uniformly among the classes present (``labels``: the
    class of each index), then one of its images uniformly, with replacement. A function of (seed, epoch)
    only, as :func:`epoch_order` is: resume repeats it and every torchrun rank draws the same order."""
    indices, labels = np.asarray(indices), np.asarray(labels)
    rng = np.random.default_rng([seed, epoch])
    classes = np.unique(labels)
    picks = rng.integers(len(classes), size=len(indices))
    order = np.empty(len(indices), dtype=indices.dtype)
    for k, c in enumerate(classes):
        members, at = indices[labels == c], np.flatnonzero(picks == k)
        order[at] = members[rng.integers(len(members), size=len(at))]
    return _without_lone_last(order, batch_size)


def _without_lone_last(order: np.ndarray, batch_size: int) -> list[int]:
    if len(order) % batch_size == 1 and len(order) > 1:
        order = order[:-1]
    return [int(i) for i in order]


def build_augmentation(config: TrainConfig):
    """Batched, on-device augmentation (liang2021: horizontal flip + rotation up to 5 degrees)."""
    import torch.nn as nn

    if not config.augment:
        return nn.Identity()
    import kornia.augmentation as K

    return nn.Sequential(K.RandomHorizontalFlip(p=config.hflip_p),
                         K.RandomRotation(degrees=config.rotation_degrees, p=1.0))


def make_optimizer(params, lr: float, config: TrainConfig):
    import torch

    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=config.momentum, weight_decay=config.weight_decay)


def make_scheduler(optimizer, config: TrainConfig, stage_epochs: int):
    import torch

    if config.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, stage_epochs))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)


def check_resumable(saved: dict[str, Any], config: TrainConfig, run: Path) -> None:
    """A resumed run must compute the same thing: every option equal but device/workers."""
    now, default = config.to_dict(), TrainConfig().to_dict()  # a run from before an option existed had its default
    saved = {**default, **saved}
    differing = [k for k in now if k not in RESUMABLE_DIFFERENCES and saved.get(k) != now[k]]
    if differing:
        k = differing[0]
        raise SynthaugError(f"--resume {run}: option {k} was {saved.get(k)!r} in that run; got {now[k]!r} "
                            f"(resume with the same options or start a new --out)")


# ---------------------------------------------------------------------------------------------
# one epoch: the steps every classifier loop shares (train, and the quality feature network)
# ---------------------------------------------------------------------------------------------
@dataclass
class Steps:
    """What each training step needs beside its batch, the same for every epoch: the data, where the
    steps run and how a batch is prepared before the network (:func:`training_steps` makes ``train``'s)."""

    dataset: Any  # a lazily read store split (images, labels)
    batch_size: int
    device: Any  # a torch.device
    workers: int = 0  # DataLoader workers
    augment: Callable | None = None  # batched, on the device, without gradients (None: none)
    autocast: Any = None  # the context the forward pass runs in (None: plain float32)
    layout: Any = None  # memory format of the batch (None: contiguous)
    class_weight: Any = None  # cross-entropy weight of each class, PyTorch's weighted mean (None: unweighted)
    loss_weight: Any = None  # weight of each class: the loss is the batch's mean of weight * cross-entropy
    #                          (``loss_weights``; None: unweighted)
    logit_shift: Any = None  # added to the logits in the loss only (``logit_adjust``: tau * log prior; None: none)


@dataclass
class EpochSums:
    """What one process's share of an epoch adds up to (``train`` adds them across ranks)."""

    loss: float  # the training loss (:func:`training_loss`) summed over the images
    correct: int
    seen: int
    seconds: float
    cpu_seconds: float  # CPU time of this process
    step_seconds: list[float]  # per batch, data reading and augmentation included


def memory_layout(device):
    """The memory format batches and weights take on ``device``: NHWC (the tensor cores' layout) on CUDA."""
    import torch

    return torch.channels_last if device.type == "cuda" else torch.contiguous_format


def training_steps(config: TrainConfig, dataset, device, recipe: dict[str, Any] | None = None) -> Steps:
    """``train``'s steps: ``num_workers`` (None: 0 on the CPU, up to :data:`CUDA_WORKERS` on CUDA),
    the augmentation of ``config``, bf16 autocast on CUDA when ``bf16``, and the loss weights and logit
    shift of ``recipe`` (:func:`imbalance_recipe`; None: plain cross-entropy)."""
    import torch

    cuda = device.type == "cuda"
    workers = config.num_workers if config.num_workers is not None else (
        min(CUDA_WORKERS, os.cpu_count() or 1) if cuda else 0)
    recipe = recipe or {}
    as_tensor = lambda values: None if values is None else torch.tensor(  # noqa: E731
        list(values.values()), dtype=torch.float32, device=device)
    prior = recipe.get("class_prior") if config.logit_adjust else None
    shift = None if prior is None else {c: config.logit_adjust * float(np.log(p)) for c, p in prior.items()}
    return Steps(dataset, config.batch_size, device, workers, augment=build_augmentation(config).to(device),
                 autocast=torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda and config.bf16),
                 layout=memory_layout(device), loss_weight=as_tensor(recipe.get("loss_weights")),
                 logit_shift=as_tensor(shift))


def imbalance_recipe(config: TrainConfig, class_names: list[str], counts: np.ndarray) -> dict[str, Any] | None:
    """What ``loss_weights``, ``sampler`` and ``logit_adjust`` resolve to on a training split of ``counts``
    images per class (in ``class_names``' order), the record the manifest keeps as ``recipe``: the
    counts, each class's loss weight (``balanced``: N / (K n_c), which averages 1 over the N images) and
    the class prior of logit adjustment; None when all three are off. A table naming another class or
    leaving one out, and a balanced recipe with a class that has no training image, are refused."""
    table = isinstance(config.loss_weights, dict)
    if not table and config.loss_weights == "none" and config.sampler == "none" and not config.logit_adjust:
        return None
    counts = np.asarray(counts, np.int64)
    if table:
        unknown = [c for c in config.loss_weights if c not in class_names]
        if unknown:
            raise SynthaugError(f"loss_weights names class {unknown[0]!r}, which is not one of "
                                f"{', '.join(class_names)}")
        missing = [c for c in class_names if c not in config.loss_weights]
        if missing:
            raise SynthaugError(f"loss_weights gives no weight for class {missing[0]!r}; "
                                f"give every class of the store ({', '.join(class_names)})")
    empty = [c for c, n in zip(class_names, counts) if n == 0]
    needs_every = [name for name, used in (("loss_weights 'balanced'", config.loss_weights == "balanced"),
                                           ("sampler 'balanced'", config.sampler == "balanced"),
                                           ("logit_adjust", config.logit_adjust > 0)) if used]
    if empty and needs_every:
        raise SynthaugError(f"{needs_every[0]} needs training images of every class; class {empty[0]!r} has none "
                            f"in the training split")
    weights = None
    if config.loss_weights == "balanced":
        weights = {c: float(counts.sum() / (len(counts) * n)) for c, n in zip(class_names, counts)}
    elif table:
        weights = {c: float(config.loss_weights[c]) for c in class_names}
    prior = {c: float(n / counts.sum()) for c, n in zip(class_names, counts)} if config.logit_adjust else None
    return {"class_counts": {c: int(n) for c, n in zip(class_names, counts)}, "loss_weights": weights,
            "sampler": config.sampler, "class_prior": prior, "logit_adjust": config.logit_adjust}


def epoch_batches(indices: np.ndarray, config: TrainConfig, epoch: int, world=None,
                  labels: np.ndarray | None = None, variants: list | None = None) -> list[list[int]]:
    """The batches this process trains in ``epoch``: :func:`epoch_order` (:func:`balanced_order` with
    ``sampler = "balanced"``; ``labels``: the class of every row of the split), its first ``steps_per_epoch``
    batches when capped, cut into global batches and this rank's share of each (``world``: the process
    group; None: a world of one)."""
    world = world if world is not None else distributed.World()
    if config.sampler == "balanced":
        if labels is None:
            raise ValueError("sampler 'balanced' needs the labels of the split")
        order = balanced_order(indices, np.asarray(labels)[indices], config.seed, epoch, config.batch_size)
    else:
        order = epoch_order(indices, config.seed, epoch, config.batch_size)
    if config.steps_per_epoch is not None:  # the first batches of the epoch's order, nothing else changes
        order = order[:config.steps_per_epoch * config.batch_size]
    if variants is not None and config.pool_p > 0:  # a pool: real images swapped for their variants
        from synthaug.pipeline.pool import swap

        order = swap(order, variants, config.pool_p, config.seed, epoch)
    return [world.share(b) for b in world.batches(order, config.batch_size)]


def stage_optimizer(model, classifier, config: TrainConfig, stage: str):
    """A fresh optimizer for ``stage`` (as Keras' recompile does) over the parameters the stage trains,
    which become the only trainable ones (:func:`make_scheduler` makes its schedule)."""
    from synthaug.kit.transfer import freeze_except

    params = freeze_except(model, _stage_prefixes(classifier, stage) or ("",))
    return make_optimizer(params, _stage_lr(config, stage), config)


def training_loss(logits, targets, steps: Steps):
    """The loss a step minimises: cross-entropy of ``logits`` (float32) against ``targets``, on
    ``logits + steps.logit_shift`` (logit adjustment) and as the batch's mean of ``steps.loss_weight[y] *
    cross-entropy`` when those are set; otherwise PyTorch's cross-entropy with ``steps.class_weight``."""
    import torch.nn.functional as F

    if steps.logit_shift is not None:
        logits = logits + steps.logit_shift
    if steps.loss_weight is None:
        return F.cross_entropy(logits, targets, weight=steps.class_weight)
    return (F.cross_entropy(logits, targets, reduction="none") * steps.loss_weight[targets]).mean()


def train_epoch(stepper, optimizer, batches: list[list[int]], steps: Steps, bar) -> EpochSums:
    """One pass over ``batches`` (index lists of ``steps.dataset``): read, move to the device, augment,
    forward through ``stepper`` (the model or its wrapper), :func:`training_loss` in float32, one optimizer step
    per batch; ``bar`` (a :func:`synthaug.kit.progress.bar`) advances a step per batch. The caller puts
    the model in train mode."""
    import contextlib

    import torch

    cuda = steps.device.type == "cuda"
    augment = steps.augment or (lambda images: images)
    autocast = steps.autocast if steps.autocast is not None else contextlib.nullcontext()
    layout = steps.layout if steps.layout is not None else torch.contiguous_format
    loss_sum, correct, seen, started, cpu_started = 0.0, 0, 0, time.perf_counter(), time.process_time()
    step_seconds, step_started = [], started
    for images, targets in loader(steps.dataset, batches, steps.batch_size, steps.workers, pin_memory=cuda):
        images, targets = images.to(steps.device, non_blocking=cuda), targets.to(steps.device, non_blocking=cuda)
        with torch.no_grad():
            images = augment(images).contiguous(memory_format=layout)
        with autocast:  # bf16 on CUDA; the loss is computed in float32 either way
            logits = stepper(images)
        loss = training_loss(logits.float(), targets, steps)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += loss.item() * len(targets)
        correct += int((logits.argmax(1) == targets).sum())
        seen += len(targets)
        bar.update(loss=loss.item())
        step_seconds.append(time.perf_counter() - step_started)
        step_started = time.perf_counter()
    return EpochSums(loss_sum, correct, seen, time.perf_counter() - started, time.process_time() - cpu_started,
                     step_seconds)


# ---------------------------------------------------------------------------------------------
# the loop
# ---------------------------------------------------------------------------------------------
@keeps_state
def train(data: str | Path, out: str | Path, config: TrainConfig | None = None, *, resume: bool = False,
          on_epoch_end: Callable[[dict], None] | None = None, **options: Any) -> Path:
    """Train ``config.classifier`` on ``data`` (a store) into run directory ``out``; return ``out``.

    ``options`` override fields of ``config`` (``train(store, out, epochs=1)``). ``on_epoch_end``
    receives each epoch's history record (raise in it to stop, e.g. to simulate an interruption).
    """
    config = TrainConfig.from_dict({**(config.to_dict() if config else {}), **options})
    job = _checked_job(Path(data), Path(out), config, resume)  # every refusal before any work
    if job is None:
        return Path(out)  # every epoch is done: nothing to continue
    if config.log == "tensorboard":
        _check_tensorboard()  # before any work: a missing package is one line, not a traceback after epoch 1
    _open_data(job)
    _build_model(job)
    _start(job)
    _train_epochs(job, on_epoch_end)
    _finish(job)
    return job.run


@dataclass
class _Job:
    """One call of :func:`train`, filled in stage by stage."""

    config: TrainConfig
    data: Path
    run: Path
    paths: RunPaths
    info: dict[str, Any]  # the store's
    entry: Any  # the classifier's registry entry
    data_hash: str
    manifest: dict[str, Any] | None = None  # the run's (an earlier one's when resuming)
    checkpoint: dict[str, Any] | None = None  # last.pt when resuming
    classifier: Any = None
    device: Any = None
    world: Any = None
    dataset: Any = None  # the train split
    class_names: list[str] = field(default_factory=list)
    split: Any = None  # train and validation indices (synthaug.pipeline.split.validation_split)
    memory_record: dict[str, Any] | None = None
    recipe: dict[str, Any] | None = None  # imbalance_recipe's record (None: no loss weights, sampler, logit shift)
    train_rows: Any = None  # the rows an epoch visits: the train split's, or its real ones for a pool
    real: Any = None  # per row of the store's train split: a real image
    variants: list | None = None  # a pool's variants per row (synthaug.pipeline.pool); None: no pool
    model: Any = None
    weights_report: dict[str, Any] | None = None
    steps: Steps | None = None
    stepper: Any = None  # what a step calls: the model, wrapped for several processes, compiled
    optimizer: Any = None
    scheduler: Any = None
    stage: str | None = None  # the stage the optimizer was made for
    start_epoch: int = 1
    log: EpochLog | None = None


def _checked_job(data: Path, run: Path, config: TrainConfig, resume: bool) -> _Job | None:
    """The job, its store, classifier, weights and run directory checked (and a resumed run's manifest
    and last checkpoint read); None when resuming a run that has finished."""
    from synthaug.registry import get_registry

    info = store_info(data)
    if "train" not in info["splits"] or "test" not in info["splits"]:
        raise SynthaugError(f"{data}: training needs a 'train' and a 'test' split; the store has "
                            f"{', '.join(info['splits']) or 'none'} (make one with `synthaug balance`)")
    paths = RunPaths(run)
    if resume and not paths.manifest.is_file():  # a manifest without last.pt: stopped before epoch 1 ended
        raise SynthaugError(f"--resume {run}: no checkpoint there "
                            f"(no run was started in it: expected {paths.manifest})")
    if not config.classifier:
        raise SynthaugError("training needs a classifier: pass --classifier NAME (see `synthaug plugins`)")
    entry = get_registry().entry("classifier", config.classifier)  # unknown names fail before any work
    if config.weights is not None and not resume and not Path(config.weights).is_file():
        raise SynthaugError(f"{config.weights}: no such weights file")  # before the store is read
    if config.init is not None and not resume and not init_checkpoint(config.init).is_file():
        raise SynthaugError(f"init {config.init}: no finished run or checkpoint file there "
                            f"(expected {init_checkpoint(config.init)})")
    job = _Job(config, data, run, paths, info, entry, file_hash(data))
    if resume:
        job.manifest = json.loads(paths.manifest.read_text())
        check_resumable(job.manifest["config"], config, run)
        if job.manifest["data"]["sha256"] != job.data_hash:
            raise SynthaugError(f"--resume {run}: {data} is not the store that run trained on (sha256 differs)")
        if job.manifest.get("status") == "finished" and paths.best.is_file():
            return None  # every epoch is done (a finished run keeps best.pt alone): nothing to continue
        # a run stopped before its first checkpoint (killed, or the disk filled) starts again from epoch 1
        job.checkpoint = load_checkpoint(paths.last) if paths.last.exists() else None
    elif paths.last.exists() or paths.manifest.exists():
        raise SynthaugError(f"{run} already holds a run; pass --resume to continue it or choose another --out")
    return job


def _open_data(job: _Job) -> None:
    """The classifier, the device and process group, the train split (a wrong positive class and a
    batch too big for the device refused here, before any weights are built) and its validation split."""
    import torch

    from synthaug.kit import progress
    from synthaug.pipeline.metrics import resolve_positive

    config = job.config
    job.classifier = job.entry.resolve()(**config.classifier_options)
    device = resolve_device(config.device)
    world = distributed.world(device.type)
    world.barrier()  # every rank has checked --out before rank 0 writes into it
    if world.distributed and device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
    if not world.main:
        progress.set_quiet(True)
    job.device, job.world = device, world
    job.dataset = dataset = open_store(job.data, "train")
    job.class_names = list(dataset.class_names)
    if config.positive_class is not None:
        resolve_positive(job.class_names, config.positive_class)  # a wrong name fails before any training
    job.memory_record = check_training_memory(job.classifier, job.entry.name, tuple(dataset.image_shape),
                                              len(job.class_names), config, device)
    job.split = validation_split(dataset.labels, dataset.synth, dataset.patient_ids, config.val_fraction, config.seed)
    job.train_rows, job.real = job.split.train, np.asarray(dataset.synth).astype(str) == REAL
    if config.pool_p > 0:  # a pool: an epoch visits the real training images; their variants stand in
        from synthaug.pipeline.pool import pool_variants

        job.variants = pool_variants(dataset.labels, dataset.synth, dataset.source_index)
        job.train_rows = job.split.train[job.real[job.split.train]]
        if not any(len(job.variants[r]) for r in job.train_rows):
            raise SynthaugError(f"pool_p {config.pool_p}: {job.data} holds no synthetic variant of a training "
                                f"image; a pool store is balanced with a synthetic share (an arm's "
                                f"pool = {{ per_image = k }})")
    counts = np.bincount(np.asarray(dataset.labels)[job.train_rows], minlength=len(job.class_names))
    job.recipe = imbalance_recipe(config, job.class_names, counts)  # a wrong table is refused before any training


def _build_model(job: _Job) -> None:
    """The seeded network (the ImageNet weights loaded in a new pretrained run) on the device, and the
    steps that train it."""
    import torch

    config, device, world = job.config, job.device, job.world
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    np.random.seed(config.seed)
    model = job.classifier.build(job.dataset.image_shape[0], len(job.class_names))
    if config.mode in PRETRAINED_MODES and job.checkpoint is None:
        job.weights_report = {**asdict(job.classifier.load_weights(model, config.weights)),
                              "sha256": file_hash(Path(config.weights))}
    if config.init is not None and job.checkpoint is None:
        path = init_checkpoint(config.init)
        state = load_checkpoint(path)
        try:
            model.load_state_dict(state.get("model", state) if isinstance(state, dict) else state)
        except (RuntimeError, AttributeError) as exc:
            first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            raise SynthaugError(f"init {path}: not the weights of this classifier ({first})") from None
        job.weights_report = {"init": str(path), "sha256": file_hash(path)}
    if world.distributed and device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if device.type == "cuda":
        model.to(device, memory_format=memory_layout(device))
    else:
        model.to(device)
    job.model = model
    job.steps = training_steps(config, job.dataset, device, job.recipe)


def init_checkpoint(init: str | Path) -> Path:
    """The checkpoint ``init`` names: a run directory's best checkpoint, or the file itself."""
    path = Path(init)
    return RunPaths(path).best if path.is_dir() else path


def _stepper(job: _Job):
    """What the training step calls: the model, or its DistributedDataParallel wrapper, compiled with
    ``compile`` (the checkpoints keep the plain model's weights)."""
    import torch

    wrapped = _distributed(job.model, job.world, job.device)
    return torch.compile(wrapped) if job.config.compile else wrapped


def _start(job: _Job) -> None:
    """A new run's manifest (rank 0 writes it), or the resumed run's state from its last checkpoint."""
    config, checkpoint = job.config, job.checkpoint
    if checkpoint is None:
        job.manifest = _new_manifest(job)
        if job.world.main:
            job.run.mkdir(parents=True, exist_ok=True)
            write_manifest(job.run, job.manifest)
        return
    job.model.load_state_dict(checkpoint["model"])
    job.start_epoch, job.stage = checkpoint["epoch"] + 1, checkpoint["stage"]
    job.optimizer = stage_optimizer(job.model, job.classifier, config, job.stage)
    job.optimizer.load_state_dict(checkpoint["optimizer"])
    job.scheduler = make_scheduler(job.optimizer, config, _stage_length(config, job.stage))
    job.scheduler.load_state_dict(checkpoint["scheduler"])
    set_rng_state(checkpoint["rng"])
    # The checkpoint is the truth: a kill between it and the manifest write loses nothing.
    job.manifest.update(history=checkpoint["history"], best=checkpoint["best"], status="running",
                        memory=job.memory_record)
    job.stepper = _stepper(job)  # the resumed stage's trained set, as in its epoch 1


def _new_manifest(job: _Job) -> dict[str, Any]:
    entry, split, test = job.entry, job.split, job.info["splits"]["test"]
    return {
        "kind": KIND, "config": job.config.to_dict(), "versions": versions(entry),
        "classifier": {"name": entry.name, "plugin": entry.plugin, "module": entry.module},
        "data": {"path": str(job.data.resolve()), "sha256": job.data_hash, "class_names": job.class_names,
                 "image_shape": list(job.dataset.image_shape), "train": len(split.train), "val": len(split.val),
                 "val_patients": split.val_patients, "withheld_from_training": split.withheld,
                 "test": sum(test["classes"].values())},
        "weights": job.weights_report, "history": [], "best": None, "status": "running",
        "memory": job.memory_record, **({"recipe": job.recipe} if job.recipe is not None else {}),
    }


def _train_epochs(job: _Job, on_epoch_end: Callable[[dict], None] | None) -> None:
    config, world = job.config, job.world
    job.log = EpochLog(job.paths, job.entry.name, config.epochs, _tensorboard_writer(job.paths, job.start_epoch)
                       if config.log == "tensorboard" and world.main else None)
    for epoch in range(job.start_epoch, config.epochs + 1):
        record = _train_one_epoch(job, epoch)
        if world.main:  # rank 0 validates and writes; the others wait for it and go on
            _keep_epoch(job, record)
        world.barrier()
        if on_epoch_end is not None:
            on_epoch_end(record)


def _train_one_epoch(job: _Job, epoch: int) -> dict[str, Any]:
    """Train epoch ``epoch`` (a new stage first gets its fresh optimizer); its history record, before
    validation."""
    from synthaug.kit import progress
    from synthaug.kit.transfer import train_mode

    config, world = job.config, job.world
    stage = config.stage(epoch)
    if stage != job.stage:  # a new stage gets a fresh optimizer, as Keras' recompile does
        job.optimizer = stage_optimizer(job.model, job.classifier, config, stage)
        job.scheduler = make_scheduler(job.optimizer, config, _stage_length(config, stage))
        job.stage = stage
        job.stepper = _stepper(job)  # after freezing: DDP fixes the trained set
    train_mode(job.model, _stage_prefixes(job.classifier, stage))
    batches = epoch_batches(job.train_rows, config, epoch, world, labels=job.dataset.labels, variants=job.variants)
    with progress.bar(f"{job.entry.name} epoch {epoch}/{config.epochs} ({stage})", len(batches)) as bar:
        sums = train_epoch(job.stepper, job.optimizer, batches, job.steps, bar)
    seconds = sums.seconds
    loss_sum, correct, seen = world.sum([sums.loss, sums.correct, sums.seen])  # every rank's share of the epoch
    epoch_lr = job.optimizer.param_groups[0]["lr"]  # the rate this epoch trained at
    job.scheduler.step()
    return {"epoch": epoch, "stage": stage, "lr": epoch_lr,
            "train_loss": loss_sum / max(seen, 1), "train_accuracy": correct / max(seen, 1),
            "train_seconds": seconds, "train_images_per_s": seen / seconds if seconds else None,
            "train_step_seconds_median": float(np.median(sums.step_seconds)) if sums.step_seconds else None,
            "train_cpu_seconds": sums.cpu_seconds,  # CPU time of this process (shared machines)
            **({"pool_replaced": int(world.sum([sum(not job.real[i] for b in batches for i in b)])[0])}
               if job.variants is not None else {}),  # every rank's share of the swapped items
            "val_loss": None, "val_accuracy": None, "val_macro_f1": None, "processes": world.size}


def _keep_epoch(job: _Job, record: dict[str, Any]) -> None:
    """Rank 0: validate the epoch into ``record``, keep it in the manifest, best.pt when it is the best
    so far, last.pt (everything a resume needs), and show it."""
    from synthaug.pipeline.metrics import classification_metrics

    manifest, paths, val_idx = job.manifest, job.paths, job.split.val
    if len(val_idx):
        y, probabilities, val_loss = predict(job.model, job.dataset, val_idx, job.config.batch_size, job.device,
                                             job.steps.workers)
        val = classification_metrics(y, probabilities.argmax(1), job.class_names)
        record.update(val_loss=val_loss / len(y), val_accuracy=val["accuracy"], val_macro_f1=val["macro_f1"])
    score = epoch_score(record)
    manifest["history"].append(record)
    manifest["memory"] = finish_record(job.memory_record)  # the peak so far, kept even if the run stops
    if manifest["best"] is None or score > manifest["best"]["score"]:
        manifest["best"] = {"epoch": record["epoch"], "score": score, "val_macro_f1": record["val_macro_f1"]}
        save_checkpoint({"model": job.model.state_dict(), "epoch": record["epoch"]}, paths.best)
    save_checkpoint({"model": job.model.state_dict(), "optimizer": job.optimizer.state_dict(),
                     "scheduler": job.scheduler.state_dict(), "rng": rng_state(), "epoch": record["epoch"],
                     "stage": record["stage"], "history": manifest["history"], "best": manifest["best"]}, paths.last)
    write_manifest(job.run, manifest)
    job.log.epoch(record, manifest["history"], manifest["best"])


def _finish(job: _Job) -> None:
    """Close the data and the log; rank 0 marks the run finished, drops last.pt unless it is to be kept
    and draws the curves."""
    from synthaug.pipeline.report import plot_curves

    job.dataset.close()
    job.log.close()
    if job.world.main:
        job.manifest["status"] = "finished"
        write_manifest(job.run, job.manifest)  # before last.pt goes: a kill in between leaves a finished run
        if not job.config.keep_optimizer:
            # the optimizer state doubles a run's size; best.pt is what evaluate reads
            job.paths.last.unlink(missing_ok=True)
        plot_curves(job.manifest["history"], job.paths.curves, title=f"{job.entry.name} ({job.config.mode})")
    job.world.barrier()
    job.world.close()


def epoch_score(record: dict) -> float:
    """What picks the best epoch: validation macro-F1, or with no validation split the epoch itself
    (the latest is the best)."""
    return record["val_macro_f1"] if record.get("val_macro_f1") is not None else float(record["epoch"])


#: history.csv's columns: the per-epoch record of manifest.json's ``history``, in this order.
HISTORY_COLUMNS = ("epoch", "stage", "lr", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_macro_f1",
                   "best_epoch", "train_seconds", "train_images_per_s", "train_step_seconds_median",
                   "train_cpu_seconds", "processes")


class EpochLog:
    """What a run shows and keeps of each epoch (rank 0): one line on stderr (the measures, the best so
    far and the time, whether or not stderr is a terminal: SLURM logs read the same), ``history.csv``
    rewritten atomically from the history (so a resumed run's file is the uninterrupted one's), and
    TensorBoard scalars when asked for."""

    def __init__(self, paths: RunPaths, name: str, epochs: int, board=None):
        self.paths, self.name, self.epochs, self.board = paths, name, epochs, board

    def epoch(self, record: dict, history: list[dict], best: dict) -> None:
        from synthaug.kit import progress

        write_history_csv(self.paths.history, history, best)
        r = record
        val = ("" if r["val_loss"] is None else
               f" | val loss {r['val_loss']:.4f} acc {r['val_accuracy']:.3f} macro-F1 {r['val_macro_f1']:.3f}")
        best_text = f"best macro-F1 {best['val_macro_f1']:.3f} (epoch {best['epoch']})" if best.get(
            "val_macro_f1") is not None else f"best epoch {best['epoch']} (no validation: the latest)"
        progress.note(f"{self.name} epoch {r['epoch']}/{self.epochs} ({r['stage']}): train loss {r['train_loss']:.4f} "
                      f"acc {r['train_accuracy']:.3f}{val} | {best_text} | {r['train_seconds']:.1f} s")
        if self.board is not None:
            for tag, key in (("loss/train", "train_loss"), ("loss/val", "val_loss"),
                             ("accuracy/train", "train_accuracy"), ("accuracy/val", "val_accuracy"),
                             ("macro_f1/val", "val_macro_f1"), ("lr", "lr")):
                if r[key] is not None:
                    self.board.add_scalar(tag, r[key], r["epoch"])
            self.board.flush()

    def close(self) -> None:
        if self.board is not None:
            self.board.close()


def write_history_csv(path: Path, history: list[dict], best: dict | None) -> None:
    """``history.csv``: one row per epoch (:data:`HISTORY_COLUMNS`; ``best_epoch`` is the best so far)."""
    import csv

    from synthaug.kit.files import atomic_path

    best_epoch, best_score = None, None
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(HISTORY_COLUMNS)
        for r in history:
            score = epoch_score(r)
            if best_score is None or score > best_score:
                best_epoch, best_score = r["epoch"], score
            row = {**r, "best_epoch": best_epoch}
            writer.writerow(["" if row.get(c) is None else (f"{row[c]:.6g}" if isinstance(row[c], float) else row[c])
                             for c in HISTORY_COLUMNS])


def _check_tensorboard() -> None:
    try:
        import torch.utils.tensorboard  # noqa: F401  (imports the tensorboard package)
    except ImportError as exc:
        raise SynthaugError(f"--log tensorboard needs the tensorboard package (pip install tensorboard); "
                            f"it cannot be imported here ({exc})") from None


def _tensorboard_writer(paths: RunPaths, start_epoch: int):
    """A SummaryWriter in RUN/tensorboard; a resumed run drops the events of epochs it repeats."""
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(paths.tensorboard), purge_step=start_epoch if start_epoch > 1 else None)


def check_training_memory(classifier, name: str, image_shape: tuple[int, int, int], num_classes: int,
                          config: TrainConfig, device) -> dict[str, Any] | None:
    """Estimate the loop's peak (weights, gradients, optimizer state, the activations of one batch measured
    on meta tensors, the batches in flight) and refuse, naming ``--batch-size``, when it cannot fit on
    ``device``; the record the manifest keeps. A network that cannot be built on the meta device is
    not estimated (None)."""
    import torch
    import torch.nn.functional as F

    c, h, w = image_shape
    try:
        with torch.device("meta"):
            net = classifier.build(c, num_classes)
            images = torch.zeros(config.batch_size, c, h, w)
            targets = torch.zeros(config.batch_size, dtype=torch.long)
            activations = saved_bytes(lambda: F.cross_entropy(net(images), targets))
    except (RuntimeError, NotImplementedError, TypeError, ValueError) as exc:
        error = too_small_error(exc, f"{name} on {h}x{w} images", "use a larger --size when balancing "
                                "(32 px or more for the bundled networks)")
        if error is not None:
            raise error from None
        return None
    states = 2.0 if config.optimizer == "adam" else (1.0 if config.momentum else 0.0)
    in_flight = config.batch_size * c * h * w * 4 * (2 * max(1, config.num_workers or 0) + 3)  # loader + augmentation
    estimate = TrainingEstimate(f"{name} (batch {config.batch_size})", str(device), parameter_bytes(net), activations,
                                data=in_flight, optimizer_states=states)
    return check_memory(estimate, f"use a smaller --batch-size (now {config.batch_size})")


def _distributed(model, world, device):
    """``model`` wrapped for DistributedDataParallel when the run has several processes (itself if not)."""
    if not world.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def _stage_prefixes(classifier, stage: str) -> tuple[str, ...] | None:
    """Trainable parameter prefixes of a stage (None: everything)."""
    if stage in ("scratch", "finetune-all"):
        return None
    if stage == "frozen":
        return tuple(classifier.head_prefixes)
    return tuple(classifier.head_prefixes) + tuple(classifier.last_block_prefixes)


def _stage_lr(config: TrainConfig, stage: str) -> float:
    return config.finetune_lr if stage == "finetune" else config.lr


def _stage_length(config: TrainConfig, stage: str) -> int:
    """Epochs of ``stage``: the cosine schedule's period (scratch and finetune-all: every epoch)."""
    if stage == "finetune":
        return config.stage_two_epochs
    return config.epochs - config.stage_two_epochs  # stage_two_epochs is 0 outside transfer
