"""The ACGAN's two networks and the size rule that shapes them.

Generator: noise ``z`` times a learned class embedding -> dense layer -> ``start x start`` map ->
``blocks`` transposed convolutions (each doubling the size; BatchNorm + ReLU between them) -> tanh.
Discriminator: ``blocks`` strided convolutions (LeakyReLU 0.2 + dropout, BatchNorm after the first)
down to the same ``start x start`` map, flattened, then two linear heads: a real/fake logit and the
class logits (the auxiliary classifier).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from synthaug import SynthaugError
from synthaug.kit.gan import dcgan_init

#: Widths stop doubling at this multiple of ``ngf`` / ``ndf`` (as in DCGAN-style networks).
MAX_WIDTH_FACTOR = 8
#: The smallest image the networks take (one block from a 4x4 map).
MIN_SIZE = 8


def acgan_geometry(size: int) -> tuple[int, int, int]:
    """``(start, blocks, work_size)`` for square images of ``size`` pixels.

    ``size`` is halved while it is even and the half is at least 4: a size that is a small base
    (4 to 7) times a power of two is built exactly (32 = 4·2³, 64 = 4·2⁴, 224 = 7·2⁵, 112 = 7·2⁴,
    48 = 6·2³). Any other size (45, 250, 18 = 9·2) is generated at the next power of two
    (``work_size``) from a 4x4 map, and the synthesizer resizes the images down with antialiasing.
    """
    size = int(size)
    if size < MIN_SIZE:
        raise SynthaugError(f"acgan needs images of at least {MIN_SIZE}x{MIN_SIZE} pixels; got {size}x{size}")
    start, blocks = size, 0
    while start % 2 == 0 and start // 2 >= 4:
        start, blocks = start // 2, blocks + 1
    if start <= 7:
        return start, blocks, size
    work = 2 ** math.ceil(math.log2(size))
    return 4, int(math.log2(work)) - 2, work


def widths(base: int, blocks: int) -> list[int]:
    """Feature widths from the finest map to the coarsest: ``base``·(1, 2, 4, 8, 8, ...)."""
    return [base * min(2 ** i, MAX_WIDTH_FACTOR) for i in range(blocks)]


class Generator(nn.Module):
    """``G(z, y)``: (B, latent_dim) noise and (B,) class indices -> (B, C, work, work) in [-1, 1]."""

    def __init__(self, channels: int, size: int, num_classes: int, latent_dim: int = 100, ngf: int = 64):
        super().__init__()
        self.start, self.blocks, self.work_size = acgan_geometry(size)
        self.channels, self.num_classes, self.latent_dim = channels, num_classes, latent_dim
        w = widths(ngf, self.blocks)[::-1]  # coarsest first
        self.embed = nn.Embedding(num_classes, latent_dim)
        self.project = nn.Linear(latent_dim, w[0] * self.start * self.start, bias=False)
        layers: list[nn.Module] = [nn.BatchNorm2d(w[0]), nn.ReLU(True)]
        for i in range(self.blocks - 1):
            layers += [nn.ConvTranspose2d(w[i], w[i + 1], 4, 2, 1, bias=False), nn.BatchNorm2d(w[i + 1]), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(w[-1], channels, 4, 2, 1), nn.Tanh()]
        self.body = nn.Sequential(*layers)
        self._top = w[0]

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.project(z * self.embed(labels))  # CovidGAN: the class embedding multiplies the noise
        return self.body(h.view(-1, self._top, self.start, self.start))


class Discriminator(nn.Module):
    """``D(x)``: (B, C, work, work) in [-1, 1] -> (real/fake logit (B,), class logits (B, num_classes))."""

    def __init__(self, channels: int, size: int, num_classes: int, ndf: int = 64, dropout: float = 0.25):
        super().__init__()
        self.start, self.blocks, self.work_size = acgan_geometry(size)
        w = widths(ndf, self.blocks)
        layers: list[nn.Module] = []
        prev = channels
        for i, width in enumerate(w):
            layers.append(nn.Conv2d(prev, width, 4, 2, 1, bias=i == 0))
            if i > 0:
                layers.append(nn.BatchNorm2d(width))
            layers += [nn.LeakyReLU(0.2, True), nn.Dropout(dropout)]
            prev = width
        self.features = nn.Sequential(*layers, nn.Flatten())
        flat = prev * self.start * self.start
        self.adversarial = nn.Linear(flat, 1)
        self.classifier = nn.Linear(flat, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x)
        return self.adversarial(h).squeeze(1), self.classifier(h)


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """DCGAN initialisation, linear layers included (synthaug.kit.gan.dcgan_init)."""
    dcgan_init(module, std, linear=True)
