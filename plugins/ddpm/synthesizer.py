"""The ``ddpm`` synthesizer: one class-conditional diffusion model for every class, on the plugin kit.

``fit`` trains MONAI's ``DiffusionModelUNet`` to denoise the real training images of every class (the
rare class borrows anatomy from the others), each image's label replaced by "no class" with
probability ``p_uncond`` so that the one network gives both the conditional and the unconditional
prediction; ``generate`` runs DDIM from fresh noise with classifier-free guidance, with the EMA of the
weights. No synthetic image is made from a particular real image: ``source_index`` -1, patient id
``"ddpm"``. The seed, device, per-epoch state, resume, torchrun, memory guard and save/load are the
kit's (:mod:`synthaug.kit.trainable`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from synthaug import ImageSet, SynthaugError
from synthaug.contract.types import REAL
from synthaug.kit import progress
from synthaug.kit.device import resolve_device
from synthaug.kit.figures import class_grid
from synthaug.kit.gan import from_tanh_range, fused_adam, to_tanh_range
from synthaug.kit.memory import TrainingEstimate, parameter_bytes, saved_bytes
from synthaug.kit.sampling import chunk_rows, from_noise
from synthaug.kit.trainable import DEFAULT_RUN, Estimate, TrainableSynthesizer, Training

from .diffusion import CHANNELS_LAST, Diffusion, initial_noise
from .networks import EMA, build_unet, check_size
from .options import DDPMConfig

#: Images per class in the per-epoch figure, and the DDIM steps it takes.
FIGURE_COLUMNS, FIGURE_STEPS = 4, 10


@dataclass
class _Batch:
    """One global batch's draws: the images' indices, timesteps, noise and "no class" drops."""

    idx: torch.Tensor
    t: torch.Tensor
    noise: torch.Tensor
    drop: torch.Tensor


class DDPM(TrainableSynthesizer):
    """Class-conditional DDPM with classifier-free guidance, sampled with DDIM (docs/ddpm.md)."""

    name = "ddpm"
    Config = DDPMConfig
    accepted_channels = None  # the U-Net's first and last convolutions take the data's channel count
    splits_generation = True  # image k comes from the seed and k alone (generate_part)
    reads_lazily = True  # the real images are read a chunk at a time
    #: how a fitted ddpm samples: a loaded one takes new values, and arms differing only in them share a fit
    sampling_options = ("guidance", "steps", "sample_batch")
    resumable_options = ("figure_every",)  # figures of the fit change no trained weight

    def __init__(self, config=None, **options):
        super().__init__(config, **options)
        self.unet: torch.nn.Module | None = None  # the EMA weights, which sampling uses

    @property
    def hash(self) -> str | None:
        """The sampling network's weights hash (sha256)."""
        return self.hashes.get("unet")

    def diffusion(self) -> Diffusion:
        cfg = self.config
        return Diffusion(cfg.timesteps, cfg.schedule, cfg.prediction)

    # ---- checks -----------------------------------------------------------------------------------
    def check_inputs(self, train: ImageSet, deficits: dict[str, int], volumes=None, *, run=DEFAULT_RUN) -> None:
        _, h, w = train.image_shape
        check_size(h, w, self.config)
        real = train.synth == REAL
        if not real.any():
            raise SynthaugError("ddpm: the training split has no real images to learn from")
        for name, n in deficits.items():
            if n > 0 and not np.any(real & (train.labels == train.class_index(name))):
                raise SynthaugError(f"ddpm learns class {name!r} from its real training images; "
                                    f"the training split has no real {name!r} images")

    def estimate(self, train: ImageSet, volumes, run) -> Estimate:
        """The training peak: the U-Net built on meta tensors, one training forward at the batch size as
        the step keeps it for the backward, the EMA copy and the real images."""
        cfg = self.config
        c, h, w = train.image_shape
        n_real = int(np.sum(train.synth == REAL))
        k = len(train.class_names)
        with torch.device("meta"):
            unet = build_unet(c, k, cfg).to(memory_format=CHANNELS_LAST)
            x = torch.zeros(cfg.batch_size, c, h, w).contiguous(memory_format=CHANNELS_LAST)
            t, y = torch.zeros(cfg.batch_size, dtype=torch.long), torch.zeros(cfg.batch_size, dtype=torch.long)
            activations = saved_bytes(lambda: unet(x, t, class_labels=y).square().mean())
        weights = parameter_bytes(unet)
        data = n_real * c * h * w * 4 * (1 if train.is_lazy else 2) + weights  # the [-1, 1] copy; the EMA
        memory = TrainingEstimate(f"ddpm (preset {cfg.preset}, channels {','.join(map(str, cfg.channels))}, "
                                  f"batch {cfg.batch_size})", str(resolve_device(run.device)), weights, activations,
                                  data)
        return Estimate(memory, f"use a smaller --synth-option batch_size (now {cfg.batch_size}), narrower "
                                f"--synth-option channels or a smaller --size")

    # ---- training: the networks and one epoch; the kit does the rest ------------------------------
    def start(self, train: ImageSet, volumes, run, part: str) -> Training:
        cfg = self.config
        real = np.flatnonzero(train.synth == REAL)
        unet = build_unet(train.image_shape[0], len(train.class_names), cfg).to(memory_format=CHANNELS_LAST)
        ema = EMA(unet, cfg.ema_decay)
        images = torch.cat([to_tanh_range(np.asarray(train.images[real[rows]], np.float32))
                            for rows in chunk_rows(len(real))])
        return Training(epochs=cfg.epochs, steps=-(-len(real) // cfg.batch_size), modules={"unet": unet, "ema": ema},
                        optimizers={"adam": fused_adam(unet.parameters(), cfg.lr, (0.9, 0.999))},
                        generators={"order": np.random.default_rng(run.seed),
                                    "draws": torch.Generator().manual_seed(run.seed)},
                        data={"images": images, "labels": torch.from_numpy(train.labels[real].astype(np.int64)),
                              "diffusion": self.diffusion()})

    def _draw(self, training: Training, idx: torch.Tensor) -> _Batch:
        """The whole global batch's random numbers (every process draws them all, then takes its share)."""
        g, images = training.generators["draws"], training.data["images"]
        t = torch.randint(self.config.timesteps, (len(idx),), generator=g)
        noise = torch.randn((len(idx), *images.shape[1:]), generator=g)
        drop = torch.rand(len(idx), generator=g) < self.config.p_uncond
        return _Batch(idx, t, noise, drop)

    def epoch(self, training: Training, epoch: int):
        cfg, data, world, device = self.config, training.data, training.world, training.device
        unet, ema = training.modules["unet"], training.modules["ema"]
        unet.train()
        no_class = len(self.class_names)
        order = torch.from_numpy(training.generators["order"].permutation(len(data["labels"])))
        for k in range(training.steps):
            batch = self._draw(training, order[k * cfg.batch_size:(k + 1) * cfg.batch_size])
            if len(batch.idx) < world.size:  # a last batch smaller than the world: skipped by every rank
                continue
            share = None
            if world.distributed:  # this rank's share of the global batch
                mine = torch.tensor(world.share(range(len(batch.idx))))
                share = len(mine) / len(batch.idx)
                batch = _Batch(batch.idx[mine], batch.t[mine], batch.noise[mine], batch.drop[mine])
            labels = torch.where(batch.drop, no_class, data["labels"][batch.idx])
            yield data["diffusion"].train_step(unet, training.optimizers["adam"], data["images"][batch.idx].to(device),
                                               labels.to(device), batch.t.to(device), batch.noise.to(device),
                                               ema=ema, grad_sync=training.grad_sync(share), bf16=training.bf16)

    def samples(self, training: Training, path: Path) -> None:
        """FIGURE_COLUMNS images of every class from the EMA weights, the same noise (the fit's seed) for
        every class, every ``figure_every`` epochs and after the last."""
        epoch, every = len(training.history), self.config.figure_every
        if not every or (epoch % every and epoch != training.epochs):
            return
        unet, k = training.modules["ema"].model, len(self.class_names)
        noise = initial_noise(self.seed, slice(0, FIGURE_COLUMNS), tuple(self.image_shape)).to(training.device)
        diffusion = training.data["diffusion"]
        rows = [from_tanh_range(diffusion.sample(unet, noise, label, k, steps=min(FIGURE_STEPS, self.config.steps),
                                                 guidance=self.config.guidance, bf16=training.bf16))
                for label in range(k)]
        class_grid(np.concatenate(rows), k, path)

    def finish(self, training: Training) -> None:
        self.unet = training.modules["ema"].model.eval()

    # ---- generation -------------------------------------------------------------------------------
    def sample(self, target: str, n: int, seed: int, rows: slice | None = None, device="auto",
               shown: bool = False) -> np.ndarray:
        """``n`` images of class ``target`` in [0, 1]; ``rows``: only those of the ``n`` (image ``k``
        depends on the seed and ``k`` alone: its initial noise is drawn from both)."""
        if self.unet is None:
            raise SynthaugError("ddpm is not fitted: call fit() or load a checkpoint")
        if target not in self.class_names:
            raise SynthaugError(f"unknown class {target!r}; ddpm was trained on {', '.join(self.class_names)}")
        cfg = self.config
        rows = slice(0, int(n)) if rows is None else rows
        device = resolve_device(device)
        unet = self.unet.to(device, memory_format=CHANNELS_LAST).eval()
        diffusion, label, k = self.diffusion(), self.class_names.index(target), len(self.class_names)
        out = np.empty((rows.stop - rows.start, *self.image_shape), np.float32)
        starts = range(rows.start, rows.stop, cfg.sample_batch)
        with progress.bar(f"ddpm {target}", len(starts) * cfg.steps, shown=shown) as bar:
            for start in starts:
                part = slice(start, min(start + cfg.sample_batch, rows.stop))
                noise = initial_noise(seed, part, tuple(self.image_shape)).to(device)
                x = diffusion.sample(unet, noise, label, k, steps=cfg.steps, guidance=cfg.guidance,
                                     bf16=device.type == "cuda", progress=bar)
                out[part.start - rows.start:part.stop - rows.start] = from_tanh_range(x)
        return out

    def generate_part(self, train: ImageSet, target: str, n: int, *, seed: int, rows: slice,
                      volumes=None, run=DEFAULT_RUN) -> ImageSet:
        """Images ``rows`` of the ``n`` new images of ``target`` (``generate`` joins the chunks)."""
        self.check_sampling(train, target)
        images = self.sample(target, n, seed, rows, run.device, shown=run.progress)
        return from_noise(train, target, images, rows, "ddpm", "ddpm sample", self.hash)

    # ---- save / load: the kit writes weights() and synthesizer.json -------------------------------
    def weights(self) -> dict[str, torch.nn.Module]:
        return {"unet": self.unet}  # the EMA weights (the trained ones and Adam's state stay in train_state.pt)

    def networks(self, info: dict) -> dict[str, torch.nn.Module]:
        return {"unet": build_unet(self.image_shape[0], len(self.class_names), self.config)}

    def use_networks(self, modules: dict) -> None:
        self.unet = modules["unet"].eval()  # on the CPU; sample() moves it to the run's device

    def describe(self) -> dict:
        info = super().describe()
        info.update(class_names=list(self.class_names or ()), epochs_trained=len(self.history))
        return info
