"""One pix2pix training step, the paired augmentation, the pairing rules and the lr schedule.

Kept free of ImageSet handling so that ``benchmarks/pix2pix_step.py`` times exactly the step that
``Pix2Pix.fit`` runs.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from synthaug.kit.gan import (
    adversarial_step,
    weights_hash,  # noqa: F401
)
from synthaug.kit.gan import from_tanh_range as from_model  # noqa: F401
from synthaug.kit.gan import fused_adam as adam  # noqa: F401  (the names this module's users import)
from synthaug.kit.gan import to_tanh_range as to_model  # noqa: F401

from .networks import PatchDiscriminator, UNetGenerator, init_weights

PAIRINGS = ("random", "paired", "nearest")


class Pix2PixNets(nn.Module):
    """Generator, discriminator and their Adam optimizers for one target class."""

    def __init__(self, channels: int, size: int, *, ngf: int = 64, ndf: int = 64, d_layers: int = 3,
                 lr: float = 2e-4, betas: tuple[float, float] = (0.5, 0.999), lambda_l1: float = 100.0,
                 init_std: float = 0.02, residual: bool = False):
        super().__init__()
        self.generator = UNetGenerator(channels, size, ngf, residual=residual)
        self.discriminator = PatchDiscriminator(channels, size, ndf, d_layers)
        init_weights(self.generator, init_std)
        init_weights(self.discriminator, init_std)
        if residual:
            self.generator.zero_last_layer()
        self.lambda_l1 = lambda_l1
        self.g_opt = adam(self.generator.parameters(), lr, betas)
        self.d_opt = adam(self.discriminator.parameters(), lr, betas)
        #: bfloat16 autocast of the forward passes (set on CUDA; the losses stay float32)
        self.bf16 = False
        #: called with each network after its backward, before its optimizer steps: under torchrun, the
        #: average of the gradients over the processes (``World.average_gradients``); None in one process
        self.grad_sync = None

    def train_step(self, source: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
        """One D update then one G update on a batch in [-1, 1]; returns the losses.

        D = 1/2 (BCE(D(s, t), 1) + BCE(D(s, G(s)), 0)); G = BCE(D(s, G(s)), 1) + lambda * |G(s) - t|_1.
        """
        bce = nn.functional.binary_cross_entropy_with_logits
        autocast = torch.autocast(source.device.type, dtype=torch.bfloat16, enabled=self.bf16)
        with autocast:
            fake = self.generator(source)

        def d_losses(fake):
            with autocast:
                real_logits = self.discriminator(source, target).float()
                fake_logits = self.discriminator(source, fake).float()
            d_loss = 0.5 * (bce(real_logits, torch.ones_like(real_logits))
                            + bce(fake_logits, torch.zeros_like(fake_logits)))
            return d_loss, {"D": d_loss}

        def g_losses(fake):
            with autocast:
                fooled = self.discriminator(source, fake).float()
            g_adv = bce(fooled, torch.ones_like(fooled))
            g_l1 = nn.functional.l1_loss(fake.float(), target)
            return g_adv + self.lambda_l1 * g_l1, {"G_adv": g_adv, "L1": g_l1}

        return adversarial_step(self.generator, self.discriminator, self.g_opt, self.d_opt, fake, d_losses, g_losses,
                                self.grad_sync)


def linear_decay(epochs: int, decay_epochs: int):
    """lr factor per epoch: 1 for the first ``epochs - decay_epochs`` epochs, then linearly towards 0."""
    constant = epochs - decay_epochs

    def factor(epoch: int) -> float:
        return 1.0 - max(0, epoch + 1 - constant) / float(decay_epochs + 1)

    return factor


def augment_pair(source: torch.Tensor, target: torch.Tensor, generator: torch.Generator,
                 flip_p: float = 0.5, max_degrees: float = 5.0) -> tuple[torch.Tensor, torch.Tensor]:
    """liang2021's flip + rotation, with the same flip and angle for a source and its target."""
    from kornia.geometry.transform import rotate

    n, c = source.shape[:2]
    both = torch.cat([source, target], dim=1)
    # drawn from the CPU generator wherever the images are (same draws on any device)
    flip = (torch.rand(n, generator=generator) < flip_p).to(both.device)
    both = torch.where(flip[:, None, None, None], both.flip(-1), both)
    angle = ((torch.rand(n, generator=generator) * 2 - 1) * max_degrees).to(both.device)
    # Reflection padding: zero padding would paint mid-grey corners in [-1, 1] space.
    both = rotate(both, angle, padding_mode="reflection")
    return both[:, :c], both[:, c:]


def nearest_targets(sources, targets, grid: int = 16) -> np.ndarray:
    """Index of the most similar target for each source (``nearest`` pairing).

    Feature: the image area-averaged to ``grid`` x ``grid`` (grey), minus its mean, scaled to unit
    norm; distance: Euclidean between features (so brightness and contrast offsets do not count).
    """
    fs, ft = _features(sources, grid), _features(targets, grid)
    d2 = (fs ** 2).sum(1)[:, None] - 2 * fs @ ft.T + (ft ** 2).sum(1)[None, :]
    return np.argmin(d2, axis=1)


def _features(images, grid: int, chunk: int = 256) -> np.ndarray:
    """One feature row per image; ``images`` (an array or a ``LazyImages``) read ``chunk`` at a time."""
    rows = []
    for start in range(0, len(images), chunk):
        x = torch.from_numpy(np.asarray(images[start:start + chunk], dtype=np.float32)).mean(1, keepdim=True)
        x = nn.functional.adaptive_avg_pool2d(x, min(grid, x.shape[-1])).flatten(1)
        x = x - x.mean(1, keepdim=True)
        rows.append((x / x.norm(dim=1, keepdim=True).clamp_min(1e-8)).numpy().astype(np.float64))
    return np.concatenate(rows) if rows else np.zeros((0, grid * grid))


def sample_grid(source: np.ndarray, generated: np.ndarray, target: np.ndarray, path) -> None:
    """PNG with one row per example: source | generated | target (images in [0, 1], (N, C, H, W); RGB
    for three channels, otherwise grey: the channel mean, as every figure shows images)."""
    from PIL import Image

    from synthaug.kit.figures import viewable

    rows = [np.concatenate([s, g, t], axis=-1) for s, g, t in zip(source, generated, target)]
    grid = np.concatenate(rows, axis=-2)  # (C, rows*H, 3W)
    Image.fromarray((viewable(grid) * 255 + 0.5).astype(np.uint8)).save(path)
