"""StyleGAN2 building blocks in plain PyTorch: equalized learning rate, modulated convolution with
demodulation, per-layer noise, skip toRGB, and the 3-D residual blocks of the CT encoder.

Equalized learning rate (Karras et al. 2018, used by quan2021 in place of conv + batch norm): weights
are stored as N(0, 1) and scaled at run time by ``1/sqrt(fan_in)``, so Adam's per-parameter step has
the same effect on every layer whatever its fan-in. Activations are LeakyReLU(0.2) times sqrt(2), the
gain that keeps unit variance through the layer (StyleGAN2).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LEAKY_SLOPE = 0.2  # quan2021: leaky ReLU with alpha = 0.2
ACT_GAIN = math.sqrt(2.0)


def leaky(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, LEAKY_SLOPE) * ACT_GAIN


class EqualLinear(nn.Module):
    """Fully connected layer with equalized learning rate (``lr_mul`` slows it, as in the mapping net)."""

    def __init__(self, in_features: int, out_features: int, *, bias_init: float = 0.0, lr_mul: float = 1.0,
                 activate: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init) / lr_mul))
        self.lr_mul = lr_mul
        self.activate = activate
        self.weight_scale = lr_mul / math.sqrt(in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(x, self.weight * self.weight_scale, self.bias * self.lr_mul)
        return leaky(out) if self.activate else out


class EqualConv(nn.Module):
    """2-D or 3-D convolution with equalized learning rate; ``stride`` may differ per axis (3-D CTs)."""

    def __init__(self, dims: int, in_channels: int, out_channels: int, kernel: int, *, stride=1, bias: bool = True):
        super().__init__()
        self.dims = dims
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, *([kernel] * dims)))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.stride = stride
        self.padding = kernel // 2
        self.weight_scale = 1.0 / math.sqrt(in_channels * kernel ** dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = F.conv3d if self.dims == 3 else F.conv2d
        return conv(x, self.weight * self.weight_scale, self.bias, stride=self.stride, padding=self.padding)


class ModulatedConv2d(nn.Module):
    """StyleGAN2's modulated convolution: the style scales the input channels of the weight; with
    ``demodulate`` each output channel's weight is renormalised to unit L2 norm, which gives unit output
    variance for unit-variance input without any normalisation of the activations."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, style_dim: int, *,
                 demodulate: bool = True, upsample: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, out_channels, in_channels, kernel, kernel))
        self.weight_scale = 1.0 / math.sqrt(in_channels * kernel * kernel)
        # bias 1: styles start at identity modulation
        self.affine = EqualLinear(style_dim, in_channels, bias_init=1.0)
        self.demodulate, self.upsample = demodulate, upsample
        self.in_channels, self.out_channels, self.padding = in_channels, out_channels, kernel // 2

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        style = self.affine(w)  # (B, in)
        weight = self.weight * self.weight_scale * style[:, None, :, None, None]  # (B, out, in, k, k)
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.pow(2).sum(dim=(2, 3, 4), keepdim=True) + 1e-8)
        if self.upsample:
            # bilinear x2 then a 3x3 conv: the pure-PyTorch stand-in for StyleGAN2's transposed conv + FIR blur
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        height, width = x.shape[-2:]
        # one grouped conv applies every sample's own weights
        out = F.conv2d(x.reshape(1, batch * self.in_channels, height, width),
                       weight.reshape(batch * self.out_channels, self.in_channels, *weight.shape[-2:]),
                       padding=self.padding, groups=batch)
        return out.reshape(batch, self.out_channels, height, width)


class NoiseInjection(nn.Module):
    """Per-layer noise (one learned strength per layer, StyleGAN2), drawn from ``generator`` if given."""

    def __init__(self):
        super().__init__()
        self.strength = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        device = generator.device if generator is not None else x.device
        noise = torch.randn(x.shape[0], 1, *x.shape[2:], generator=generator, device=device).to(x)
        return x + self.strength * noise


class StyledLayer(nn.Module):
    """Modulated 3x3 conv -> noise -> bias -> LeakyReLU(0.2)."""

    def __init__(self, in_channels: int, out_channels: int, style_dim: int, *, upsample: bool = False):
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, 3, style_dim, upsample=upsample)
        self.noise = NoiseInjection()
        self.bias = nn.Parameter(torch.zeros(1, out_channels, 1, 1))

    def forward(self, x, w, generator=None):
        return leaky(self.noise(self.conv(x, w), generator) + self.bias)


class ToRGB(nn.Module):
    """Modulated 1x1 conv without demodulation; the skip architecture sums the upsampled coarser output."""

    def __init__(self, in_channels: int, image_channels: int, style_dim: int):
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, image_channels, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, image_channels, 1, 1))

    def forward(self, x, w, skip: torch.Tensor | None = None):
        out = self.conv(x, w) + self.bias
        if skip is not None:
            out = out + F.interpolate(skip, scale_factor=2, mode="bilinear", align_corners=False)
        return out


class ResidualBlock3d(nn.Module):
    """CT encoder block: two 3x3x3 equalized convs (the second strided) plus a strided 1x1x1 skip.

    The residual skip follows the representation network of Shen et al. 2019 (quan2021 ref. 12), with
    batch norm + ReLU replaced by equalized-lr convs + LeakyReLU(0.2) as quan2021 states.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: tuple[int, int, int]):
        super().__init__()
        self.conv1 = EqualConv(3, in_channels, in_channels, 3)
        self.conv2 = EqualConv(3, in_channels, out_channels, 3, stride=stride)
        self.skip = EqualConv(3, in_channels, out_channels, 1, stride=stride, bias=False)

    def forward(self, x):
        main = leaky(self.conv2(leaky(self.conv1(x))))
        return (main + self.skip(x)) / math.sqrt(2.0)


class ResidualBlock2d(nn.Module):
    """StyleGAN2 discriminator block: two 3x3 convs then 2x average-pool down, plus a pooled 1x1 skip."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = EqualConv(2, in_channels, in_channels, 3)
        self.conv2 = EqualConv(2, in_channels, out_channels, 3)
        self.skip = EqualConv(2, in_channels, out_channels, 1, bias=False)

    def forward(self, x):
        main = F.avg_pool2d(leaky(self.conv2(leaky(self.conv1(x)))), 2)
        return (main + self.skip(F.avg_pool2d(x, 2))) / math.sqrt(2.0)


def minibatch_stddev(x: torch.Tensor, group_size: int = 4) -> torch.Tensor:
    """Append the mean over features of the per-group standard deviation as one extra channel."""
    batch, channels, height, width = x.shape
    group = min(group_size, batch)
    while batch % group:  # a group size that divides the batch
        group -= 1
    y = x.reshape(group, -1, channels, height, width)
    std = torch.sqrt(y.var(dim=0, unbiased=False) + 1e-8)  # (B/group, C, H, W)
    feature = std.mean(dim=(1, 2, 3)).reshape(-1, 1, 1, 1).repeat(group, 1, height, width)
    return torch.cat([x, feature], dim=1)
