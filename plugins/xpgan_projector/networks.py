"""XPGAN's networks (quan2021 §2.2–2.3): G = 3-D CT encoder -> latent -> StyleGAN2 decoder, and the
StyleGAN2 residual discriminator D. The classifier C is any registered classifier plugin.

Sizes: the paper's G takes 256x256x64 CTs and makes 256x256 CXRs; ``NetworkConfig.small(32)`` and
``small(64)`` give the 32x32x16 -> 32 and 64x64x32 -> 64 variants used by the tests and the demo.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from synthaug import SynthaugError

from .layers import (
    EqualConv,
    EqualLinear,
    ResidualBlock2d,
    ResidualBlock3d,
    StyledLayer,
    ToRGB,
    leaky,
    minibatch_stddev,
)

BOTTOM = 4  # encoder and decoder meet at 4 voxels/pixels per axis, as StyleGAN2's 4x4 start


@dataclass
class NetworkConfig:
    """Sizes of G and D. Defaults: quan2021 (256x256x64 CT -> 256 CXR) and StyleGAN2 config F widths."""

    volume_shape: tuple[int, int, int] = (256, 256, 64)  # encoder grid (X, Y, Z) = (R-L, A-P, S-I) voxels
    image_size: int = 256  # decoder resolution (power of two)
    image_channels: int = 1
    latent_dim: int = 512  # encoder output = mapping input = style width (StyleGAN2: 512)
    mapping_layers: int = 8  # StyleGAN2: 8 FC layers, lr multiplier 0.01
    mapping_lr_mul: float = 0.01
    channel_base: int = 32768  # decoder/discriminator width at resolution r: min(base / r, max)
    channel_max: int = 512
    encoder_channels: int = 16  # width of the encoder's first level, doubled per level up to the max
    encoder_channels_max: int = 512
    mbstd_group: int = 4  # StyleGAN2 minibatch standard deviation group

    def __post_init__(self) -> None:
        self.volume_shape = tuple(int(s) for s in self.volume_shape)  # type: ignore[assignment]
        if len(self.volume_shape) != 3 or any(s < BOTTOM or s & (s - 1) for s in self.volume_shape):
            raise SynthaugError(f"volume_shape must be three powers of two >= {BOTTOM}; got {self.volume_shape}")
        if self.image_size < 8 or self.image_size & (self.image_size - 1):
            raise SynthaugError(f"image_size must be a power of two >= 8; got {self.image_size}")
        if self.image_channels not in (1, 3):
            raise SynthaugError(f"image_channels must be 1 or 3; got {self.image_channels}")

    @classmethod
    def small(cls, image_size: int, **overrides) -> "NetworkConfig":
        """The CPU-sized variants: 32x32x16 -> 32, 64x64x32 -> 64, narrow layers."""
        base = dict(volume_shape=(image_size, image_size, image_size // 2), image_size=image_size,
                    latent_dim=64, mapping_layers=2, channel_base=1024, channel_max=32,
                    encoder_channels=8, encoder_channels_max=32)
        base.update(overrides)
        return cls(**base)

    def width(self, resolution: int) -> int:
        return int(min(self.channel_base // resolution, self.channel_max))


class CTEncoder(nn.Module):
    """(B, 1, X, Y, Z) in [-1, 1] -> latent (B, latent_dim).

    Residual 3-D blocks halve every axis still larger than 4 until the volume is 4x4x4 (so the
    paper's 256x256x64 takes 6 levels, z stopping after 4), then two equalized FC layers.
    """

    def __init__(self, config: NetworkConfig):
        super().__init__()
        shape = list(config.volume_shape)
        width = config.encoder_channels
        self.from_volume = EqualConv(3, 1, width, 1)
        blocks = []
        while max(shape) > BOTTOM:
            stride = tuple(2 if s > BOTTOM else 1 for s in shape)
            out = min(width * 2, config.encoder_channels_max)
            blocks.append(ResidualBlock3d(width, out, stride))
            shape = [s // st for s, st in zip(shape, stride)]
            width = out
        self.blocks = nn.Sequential(*blocks)
        self.fc = EqualLinear(width * math.prod(shape), config.latent_dim, activate=True)
        self.out = EqualLinear(config.latent_dim, config.latent_dim)

    def forward(self, volume: torch.Tensor) -> torch.Tensor:
        x = self.blocks(leaky(self.from_volume(volume)))
        return self.out(self.fc(x.flatten(1)))


class MappingNetwork(nn.Module):
    """latent -> w: pixel norm then FC layers with a 0.01 learning-rate multiplier (StyleGAN2)."""

    def __init__(self, config: NetworkConfig):
        super().__init__()
        dim = config.latent_dim
        self.layers = nn.Sequential(*[EqualLinear(dim, dim, lr_mul=config.mapping_lr_mul, activate=True)
                                      for _ in range(config.mapping_layers)])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        z = z * torch.rsqrt(z.pow(2).mean(dim=1, keepdim=True) + 1e-8)
        return self.layers(z)


class StyleDecoder(nn.Module):
    """StyleGAN2 synthesis network, skip (toRGB) architecture.

    StyleGAN2 starts from a learned constant; here the 4x4 start is a learned projection of the CT
    latent, so the layout of the anatomy reaches the image through the start tensor while the styles
    w modulate every convolution.
    """

    def __init__(self, config: NetworkConfig):
        super().__init__()
        dim, channels = config.latent_dim, config.image_channels
        self.start_channels = config.width(BOTTOM)
        self.start = EqualLinear(dim, self.start_channels * BOTTOM * BOTTOM)
        self.start_layer = StyledLayer(self.start_channels, self.start_channels, dim)
        self.start_rgb = ToRGB(self.start_channels, channels, dim)
        self.up_layers, self.layers, self.rgbs = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        width = self.start_channels
        resolution = BOTTOM * 2
        while resolution <= config.image_size:
            out = config.width(resolution)
            self.up_layers.append(StyledLayer(width, out, dim, upsample=True))
            self.layers.append(StyledLayer(out, out, dim))
            self.rgbs.append(ToRGB(out, channels, dim))
            width, resolution = out, resolution * 2

    def forward(self, latent: torch.Tensor, w: torch.Tensor, generator: torch.Generator | None = None):
        x = self.start(latent).reshape(-1, self.start_channels, BOTTOM, BOTTOM)
        x = self.start_layer(x, w, generator)
        rgb = self.start_rgb(x, w)
        for up, layer, to_rgb in zip(self.up_layers, self.layers, self.rgbs):
            x = layer(up(x, w, generator), w, generator)
            rgb = to_rgb(x, w, skip=rgb)
        return rgb


class Generator(nn.Module):
    """G: CT in [-1, 1] -> CXR in nominal [-1, 1] (callers map to [0, 1] for D and C)."""

    def __init__(self, config: NetworkConfig):
        super().__init__()
        self.config = config
        self.encoder = CTEncoder(config)
        self.mapping = MappingNetwork(config)
        self.decoder = StyleDecoder(config)

    def forward(self, volume: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        latent = self.encoder(volume)
        return self.decoder(latent, self.mapping(latent), generator)


class Discriminator(nn.Module):
    """StyleGAN2 residual discriminator with minibatch stddev; input (B, C, S, S) in [0, 1] -> logits (B,)."""

    def __init__(self, config: NetworkConfig):
        super().__init__()
        size = config.image_size
        self.from_rgb = EqualConv(2, config.image_channels, config.width(size), 1)
        blocks = []
        while size > BOTTOM:
            blocks.append(ResidualBlock2d(config.width(size), config.width(size // 2)))
            size //= 2
        self.blocks = nn.Sequential(*blocks)
        width = config.width(BOTTOM)
        self.mbstd_group = config.mbstd_group
        self.conv = EqualConv(2, width + 1, width, 3)
        self.fc = EqualLinear(width * BOTTOM * BOTTOM, width, activate=True)
        self.out = EqualLinear(width, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        # StyleGAN2's D sees [-1, 1]; quan2021 feeds D with [0, 1] images, rescaled here to the range D expects.
        x = self.blocks(leaky(self.from_rgb(image * 2 - 1)))
        x = leaky(self.conv(minibatch_stddev(x, self.mbstd_group)))
        return self.out(self.fc(x.flatten(1))).squeeze(1)


def to_unit_range(image: torch.Tensor) -> torch.Tensor:
    """G's [-1, 1] output -> the [0, 1] images D, C and the DRR loss see (quan2021 §2.3)."""
    return (image + 1) * 0.5
