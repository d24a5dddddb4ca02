"""resnet50 / densenet121: registered like third-party plugins, standard ImageNet architectures, transfer."""

import json

import pytest
import torch

from synthaug.errors import SynthaugError
from synthaug.kit.transfer import GREY_MEAN, GREY_STD, freeze_except, train_mode
from synthaug.registry import get_registry

from _classifier_data import torchvision_densenet121_shapes, torchvision_resnet50_shapes, write_state_dict


def macs_at(model, size=224, channels=3) -> int:
    """Multiply-accumulates of one image, counted by hooks on every Conv2d and Linear (meta tensors)."""
    total = 0

    def count(module, inputs, output):
        nonlocal total
        if isinstance(module, torch.nn.Conv2d):
            kh, kw = module.kernel_size
            total += output.numel() * (module.in_channels // module.groups) * kh * kw
        else:
            total += output.numel() * module.in_features

    hooks = [m.register_forward_hook(count) for m in model.modules()
             if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        model(torch.zeros(1, channels, size, size, device="meta"))
    for h in hooks:
        h.remove()
    return total


def build(name, in_channels=3, num_classes=1000, device="cpu", **options):
    with torch.device(device):
        return get_registry().create("classifier", name, **options).build(in_channels, num_classes)


@pytest.mark.parametrize("name, gmacs, params", [("resnet50", 4.09, 25_557_032), ("densenet121", 2.83, 7_978_856)])
def test_standard_imagenet_architecture(name, gmacs, params):
    model = build(name, device="meta")
    # torchvision's figures: ResNet-50 4.09 G, DenseNet-121 2.83 G multiply-adds at 224 px (the
    # papers' "4.1 / 2.9 GFLOPs"); MONAI's default stride-1 ResNet would be about 5x this.
    assert macs_at(model) / 1e9 == pytest.approx(gmacs, abs=0.01)
    assert sum(p.numel() for p in model.parameters()) == params


@pytest.mark.parametrize("name", ["resnet50", "densenet121"])
def test_registered_and_usable_at_any_size(name):
    entry = get_registry().entry("classifier", name)
    assert entry.plugin == name and entry.module == f"synthaug_plugins.{name}.plugin"
    model = build(name, in_channels=1, num_classes=3, width=0.25).eval()
    out = model(torch.rand(2, 1, 40, 40))  # not a power of two
    assert out.shape == (2, 3) and torch.isfinite(out).all()


def test_unknown_classifier_and_option():
    with pytest.raises(SynthaugError, match="unknown classifier 'resnet5'.*did you mean 'resnet50'"):
        get_registry().create("classifier", "resnet5")
    with pytest.raises(SynthaugError, match="unknown option 'depth'"):
        get_registry().create("classifier", "resnet50", depth=18)


def test_input_normalisation_inside_the_model():
    rgb, grey = build("resnet50", 3, 2, width=0.25), build("resnet50", 1, 2, width=0.25)
    assert rgb.input_mean.flatten().tolist() == pytest.approx([0.485, 0.456, 0.406])
    assert grey.input_mean.flatten().tolist() == pytest.approx(list(GREY_MEAN))
    assert grey.input_std.flatten().tolist() == pytest.approx(list(GREY_STD))
    assert "input_mean" not in rgb.state_dict()  # the state dict stays torchvision-shaped


@pytest.mark.parametrize("name, network", [("resnet50", "ResNet"), ("densenet121", "DenseNet")])
def test_both_networks_normalise_with_the_one_kit_module(name, network):
    from synthaug.kit.transfer import input_statistics

    model = build(name, 1, 2, width=0.25).eval()
    base = next(c for c in type(model).__mro__ if c.__name__ == network)  # the MONAI network itself
    assert type(model).__mro__[1].__module__ == "synthaug.kit.transfer"
    x = torch.rand(2, 1, 32, 32)
    mean, std = input_statistics(1)
    with torch.no_grad():
        assert torch.allclose(model(x), base.forward(model, (x - mean[0]) / std[0]), atol=1e-6)
    assert not any(k.startswith(("network.", "input_")) for k in model.state_dict())


def test_resnet50_transfer_loads_every_backbone_tensor(tmp_path):
    shapes = torchvision_resnet50_shapes()
    state = write_state_dict(tmp_path / "resnet50.pth", shapes)
    classifier = get_registry().create("classifier", "resnet50")
    model = classifier.build(1, 3)
    report = classifier.load_weights(model, tmp_path / "resnet50.pth")
    assert report.missing == ["fc.bias", "fc.weight"]  # only the new head
    assert report.unexpected == []
    assert len(report.matched) == len(shapes) - 2
    loaded = model.state_dict()
    assert torch.equal(loaded["layer4.2.bn3.running_var"], state["layer4.2.bn3.running_var"])
    # one grey channel: the sum of the RGB filters
    assert torch.allclose(loaded["conv1.weight"], state["conv1.weight"].sum(1, keepdim=True))
    json.dumps(report.__dict__)  # goes into the manifest as is


@pytest.mark.parametrize("old_style", [False, True])
def test_densenet121_transfer_maps_new_and_old_torchvision_keys(tmp_path, old_style):
    shapes = torchvision_densenet121_shapes(old_style=old_style)
    state = write_state_dict(tmp_path / "densenet121.pth", shapes)
    classifier = get_registry().create("classifier", "densenet121")
    model = classifier.build(3, 2)
    report = classifier.load_weights(model, tmp_path / "densenet121.pth")
    assert report.missing == ["class_layers.out.bias", "class_layers.out.weight"]
    assert report.unexpected == [] and len(report.matched) == len(shapes) - 2
    source = "features.denseblock3.denselayer24." + ("norm.2" if old_style else "norm2") + ".weight"
    loaded = model.state_dict()
    assert torch.equal(loaded["features.denseblock3.denselayer24.layers.norm2.weight"], state[source])
    assert torch.equal(loaded["features.conv0.weight"], state["features.conv0.weight"])


def test_bad_weights_files(tmp_path):
    classifier = get_registry().create("classifier", "resnet50", width=0.25)
    model = classifier.build(3, 2)
    # another architecture's file: nothing matches
    write_state_dict(tmp_path / "dense.pth", {"features.conv0.weight": (64, 3, 7, 7)})
    with pytest.raises(SynthaugError, match=r"dense.pth: matches no tensor of resnet50"):
        classifier.load_weights(model, tmp_path / "dense.pth")
    # same names, other shapes (here: the standard-width file into a quarter-width network)
    write_state_dict(tmp_path / "wide.pth", {"conv1.weight": (64, 3, 7, 7)})
    with pytest.raises(SynthaugError, match=r"not a resnet50 weights file: conv1.weight has shape \(64, 3, 7, 7\)"):
        classifier.load_weights(model, tmp_path / "wide.pth")
    (tmp_path / "corrupt.pth").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(SynthaugError, match="corrupt.pth: not a readable torch state dict") as err:
        classifier.load_weights(model, tmp_path / "corrupt.pth")
    assert "\n" not in str(err.value)
    torch.save({"conv1.weight": torch.zeros(1), "note": object()}, tmp_path / "pickle.pth")
    # weights_only refuses
    with pytest.raises(SynthaugError, match="pickle.pth: refused: it holds pickled Python objects"):
        classifier.load_weights(model, tmp_path / "pickle.pth")
    torch.save({"epoch": 3}, tmp_path / "nontensor.pth")
    with pytest.raises(SynthaugError, match="expected a state dict of named tensors"):
        classifier.load_weights(model, tmp_path / "nontensor.pth")
    with pytest.raises(SynthaugError, match="no such weights file"):
        classifier.load_weights(model, tmp_path / "absent.pth")


def test_freezing_helpers_keep_frozen_batchnorm_in_eval_mode():
    model = build("resnet50", 1, 2, width=0.25)
    trainable = freeze_except(model, ("fc.", "layer4."))
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert names and all(n.startswith(("fc.", "layer4.")) for n in names)
    assert len(trainable) == len(names)
    train_mode(model, ("fc.", "layer4."))
    assert not model.bn1.training and not model.layer3[0].bn1.training
    assert model.layer4[0].bn1.training and model.training
