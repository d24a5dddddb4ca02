"""Transfer-learning helpers shared by every classifier plugin: no network definitions here.

- :func:`input_statistics`: the ImageNet mean/std a network normalises its [0, 1] input with.
- :func:`read_state_dict`: a local torchvision-format state dict, read with ``weights_only=True``.
- :func:`load_mapped`: copy a state dict into a model through a plugin's key mapping, check shapes,
  adapt the RGB first-conv weights to the model's channel count (:func:`adapt_first_conv`) and report
  what matched.
- :func:`freeze_except` / :func:`train_mode`: the liang2021 schedule's frozen backbone.
- :func:`imagenet_input`: a network class that takes [0, 1] images, the ImageNet normalisation its
  first operation.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, Mapping

from synthaug.contract.types import WeightsReport
from synthaug.errors import SynthaugError
from synthaug.kit.files import load_torch_file

#: ImageNet statistics of torchvision's pretrained models (RGB, images in [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Grey equivalent: the channel averages. A grey image replicated to RGB and normalised per channel
#: differs from this by at most 0.043 (mean) and 0.003 (std) per channel, which is what makes summing
#: the first conv's RGB weights a faithful 1-channel version of an RGB network.
GREY_MEAN = (sum(IMAGENET_MEAN) / 3,)
GREY_STD = (sum(IMAGENET_STD) / 3,)


def input_statistics(in_channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) per channel for a network taking ``in_channels`` images in [0, 1]: ImageNet's RGB
    statistics for 3 channels, the grey ones (:data:`GREY_MEAN`, :data:`GREY_STD`) on every channel
    otherwise. Why grey for C != 3: channels that are not red, green and blue (MRI sequences) have no
    colour statistics to match, and :func:`adapt_first_conv` spreads every RGB filter over the channels
    as the grey network (C = 1, statistics :data:`GREY_MEAN`) sums them."""
    if isinstance(in_channels, bool) or int(in_channels) != in_channels or in_channels < 1:
        raise SynthaugError(f"in_channels must be a whole number >= 1; got {in_channels!r}")
    if in_channels == 3:
        return IMAGENET_MEAN, IMAGENET_STD
    return GREY_MEAN * int(in_channels), GREY_STD * int(in_channels)


def channel_mixing(in_channels: int):
    """The (C, 3) matrix that turns RGB first-conv filters into ``in_channels`` filters (torch, float64).

    C < 3 folds: channel k gets the sum of the RGB filters c with c mod C = k (C = 1: R + G + B, the
    grey case; C = 2: R + B and G). C >= 3 repeats cyclically: channel k gets filter k mod 3, divided
    by the number of channels that repeat it (C = 4: R/2, G, B, R/2). Either way every RGB filter's
    weights sum to 1 over the new channels, which is what keeps the layer's response to an image
    equal on every channel (a constant image, a grey one) the RGB network's response to it.
    """
    import torch

    c = int(in_channels)
    mixing = torch.zeros(c, 3, dtype=torch.float64)
    pairs = [(rgb % c, rgb) for rgb in range(3)] if c < 3 else [(k, k % 3) for k in range(c)]
    for k, rgb in pairs:
        mixing[k, rgb] = 1.0
    return mixing / mixing.sum(dim=0, keepdim=True)


def adapt_first_conv(weight, in_channels: int):
    """RGB first-conv weights ``(O, 3, kh, kw)`` as ``(O, in_channels, kh, kw)`` (see :func:`channel_mixing`)."""
    import torch

    if int(in_channels) == 1:  # the grey fold, in the weights' own dtype: R + G + B as it always was
        return weight.sum(dim=1, keepdim=True)
    mixed = torch.einsum("kc,oc...->ok...", channel_mixing(in_channels), weight.double())
    return mixed.to(weight.dtype).contiguous()


@lru_cache(maxsize=None)
def imagenet_input(network_cls: type) -> type:
    """``network_cls`` made to take images in [0, 1]: its subclass ``ImageNetInput`` normalises the input
    with :func:`input_statistics` and then runs ``network_cls.forward``.

    ``ImageNetInput(in_channels, *args, **kwargs)`` builds ``network_cls(*args, **kwargs)`` (``in_channels``
    is positional-only, so the network may take an ``in_channels`` keyword of its own). A subclass
    rather than a wrapper module: parameter names stay the network's own (``conv1.weight``, not
    ``network.conv1.weight``), so torchvision-format weights, head and last-block prefixes and saved
    checkpoints all keep matching. The statistics are non-persistent buffers: they follow from
    ``in_channels``, move with ``.to(device)`` and stay out of the state dict.
    """
    import torch

    class ImageNetInput(network_cls):
        def __init__(self, in_channels: int, /, *args, **kwargs):
            super().__init__(*args, **kwargs)
            mean, std = input_statistics(in_channels)
            self.register_buffer("input_mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
            self.register_buffer("input_std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward((x - self.input_mean) / self.input_std)

    ImageNetInput.__name__ = ImageNetInput.__qualname__ = f"ImageNetInput[{network_cls.__name__}]"
    return ImageNetInput


def read_state_dict(path: str | Path) -> dict:
    """A ``{name: tensor}`` dict from a local file; never unpickles arbitrary objects."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise SynthaugError(f"{path}: no such weights file")
    obj = load_torch_file(path, "torch state dict")
    # Tolerate the usual containers: {"state_dict": ...} / {"model": ...} and DataParallel's "module.".
    for key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise SynthaugError(f"{path}: expected a state dict of named tensors (torchvision format)")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}


def load_mapped(model, path: str | Path, state: Mapping, map_key: Callable[[str], str | None], *,
                network: str, head_prefixes: Iterable[str], first_conv: str,
                optional_suffixes: tuple[str, ...] = ("num_batches_tracked",)) -> WeightsReport:
    """Copy ``state`` into ``model`` (in place) and report it.

    ``map_key`` turns a file key into the model's key (``None``: not this network's key). File keys
    that land in the head are dropped on purpose (the ImageNet head is replaced). A shape mismatch
    means the file holds another architecture: a :class:`SynthaugError`, as is a file matching nothing.
    ``first_conv`` (the model key of the first convolution) has its RGB weights adapted when the model
    takes another channel count (:func:`adapt_first_conv`: summed for one channel). Model keys ending
    in ``optional_suffixes`` (BatchNorm's step counter, absent from old checkpoints) are not reported
    missing.
    """
    import torch

    heads = tuple(head_prefixes)
    target = model.state_dict()
    matched, unexpected, loaded = [], [], {}
    for file_key, tensor in state.items():
        key = map_key(file_key)
        if key is not None and key.startswith(heads):
            continue
        if key is None or key not in target:
            unexpected.append(file_key)
            continue
        given = tuple(tensor.shape)
        if key == first_conv and tensor.ndim == 4 and tensor.shape[1] == 3 and target[key].shape[1] != 3:
            tensor = adapt_first_conv(tensor, target[key].shape[1])  # grey: R + G + B (see GREY_MEAN)
        if tuple(tensor.shape) != tuple(target[key].shape):
            raise SynthaugError(
                f"{path}: not a {network} weights file: {file_key} has shape {given}, "
                f"{network} expects {tuple(target[key].shape)}")
        loaded[key] = tensor.to(target[key].dtype)
        matched.append(key)
    if not matched:
        raise SynthaugError(f"{path}: matches no tensor of {network} (expected torchvision key names such as "
                            f"{next(iter(k for k in target if not k.startswith(heads)))!r})")
    with torch.no_grad():
        model.load_state_dict(loaded, strict=False)
    missing = [k for k in target if k not in loaded and not k.endswith(optional_suffixes)]
    return WeightsReport(path=str(path), matched=sorted(matched), missing=sorted(missing),
                         unexpected=sorted(unexpected))


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return (name + ".").startswith(prefixes) or name.startswith(prefixes)


def freeze_except(model, trainable_prefixes: Iterable[str]) -> list:
    """Make only parameters under ``trainable_prefixes`` trainable; return them (for the optimizer)."""
    prefixes = tuple(trainable_prefixes)
    trainable = []
    for name, param in model.named_parameters():
        param.requires_grad_(_under(name, prefixes))
        if param.requires_grad:
            trainable.append(param)
    return trainable


def train_mode(model, trainable_prefixes: Iterable[str] | None = None) -> None:
    """``model.train()``, but BatchNorm layers outside ``trainable_prefixes`` stay in eval mode.

    Why: a frozen backbone must stay frozen. In train mode BatchNorm would overwrite its ImageNet
    running statistics with those of small X-ray batches (changing the "frozen" backbone's output and
    its weights file) and normalise with batch statistics the pretrained filters were never tuned to.
    Keras, which liang2021 used, runs non-trainable BatchNorm layers in inference mode for the same
    reason. ``None``: everything trains (scratch).
    """
    import torch.nn as nn

    model.train()
    if trainable_prefixes is None:
        return
    prefixes = tuple(trainable_prefixes)
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and not _under(name, prefixes):
            module.eval()
