"""One ACGAN training step, and the small helpers around it.

Kept free of ImageSet handling so that ``benchmarks/acgan_step.py`` times exactly the step that
``ACGAN.fit`` runs (the D-then-G skeleton is :func:`synthaug.kit.gan.adversarial_step`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from synthaug.kit.gan import adversarial_step, weights_hash  # noqa: F401  (weights_hash: imported from here)
from synthaug.kit.gan import from_tanh_range as from_model  # noqa: F401  (imported from here by the plugin)
from synthaug.kit.gan import fused_adam as adam
from synthaug.kit.gan import to_tanh_range as to_model  # noqa: F401

from .networks import Discriminator, Generator, init_weights


class ACGANNets(nn.Module):
    """Generator, discriminator (two heads) and their Adam optimizers."""

    def __init__(self, channels: int, size: int, num_classes: int, *, latent_dim: int = 100, ngf: int = 64,
                 ndf: int = 64, dropout: float = 0.25, lr: float = 2e-4, betas: tuple[float, float] = (0.5, 0.999),
                 init_std: float = 0.02):
        super().__init__()
        self.generator = Generator(channels, size, num_classes, latent_dim, ngf)
        self.discriminator = Discriminator(channels, size, num_classes, ndf, dropout)
        init_weights(self.generator, init_std)
        init_weights(self.discriminator, init_std)
        self.g_opt = adam(self.generator.parameters(), lr, betas)
        self.d_opt = adam(self.discriminator.parameters(), lr, betas)
        #: bfloat16 autocast of the forward passes (set on CUDA; the losses stay float32)
        self.bf16 = False
        #: called with each network after its backward, before its optimizer steps: under torchrun, the
        #: average of the gradients over the processes (``World.average_gradients``); None in one process
        self.grad_sync = None

    def train_step(self, real: torch.Tensor, labels: torch.Tensor, z: torch.Tensor,
                   fake_labels: torch.Tensor) -> dict[str, float]:
        """One D update then one G update; ``real`` in [-1, 1], ``z`` the noise, ``fake_labels`` the
        classes asked of G. Returns the losses and D's class accuracy on the real batch.

        Odena et al.'s objective with BCE-with-logits for the source S and cross-entropy for the class C:
        D = 1/2 [BCE(S(x), 1) + BCE(S(G(z, c)), 0) + CE(C(x), y) + CE(C(G(z, c)), c)];
        G = BCE(S(G(z, c)), 1) + CE(C(G(z, c)), c).
        """
        bce = nn.functional.binary_cross_entropy_with_logits
        ce = nn.functional.cross_entropy
        autocast = torch.autocast(real.device.type, dtype=torch.bfloat16, enabled=self.bf16)
        with autocast:
            fake = self.generator(z, fake_labels)

        def d_losses(fake):
            with autocast:
                real_src, real_cls = (t.float() for t in self.discriminator(real))
                fake_src, fake_cls = (t.float() for t in self.discriminator(fake))
            d_adv = bce(real_src, torch.ones_like(real_src)) + bce(fake_src, torch.zeros_like(fake_src))
            d_cls_real, d_cls_fake = ce(real_cls, labels), ce(fake_cls, fake_labels)
            d_loss = 0.5 * (d_adv + d_cls_real + d_cls_fake)
            accuracy = (real_cls.detach().argmax(1) == labels).float().mean()
            return d_loss, {"D": d_loss, "D_cls_real": d_cls_real, "acc_real": accuracy}

        def g_losses(fake):
            with autocast:
                src, cls = (t.float() for t in self.discriminator(fake))
            g_adv, g_cls = bce(src, torch.ones_like(src)), ce(cls, fake_labels)
            return g_adv + g_cls, {"G_adv": g_adv, "G_cls": g_cls}

        return adversarial_step(self.generator, self.discriminator, self.g_opt, self.d_opt, fake, d_losses, g_losses,
                                self.grad_sync)


def resize(images: np.ndarray, size: int) -> np.ndarray:
    """(N, C, s, s) -> (N, C, size, size), bilinear with antialiasing (for shrinking), clipped to [0, 1]."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    x = nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x.clamp(0, 1).numpy()
