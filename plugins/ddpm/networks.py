"""The denoiser: MONAI's ``DiffusionModelUNet``, class-conditional with one more label for "no class",
and the exponential moving average of its weights that sampling uses.

The class embedding (``num_class_embeds = K + 1``) is added to the timestep embedding; label ``K`` is
the "no class" label that classifier-free guidance trains with probability ``p_uncond``. Group norms
take ``gcd(32, *channels)`` groups and attention heads ``gcd(64, *channels)`` channels, so any widths
build. MONAI's middle block always holds one self-attention layer (it needs ``einops``); ``attention``
adds them at the two coarsest levels below full size. Attention runs through torch's
``scaled_dot_product_attention`` (MONAI's ``use_flash_attention``: the same weights, less memory).
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from synthaug import SynthaugError

from .options import DDPMConfig


def attention_levels(levels: int, attention: bool) -> tuple[bool, ...]:
    """Attention at the two coarsest levels, never at full size (its cost grows with the pixels squared)."""
    return tuple(bool(attention) and level >= max(1, levels - 2) for level in range(levels))


def build_unet(in_channels: int, num_classes: int, config: DDPMConfig) -> nn.Module:
    """The U-Net for images of ``in_channels`` channels and ``num_classes`` classes (plus "no class")."""
    try:
        from monai.networks.nets import DiffusionModelUNet
    except ImportError as exc:  # pragma: no cover - monai is a dependency
        raise SynthaugError(f"ddpm needs MONAI's DiffusionModelUNet ({exc})") from exc
    channels = tuple(int(c) for c in config.channels)
    try:
        import einops  # noqa: F401  (MONAI's attention blocks import it lazily and fail late without it)
    except ImportError as exc:
        raise SynthaugError("ddpm needs the einops package for MONAI's attention blocks: pip install einops") from exc
    return DiffusionModelUNet(
        spatial_dims=2, in_channels=in_channels, out_channels=in_channels, num_res_blocks=int(config.res_blocks),
        channels=channels, attention_levels=attention_levels(len(channels), config.attention),
        norm_num_groups=math.gcd(32, *channels), num_head_channels=math.gcd(64, *channels),
        num_class_embeds=num_classes + 1, use_flash_attention=True)


def check_size(height: int, width: int, config: DDPMConfig) -> None:
    """Refuse, in one line, images whose sides the U-Net's downsamplings cannot halve."""
    factor = config.size_factor
    if height % factor or width % factor:
        fits = -(-max(height, width) // factor) * factor  # the next side up that the U-Net takes
        raise SynthaugError(f"ddpm's U-Net of {config.levels} levels (channels {','.join(map(str, config.channels))}) "
                            f"needs image sides divisible by {factor}; got {height}x{width}: use --size {fits} or "
                            f"fewer levels (--synth-option channels=...)")


class EMA(nn.Module):
    """An exponential moving average of a network's weights (a module of the kit's Training: saved
    after every epoch, restored on resume). Step ``n`` (from 0) uses ``min(decay, (1 + n) / (10 + n))``,
    so that the average follows the first steps instead of keeping the initial weights."""

    def __init__(self, model: nn.Module, decay: float):
        super().__init__()
        self.model = copy.deepcopy(model).requires_grad_(False).eval()
        self.decay = float(decay)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        n = int(self.updates)
        decay = min(self.decay, (1 + n) / (10 + n))
        mine, theirs = list(self.model.parameters()), [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(mine, theirs, 1.0 - decay)
        self.updates += 1

    def train(self, mode: bool = True) -> "EMA":  # the average is never in training mode
        super().train(mode)
        self.model.eval()
        return self
