"""Synthesizers ``xpgan`` (quan2021: G(CT) of labeled volumes, G trained jointly with D and C) and
``drr`` (the paper's "DenseNet121 + DRR" baseline: plain ``siddon`` radiographs of the volumes)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

import synthaug
from synthaug import DEFAULT_RUN, ImageSet, SynthaugError, Synthesizer, VolumeSet
from synthaug.contract.config import config_dict
from synthaug.kit.device import resolve_device
from synthaug.kit.memory import (
    TrainingEstimate,
    check_memory,
    fits_in_memory,
    parameter_bytes,
    saved_bytes,
    too_small_error,
)
from synthaug.kit.progress import bar, note
from synthaug.kit.sampling import each_once_per_round, part_seed
from synthaug.kit.sizes import parse_size
from synthaug.kit.trainable import Estimate, TrainableSynthesizer, Training

from . import ctprep

#: Sub-directory of an xpgan checkpoint holding C as a training run (``synthaug evaluate --run DIR/classifier``).
CLASSIFIER_RUN = "classifier"


def _create(kind: str, name: str, **options):
    """The registered ``kind`` plugin ``name`` (a projector, C's classifier), through the public registry."""
    return synthaug.get_registry().create(kind, name, **options)


@dataclass
class DRRConfig:
    """Pose variety and geometry of the baseline's DRRs (quan2021 §3.2 renders with Siddon's method)."""

    projector: str = "siddon"  # registered projector that renders the DRRs
    view: str = "PA"  # quan2021's CXRs are frontal (AP and PA)
    sdd: float = 1020.0  # source-detector distance, mm (Geometry default)
    sid: float = 850.0  # source-isocentre distance, mm (Geometry default)
    max_rotation: float = 5.0  # degrees about each axis, uniform (liang2021's 5° augmentation)
    max_translation: float = 10.0  # mm along each axis, uniform
    label_map: dict | None = None  # CT class -> CXR class; None: same name, MosMed CT-0 -> normal, CT-1..4 -> covid


class _FromVolumes(Synthesizer):
    needs_volumes = True
    # A projector renders one grey radiograph: repeated on three channels it is an X-ray saved as RGB,
    # but no other channel count is a radiograph (and xpgan's StyleGAN2 decoder takes only 1 or 3).
    accepted_channels = (1, 3)
    reads_lazily = True  # drr reads no image; xpgan's fit reads its real CXRs in when they fit, else a batch at a time
    splits_generation = True  # any chunk is made from the seed and its rows alone (generate_part)

    def generate(self, train, target, n, *, seed, volumes=None, run=DEFAULT_RUN):
        return ImageSet.concat(list(self.generate_chunks(train, target, n, seed=seed, volumes=volumes, run=run)))

    def _part_sources(self, train, target, n, volumes, seed, rows):
        """The volumes of chunk ``rows`` (drawn for all ``n`` from ``seed``) and the chunk's random stream:
        the first chunk goes on with the draw's stream, the others start their own (``part_seed``)."""
        rng = np.random.default_rng(seed)
        idx = self._sources(train, target, n, volumes, rng)[rows]
        return idx, (np.random.default_rng(part_seed(seed, rows)) if rows.start else rng)

    def _mapping(self, train: ImageSet, volumes: VolumeSet) -> dict[int, int]:
        ctprep.check_labeled(volumes, f"synthesizer {self.name!r}")
        return ctprep.resolve_label_map(volumes.class_names, train.class_names, self.config.label_map,
                                        f"synthesizer {self.name!r}")

    def check(self, train, deficits, volumes=None, *, run=DEFAULT_RUN):
        super().check(train, deficits, volumes, run=run)
        mapping = self._mapping(train, volumes)
        ctprep.check_deficits_covered(volumes, mapping, train.class_names, deficits, f"synthesizer {self.name!r}")

    def sources_per_class(self, train: ImageSet, volumes: VolumeSet | None = None) -> dict[str, int]:
        """The training volumes mapped to each image class (``label_map``): strategy ``per-source``
        then projects every one of them once (``generate`` draws each volume once per round)."""
        if volumes is None or len(volumes) == 0:
            raise SynthaugError(f"synthesizer {self.name!r} needs labeled CT volumes; pass --volumes SOURCE")
        labels = ctprep.image_labels_of(volumes, self._mapping(train, volumes))
        return {name: int(np.sum(labels == c)) for c, name in enumerate(train.class_names)}

    def _sources(self, train: ImageSet, target: str, n: int, volumes: VolumeSet | None, rng) -> np.ndarray:
        if volumes is None or len(volumes) == 0:
            raise SynthaugError(f"synthesizer {self.name!r} needs labeled CT volumes; pass --volumes SOURCE")
        mapping = self._mapping(train, volumes)
        ctprep.check_deficits_covered(volumes, mapping, train.class_names, {target: n}, f"synthesizer {self.name!r}")
        labels = ctprep.image_labels_of(volumes, mapping)
        return each_once_per_round(np.flatnonzero(labels == train.class_index(target)), n, rng, "CT volumes")

    @staticmethod
    def _result(train: ImageSet, target: str, images: np.ndarray, volumes: VolumeSet, idx: np.ndarray) -> ImageSet:
        origins = [volumes.origins[i] or f"volume {i}" for i in idx]
        return ImageSet(images, np.full(len(idx), train.class_index(target)), train.class_names,
                        volumes.patient_ids[idx], origin=origins, source_index=idx)


def _real_bytes(n: int, image_shape, decoder_shape) -> int:
    """float32 bytes of ``n`` real CXRs at their own size (C's) and at the decoder's (D's)."""
    return n * (int(np.prod(image_shape)) + int(np.prod(decoder_shape))) * 4


def fit_to(images: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """(N, c, s, s) in [0, 1] -> (N, C, H, W): channels repeated, resized with antialiasing, clipped."""
    import torch
    import torch.nn.functional as F

    channels, height, width = shape
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    if x.shape[1] != channels:
        x = x.mean(1, keepdim=True).repeat(1, channels, 1, 1)
    if tuple(x.shape[-2:]) != (height, width):
        x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    return x.clamp(0, 1).numpy()


class DRRSynthesizer(_FromVolumes):
    """Siddon DRRs (radiograph mode) of the class's volumes, each in a random pose."""

    name = "drr"
    Config = DRRConfig

    def generate_part(self, train, target, n, *, seed, rows, volumes=None, run=DEFAULT_RUN):
        idx, rng = self._part_sources(train, target, n, volumes, seed, rows)
        n = len(idx)
        channels, height, width = train.image_shape
        size = max(height, width)
        renderer = ctprep.PairRenderer(volumes, _create("projector", self.config.projector), image_size=size,
                                       encoder_shape=(size, size, size), hu_window=(-1000, 1000),
                                       view=self.config.view, sdd=self.config.sdd, sid=self.config.sid,
                                       cache_mb=0, with_encoder=False)
        out = np.empty((n, 1, size, size), np.float32)
        with bar(f"drr {target}", n) as progress:
            for k, i in enumerate(idx):
                pose = ctprep.random_pose(rng, self.config.max_rotation, self.config.max_translation)
                out[k] = renderer.pair(int(i), pose)[1]
                progress.update()
        return self._result(train, target, fit_to(out, train.image_shape), volumes, idx)


@dataclass
class XPGANConfig(DRRConfig):
    """quan2021's settings; sizes default to the paper's (CT 256x256x64 -> CXR 256).

    ``preset="small"`` takes the narrow CPU networks of ``NetworkConfig.small`` (CT SxSx(S/2) -> S) for
    the decoder size S; any network field set explicitly overrides the preset. ``preset="auto"`` (the
    default) is ``paper`` on CUDA and ``small`` on the CPU, where the paper's networks (a 256x256x64 CT
    encoder at any image size) need tens of GB for a batch of 16 (docs/scaling.md) and take days.
    """

    preset: str = "auto"  # "auto" (paper on CUDA, small on the CPU), "paper" (StyleGAN2 widths) or "small"
    image_size: int | None = None  # decoder resolution; None: next power of two >= the training images
    volume_shape: tuple | None = None  # encoder grid (X, Y, Z); None: (256, 256, 64) paper, (S, S, S/2) small
    latent_dim: int | None = None  # None: 512 paper, 64 small
    channel_max: int | None = None  # None: 512 paper, 32 small
    hu_window: tuple = (-1000.0, 1000.0)  # HU clipped to this window, then mapped to [-1, 1]
    lambda_drr: float = 2.0  # quan2021: λ = 2
    lr: float = 0.002  # quan2021: all networks, cosine annealing
    epochs: int = 300  # quan2021: 300 epochs (an epoch = one pass over the real training CXRs)
    max_steps: int | None = None  # cap on joint steps (CPU runs)
    batch_size: int = 16  # not given in quan2021
    r1_gamma: float = 10.0  # StyleGAN2 lazy R1 (docs/xpgan.md); 0 disables
    r1_interval: int = 16  # steps between the lazy R1 penalties (StyleGAN2)
    classifier: str = "densenet121"  # quan2021: DenseNet121, trained jointly
    classifier_options: dict | None = None  # options of the classifier plugin (e.g. {"width": 0.25} in tests)
    classifier_weights: str | None = None  # local ImageNet state dict for C (quan2021 starts from ImageNet)
    # Training poses per volume: 1 = pose 0, the identity, only (quan2021 "turn[s] off the augmentation");
    # > 1 adds poses_per_volume - 1 fixed random poses within max_rotation / max_translation (pose jitter,
    # an option). generate() draws a fresh random pose per image either way: that is how one volume
    # gives several different images when balancing.
    poses_per_volume: int = 1  # training poses per volume (1: the identity only, quan2021); see above
    min_volume_fraction: float = 0.25  # a volume needs this fraction of the encoder grid along every axis
    cache_mb: float = 1024.0  # rendered (CT, DRR) training pairs kept in memory
    # (the seed and the device are the run's: ``run.seed`` and ``run.device``, --seed and --device)

    def __post_init__(self) -> None:
        if self.preset not in ("auto", "paper", "small"):
            raise SynthaugError(f"xpgan: preset must be 'auto', 'paper' or 'small'; got {self.preset!r}")
        if self.volume_shape is not None:
            self.volume_shape = parse_size(self.volume_shape, 3, "xpgan: volume_shape", expected="X,Y,Z or XxYxZ")
        self.hu_window = tuple(float(v) for v in self.hu_window)
        if len(self.hu_window) != 2 or not self.hu_window[0] < self.hu_window[1]:
            raise SynthaugError(f"xpgan: hu_window must be (low, high) with low < high; got {self.hu_window}")
        if self.batch_size < 1 or self.epochs < 1 or (self.max_steps is not None and self.max_steps < 1):
            raise SynthaugError("xpgan: batch_size, epochs and max_steps must be >= 1")
        if self.poses_per_volume < 1:
            raise SynthaugError(f"xpgan: poses_per_volume must be >= 1 (1: the identity pose only); "
                                f"got {self.poses_per_volume}")

    def resolved_preset(self, device="auto") -> str:
        """``paper`` or ``small``: ``auto`` resolved by where it trains (paper on CUDA, small on the CPU)."""
        if self.preset != "auto":
            return self.preset
        return "paper" if resolve_device(device).type == "cuda" else "small"

    def network_config(self, image_shape: tuple[int, int, int], device="auto"):
        """G's and D's sizes for images of ``image_shape`` trained on ``device`` (which ``preset="auto"`` reads)."""
        from .networks import NetworkConfig

        channels, height, width = image_shape
        size = self.image_size or max(8, 2 ** math.ceil(math.log2(max(height, width))))
        explicit = {k: v for k, v in (("volume_shape", self.volume_shape), ("latent_dim", self.latent_dim),
                                      ("channel_max", self.channel_max)) if v is not None}
        if self.resolved_preset(device) == "small":
            return NetworkConfig.small(size, image_channels=channels, **explicit)
        return NetworkConfig(image_size=size, image_channels=channels, **explicit)


class XPGANSynthesizer(TrainableSynthesizer, _FromVolumes):
    """G(CT) of the class's labeled volumes; G, D and the classifier C trained jointly (quan2021).

    On :mod:`synthaug.kit.trainable`: ``start`` builds C, G, D and the batch draw, ``epoch`` runs the
    joint steps of one pass over the real CXRs (the last epoch stops at ``max_steps``); the kit seeds,
    places, saves the per-epoch state, resumes and refuses another fit's state."""

    name = "xpgan"
    Config = XPGANConfig
    classifier_run = CLASSIFIER_RUN  # save() writes C there as a training run (quan2021 measures XPGAN through C)
    resumable_options = ("cache_mb",)  # where or how fast a fit runs, not what it computes

    def __init__(self, config=None, **options):
        super().__init__(config, **options)
        self.generator = self.discriminator = self.classifier = None
        self.state: dict = {}
        self.losses: list[dict[str, float]] = []  # every step's (the kit's history: every epoch's means)
        self._checked: tuple | None = None

    # ---- checks -----------------------------------------------------------------------------
    def check_inputs(self, train, deficits, volumes=None, *, run=DEFAULT_RUN):
        if min(train.image_shape[1:]) < 8:
            raise SynthaugError(f"synthesizer 'xpgan': images of {train.image_shape[1]}x{train.image_shape[2]} "
                                f"pixels are too small; need at least 8x8")
        net = self._network(train, run.device)  # preset auto sizes the encoder grid by the run's device
        if self._checked == (id(train), id(volumes), net.volume_shape):
            return  # checked already (fit() after check()): no volume is read again
        mapped = np.flatnonzero(ctprep.image_labels_of(volumes, self._mapping(train, volumes)) >= 0)
        need = [math.ceil(self.config.min_volume_fraction * e) for e in net.volume_shape]
        shapes = volumes.meta.get("shape")
        for i in mapped:
            shape = tuple(int(s) for s in (shapes[i] if shapes is not None else volumes[i].hu.shape))
            if any(s < m for s, m in zip(shape, need)):
                raise SynthaugError(
                    f"synthesizer 'xpgan': volume {volumes.origins[i] or i} has shape {shape}; the encoder grid "
                    f"{net.volume_shape} needs at least {tuple(need)} voxels (min_volume_fraction="
                    f"{self.config.min_volume_fraction}); use a smaller volume_shape")
        self._checked = (id(train), id(volumes), net.volume_shape)

    def _network(self, train, device=None):
        """G's and D's sizes: the fitted G's, else the config's for the data and the run's device."""
        if self.generator is not None:
            return self.generator.config
        return self.config.network_config(train.image_shape, device or "auto")

    def estimate(self, train, volumes, run) -> Estimate:
        """The joint step's peak: G, D and C built on meta tensors (nothing allocated) with one forward of
        each at the batch size as a step keeps them (G on the CTs, D on the fake and the real images, C
        on both), their weights, gradients and Adam state, the cache of rendered pairs and the copies of
        the real images. Says which preset ``auto`` took; G and D alone are refused before C's library
        is imported."""
        import torch
        import torch.nn.functional as F

        from .networks import Discriminator, Generator, to_unit_range
        from .training import resize_for_classifier

        cfg, device = self.config, resolve_device(run.device)
        preset, net = cfg.resolved_preset(device), self._network(train, device)
        if cfg.preset == "auto":
            note(f"xpgan: preset {preset} (auto on {'CUDA' if device.type == 'cuda' else 'the CPU'}; "
                 f"--synth-option preset=paper or preset=small chooses)")
        volumes_used = int(np.sum(ctprep.image_labels_of(volumes, self._mapping(train, volumes)) >= 0))
        n_real, b, (c, h, w) = int(np.sum(train.synth == "real")), cfg.batch_size, train.image_shape
        pair = (math.prod(net.volume_shape) + net.image_size ** 2) * 4  # (encoder input, DRR), float32
        cache = min(int(cfg.cache_mb * 2 ** 20), volumes_used * cfg.poses_per_volume * pair)
        decoder = (net.image_channels, net.image_size, net.image_size)
        real_copies = _real_bytes(n_real, train.image_shape, decoder)
        if train.is_lazy and not fits_in_memory(real_copies):
            real_copies = _real_bytes(b, train.image_shape, decoder)
        advice = (f"use --synth-option preset=small or a smaller --synth-option batch_size (now {b})"
                  if preset == "paper" else
                  f"use a smaller --synth-option batch_size (now {b}), a smaller volume_shape, or a smaller --size")
        what = f"xpgan (preset {preset}, batch {b})"
        with torch.device("meta"):
            generator, discriminator = Generator(net), Discriminator(net)
            volume, real = torch.zeros((b, 1, *net.volume_shape)), torch.zeros((b, *decoder))
            fake = []

            def gan_step():  # the G step's graph (G, D on the fake) and the D step's D on the real images
                fake.append(to_unit_range(generator(volume)))
                return discriminator(fake[0]).sum() + discriminator(real).sum()

            gan = saved_bytes(gan_step)
            check_memory(TrainingEstimate(what, str(device), parameter_bytes(generator, discriminator), gan,
                                          cache + real_copies), advice)  # G and D alone: refused in seconds
            classifier, _ = self._build_classifier(net.image_channels, len(train.class_names), pretrained=False)
            both = torch.cat([torch.zeros((b, c, h, w)), resize_for_classifier(fake[0].detach(), (h, w))])
            try:
                classification = saved_bytes(lambda: F.cross_entropy(
                    classifier(both), torch.zeros(len(both), dtype=torch.long)))
            except RuntimeError as exc:  # C cannot take images this small: one line, not a traceback
                error = too_small_error(exc, f"synthesizer 'xpgan': its classifier {cfg.classifier!r} on "
                                        f"{h}x{w} images", "use a larger --size (32 px or more)")
                if error is None:
                    raise
                raise error from None
        return Estimate(TrainingEstimate(what, str(device), parameter_bytes(generator, discriminator, classifier),
                                         gan + classification, cache + real_copies), advice)

    # ---- training: the networks and one epoch; the kit does the rest --------------------------
    def _build_classifier(self, channels: int, num_classes: int, pretrained: bool = True):
        """C, and what it started from: ``(model, weights)``; ``weights`` is the plugin's report of the
        ImageNet file (path, matched, missing, unexpected) with the file's sha256, or None (random init)."""
        from synthaug.kit.files import file_hash

        plugin = _create("classifier", self.config.classifier, **(self.config.classifier_options or {}))
        model = plugin.build(channels, num_classes)
        path = self.config.classifier_weights
        if not (pretrained and path):
            return model, None
        if not Path(path).is_file():
            raise SynthaugError(f"synthesizer 'xpgan': classifier_weights {path}: no such weights file")
        report = plugin.load_weights(model, path)  # a wrong file stops here, before any joint step
        return model, {**asdict(report), "sha256": file_hash(path)}

    def start(self, train, volumes, run, part) -> Training:
        """C (its ImageNet weights loaded, or refused, before any rendering), the batch draw (real CXRs,
        the mapped volumes in their training poses) and G and D, all on the CPU from ``run.seed``."""
        from .training import JointTrainer, ObjectiveConfig

        cfg, device = self.config, resolve_device(run.device)
        net, rng = cfg.network_config(train.image_shape, device), np.random.default_rng(run.seed)
        classifier, weights = self._build_classifier(net.image_channels, len(train.class_names))
        mapping = self._mapping(train, volumes)
        source = self._batch_source(train, volumes, mapping, net, rng)
        total = source.steps_per_epoch * cfg.epochs
        total = min(total, cfg.max_steps) if cfg.max_steps else total
        objective = ObjectiveConfig(lambda_drr=cfg.lambda_drr, lr=cfg.lr, r1_gamma=cfg.r1_gamma,
                                    r1_interval=cfg.r1_interval)
        trainer = JointTrainer(net, classifier, objective, total, seed=run.seed, classifier_size=train.image_shape[1:])
        state = {"network": asdict(net), "class_names": list(train.class_names),
                 "image_shape": list(train.image_shape), "volume_classes": list(volumes.class_names),
                 "label_map": {volumes.class_names[v]: train.class_names[t] for v, t in mapping.items()},
                 "steps": total, "classifier_weights": weights, "preset": cfg.resolved_preset(device),
                 "device": run.device}
        return Training(epochs=-(-total // source.steps_per_epoch), steps=source.steps_per_epoch,
                        modules=trainer.modules, optimizers=trainer.optimizers,
                        state={"trainer": trainer, "batches": source}, label="xpgan fit",
                        data={"trainer": trainer, "source": source, "total": total, "state": state},
                        fingerprint={"volumes": [str(volumes.origins[i]) for i in source.volume_indices]},
                        total_steps=total)

    def _batch_source(self, train, volumes, mapping, net, rng):
        """Real CXRs in shuffled epochs (D sees them at the decoder's size S; C at their own, the store's
        H x W, where it is evaluated) and the mapped volumes, each in its training poses."""
        from .training import BatchSource

        cfg = self.config
        real = train.subset(np.flatnonzero(train.synth == "real"))
        decoder = (net.image_channels, net.image_size, net.image_size)
        own, real_images = real.images, None  # a split too large to read in stays lazy: a batch at a time
        if not real.is_lazy or fits_in_memory(_real_bytes(len(real), train.image_shape, decoder)):
            own = np.asarray(real.images, np.float32)
            real_images = fit_to(own, decoder)
        labels = ctprep.image_labels_of(volumes, mapping)
        used = np.flatnonzero(labels >= 0)
        # pose 0 (the identity) only by default, quan2021's "augmentation off"; more poses are jitter
        poses = [[(0.0,) * 6] + [ctprep.random_pose(rng, cfg.max_rotation, cfg.max_translation)
                                  for _ in range(cfg.poses_per_volume - 1)] for _ in used]
        renderer = ctprep.PairRenderer(volumes, _create("projector", cfg.projector), image_size=net.image_size,
                                       encoder_shape=net.volume_shape, hu_window=cfg.hu_window, view=cfg.view,
                                       sdd=cfg.sdd, sid=cfg.sid, cache_mb=cfg.cache_mb)
        return BatchSource(real_images, real.labels, renderer, used, labels[used], poses, cfg.batch_size, rng,
                           "cpu", classifier_images=own, to_decoder=lambda images: fit_to(images, decoder))

    def epoch(self, training: Training, epoch: int):
        """The joint steps of epoch ``epoch``: one D step then one joint G+C step on each batch (under
        torchrun every process draws the whole batch and takes its share, gradients averaged)."""
        trainer, source = training.data["trainer"], training.data["source"]
        trainer.generator, trainer.discriminator, trainer.classifier = (
            training.modules[k] for k in ("generator", "discriminator", "classifier"))  # as the kit placed them
        source.device, source.world = training.device, training.world
        trainer.grad_sync = training.grad_sync(_share(training.world, source.batch_size))
        for _ in range(epoch * training.steps, min((epoch + 1) * training.steps, training.data["total"])):
            yield trainer.step(source.next())

    def finish(self, training: Training) -> None:
        """Keep G, D and C, the fit's record and every step's losses (under torchrun: of the whole batch,
        the ranks' means weighted by their shares and added)."""
        self.generator, self.discriminator, self.classifier = (
            training.modules[k] for k in ("generator", "discriminator", "classifier"))
        self.state = training.data["state"]
        losses, share = training.data["trainer"].losses, _share(training.world, self.config.batch_size)
        flat = iter(training.world.sum([v * share for logs in losses for v in logs.values()]))
        self.losses = [{k: next(flat) for k in logs} for logs in losses]

    # ---- generation -------------------------------------------------------------------------
    def render(self, volume_batch: np.ndarray, seed: int, device="auto"):
        """G on (B, 1, X, Y, Z) in [-1, 1] -> (B, C, S, S) in [0, 1], on ``device``."""
        import torch

        from .networks import to_unit_range

        device = resolve_device(device)
        self.generator.to(device).eval()
        noise = torch.Generator(device="cpu").manual_seed(int(seed))
        with torch.no_grad():
            out = to_unit_range(self.generator(torch.from_numpy(volume_batch).to(device), noise))
        return out.clamp(0, 1).cpu().numpy()

    def generate_part(self, train, target, n, *, seed, rows, volumes=None, run=DEFAULT_RUN):
        if self.generator is None:
            raise SynthaugError("synthesizer 'xpgan' is not fitted: call fit() or load a checkpoint")
        idx, rng = self._part_sources(train, target, n, volumes, seed, rows)
        n = len(idx)
        net = self.generator.config
        renderer = ctprep.PairRenderer(volumes, None, image_size=net.image_size, encoder_shape=net.volume_shape,
                                       hu_window=self.config.hu_window, view=self.config.view, sdd=self.config.sdd,
                                       sid=self.config.sid, cache_mb=0)
        out = np.empty((n, net.image_channels, net.image_size, net.image_size), np.float32)
        chunk = max(1, self.config.batch_size)
        with bar(f"xpgan {target}", n) as progress:
            for start in range(0, n, chunk):
                part = idx[start:start + chunk]
                batch = [ctprep.encoder_input(ctprep.pose_volume(renderer.volume(int(i)), ctprep.random_pose(
                    rng, self.config.max_rotation, self.config.max_translation)), net.volume_shape,
                    self.config.hu_window) for i in part]
                out[start:start + len(part)] = self.render(np.stack(batch), int(rng.integers(2 ** 31)), run.device)
                progress.update(len(part))
        return self._result(train, target, fit_to(out, train.image_shape), volumes, idx)

    def describe(self):
        """The kit's description, and the preset ``auto`` chose."""
        out = super().describe()
        if self.state.get("preset"):
            out["preset"] = self.state["preset"]
        return out

    # ---- save / load: the kit writes G and D, synthesizer.json; C is a training run beside them ------
    def weights(self) -> dict:
        return {"generator": self.generator, "discriminator": self.discriminator}

    def networks(self, info: dict) -> dict:
        from .networks import Discriminator, Generator, NetworkConfig

        net = NetworkConfig(**info["state"]["network"])
        return {"generator": Generator(net), "discriminator": Discriminator(net)}  # render() moves G

    def use_networks(self, modules: dict) -> None:
        self.generator, self.discriminator = modules["generator"], modules["discriminator"]

    def checkpoint_info(self) -> dict:
        # the config with "auto" saved as the preset it chose, and the fit's record
        return {"config": {**config_dict(self.config), "preset": self.state.get("preset", self.config.preset)},
                "state": self.state}

    def restore_info(self, info: dict) -> None:
        self.state = info["state"]

    def save(self, directory):
        super().save(directory)
        self._save_classifier_run(Path(directory) / CLASSIFIER_RUN)
        (Path(directory) / "history.json").write_text(json.dumps(self.losses))  # every step's losses

    def _save_classifier_run(self, run: Path) -> None:
        """C as a training run (the layout ``synthaug.train`` writes, :mod:`synthaug.kit.runs`), so
        ``synthaug evaluate --run`` takes it."""
        from synthaug.kit.runs import write_run

        cfg = self.config
        write_run(run, self.classifier, {
            "trained_by": "xpgan (joint with G and D, quan2021)",
            "config": {"classifier": cfg.classifier, "classifier_options": cfg.classifier_options or {},
                       "batch_size": cfg.batch_size, "device": self.state.get("device", "auto"),
                       "positive_class": None, "seed": self.seed,
                       # all of C trains from its start (as `synthaug train --mode finetune`/`scratch`), Adam,
                       # lr annealed to 0 over the joint steps; no augmentation of real CXRs, no validation split
                       "mode": "finetune" if cfg.classifier_weights else "scratch", "lr": cfg.lr,
                       "scheduler": "cosine", "poses_per_volume": cfg.poses_per_volume,
                       "classifier_weights": cfg.classifier_weights, "augment": False, "val_fraction": 0.0},
            # how C's training differs from a fresh `synthaug train` classifier's (the report's joint rows)
            "recipe_differs": recipe_differs(cfg, self.state["steps"]),
            "classifier": {"name": cfg.classifier},
            # C's starting point: the ImageNet file's path, sha256 and what matched, or null (random init)
            "weights": self.state.get("classifier_weights"),
            # no store of its own: C trained on the fit's training split, at that split's image size
            "data": {"path": "", "class_names": self.state["class_names"], "image_shape": self.state["image_shape"]},
        }, epoch=self.state["steps"])

    @classmethod
    def load(cls, directory, *, with_classifier: bool = True):
        """The kit's load (G and D, each checked against its hash), and C from its training run."""
        from synthaug.kit.runs import RunPaths, load_checkpoint

        synth = super().load(directory)
        best = RunPaths(Path(directory) / CLASSIFIER_RUN).best
        if with_classifier and best.is_file():
            # the checkpoint holds all of C: its starting weights (classifier_weights) are not read again
            synth.classifier, _ = synth._build_classifier(synth.generator.config.image_channels,
                                                          len(synth.state["class_names"]), pretrained=False)
            synth.classifier.load_state_dict(load_checkpoint(best)["model"])
        return synth


def recipe_differs(cfg: XPGANConfig, steps: int) -> str:
    """How C's training differs from that of a fresh classifier trained by ``synthaug train`` on a
    store (an experiment's other arms), stated because it cannot be removed inside the joint objective:
    a validation split would withhold real images from G and D as well (another fit, other images), C's
    batch is G's and D's, and without a validation split there is no best epoch to choose."""
    start = "from the ImageNet weights of classifier_weights" if cfg.classifier_weights else "from random weights"
    return (f"C is trained jointly with G and D, not by `synthaug train`: on every real training image (no "
            f"validation split held out) and on G's images of the CT volumes, {cfg.batch_size} real + "
            f"{cfg.batch_size} generated images per step, {steps} joint steps, Adam at lr {cfg.lr:g} annealed "
            f"to 0 over the steps, {start}, no augmentation; it keeps its final weights. A fresh classifier "
            f"trains on its store's training images alone, holds out its recipe's val_fraction (default 10%) "
            f"of the real ones (whole patients), keeps the epoch with the best validation macro-F1, and "
            f"trains at its recipe's batch size (default 32).")


def _share(world, batch_size: int) -> float:
    """This process's part of a global batch (1 in a world of one)."""
    return len(world.share(range(batch_size))) / batch_size
