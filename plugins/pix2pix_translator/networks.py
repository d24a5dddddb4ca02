"""The pix2pix networks: a U-Net generator and a conditional PatchGAN discriminator.

Generator (liang2021, after Isola et al.): encoder blocks Conv(4x4, stride 2) + BatchNorm + LeakyReLU
0.2 (no norm on the first block, nor on the innermost one, whose map may be 1x1 at batch size 1),
decoder blocks ConvTranspose(4x4, stride 2) + BatchNorm + Dropout 0.5 (first three) + ReLU, skip
connections by concatenation, and a final ConvTranspose + tanh. Channels: ngf * (1, 2, 4, 8, 8, ...).

Depth rule (so that 224 and other non-power-of-two sizes work), :func:`unet_geometry`:
  1. halve the size while it is even, at most 8 times (256 -> 8 levels down to 1x1, 224 -> 5 levels
     down to 7x7, 48 -> 4 levels down to 3x3, 32 -> 5 levels down to 1x1);
  2. if that leaves a bottleneck wider than 8 pixels (sizes with few factors of two, e.g. 250 or 45),
     use depth d = min(8, ceil(log2(size / 8))) instead, reflect-pad the input up to the next multiple
     of 2^d and crop the output back (250 -> pad to 256, d = 5; 45 -> pad to 48, d = 3).

Discriminator: conditional PatchGAN on (source, image) concatenated along channels; with 3 stride-2
layers it has the 70x70 receptive field of pix2pix. Its output is logits (use BCE-with-logits).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from synthaug.kit.gan import dcgan_init

MAX_DEPTH = 8
MAX_BOTTLENECK = 8


def unet_geometry(size: int) -> tuple[int, int]:
    """``(depth, padded_size)`` of the U-Net for square images of ``size`` pixels (rule above)."""
    depth, rest = 0, size
    while rest % 2 == 0 and rest > 1 and depth < MAX_DEPTH:
        rest //= 2
        depth += 1
    if rest <= MAX_BOTTLENECK:
        return depth, size
    depth = min(MAX_DEPTH, max(1, math.ceil(math.log2(size / MAX_BOTTLENECK))))
    step = 2 ** depth
    return depth, -(-size // step) * step


def _encoder(in_ch: int, out_ch: int, norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, 4, 2, 1, bias=not norm)]
    if norm:
        layers.append(nn.BatchNorm2d(out_ch))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return nn.Sequential(*layers)


def _decoder(in_ch: int, out_ch: int, dropout: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.ConvTranspose2d(in_ch, out_ch, 4, 2, 1, bias=False), nn.BatchNorm2d(out_ch)]
    if dropout:
        layers.append(nn.Dropout(0.5))
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class UNetGenerator(nn.Module):
    """Maps a source image in [-1, 1] to a translated image in [-1, 1] of the same size."""

    def __init__(self, channels: int, size: int, ngf: int = 64, dropout_blocks: int = 3, residual: bool = False):
        super().__init__()
        # residual=True (not in the papers, off by default): the output is source + tanh(U-Net), with the
        # last layer zero-initialised so G starts as the identity. For translations that only *add* a
        # subtle pattern (lesions on an otherwise identical radiograph) this learns the difference
        # instead of re-drawing the whole image; see docs/pix2pix.md.
        self.residual = residual
        self.depth, self.padded = unet_geometry(size)
        self.size = size
        widths = [ngf * min(2 ** i, 8) for i in range(self.depth)]
        self.down = nn.ModuleList()
        in_ch = channels
        for i, width in enumerate(widths):
            self.down.append(_encoder(in_ch, width, norm=0 < i < self.depth - 1))
            in_ch = width
        self.up = nn.ModuleList()
        # Decoder k (from the bottleneck up) maps to the width of encoder depth-2-k, then concatenates it.
        for k in range(self.depth - 1):
            out_ch = widths[self.depth - 2 - k]
            self.up.append(_decoder(in_ch, out_ch, dropout=k < dropout_blocks))
            in_ch = out_ch * 2
        self.out = nn.Sequential(nn.ConvTranspose2d(in_ch, channels, 4, 2, 1), nn.Tanh())

    def zero_last_layer(self) -> None:
        """Start a residual generator at the identity (called after the N(0, 0.02) init)."""
        nn.init.zeros_(self.out[0].weight)
        nn.init.zeros_(self.out[0].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        source = x
        pad = self.padded - self.size
        if pad:
            x = nn.functional.pad(x, (0, pad, 0, pad), mode="reflect")
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
        skips.pop()  # the bottleneck itself has no partner
        for block in self.up:
            x = torch.cat([block(x), skips.pop()], dim=1)
        x = self.out(x)
        x = x[..., : self.size, : self.size] if pad else x
        return (source + x).clamp(-1, 1) if self.residual else x


class PatchDiscriminator(nn.Module):
    """Conditional PatchGAN: logits for each patch of ``cat(source, image)``.

    ``n_layers`` stride-2 layers (3: the 70x70 patch of pix2pix), then two stride-1 layers. Small
    images get fewer stride-2 layers so that at least one patch logit remains (see
    :func:`patch_layers`).
    """

    def __init__(self, channels: int, size: int, ndf: int = 64, n_layers: int = 3):
        super().__init__()
        self.n_layers = patch_layers(size, n_layers)
        layers: list[nn.Module] = [nn.Conv2d(2 * channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        width = ndf
        for i in range(1, self.n_layers + 1):
            out = ndf * min(2 ** i, 8)
            stride = 2 if i < self.n_layers else 1
            layers += [nn.Conv2d(width, out, 4, stride, 1, bias=False), nn.BatchNorm2d(out),
                       nn.LeakyReLU(0.2, inplace=True)]
            width = out
        layers.append(nn.Conv2d(width, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, source: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([source, image], dim=1))


def patch_layers(size: int, wanted: int) -> int:
    """Most stride-2 layers (<= wanted) that leave a patch map of at least 1x1 for ``size`` pixels."""
    n = wanted
    # n stride-2 convs give size // 2^n; each of the two 4x4 stride-1 convs (padding 1) removes 1 pixel.
    while n > 1 and size // 2 ** n - 2 < 1:
        n -= 1
    return n


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """pix2pix init: conv weights N(0, 0.02); BatchNorm weights N(1, 0.02), biases 0 (synthaug.kit.gan.dcgan_init)."""
    dcgan_init(module, std)
