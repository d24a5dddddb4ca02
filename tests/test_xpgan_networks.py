"""xpgan networks: shapes, equalized learning rate, demodulation, minibatch stddev, config errors."""

from __future__ import annotations

import math

import pytest
import torch

from synthaug.errors import SynthaugError
from synthaug_plugins.xpgan_projector.layers import EqualConv, EqualLinear, ModulatedConv2d, leaky, minibatch_stddev
from synthaug_plugins.xpgan_projector.networks import (
    CTEncoder,
    Discriminator,
    Generator,
    NetworkConfig,
    StyleDecoder,
    to_unit_range,
)


@pytest.mark.parametrize("size,volume", [(32, (32, 32, 16)), (64, (64, 64, 32))])
def test_generator_and_discriminator_shapes(size, volume):
    torch.manual_seed(0)
    config = NetworkConfig.small(size)
    assert config.volume_shape == volume
    generator, discriminator = Generator(config), Discriminator(config)
    ct = torch.rand(3, 1, *volume) * 2 - 1
    image = generator(ct)
    assert image.shape == (3, 1, size, size)
    assert torch.isfinite(image).all()
    assert generator.encoder(ct).shape == (3, config.latent_dim)
    assert discriminator(to_unit_range(image)).shape == (3,)


def test_rgb_generator_makes_three_channels():
    config = NetworkConfig.small(32, image_channels=3)
    assert Generator(config)(torch.zeros(2, 1, 32, 32, 16)).shape == (2, 3, 32, 32)


def test_paper_sizes_structure():
    """quan2021: 256x256x64 CT -> 256 CXR; the encoder halves to 4x4x4 (6 levels, z stops after 4)."""
    config = NetworkConfig()
    assert config.volume_shape == (256, 256, 64) and config.image_size == 256
    encoder = CTEncoder(config)
    strides = [block.conv2.stride for block in encoder.blocks]
    assert strides == [(2, 2, 2)] * 4 + [(2, 2, 1)] * 2
    decoder = StyleDecoder(config)
    assert len(decoder.up_layers) == 6  # 4 -> 8 -> ... -> 256
    assert config.width(256) == 128 and config.width(4) == 512  # StyleGAN2 config F widths


def test_equalized_learning_rate_scales_by_fan_in():
    linear = EqualLinear(300, 10)
    conv2 = EqualConv(2, 16, 8, 3)
    conv3 = EqualConv(3, 4, 8, 3)
    modulated = ModulatedConv2d(32, 8, 3, style_dim=16)
    assert linear.weight_scale == pytest.approx(1 / math.sqrt(300))
    assert conv2.weight_scale == pytest.approx(1 / math.sqrt(16 * 9))
    assert conv3.weight_scale == pytest.approx(1 / math.sqrt(4 * 27))
    assert modulated.weight_scale == pytest.approx(1 / math.sqrt(32 * 9))
    # weights are stored as N(0, 1): the runtime scale, not the init, sets the layer's gain
    assert float(linear.weight.detach().std()) == pytest.approx(1.0, abs=0.05)
    mapping = EqualLinear(64, 64, lr_mul=0.01)
    assert mapping.weight_scale == pytest.approx(0.01 / 8)
    assert float((mapping.weight.detach() * mapping.weight_scale).std()) == pytest.approx(1 / 8, rel=0.1)
    # unit-variance input keeps about unit variance through an equalized linear layer
    torch.manual_seed(0)
    x = torch.randn(4096, 300)
    with torch.no_grad():
        out = linear(x)
    assert float(out.std()) == pytest.approx(1.0, abs=0.1)


def test_demodulation_gives_unit_output_std():
    torch.manual_seed(0)
    conv = ModulatedConv2d(64, 16, 3, style_dim=8)
    plain = ModulatedConv2d(64, 16, 3, style_dim=8, demodulate=False)
    plain.load_state_dict(conv.state_dict())
    x = torch.randn(4, 64, 32, 32)
    w = torch.randn(4, 8) * 3  # strong styles: without demodulation the scale follows them
    with torch.no_grad():
        out = conv(x, w)[..., 1:-1, 1:-1]  # interior: zero padding lowers the border's variance
        loud = plain(x, w)[..., 1:-1, 1:-1]
    per_channel = out.std(dim=(2, 3))  # (B, out) per sample and channel
    assert float(per_channel.min()) > 0.85 and float(per_channel.max()) < 1.15
    assert float(loud.std(dim=(2, 3)).max() / loud.std(dim=(2, 3)).min()) > 2.0


def test_leaky_relu_slope_and_gain():
    x = torch.tensor([-1.0, 2.0])
    assert leaky(x).tolist() == pytest.approx([-0.2 * math.sqrt(2), 2 * math.sqrt(2)])


def test_minibatch_stddev_feature():
    x = torch.zeros(4, 2, 4, 4)
    x[1] = 2.0  # group of 4: values 0, 2, 0, 0 -> population std sqrt(0.75)
    out = minibatch_stddev(x, 4)
    assert out.shape == (4, 3, 4, 4)
    assert torch.allclose(out[:, 2], torch.full((4, 4, 4), math.sqrt(0.75)), atol=1e-4)


def test_noise_is_reproducible_with_a_seeded_generator():
    config = NetworkConfig.small(32)
    generator = Generator(config)
    for layer in generator.decoder.layers:
        layer.noise.strength.data.fill_(0.5)
    ct = torch.zeros(1, 1, 32, 32, 16)
    with torch.no_grad():
        a = generator(ct, torch.Generator().manual_seed(3))
        b = generator(ct, torch.Generator().manual_seed(3))
        c = generator(ct, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("options,message", [
    ({"volume_shape": (30, 32, 16)}, "volume_shape"),
    ({"volume_shape": (32, 32)}, "volume_shape"),
    ({"image_size": 48}, "image_size"),
    ({"image_channels": 2}, "image_channels"),
])
def test_bad_network_config(options, message):
    with pytest.raises(SynthaugError, match=message):
        NetworkConfig(**options)
