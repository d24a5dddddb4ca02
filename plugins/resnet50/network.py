"""ResNet-50 exactly as torchvision's ImageNet model, built from MONAI's ResNet.

MONAI's ``resnet50`` defaults to a stride-1 first convolution (about 5x the compute of the ImageNet
network); here it is configured to the standard one: 7x7 stride-2 conv, 3x3 stride-2 max-pool,
bottleneck blocks [3, 4, 6, 3] with the stride on the 3x3 conv (ResNet v1.5, as torchvision), and
bias-free 1x1 projection shortcuts. Parameter names then equal torchvision's (``conv1``, ``bn1``,
``layer1.0.conv1``, ``layer1.0.downsample.0``, ..., ``fc``), so ImageNet weights map one to one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from monai.networks.nets.resnet import ResNet

from synthaug import Classifier, WeightsReport
from synthaug.contract.config import make_config
from synthaug.kit.transfer import imagenet_input, load_mapped, read_state_dict


@dataclass
class ResNet50Config:
    #: Channel multiplier. 1.0 is the standard ImageNet ResNet-50 (the only width ImageNet weights
    #: fit); smaller values exist for fast tests and experiments, never as a default.
    width: float = 1.0


class ImageNetResNet50(imagenet_input(ResNet)):
    """ResNet-50 taking images in [0, 1]: the ImageNet normalisation is the first operation."""

    def __init__(self, in_channels: int, num_classes: int, width: float = 1.0):
        super().__init__(in_channels, block="bottleneck", layers=[3, 4, 6, 3], block_inplanes=[64, 128, 256, 512],
                         spatial_dims=2, n_input_channels=in_channels, conv1_t_size=7, conv1_t_stride=2,
                         no_max_pool=False, shortcut_type="B", widen_factor=width, num_classes=num_classes,
                         bias_downsample=False)


class ResNet50(Classifier):
    name = "resnet50"
    Config = ResNet50Config
    head_prefixes = ("fc.",)
    last_block_prefixes = ("layer4.",)  # liang2021 unfreezes the last block for fine-tuning

    def __init__(self, config: ResNet50Config | None = None, **options):
        self.config = config if config is not None else make_config(ResNet50Config, options, "classifier 'resnet50'")

    def build(self, in_channels: int, num_classes: int) -> ImageNetResNet50:
        return ImageNetResNet50(in_channels, num_classes, width=self.config.width)

    def load_weights(self, model, path: str | Path) -> WeightsReport:
        # torchvision's names are this network's names.
        return load_mapped(model, path, read_state_dict(path), lambda key: key, network=self.name,
                           head_prefixes=self.head_prefixes, first_conv="conv1.weight")
