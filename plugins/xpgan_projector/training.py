"""quan2021's joint objective and training loop (eq. 1–4).

    min_{C,G} max_D  L(C) + V(G, D) + λ R(G)

- L(C): cross-entropy of C on real CXRs (their labels) and on G(CT) (the CT's label, mapped to a CXR
  class). G is in the min too, so the classification loss also shapes G's images.
- V(G, D): the adversarial game, played with StyleGAN2's non-saturating logistic loss
  (D: softplus(D(fake)) + softplus(-D(real)); G: softplus(-D(fake))), the loss the copied StyleGAN2
  D was designed for; eq. 3's saturating form gives G vanishing gradients early on.
- R(G): L1 between G(CT) and the DRR of the same posed volume (``siddon``, radiograph mode), λ = 2.
- Lazy R1 on D (StyleGAN2: γ/2·|∇D(real)|², every 16 D steps, scaled by 16, with Adam's lr and betas
  adjusted by 16/17): quan2021 copies StyleGAN2's D and R1 is how that D is kept stable; lazy because
  the double backward is the costliest part of a D step. Path-length regularisation is not used: it
  smooths the map from random z to images, and G here is driven by CT latents pinned by R(G).

Adam, lr 0.002 (quan2021), betas (0, 0.99) for G and D (StyleGAN2), (0.9, 0.999) for C; cosine
annealing of every learning rate over the run.

C works at the real CXRs' own size (the store's H x W, where it is evaluated), not at the decoder's
power-of-two size S: real images reach C as they are, and G's S x S images are resized to H x W by
:func:`resize_for_classifier` (bilinear, antialiased, differentiable, so L(C) still trains G).
D sees real CXRs resized to S, the size G makes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .networks import Discriminator, Generator, NetworkConfig, to_unit_range


@dataclass
class Batch:
    real: torch.Tensor  # (B, C, S, S) in [0, 1]: D's real images, at the decoder's size
    real_labels: torch.Tensor
    ct: torch.Tensor  # (B, 1, X, Y, Z) in [-1, 1]
    drr: torch.Tensor  # (B, C, S, S) in [0, 1]
    ct_labels: torch.Tensor
    real_classifier: torch.Tensor | None = None  # (B, C, H, W): the same real images at their own size (None: real)


def resize_for_classifier(images: torch.Tensor, size: tuple[int, int] | None) -> torch.Tensor:
    """``images`` (B, C, S, S) resized to ``size`` = (H, W) for C: bilinear with antialiasing (as the
    generated images put in a store are), differentiable; unchanged when already that size or ``size`` is None."""
    if size is None or tuple(images.shape[-2:]) == tuple(size):
        return images
    return F.interpolate(images, size=tuple(int(v) for v in size), mode="bilinear", align_corners=False,
                         antialias=True)


@dataclass
class ObjectiveConfig:
    lambda_drr: float = 2.0  # quan2021 §2.3: λ = 2
    lr: float = 0.002  # quan2021 §2.3, all networks
    classifier_lr: float | None = None  # None: lr
    r1_gamma: float = 10.0  # StyleGAN2 config F; 0 turns R1 off
    r1_interval: int = 16  # StyleGAN2 lazy regularisation


class JointTrainer:
    """Holds G, D, C and their optimizers; ``step(batch)`` is one D update then one joint G+C update."""

    def __init__(self, network_config: NetworkConfig, classifier: torch.nn.Module, objective: ObjectiveConfig,
                 total_steps: int, device: torch.device | str = "cpu", seed: int = 0,
                 classifier_size: tuple[int, int] | None = None):
        """``classifier_size``: (H, W) C is trained at (the real CXRs' size); None: the decoder's size.
        ``device``: where the networks go (a fit builds them on the CPU and the kit places them)."""
        self.config, self.objective, self.device = network_config, objective, device
        self.classifier_size = None if classifier_size is None else tuple(int(v) for v in classifier_size)
        torch.manual_seed(seed)  # G and D start the same whatever classifier was built before them
        self.generator = Generator(network_config).to(device)
        self.discriminator = Discriminator(network_config).to(device)
        self.classifier = classifier.to(device)
        interval = objective.r1_interval if objective.r1_gamma > 0 else 1
        lazy = interval / (interval + 1)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=objective.lr, betas=(0.0, 0.99))
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=objective.lr * lazy,
                                      betas=(0.0, 0.99 ** lazy))
        self.opt_c = torch.optim.Adam(self.classifier.parameters(), lr=objective.classifier_lr or objective.lr)
        steps = max(1, int(total_steps))
        self.schedulers = [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
                           for opt in (self.opt_g, self.opt_d, self.opt_c)]
        self.steps_done = 0
        self.losses: list[dict[str, float]] = []  # every step's, in order
        #: called with the networks after each backward, before their optimizers step: under torchrun,
        #: the average of the gradients over the processes (``World.average_gradients``); None in one process
        self.grad_sync = None

    def _sync(self, *modules) -> None:
        if self.grad_sync is not None:
            self.grad_sync(list(modules))

    def _discriminator_step(self, batch: Batch) -> dict[str, float]:
        self.discriminator.requires_grad_(True)
        with torch.no_grad():
            fake = to_unit_range(self.generator(batch.ct))
        loss = F.softplus(self.discriminator(fake)).mean() + F.softplus(-self.discriminator(batch.real)).mean()
        logs = {"loss_d": float(loss.detach())}
        interval = self.objective.r1_interval
        if self.objective.r1_gamma > 0 and self.steps_done % interval == 0:
            real = batch.real.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.discriminator(real).sum(), real, create_graph=True)
            r1 = grad.pow(2).sum(dim=(1, 2, 3)).mean()
            loss = loss + self.objective.r1_gamma / 2 * r1 * interval
            logs["r1"] = float(r1.detach())
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self._sync(self.discriminator)
        self.opt_d.step()
        return logs

    def _generator_classifier_step(self, batch: Batch) -> dict[str, float]:
        self.discriminator.requires_grad_(False)
        fake = to_unit_range(self.generator(batch.ct))
        adversarial = F.softplus(-self.discriminator(fake)).mean()
        drr_l1 = (fake - batch.drr).abs().mean()
        # one forward of C over real and projected images, so batch-norm statistics see both; both at the
        # real CXRs' own size (G's images resized differentiably)
        real = batch.real if batch.real_classifier is None else batch.real_classifier
        size = self.classifier_size or tuple(real.shape[-2:])
        if tuple(real.shape[-2:]) != size:
            raise ValueError(f"real images for C are {tuple(real.shape[-2:])}; C is trained at {size}")
        logits = self.classifier(torch.cat([real, resize_for_classifier(fake, size)]))
        n_real = len(real)
        cls_real = F.cross_entropy(logits[:n_real], batch.real_labels)
        cls_fake = F.cross_entropy(logits[n_real:], batch.ct_labels)
        total = cls_real + cls_fake + adversarial + self.objective.lambda_drr * drr_l1
        self.opt_g.zero_grad(set_to_none=True)
        self.opt_c.zero_grad(set_to_none=True)
        total.backward()
        self._sync(self.generator, self.classifier)
        self.opt_g.step()
        self.opt_c.step()
        values = {"loss_c_real": cls_real, "loss_c_fake": cls_fake, "loss_c": cls_real + cls_fake,
                  "loss_g_adv": adversarial, "loss_drr": drr_l1, "loss_total": total}
        return {k: float(v.detach()) for k, v in values.items()}

    def step(self, batch: Batch) -> dict[str, float]:
        self.generator.train()
        self.classifier.train()
        logs = self._discriminator_step(batch)
        logs.update(self._generator_classifier_step(batch))
        for scheduler in self.schedulers:
            scheduler.step()
        self.steps_done += 1
        self.losses.append(logs)
        return logs

    @property
    def modules(self) -> dict[str, torch.nn.Module]:
        """G, D and C by name (what a fit places on its device, saves and broadcasts)."""
        return {"generator": self.generator, "discriminator": self.discriminator, "classifier": self.classifier}

    @property
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": self.opt_g, "discriminator": self.opt_d, "classifier": self.opt_c}

    def state_dict(self) -> dict:
        """The rest of a fit beyond the networks and their Adam states: the cosine schedules (stepped
        every step), the step count and the losses of every step (tensors and numbers only)."""
        return {"schedulers": [s.state_dict() for s in self.schedulers], "steps_done": self.steps_done,
                "losses": self.losses}

    def load_state_dict(self, state: dict) -> None:
        for scheduler, saved in zip(self.schedulers, state["schedulers"]):
            scheduler.load_state_dict(saved)
        self.steps_done = int(state["steps_done"])
        self.losses = [dict(logs) for logs in state["losses"]]


class BatchSource:
    """Draws training batches: real CXRs in shuffled epochs, CT volumes uniformly with a random pose
    from a fixed per-volume set (pose 0 the identity; the default set is that pose alone).

    ``real_images`` are at the decoder's size (for D); ``classifier_images``, the same images at their
    own size, are what C sees (None: ``real_images``). ``real_images=None``: the CXRs stay where
    ``classifier_images`` keeps them (a ``LazyImages`` on disk) and each batch is read when drawn and
    resized with ``to_decoder`` for D."""

    def __init__(self, real_images: np.ndarray | None, real_labels: np.ndarray, renderer, volume_indices: np.ndarray,
                 volume_labels: np.ndarray, poses: list[list[tuple[float, ...]]], batch_size: int,
                 rng: np.random.Generator, device: torch.device, classifier_images=None,
                 world=None, to_decoder=None):
        """``world`` (a ``synthaug.kit.distributed.World``): under torchrun, every process draws the whole
        batch (one process's random stream) and renders and returns only its own share of it."""
        if real_images is None and (classifier_images is None or to_decoder is None):
            raise ValueError("real_images=None needs classifier_images and to_decoder")
        for name, images in (("real", real_images), ("classifier", classifier_images)):
            if images is not None and len(images) != len(real_labels):
                raise ValueError(f"{len(images)} {name} images for {len(real_labels)} labels")
        self.real_images, self.real_labels, self.classifier_images = real_images, real_labels, classifier_images
        self.to_decoder = to_decoder
        self.renderer, self.volume_indices = renderer, volume_indices
        self.volume_labels, self.poses = volume_labels, poses
        self.batch_size, self.rng, self.device = batch_size, rng, device
        self.world = world
        self._order = np.empty(0, np.int64)

    @property
    def steps_per_epoch(self) -> int:
        return max(1, math.ceil(len(self.real_labels) / self.batch_size))

    def state_dict(self) -> dict:
        """Where the draw stands: the generator's state and the rest of the current epoch's order."""
        return {"rng": self.rng.bit_generator.state, "order": torch.from_numpy(self._order.copy())}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self._order = state["order"].numpy().astype(np.int64)

    def _real_indices(self) -> np.ndarray:
        if len(self._order) < self.batch_size:
            self._order = np.concatenate([self._order, self.rng.permutation(len(self.real_labels))])
            while len(self._order) < self.batch_size:
                self._order = np.concatenate([self._order, self.rng.permutation(len(self.real_labels))])
        take, self._order = self._order[:self.batch_size], self._order[self.batch_size:]
        return take

    def next(self) -> Batch:
        real_idx = self._real_indices()
        picks = self.rng.integers(len(self.volume_indices), size=self.batch_size)
        poses = [self.poses[k][int(self.rng.integers(len(self.poses[k])))] for k in picks]
        if self.world is not None and self.world.distributed:
            mine = self.world.share(range(self.batch_size))
            real_idx, picks, poses = real_idx[mine], picks[mine], [poses[i] for i in mine]
        cts, drrs = [], []
        for k, pose in zip(picks, poses):
            enc, drr = self.renderer.pair(int(self.volume_indices[k]), pose)
            cts.append(enc)
            drrs.append(drr)
        own = None if self.classifier_images is None else np.asarray(self.classifier_images[real_idx], np.float32)
        real = self.to_decoder(own) if self.real_images is None else self.real_images[real_idx]
        channels = real.shape[1]
        as_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(self.device)  # noqa: E731
        return Batch(real=as_tensor(real), real_labels=as_tensor(self.real_labels[real_idx]),
                     ct=as_tensor(np.stack(cts)),
                     drr=as_tensor(np.repeat(np.stack(drrs), channels, axis=1)),
                     ct_labels=as_tensor(self.volume_labels[picks]),
                     real_classifier=None if own is None else as_tensor(own))
