"""The ``acgan`` synthesizer (CovidGAN, Waheed et al. 2020): one class-conditional GAN for all classes.

``fit`` trains an auxiliary-classifier GAN (Odena et al. 2017) on the real images of the training
split, every class at once (the class head needs them all); ``generate`` samples ``n`` images of the
target class from fresh noise. No synthetic image is made from a particular real image, so each one
has ``source_index`` -1 and the patient id ``"acgan"``. The seed, device, per-epoch state, resume,
torchrun and save/load are the kit's (:mod:`synthaug.kit.trainable`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from synthaug import ImageSet, SynthaugError
from synthaug.contract.types import REAL
from synthaug.kit.device import resolve_device
from synthaug.kit.figures import class_grid
from synthaug.kit.memory import TrainingEstimate, parameter_bytes, saved_bytes
from synthaug.kit.sampling import chunk_rows, from_noise
from synthaug.kit.trainable import DEFAULT_RUN, Estimate, TrainableSynthesizer, Training

from .networks import Discriminator, Generator, acgan_geometry
from .training import ACGANNets, from_model, resize, to_model

#: Columns of the per-epoch sample grid (one row per class).
GRID_COLUMNS = 6
#: Images per generator call in ``generate`` (eval mode: the images do not depend on it).
GENERATE_CHUNK = 64


@dataclass
class ACGANConfig:
    """CovidGAN's ACGAN settings where this project knows them, DCGAN/ACGAN conventions elsewhere.

    The CovidGAN paper is not in this repository: the defaults are CovidGAN's as described to this
    project (latent 100, Adam 2e-4 with beta1 0.5) and the usual ACGAN/DCGAN values elsewhere.
    CovidGAN's own epoch count, batch size and dropout are not reproduced (docs/acgan.md). The seed
    (initial weights, batch order, noise) and the device are the run's (``--seed``, ``--device``).
    """

    epochs: int = 100  # passes over the real training images; chosen (100, as pix2pix), not CovidGAN's own count
    batch_size: int = 32  # real images per step (as many generated ones); chosen: DCGAN/ACGAN-sized batches
    lr: float = 2e-4  # Adam learning rate of both networks (ACGAN, DCGAN)
    beta1: float = 0.5  # Adam beta1 (ACGAN, DCGAN)
    beta2: float = 0.999  # Adam beta2 (torch's default)
    latent_dim: int = 100  # length of the noise vector z (and of the class embedding it is multiplied with)
    ngf: int = 64  # generator width of its last hidden layer; doubles per coarser level, up to 8 x ngf
    ndf: int = 64  # discriminator width after its first convolution; doubles per level, up to 8 x ndf
    dropout: float = 0.25  # dropout after every LeakyReLU of the discriminator; chosen, not CovidGAN's own value

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "latent_dim", "ngf", "ndf"):
            if int(getattr(self, name)) < 1:
                raise SynthaugError(f"acgan {name} must be at least 1; got {getattr(self, name)}")
        if not self.lr > 0:
            raise SynthaugError(f"acgan lr must be > 0; got {self.lr}")
        for name in ("beta1", "beta2", "dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise SynthaugError(f"acgan {name} must lie in [0, 1); got {getattr(self, name)}")


class ACGAN(TrainableSynthesizer):
    """CovidGAN's auxiliary-classifier GAN: G(z · embed(class)); D with real/fake and class heads."""

    name = "acgan"
    Config = ACGANConfig
    accepted_channels = None  # G's last and D's first convolution are built for the data's channel count
    splits_generation = True  # any chunk is made from the seed and its rows alone (generate_part)
    reads_lazily = True  # the real images are read a chunk at a time and kept at the working size

    def __init__(self, config=None, **options):
        super().__init__(config, **options)
        self.generator: Generator | None = None
        self.discriminator: torch.nn.Module | None = None  # kept after fit (not saved): its class head

    @property
    def hash(self) -> str | None:
        """The generator's weights hash (sha256)."""
        return self.hashes.get("generator")

    # ---- checks -----------------------------------------------------------------------------
    def check_inputs(self, train: ImageSet, deficits: dict[str, int], volumes=None, *, run=DEFAULT_RUN) -> None:
        _, h, w = train.image_shape
        if h != w:
            raise SynthaugError(f"acgan needs square images; got {h}x{w}")
        acgan_geometry(h)
        real = train.synth == REAL
        if not real.any():
            raise SynthaugError("acgan: the training split has no real images to learn from")
        for name, n in deficits.items():
            index = train.class_index(name)
            if n > 0 and not np.any(real & (train.labels == index)):
                raise SynthaugError(f"acgan learns class {name!r} from its real training images; "
                                    f"the training split has no real {name!r} images")

    def estimate(self, train: ImageSet, volumes, run) -> Estimate:
        """The training peak: G and D built on meta tensors; G's forward and two of D's at the batch size,
        as a step keeps them; the resized real images."""
        cfg = self.config
        n_real = int(np.sum(train.synth == REAL))
        c, size, _ = train.image_shape
        k = len(train.class_names)
        with torch.device("meta"):
            generator = Generator(c, size, k, cfg.latent_dim, cfg.ngf)
            discriminator = Discriminator(c, size, k, cfg.ndf, cfg.dropout)
            z = torch.zeros(cfg.batch_size, cfg.latent_dim)
            labels = torch.zeros(cfg.batch_size, dtype=torch.long)
            real = torch.zeros(cfg.batch_size, c, generator.work_size, generator.work_size)
            # the G step's graph (G's activations, D on the fake) and the D step's D on the real batch
            activations = saved_bytes(lambda: sum(t.sum() for t in (*discriminator(generator(z, labels)),
                                                                    *discriminator(real))))
        work = n_real * c * generator.work_size ** 2 * 4
        # the real images (unless they stay on disk: a lazy split), resized, in [-1, 1]
        data = (0 if train.is_lazy else n_real * int(np.prod(train.image_shape)) * 4) + 2 * work
        memory = TrainingEstimate(f"acgan (ngf {cfg.ngf}, ndf {cfg.ndf}, batch {cfg.batch_size})",
                                  str(resolve_device(run.device)), parameter_bytes(generator, discriminator),
                                  activations, data)
        return Estimate(memory, f"use a smaller --synth-option batch_size (now {cfg.batch_size}) or "
                                f"--synth-option ngf={max(8, cfg.ngf // 2)} ndf={max(8, cfg.ndf // 2)}, "
                                f"or a smaller --size")

    # ---- training: the networks and one epoch; the kit does the rest --------------------------
    def start(self, train: ImageSet, volumes, run, part: str) -> Training:
        cfg = self.config
        c, size, _ = train.image_shape
        real = np.flatnonzero(train.synth == REAL)
        labels = train.labels[real]
        rng = np.random.default_rng(run.seed)
        noise = torch.Generator().manual_seed(run.seed)
        nets = ACGANNets(c, size, len(train.class_names), latent_dim=cfg.latent_dim, ngf=cfg.ngf, ndf=cfg.ndf,
                         dropout=cfg.dropout, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
        # read a chunk at a time (the split may be lazy) and kept only at the networks' working size
        images = torch.cat([to_model(resize(np.asarray(train.images[real[rows]], np.float32), nets.generator.work_size))
                            for rows in chunk_rows(len(real))])
        return Training(epochs=cfg.epochs, steps=-(-len(real) // cfg.batch_size), modules={"nets": nets},
                        optimizers={"G": nets.g_opt, "D": nets.d_opt}, generators={"numpy": rng, "noise": noise},
                        data={"images": images, "labels": torch.from_numpy(labels),
                              "present": torch.from_numpy(np.unique(labels))})  # fake classes: among these

    def epoch(self, training: Training, epoch: int):
        cfg, data, world, device = self.config, training.data, training.world, training.device
        nets = training.modules["nets"]
        nets.bf16 = training.bf16
        nets.train()
        noise, present = training.generators["noise"], data["present"]
        order = torch.from_numpy(training.generators["numpy"].permutation(len(data["labels"])))
        for k in range(training.steps):
            idx = order[k * cfg.batch_size:(k + 1) * cfg.batch_size]
            z = torch.randn(len(idx), cfg.latent_dim, generator=noise)
            fake_labels = present[torch.randint(len(present), (len(idx),), generator=noise)]
            if len(idx) < world.size:  # a last batch smaller than the world: skipped by every rank
                continue
            share = None
            if world.distributed:  # the whole batch's draws on every rank, then this rank's share
                mine = torch.tensor(world.share(range(len(idx))))
                idx, z, fake_labels, share = idx[mine], z[mine], fake_labels[mine], len(mine) / len(idx)
            nets.grad_sync = training.grad_sync(share)
            yield nets.train_step(data["images"][idx].to(device), data["labels"][idx].to(device), z.to(device),
                                  fake_labels.to(device))

    def samples(self, training: Training, path: Path) -> None:
        """GRID_COLUMNS images of every class from the same fixed noise (seeded by the fit's seed)."""
        generator, k = training.modules["nets"].generator, len(self.class_names)
        z = torch.randn(GRID_COLUMNS, self.config.latent_dim, generator=torch.Generator().manual_seed(self.seed))
        labels = torch.arange(k).repeat_interleave(GRID_COLUMNS)
        with torch.no_grad():
            images = from_model(generator.eval()(z.repeat(k, 1).to(training.device), labels.to(training.device)))
        generator.train()
        class_grid(images, k, path)

    def finish(self, training: Training) -> None:
        nets = training.modules["nets"]
        self.generator, self.discriminator = nets.generator.eval(), nets.discriminator.eval()

    # ---- generation -------------------------------------------------------------------------
    def sample(self, target: str, n: int, seed: int, rows: slice | None = None, device="auto") -> np.ndarray:
        """``n`` images of class ``target`` in [0, 1] at the training size: z ~ N(0, I) from ``seed``;
        ``rows``: only those of the ``n`` (each image depends on the seed and its row alone)."""
        if self.generator is None:
            raise SynthaugError("acgan is not fitted: call fit() or load a checkpoint")
        if target not in self.class_names:
            raise SynthaugError(f"unknown class {target!r}; acgan was trained on {', '.join(self.class_names)}")
        rows = slice(0, int(n)) if rows is None else rows
        label = self.class_names.index(target)
        # numpy fills its stream in order: the k-th noise vector depends on the seed and k only, not on n
        z = torch.from_numpy(np.random.default_rng(int(seed)).standard_normal((int(rows.stop), self.config.latent_dim),
                                                                              dtype=np.float32)[rows])
        device = resolve_device(device)
        generator = self.generator.to(device).eval()
        out = np.empty((len(z), generator.channels, generator.work_size, generator.work_size), np.float32)
        with torch.no_grad():
            for k in range(0, len(z), GENERATE_CHUNK):
                part = z[k:k + GENERATE_CHUNK].to(device)
                out[k:k + len(part)] = from_model(generator(part, torch.full((len(part),), label, device=device)))
        return resize(out, self.image_shape[1])

    def generate_part(self, train: ImageSet, target: str, n: int, *, seed: int, rows: slice,
                      volumes=None, run=DEFAULT_RUN) -> ImageSet:
        """Images ``rows`` of the ``n`` new images of ``target``, sampled from noise (``generate`` joins the
        chunks); no source image (``source_index`` -1)."""
        self.check_sampling(train, target)
        images = self.sample(target, n, seed, rows, run.device)
        return from_noise(train, target, images, rows, "acgan", "acgan z-sample", self.hash)

    # ---- save / load: the kit writes weights() and synthesizer.json -----------------------------
    def weights(self) -> dict[str, torch.nn.Module]:
        return {"generator": self.generator}  # D is not saved

    @classmethod
    def upgrade_info(cls, info: dict) -> dict:
        """A checkpoint written before the kit: its one ``hash``."""
        if "weights" not in info and info.get("hash"):
            info = {**info, "weights": {"generator": info["hash"]}}
        return info

    def networks(self, info: dict) -> dict[str, torch.nn.Module]:
        c, size, _ = self.image_shape
        return {"generator": Generator(c, size, len(self.class_names), self.config.latent_dim, self.config.ngf)}

    def use_networks(self, modules: dict) -> None:
        self.generator = modules["generator"].eval()  # on the CPU; sample() moves it to the device

    def describe(self) -> dict:
        info = super().describe()  # checkpoints: {"generator": hash}, one generator for every class
        work = self.generator.work_size if self.generator is not None else None
        info.update(class_names=list(self.class_names or ()), work_size=work, epochs_trained=len(self.history))
        return info
