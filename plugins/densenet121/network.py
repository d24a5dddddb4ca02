"""DenseNet-121 exactly as torchvision's ImageNet model, built from MONAI's DenseNet.

MONAI's 2-D DenseNet-121 already has the ImageNet layout (7x7 stride-2 conv0, max-pool, dense
blocks [6, 12, 24, 16] with growth 32 and bottleneck width 4x32, transitions halving channels,
norm5, ReLU, global average pool, linear). Only the names differ from torchvision's:

===========================================================  ===========================================
torchvision (new / old checkpoints)                          here
===========================================================  ===========================================
``features.denseblockB.denselayerL.norm1.weight``            ``features.denseblockB.denselayerL.layers.norm1.weight``
``features.denseblockB.denselayerL.norm.1.weight`` (old)     same
``classifier.weight``                                        ``class_layers.out.weight`` (the new head)
===========================================================  ===========================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from monai.networks.nets.densenet import DenseNet

from synthaug import Classifier, WeightsReport
from synthaug.contract.config import make_config
from synthaug.kit.transfer import imagenet_input, load_mapped, read_state_dict

# denselayer sub-modules, new ("norm1") and old ("norm.1") torchvision spellings.
_DENSE_LAYER_KEY = re.compile(r"^(features\.denseblock\d+\.denselayer\d+)\.(norm|relu|conv)\.?([12])\.(.+)$")


def torchvision_to_monai(key: str) -> str:
    """Map a torchvision DenseNet key to this network's key."""
    match = _DENSE_LAYER_KEY.match(key)
    if match:
        layer, kind, index, rest = match.groups()
        return f"{layer}.layers.{kind}{index}.{rest}"
    if key.startswith("classifier."):
        return "class_layers.out." + key[len("classifier."):]
    return key


@dataclass
class DenseNet121Config:
    #: Multiplier of the initial features (64) and growth rate (32). 1.0 is the standard ImageNet
    #: DenseNet-121; smaller values exist for fast tests and experiments, never as a default.
    width: float = 1.0


class ImageNetDenseNet121(imagenet_input(DenseNet)):
    """DenseNet-121 taking images in [0, 1]: the ImageNet normalisation is the first operation."""

    def __init__(self, in_channels: int, num_classes: int, width: float = 1.0):
        super().__init__(in_channels, spatial_dims=2, in_channels=in_channels, out_channels=num_classes,
                         init_features=max(2, round(64 * width)), growth_rate=max(2, round(32 * width)),
                         block_config=(6, 12, 24, 16), bn_size=4, dropout_prob=0.0)


class DenseNet121(Classifier):
    name = "densenet121"
    Config = DenseNet121Config
    head_prefixes = ("class_layers.",)
    # The last block as liang2021 unfreezes it: the final dense block and the norm after it.
    last_block_prefixes = ("features.denseblock4.", "features.norm5.")

    def __init__(self, config: DenseNet121Config | None = None, **options):
        self.config = (config if config is not None
                       else make_config(DenseNet121Config, options, "classifier 'densenet121'"))

    def build(self, in_channels: int, num_classes: int) -> ImageNetDenseNet121:
        return ImageNetDenseNet121(in_channels, num_classes, width=self.config.width)

    def load_weights(self, model, path: str | Path) -> WeightsReport:
        return load_mapped(model, path, read_state_dict(path), torchvision_to_monai, network=self.name,
                           head_prefixes=self.head_prefixes, first_conv="features.conv0.weight")
