"""The ``acgan`` synthesizer (CovidGAN, Waheed et al. 2020): one class-conditional GAN for all classes.

``fit`` trains an auxiliary-classifier GAN (Odena et al. 2017) on the real images of the training
split, every class at once (the class head needs them all); ``generate`` samples ``n`` images of the
target class from fresh noise. No synthetic image is made from a particular real image, so each one
has ``source_index`` -1 and the patient id ``"acgan"``.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from synthaug import ImageSet, SynthaugError, Synthesizer
from synthaug.contract.config import config_dict
from synthaug.contract.types import REAL
from synthaug.kit import distributed, progress
from synthaug.kit.device import resolve_device
from synthaug.kit.files import save_torch_file
from synthaug.kit.memory import TrainingEstimate, check_memory, finish_record, parameter_bytes, saved_bytes
from synthaug.kit.runs import load_checkpoint, save_checkpoint
from synthaug.kit.sampling import chunk_rows

from .networks import Generator, acgan_geometry
from .training import ACGANNets, from_model, resize, sample_grid, to_model, weights_hash

STATE_FILE = "train_state.pt"
WEIGHTS_FILE = "generator.pt"
#: Options a training state must share with the run that resumes it (they shape the networks).
NETWORK_OPTIONS = ("latent_dim", "ngf", "ndf")
#: Columns of the per-epoch sample grid (one row per class).
GRID_COLUMNS = 6
#: Images per generator call in ``generate`` (eval mode: the images do not depend on it).
GENERATE_CHUNK = 64


@dataclass
class ACGANConfig:
    """CovidGAN's ACGAN settings where this project knows them, DCGAN/ACGAN conventions elsewhere.

    The CovidGAN paper is not in this repository: the defaults are CovidGAN's as described to this
    project (latent 100, Adam 2e-4 with beta1 0.5) and the usual ACGAN/DCGAN values elsewhere.
    CovidGAN's own epoch count, batch size and dropout are not reproduced (docs/acgan.md).
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
    seed: int = 0  # initial weights, batch order, noise (the run's --seed unless set here)
    # (the device is the core's: ``Synthesizer.device``, --device; ``device=`` as an option still sets it)

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "latent_dim", "ngf", "ndf"):
            if int(getattr(self, name)) < 1:
                raise SynthaugError(f"acgan {name} must be at least 1; got {getattr(self, name)}")
        if not self.lr > 0:
            raise SynthaugError(f"acgan lr must be > 0; got {self.lr}")
        for name in ("beta1", "beta2", "dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise SynthaugError(f"acgan {name} must lie in [0, 1); got {getattr(self, name)}")


class ACGAN(Synthesizer):
    """CovidGAN's auxiliary-classifier GAN: G(z · embed(class)); D with real/fake and class heads."""

    name = "acgan"
    Config = ACGANConfig
    trainable = True
    accepted_channels = None  # G's last and D's first convolution are built for the data's channel count
    splits_generation = True  # any chunk is made from the seed and its rows alone (generate_part)
    reads_lazily = True  # the real images are read a chunk at a time and kept at the working size

    def __init__(self, config=None, **options):
        super().__init__(config, **options)
        self.generator: Generator | None = None
        self.discriminator: torch.nn.Module | None = None  # kept after fit (not saved): its class head
        self.image_shape: tuple[int, int, int] | None = None
        self.class_names: tuple[str, ...] | None = None
        self.hash: str | None = None
        self.history: list[dict[str, float]] = []
        self._memory_checked: tuple | None = None  # (what was estimated, the record)

    # ---- checks -----------------------------------------------------------------------------
    def check(self, train: ImageSet, deficits: dict[str, int], volumes=None) -> None:
        super().check(train, deficits, volumes)
        c, h, w = train.image_shape
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
        if self.generator is not None:
            if tuple(self.image_shape) != (c, h, w):
                raise SynthaugError(f"acgan checkpoint was trained on {_shape(self.image_shape)} images; "
                                    f"the data is {_shape((c, h, w))}")
            if tuple(self.class_names) != tuple(train.class_names):
                raise SynthaugError(f"acgan checkpoint was trained on classes {', '.join(self.class_names)}; "
                                    f"the data has {', '.join(train.class_names)}")
            return  # fitted: generates on the device, wherever it was trained
        resolve_device(self.device)  # training on cuda without CUDA: refused before it starts
        self._check_resume((c, h, w), train.class_names)
        self._check_memory(train)

    def _check_memory(self, train: ImageSet) -> dict:
        """Estimate the training peak (G and D built on meta tensors; G's forward and two of D's at the
        batch size, as a step keeps them; the resized real images) and refuse, naming the options, when
        it cannot fit on the device. Estimated once per data shape and device."""
        cfg = self.config
        device = resolve_device(self.device)
        n_real = int(np.sum(train.synth == REAL))
        c, size, _ = train.image_shape
        key = (train.image_shape, n_real, len(train.class_names), str(device), cfg.batch_size, cfg.ngf, cfg.ndf,
               cfg.latent_dim, train.is_lazy)
        if self._memory_checked is not None and self._memory_checked[0] == key:
            return self._memory_checked[1]
        from .networks import Discriminator

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
        estimate = TrainingEstimate(f"acgan (ngf {cfg.ngf}, ndf {cfg.ndf}, batch {cfg.batch_size})", str(device),
                                    parameter_bytes(generator, discriminator), activations, data)
        record = check_memory(estimate, f"use a smaller --synth-option batch_size (now {cfg.batch_size}) or "
                                        f"--synth-option ngf={max(8, cfg.ngf // 2)} ndf={max(8, cfg.ndf // 2)}, "
                                        f"or a smaller --size")
        self._memory_checked = (key, record)
        return record

    def _check_resume(self, shape, class_names) -> None:
        path = self._state_path()
        if path is None or not path.is_file():
            return
        state = load_checkpoint(path)
        if tuple(state["image_shape"]) != tuple(shape):
            raise SynthaugError(f"{path}: checkpoint of {_shape(state['image_shape'])} images; "
                                f"the data is {_shape(shape)}")
        if tuple(state["class_names"]) != tuple(class_names):
            raise SynthaugError(f"{path}: checkpoint of classes {', '.join(state['class_names'])}; "
                                f"the data has {', '.join(class_names)}")
        for key in NETWORK_OPTIONS:
            if state["config"].get(key) != getattr(self.config, key):
                raise SynthaugError(f"{path}: checkpoint with {key}={state['config'].get(key)}; "
                                    f"this run has {key}={getattr(self.config, key)}")

    # ---- training ---------------------------------------------------------------------------
    def fit(self, train: ImageSet, volumes=None) -> None:
        """Train G and D on the real training images. Under torchrun every process runs this: each takes
        its share of every batch (the same order and noise as one process), gradients are averaged after
        each backward, the epoch's losses are reduced over the processes, rank 0 alone writes the
        per-epoch state, and at the end every process holds rank 0's networks."""
        self.check(train, {}, volumes)
        distributed.check_batch(self.config.batch_size, "--synth-option batch_size")
        record = self._check_memory(train)
        cfg = self.config
        c, size, _ = train.image_shape
        device = resolve_device(self.device)
        world = distributed.world(device.type)
        real = np.flatnonzero(train.synth == REAL)
        labels = train.labels[real]
        present = torch.from_numpy(np.unique(labels))  # fake classes are drawn among these, uniformly
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        noise = torch.Generator().manual_seed(cfg.seed)
        nets = ACGANNets(c, size, len(train.class_names), latent_dim=cfg.latent_dim, ngf=cfg.ngf, ndf=cfg.ndf,
                         dropout=cfg.dropout, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
        nets.generator = world.sync_batchnorm(nets.generator, device)
        nets.discriminator = world.sync_batchnorm(nets.discriminator, device)
        nets.to(device)
        nets.bf16 = device.type == "cuda"
        self.image_shape, self.class_names, self.history = train.image_shape, train.class_names, []
        start = self._resume(nets, rng, noise)
        if world.rank:  # dropout masks of this rank's own images: a stream of its own (rank 0's is one process's)
            torch.manual_seed(world.rank_seed(cfg.seed, start))
        # read a chunk at a time (the split may be lazy) and kept only at the networks' working size
        images = torch.cat([to_model(resize(np.asarray(train.images[real[rows]], np.float32), nets.generator.work_size))
                            for rows in chunk_rows(len(real))]) if len(real) else torch.zeros(0)
        labels_t = torch.from_numpy(labels)
        steps = -(-len(real) // cfg.batch_size)
        nets.train()
        with progress.bar("acgan", (cfg.epochs - start) * steps) as bar:
            for epoch in range(start, cfg.epochs):
                order = torch.from_numpy(rng.permutation(len(real)))
                sums: dict[str, float] = {}
                taken = 0
                for k in range(steps):
                    idx = order[k * cfg.batch_size:(k + 1) * cfg.batch_size]
                    z = torch.randn(len(idx), cfg.latent_dim, generator=noise)
                    fake_labels = present[torch.randint(len(present), (len(idx),), generator=noise)]
                    if len(idx) < world.size:  # a last batch smaller than the world: skipped by every rank
                        continue
                    share = 1.0
                    if world.distributed:  # the whole batch's draws on every rank, then this rank's share
                        mine = torch.tensor(world.share(range(len(idx))))
                        idx, z, fake_labels, share = idx[mine], z[mine], fake_labels[mine], len(mine) / len(idx)
                        nets.grad_sync = lambda net, w=share: world.average_gradients(net, w)
                    losses = nets.train_step(images[idx].to(device), labels_t[idx].to(device), z.to(device),
                                             fake_labels.to(device))
                    for key, value in losses.items():
                        sums[key] = sums.get(key, 0.0) + value * share  # summed over ranks: the batch's mean
                    taken += 1
                    bar.update(epoch=epoch + 1, **losses)
                keys = sorted(sums)
                totals = dict(zip(keys, world.sum([sums[k] for k in keys])))
                self.history.append({"epoch": epoch + 1, **{k: totals[k] / max(taken, 1) for k in keys},
                                     "processes": world.size})
                if world.main:
                    self._save_state(epoch + 1, nets, rng, noise)
        world.broadcast([nets.generator, nets.discriminator])  # every process holds what rank 0 saves
        self.generator, self.discriminator = nets.generator, nets.discriminator
        self.generator.eval(), self.discriminator.eval()
        self.hash = weights_hash(self.generator)
        self.memory = finish_record(record)

    # ---- per-epoch state (resume) -----------------------------------------------------------
    def _state_path(self) -> Path | None:
        """``train_state.pt`` in the core's ``work_dir``; None: keep nothing."""
        return Path(self.work_dir) / STATE_FILE if self.work_dir is not None else None

    def _save_state(self, epoch: int, nets: ACGANNets, rng, noise) -> None:
        path = self._state_path()
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {"epoch": epoch, "image_shape": list(self.image_shape), "class_names": list(self.class_names),
                 "config": config_dict(self.config), "nets": nets.state_dict(), "g_opt": nets.g_opt.state_dict(),
                 "d_opt": nets.d_opt.state_dict(), "numpy_rng": rng.bit_generator.state,
                 "noise_rng": noise.get_state(), "torch_rng": torch.get_rng_state(), "history": self.history}
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        save_checkpoint(state, path)  # tensors, numbers, strings, lists: loadable with weights_only=True
        (path.parent / "samples").mkdir(exist_ok=True)
        sample_grid(self._grid(nets.generator), len(self.class_names),
                    path.parent / "samples" / f"epoch{epoch:03d}.png")

    def _grid(self, generator: Generator) -> np.ndarray:
        """GRID_COLUMNS images of every class from the same fixed noise (seeded by ``seed``)."""
        k = len(self.class_names)
        z = torch.randn(GRID_COLUMNS, self.config.latent_dim, generator=torch.Generator().manual_seed(self.config.seed))
        labels = torch.arange(k).repeat_interleave(GRID_COLUMNS)
        device = next(generator.parameters()).device
        was_training = generator.training
        with torch.no_grad():
            out = from_model(generator.eval()(z.repeat(k, 1).to(device), labels.to(device)))
        generator.train(was_training)
        return out

    def _resume(self, nets: ACGANNets, rng, noise) -> int:
        path = self._state_path()
        if path is None or not path.is_file():
            return 0
        state = load_checkpoint(path)
        nets.load_state_dict(state["nets"])
        nets.g_opt.load_state_dict(state["g_opt"])
        nets.d_opt.load_state_dict(state["d_opt"])
        rng.bit_generator.state = state["numpy_rng"]
        noise.set_state(state["noise_rng"])
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.history = list(state.get("history", []))
        return min(int(state["epoch"]), self.config.epochs)

    # ---- generation -------------------------------------------------------------------------
    def sample(self, target: str, n: int, seed: int, rows: slice | None = None) -> np.ndarray:
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
        device = resolve_device(self.device)
        generator = self.generator.to(device).eval()
        out = np.empty((len(z), generator.channels, generator.work_size, generator.work_size), np.float32)
        with torch.no_grad():
            for k in range(0, len(z), GENERATE_CHUNK):
                part = z[k:k + GENERATE_CHUNK].to(device)
                out[k:k + len(part)] = from_model(generator(part, torch.full((len(part),), label, device=device)))
        return resize(out, self.image_shape[1])

    def generate(self, train: ImageSet, target: str, n: int, *, seed: int, volumes=None) -> ImageSet:
        """``n`` new images of ``target`` sampled from noise; no source image (``source_index`` -1)."""
        return ImageSet.concat(list(self.generate_chunks(train, target, n, seed=seed, volumes=volumes)))

    def generate_part(self, train: ImageSet, target: str, n: int, *, seed: int, rows: slice,
                      volumes=None) -> ImageSet:
        if self.generator is None:
            raise SynthaugError("acgan is not fitted: call fit() or load a checkpoint")
        if tuple(train.class_names) != tuple(self.class_names) or train.image_shape != tuple(self.image_shape):
            raise SynthaugError(f"acgan was trained on {_shape(self.image_shape)} images of classes "
                                f"{', '.join(self.class_names)}; got {_shape(train.image_shape)} images of "
                                f"{', '.join(train.class_names)}")
        if not np.any((train.synth == REAL) & (train.labels == train.class_index(target))):
            raise SynthaugError(f"acgan learns class {target!r} from its real training images; "
                                f"the training split has no real {target!r} images")
        images = self.sample(target, n, seed, rows)
        k = len(images)
        return ImageSet(images, np.full(k, train.class_index(target)), train.class_names, np.full(k, "acgan"),
                        origin=[f"acgan z-sample {i}" for i in range(rows.start, rows.stop)],
                        source_index=np.full(k, -1),
                        extras={"checkpoint": np.full(k, self.hash[:16].encode(), dtype="S16")})

    # ---- save / load ------------------------------------------------------------------------
    def save(self, directory) -> None:
        if self.generator is None:
            raise SynthaugError("acgan is not fitted: nothing to save")
        directory = Path(directory)
        super().save(directory)
        save_torch_file({k: v.cpu() for k, v in self.generator.state_dict().items()}, directory / WEIGHTS_FILE)
        work = Path(self.work_dir) if self.work_dir is not None else None
        if work is not None and (work / "samples").is_dir() and work.resolve() != directory.resolve():
            shutil.copytree(work / "samples", directory / "samples", dirs_exist_ok=True)
        info = json.loads((directory / "synthesizer.json").read_text())
        info.update(image_shape=list(self.image_shape), class_names=list(self.class_names), hash=self.hash,
                    history=self.history)
        (directory / "synthesizer.json").write_text(json.dumps(info, indent=2))

    @classmethod
    def load(cls, directory) -> "ACGAN":
        synth = super().load(directory)
        info = json.loads((Path(directory) / "synthesizer.json").read_text())
        path = Path(directory) / WEIGHTS_FILE
        if not info.get("hash") or not path.is_file():
            raise SynthaugError(f"{directory}: acgan checkpoint holds no fitted generator ({WEIGHTS_FILE})")
        synth.image_shape = tuple(info["image_shape"])
        synth.class_names = tuple(info["class_names"])
        synth.history = list(info.get("history", []))
        cfg = synth.config
        generator = Generator(synth.image_shape[0], synth.image_shape[1], len(synth.class_names), cfg.latent_dim,
                              cfg.ngf)
        try:
            generator.load_state_dict(load_checkpoint(path))
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise SynthaugError(f"{path}: weights do not fit the generator of synthesizer.json "
                                f"({first[:160]})") from exc
        synth.hash = weights_hash(generator)
        if synth.hash != info["hash"]:
            raise SynthaugError(f"{path}: weights hash {synth.hash[:16]} does not match synthesizer.json")
        synth.generator = generator.eval()  # on the CPU; sample() moves it to the device
        return synth

    def describe(self) -> dict:
        info = super().describe()
        work = self.generator.work_size if self.generator is not None else None
        info.update(image_shape=list(self.image_shape or ()), class_names=list(self.class_names or ()),
                    work_size=work, epochs_trained=len(self.history),
                    checkpoints={"generator": self.hash} if self.hash else {})  # one generator for every class
        return info


def _shape(shape) -> str:
    c, h, w = shape
    return f"{h}x{w}x{c}"
