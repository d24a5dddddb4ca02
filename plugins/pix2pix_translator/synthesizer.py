"""The ``pix2pix`` synthesizer (liang2021): translate source-class radiographs into the target class.

One generator is trained per target class. ``fit`` needs the target classes: they come from the
deficits seen by ``check`` (``synthaug balance``), else from ``target_classes``, else every class
but the source class.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from synthaug import ImageSet, SynthaugError
from synthaug.contract.types import REAL
from synthaug.kit.device import resolve_device
from synthaug.kit.memory import TrainingEstimate, fits_in_memory, parameter_bytes, saved_bytes
from synthaug.kit.sampling import each_once_per_round, part_seed
from synthaug.kit.trainable import DEFAULT_RUN, Estimate, TrainableSynthesizer, Training

from .measures import agreement
from .training import (
    PAIRINGS,
    Pix2PixNets,
    augment_pair,
    from_model,
    linear_decay,
    nearest_targets,
    sample_grid,
    to_model,
)

WEIGHTS_FILE = "generator_{target}"  # .pt: the kit writes each module of weights()


@dataclass
class Pix2PixConfig:
    """Defaults from liang2021 (L1 weight 100, 100 epochs, flip + 5 degree rotation) and from the pix2pix
    paper it follows (Isola et al. 2017: ngf = ndf = 64, 70x70 PatchGAN, Adam 2e-4 with betas (0.5,
    0.999), batch size 1, N(0, 0.02) init, constant lr then linear decay, dropout 0.5 in the first
    three decoder blocks, kept on at test time)."""

    epochs: int = 100  # passes over the target class's training images (liang2021: 100)
    decay_epochs: int | None = None  # epochs of linear lr decay at the end; None: half of `epochs`
    batch_size: int = 1  # image pairs per step (Isola et al.: 1)
    lr: float = 2e-4  # Adam's rate for G and D (Isola et al.)
    beta1: float = 0.5  # Adam's first-moment decay (Isola et al.)
    beta2: float = 0.999  # Adam's second-moment decay
    lambda_l1: float = 100.0  # weight of the L1 term against the adversarial BCE (liang2021: 100)
    ngf: int = 64  # generator filters in the first U-Net layer
    ndf: int = 64  # discriminator filters in its first layer
    d_layers: int = 3  # stride-2 layers of the PatchGAN: 3 = 70x70 patches
    init_std: float = 0.02  # standard deviation of the N(0, std) weight initialisation
    pairing: str = "random"  # random (liang2021) | paired (ImageSet.extras "twin") | nearest
    source_class: str = "normal"  # or per target: "covid:normal,viral:normal"
    target_classes: tuple[str, ...] | None = None  # None: from the deficits, else all but the source
    flip_p: float = 0.5  # probability of a horizontal flip of a training pair (liang2021)
    max_rotation: float = 5.0  # degrees
    dropout_at_generation: bool = True  # Isola et al.: dropout is the generator's noise at test time
    residual: bool = False  # not in the papers: output = source + G's tanh output, starting at the identity
    generate_batch: int = 16  # source images translated at a time when generating

    def __post_init__(self) -> None:
        if self.pairing not in PAIRINGS:
            raise SynthaugError(f"pix2pix pairing must be one of {', '.join(PAIRINGS)}; got {self.pairing!r}")
        for name in ("epochs", "batch_size", "ngf", "ndf", "d_layers", "generate_batch"):
            if int(getattr(self, name)) < 1:
                raise SynthaugError(f"pix2pix {name} must be at least 1; got {getattr(self, name)}")
        if self.decay_epochs is not None and not 0 <= self.decay_epochs <= self.epochs:
            raise SynthaugError(f"pix2pix decay_epochs must lie in [0, epochs={self.epochs}]; got {self.decay_epochs}")
        if isinstance(self.target_classes, str):
            self.target_classes = tuple(t for t in self.target_classes.split(",") if t)
        elif self.target_classes is not None:
            self.target_classes = tuple(self.target_classes)

    def sources(self) -> set[str]:
        """Classes that are translated from (never into)."""
        if ":" not in self.source_class:
            return {self.source_class}
        return {p.split(":", 1)[1] for p in self.source_class.split(",") if ":" in p}

    def source_for(self, target: str) -> str:
        if ":" not in self.source_class:
            return self.source_class
        pairs = dict(p.split(":", 1) for p in self.source_class.split(",") if ":" in p)
        if target not in pairs:
            raise SynthaugError(f"pix2pix source_class {self.source_class!r} names no source for target {target!r}")
        return pairs[target]


class Pix2Pix(TrainableSynthesizer):
    """liang2021's image-to-image cGAN: U-Net generator + conditional PatchGAN, L1 weight 100."""

    name = "pix2pix"
    Config = Pix2PixConfig
    accepted_channels = None  # the U-Net and PatchGAN are built for the data's channel count
    splits_generation = True  # any chunk is made from the seed and its rows alone (generate_part)
    reads_lazily = True  # its pairs are read into memory when they fit, else a batch at a time

    def __init__(self, config=None, **options):
        super().__init__(config, **options)
        self.generators: dict[str, torch.nn.Module] = {}
        self._targets: tuple[str, ...] | None = None

    # ---- checks -----------------------------------------------------------------------------
    def targets_for(self, train: ImageSet) -> tuple[str, ...]:
        if self._targets:
            return self._targets
        if self.config.target_classes:
            return tuple(self.config.target_classes)
        if ":" in self.config.source_class:  # "covid:normal,viral:normal" names the targets itself
            return tuple(p.split(":", 1)[0] for p in self.config.source_class.split(",") if ":" in p)
        others = tuple(c for c in train.class_names if c != self.config.source_class)
        if self.config.pairing == "paired":  # only classes that have twins can be trained on true pairs
            return tuple(c for c in others if _twin_rows(train, c).size) or others
        return others

    def parts(self, train: ImageSet, volumes=None) -> tuple[str, ...]:
        """One generator, and one fit, per target class."""
        return self.targets_for(train)

    def check_inputs(self, train: ImageSet, deficits: dict[str, int], volumes=None, *, run=DEFAULT_RUN) -> None:
        for t in tuple(deficits) + tuple(self.config.target_classes or ()):
            if t not in train.class_names:
                raise SynthaugError(f"pix2pix target class {t!r} does not exist; "
                                    f"classes are {', '.join(train.class_names)}")
        real = train.synth == REAL
        for source in self.config.sources():
            self._check_source(train, source)
            if deficits.get(source, 0) > 0 and not np.any(real & (train.labels == train.class_index(source))):
                raise SynthaugError(f"pix2pix fills the {source!r} deficit with real {source!r} images; "
                                    f"the training split has none")
        # A source class's own deficit is filled by duplication (see generate); the rest are translated.
        wanted = tuple(t for t, n in deficits.items() if n > 0 and t not in self.config.sources())
        if wanted:
            self._targets = wanted
        _, h, w = train.image_shape
        if h != w:
            raise SynthaugError(f"pix2pix needs square images; got {h}x{w}")
        for target in self.targets_for(train):
            self._check_target(train, target)

    def _check_source(self, train: ImageSet, source: str) -> None:
        if source not in train.class_names:
            raise SynthaugError(f"pix2pix source class {source!r} does not exist; "
                                f"classes are {', '.join(train.class_names)}")

    def _check_target(self, train: ImageSet, target: str) -> None:
        real = train.synth == REAL
        if self.fitted and target not in self.generators:
            raise SynthaugError(f"pix2pix checkpoint has generators for {', '.join(self.generators)}; "
                                f"none for {target!r}")
        source = self.config.source_for(target)
        self._check_source(train, source)
        if source == target:
            raise SynthaugError(f"pix2pix source and target class are both {target!r}")
        if not np.any(real & (train.labels == train.class_index(source))):
            raise SynthaugError(f"pix2pix translates {source!r} images into {target!r}; "
                                f"the training split has no {source!r} images")
        if self.fitted:
            return  # nothing below is needed to generate
        if self.config.pairing == "paired":
            if _twin_rows(train, target).size == 0:
                raise SynthaugError(f"pix2pix pairing 'paired' needs {target!r} images with a lesion-free "
                                    f"twin (extras 'twin' and 'has_twin'); the training split has none")
        elif not np.any(real & (train.labels == train.class_index(target))):
            raise SynthaugError(f"pix2pix needs real {target!r} images for the L1 term; "
                                f"the training split has none")

    def estimate(self, train: ImageSet, volumes, run) -> Estimate:
        """One target's training peak: G and D built on meta tensors; G's forward and two of D's at the
        batch size, as a step keeps them; the cached image pairs."""
        from .networks import PatchDiscriminator, UNetGenerator

        cfg = self.config
        real = train.synth == REAL
        pairs = max((int(np.sum(real & (train.labels == train.class_index(self.config.source_for(t)))))
                     + int(np.sum(real & (train.labels == train.class_index(t)))) for t in self.targets_for(train)),
                    default=0)
        c, size, _ = train.image_shape
        with torch.device("meta"):
            generator = UNetGenerator(c, size, cfg.ngf, residual=cfg.residual)
            discriminator = PatchDiscriminator(c, size, cfg.ndf, cfg.d_layers)
            source = torch.zeros(cfg.batch_size, c, size, size)
            # the G step's graph: G's activations, D on the fake; the D step's D on the real pair adds one more
            activations = saved_bytes(lambda: (discriminator(source, generator(source)).sum()
                                               + discriminator(source, source).sum()))
        image = int(np.prod(train.image_shape)) * 4
        data = pairs * image + 4 * cfg.batch_size * image  # the pairs' images and a batch's tensors
        if train.is_lazy and not fits_in_memory(pairs * image):
            data = 4 * cfg.batch_size * image  # too many to read in: read a batch at a time
        memory = TrainingEstimate(f"pix2pix (ngf {cfg.ngf}, batch {cfg.batch_size})", str(resolve_device(run.device)),
                                  parameter_bytes(generator, discriminator), activations, data)
        return Estimate(memory, f"use a smaller --synth-option batch_size (now {cfg.batch_size}) or "
                                f"--synth-option ngf={max(8, cfg.ngf // 2)}, or a smaller --size")

    # ---- training: the networks and one epoch; the kit does the rest --------------------------
    def start(self, train: ImageSet, volumes, run, target: str) -> Training:
        cfg = self.config
        c, size, _ = train.image_shape
        rng = np.random.default_rng(run.seed)
        augment = torch.Generator().manual_seed(run.seed)
        nets = Pix2PixNets(c, size, ngf=cfg.ngf, ndf=cfg.ndf, d_layers=cfg.d_layers, lr=cfg.lr,
                           betas=(cfg.beta1, cfg.beta2), lambda_l1=cfg.lambda_l1, init_std=cfg.init_std,
                           residual=cfg.residual)
        decay = cfg.epochs // 2 if cfg.decay_epochs is None else cfg.decay_epochs
        schedulers = {name: torch.optim.lr_scheduler.LambdaLR(opt, linear_decay(cfg.epochs, decay))
                      for name, opt in (("G", nets.g_opt), ("D", nets.d_opt))}
        sources, targets, match = self._pairs(train, target)
        return Training(epochs=cfg.epochs, steps=-(-len(sources) // cfg.batch_size), modules={"nets": nets},
                        optimizers={"G": nets.g_opt, "D": nets.d_opt}, schedulers=schedulers,
                        generators={"numpy": rng, "augment": augment},
                        data={"sources": sources, "targets": targets, "match": match, "partner": match},
                        label=f"pix2pix {cfg.source_for(target)}->{target}")

    def epoch(self, training: Training, epoch: int):
        cfg, data, world, device = self.config, training.data, training.world, training.device
        nets = training.modules["nets"]
        nets.bf16 = training.bf16
        nets.train()
        sources, targets, rng = data["sources"], data["targets"], training.generators["numpy"]
        order = rng.permutation(len(sources))
        # random pairing (liang2021): a fresh random target image for every source, every epoch
        partner = rng.integers(len(targets), size=len(sources)) if data["match"] is None else data["match"]
        data["partner"] = partner
        for k in range(training.steps):
            idx = order[k * cfg.batch_size:(k + 1) * cfg.batch_size]
            # the whole batch's draws on every rank (one process's stream), then this rank's share
            s, t = augment_pair(_batch(sources, idx, device), _batch(targets, partner[idx], device),
                                training.generators["augment"], cfg.flip_p, cfg.max_rotation)
            if len(idx) < world.size:  # a last batch smaller than the world: skipped by every rank
                continue
            share = None
            if world.distributed:
                mine = world.share(range(len(idx)))
                s, t, share = s[mine], t[mine], len(mine) / len(idx)
            nets.grad_sync = training.grad_sync(share)
            yield nets.train_step(s, t)

    def samples(self, training: Training, path: Path) -> None:
        """Source | generated | target for the first four sources (and their partners of the epoch)."""
        data, generator = training.data, training.modules["nets"].generator
        sources = _read(data["sources"], np.arange(min(4, len(data["sources"]))))
        targets = _read(data["targets"], data["partner"][:4])
        with torch.no_grad():
            generator.eval()
            generated = from_model(generator(to_model(sources).to(training.device)))
            generator.train()
        sample_grid(sources, generated, targets, path)

    def finish(self, training: Training) -> None:
        self.generators[training.part] = training.modules["nets"].generator

    def _pairs(self, train: ImageSet, target: str):
        """(source images, target images, index of each source's target or None for random). The images
        are read into memory when they fit (``kit.memory.fits_in_memory``); a training split too large
        for that, given lazily, stays lazy and each batch is read from disk when it is drawn."""
        real = train.synth == REAL
        tgt_rows = np.flatnonzero(real & (train.labels == train.class_index(target)))
        if self.config.pairing == "paired":
            rows = _twin_rows(train, target)
            (targets,) = _in_memory_if_they_fit(train.subset(rows))
            return np.asarray(train.extras["twin"][rows], np.float32), targets, np.arange(len(rows))
        src_rows = np.flatnonzero(real & (train.labels == train.class_index(self.config.source_for(target))))
        sources, targets = _in_memory_if_they_fit(train.subset(src_rows), train.subset(tgt_rows))
        if self.config.pairing == "nearest":
            return sources, targets, nearest_targets(sources, targets)
        return sources, targets, None

    # ---- generation -------------------------------------------------------------------------
    def translate(self, target: str, images: np.ndarray, seed: int, device: str = "auto") -> np.ndarray:
        """G_target(images) in [0, 1]; dropout on if ``dropout_at_generation``, BatchNorm on running stats."""
        if target not in self.generators:
            raise SynthaugError(f"pix2pix has no fitted generator for {target!r}; "
                                f"fitted: {', '.join(self.generators) or 'none'}")
        device = resolve_device(device)
        generator = self.generators[target].to(device).eval()
        if self.config.dropout_at_generation:
            for m in generator.modules():
                if isinstance(m, torch.nn.Dropout):
                    m.train()
        out = np.empty_like(images, dtype=np.float32)
        step = self.config.generate_batch
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for k in range(0, len(images), step):
                out[k:k + step] = from_model(generator(to_model(images[k:k + step]).to(device)))
        return out

    def generate_part(self, train: ImageSet, target: str, n: int, *, seed: int, rows: slice,
                      volumes=None, run=DEFAULT_RUN) -> ImageSet:
        """Images ``rows`` of :meth:`generate`'s ``n``: the sources are drawn for all ``n`` from ``seed``,
        the chunk's generator noise (dropout) from ``part_seed(seed, rows)``."""
        duplicate = target in self.config.sources()
        source = target if duplicate else self.config.source_for(target)
        candidates = np.flatnonzero((train.synth == REAL) & (train.labels == train.class_index(source)))
        if len(candidates) == 0:
            raise SynthaugError(f"pix2pix: the training split has no {source!r} images to translate")
        idx = each_once_per_round(candidates, n, np.random.default_rng(seed), f"{source!r} images")[rows]
        sources = np.asarray(train.images[idx], np.float32)
        images = sources.copy() if duplicate else self.translate(target, sources, part_seed(seed, rows), run.device)
        label = train.class_index(target)
        digest = b"duplicate" if duplicate else self.checkpoints()[target][:16].encode()
        return ImageSet(images, np.full(len(idx), label), train.class_names, train.patient_ids[idx],
                        origin=train.origin[idx], source_index=idx,
                        extras={"checkpoint": np.full(len(idx), digest, dtype="S16")})

    # ---- save / load: the kit writes weights() and synthesizer.json -----------------------------
    def weights(self) -> dict[str, torch.nn.Module]:
        return {WEIGHTS_FILE.format(target=t): g for t, g in self.generators.items()}

    def checkpoints(self) -> dict[str, str]:
        """Each target's generator hash."""
        return {t: self.hashes[WEIGHTS_FILE.format(target=t)] for t in self.generators}

    def checkpoint_info(self) -> dict:
        return {"targets": list(self.generators)}

    @classmethod
    def upgrade_info(cls, info: dict) -> dict:
        """A checkpoint written before the kit: its ``hashes`` by target."""
        if "weights" not in info and info.get("hashes"):
            info = {**info, "weights": {WEIGHTS_FILE.format(target=t): h for t, h in info["hashes"].items()}}
        return info

    def networks(self, info: dict) -> dict[str, torch.nn.Module]:
        from .networks import UNetGenerator

        c, size, _ = self.image_shape
        return {WEIGHTS_FILE.format(target=t): UNetGenerator(c, size, self.config.ngf, residual=self.config.residual)
                for t in info.get("targets", ())}

    def use_networks(self, modules: dict) -> None:
        targets = [name.removeprefix("generator_") for name in modules]
        self.generators = {t: modules[WEIGHTS_FILE.format(target=t)] for t in targets}
        self._targets = tuple(targets)

    # ---- measures ---------------------------------------------------------------------------
    def measure(self, data: ImageSet, run=DEFAULT_RUN) -> dict | None:
        """L1, PSNR and SSIM of G(twin) to the real image for every image of ``data`` with a lesion-free
        twin (ctsim), next to the identity baseline (the twin itself); None if ``data`` has no twins."""
        targets = {}
        for target in self.generators:
            rows = _twin_rows(data, target)
            if rows.size:
                twins = np.asarray(data.extras["twin"][rows], np.float32)
                predicted = self.translate(target, twins, seed=self.seed or 0, device=run.device)
                targets[target] = {"n": int(rows.size), **agreement(predicted, data.images[rows], twins)}
        if not targets:
            return None
        return {"compared": "G(lesion-free twin) vs the real image; identity = the twin itself",
                "dropout_at_generation": self.config.dropout_at_generation, "checkpoints": self.checkpoints(),
                "targets": targets}

    def describe(self) -> dict:
        info = super().describe()
        info.update(pairing=self.config.pairing, checkpoints=self.checkpoints())
        return info


def _in_memory_if_they_fit(*parts: ImageSet) -> list:
    """The parts' images: in memory (as given, or read in when together they fit), else lazy."""
    need = sum(len(p) * int(np.prod(p.image_shape)) * 4 for p in parts)
    if any(p.is_lazy for p in parts) and fits_in_memory(need):
        parts = tuple(p.in_memory() for p in parts)
    return [p.images for p in parts]


def _read(images, rows) -> np.ndarray:
    """``images[rows]`` (an array or a ``LazyImages``) as float32 in memory."""
    return np.asarray(images[np.asarray(rows)], np.float32)


def _batch(images, rows, device) -> torch.Tensor:
    """``images[rows]`` in [-1, 1] on ``device``."""
    return to_model(_read(images, rows)).to(device)


def _twin_rows(train: ImageSet, target: str) -> np.ndarray:
    if "twin" not in train.extras or "has_twin" not in train.extras:
        return np.empty(0, np.int64)
    has = np.asarray(train.extras["has_twin"]).astype(bool)
    return np.flatnonzero(has & (train.synth == REAL) & (train.labels == train.class_index(target)))
