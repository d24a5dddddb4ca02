"""Images of any channel count: a 4-channel MRI set from the third-party example plugin
(examples/synthaug-mri, pip-installed as a user would) goes through load, balance, the store, train,
evaluate and the quality features; ImageNet first-layer weights are adapted to C channels; synthesizers
that cannot take a count refuse it by name before any training."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import synthaug
from synthaug import ImageSet, SourceOptions, SynthaugError, Synthesizer
from synthaug.cli import main
from synthaug.contract.interfaces import DEFAULT_RUN
from synthaug.pipeline.store import read_store, store_info
from synthaug.registry import get_registry, reset_registry

ROOT = Path(__file__).resolve().parents[1]
CLASSES = {"healthy": 8, "tumour": 6}  # 2 test images each: 6 and 4 training images
RAW_SIZE, SIZE = 40, 32


@pytest.fixture(scope="module")
def mri_plugin(tmp_path_factory):
    """The example package installed with pip into a folder on sys.path, then forgotten again."""
    base = tmp_path_factory.mktemp("mri-plugin")
    source = base / "synthaug-mri"  # a copy: building in place would leave build/ in the repo
    shutil.copytree(ROOT / "examples" / "synthaug-mri", source)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target",
                    str(base / "site"),
                    str(source)], check=True, capture_output=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(base / "site"))
        reset_registry()
        yield
        for name in [m for m in sys.modules if m == "synthaug_mri" or m.startswith("synthaug_mri.")]:
            del sys.modules[name]
    reset_registry()


def raw_slice(rng) -> np.ndarray:
    """(4, H, W) in scanner units (100..1000); the fourth sequence repeats the first, so what is done to
    every channel alike keeps channels 0 and 3 equal."""
    image = rng.uniform(100, 1000, (4, RAW_SIZE, RAW_SIZE))
    image[3] = image[0]
    return image


@pytest.fixture(scope="module")
def slices(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("slices")
    rng = np.random.default_rng(7)
    for name, n in CLASSES.items():
        (root / name).mkdir()
        for k in range(n):
            np.save(root / name / f"{name[0]}{k}_slice3.npy", raw_slice(rng))
    return root


@pytest.fixture(scope="module")
def four_channels(mri_plugin, slices) -> ImageSet:
    return synthaug.load_images("npy-slices", slices, channels=4, size=SIZE)


def test_npy_slices_scales_each_channel_of_each_slice_and_checks_the_count(mri_plugin, slices, four_channels, tmp_path):
    assert get_registry().entry("dataset", "npy-slices").plugin == "mri"
    data = four_channels
    assert data.image_shape == (4, SIZE, SIZE) and data.counts() == CLASSES
    assert list(data.patient_ids[:2]) == ["h0", "h1"] and data.class_names == ("healthy", "tumour")
    assert np.array_equal(data.images[:, 3], data.images[:, 0])
    full = synthaug.load_images("npy-slices", slices, channels=4)  # no --size: the files' own 40 px
    raw = np.load(slices / "tumour" / "t1_slice3.npy")
    low, high = raw.min(axis=(1, 2), keepdims=True), raw.max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(full.images[CLASSES["healthy"] + 1], (raw - low) / (high - low), atol=1e-6)
    assert full.images.min() == 0.0 and full.images.max() == 1.0
    with pytest.raises(SynthaugError, match=r"t.*\.npy: 4 channels in layout 'chw' \(shape \(4, 40, 40\)\); 3 asked: "
                                            r"pass --channels 4"):
        synthaug.load_images("npy-slices", slices, channels=3)
    hwc = tmp_path / "hwc" / "only"
    hwc.mkdir(parents=True)
    np.save(hwc / "a_0.npy", raw.transpose(1, 2, 0))
    np.save(hwc / "b_0.npy", raw.transpose(1, 2, 0)[..., :2])  # a 2-channel file among 4-channel ones
    result = CliRunner().invoke(main, ["inspect", "npy-slices", "--data-dir", str(tmp_path / "hwc"), "--channels", "4",
                                       "--source-option", "layout=hwc", "--skip-bad", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output.splitlines()[-1])
    assert info["image_shape"] == [4, 40, 40]
    assert info["splits"]["all"]["classes"] == {"only": 1} and info["skipped"] == 1
    unknown = CliRunner().invoke(main, ["inspect", "npy-slices", "--data-dir", str(slices), "--channels", "4",
                                        "--source-option", "layot=hwc"])
    assert unknown.exit_code == 2 and "layot" in unknown.output
    zero = CliRunner().invoke(main, ["inspect", "npy-slices", "--data-dir", str(slices), "--channels", "0"])
    assert zero.exit_code == 2 and "--channels" in zero.output


def test_balance_with_mixup_on_the_command_line_keeps_four_channels(mri_plugin, slices, tmp_path):
    out = tmp_path / "mixup.h5"
    result = CliRunner().invoke(main, ["balance", "--data", "npy-slices", "--data-dir", str(slices), "--channels", "4",
                                       "--size", str(SIZE), "--synth", "mixup", "--test-per-class", "2",
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    info = store_info(out)
    assert info["image_shape"] == [4, SIZE, SIZE]
    assert info["splits"]["train"]["classes"] == {"healthy": 6, "tumour": 6}
    assert info["splits"]["train"]["synthetic"] == {"healthy": 0, "tumour": 2}
    train = read_store(out, "train")
    made = np.flatnonzero(train.synth == "mixup")
    real_tumour = np.flatnonzero((train.synth == "real") & (train.labels == 1))
    for k in made:  # image = w * source + (1 - w) * another real tumour image, w in [0.5, 1]
        a = train.images[train.source_index[k]].astype(np.float64)
        assert train.source_index[k] in real_tumour and train.patient_ids[k] == train.patient_ids[train.source_index[k]]
        fits = []
        for b in (train.images[j].astype(np.float64) for j in real_tumour if j != train.source_index[k]):
            w = np.sum((train.images[k] - b) * (a - b)) / np.sum((a - b) ** 2)
            fits.append((np.abs(w * a + (1 - w) * b - train.images[k]).max(), w))
        error, w = min(fits)
        assert error < 1e-6 and 0.5 <= w <= 1.0


def test_augment_store_trains_and_evaluates_resnet50_and_densenet121(four_channels, tmp_path):
    from synthaug.kit.transfer import GREY_MEAN
    from synthaug.pipeline.runs import load_model

    store = tmp_path / "augment.h5"
    synthaug.balance(four_channels, "augment", test_per_class=2, out=store, seed=0)
    train = read_store(store, "train")
    assert train.image_shape == (4, SIZE, SIZE) and train.counts(synthetic=True) == {"healthy": 0, "tumour": 2}
    made = train.images[train.synth == "augment"]
    assert np.array_equal(made[:, 3], made[:, 0])  # one flip and rotation for every channel
    assert not np.array_equal(made[:, 1], made[:, 0])
    for network in ("resnet50", "densenet121"):
        metrics = synthaug.train_and_evaluate(store, tmp_path / network, classifier=network, epochs=1, batch_size=4,
                                              classifier_options={"width": 0.25}, device="cpu")
        assert np.sum(metrics["confusion"]) == 4 and Path(metrics["files"]["confusion"]).is_file()
        model, manifest = load_model(tmp_path / network)
        assert manifest["data"]["image_shape"] == [4, SIZE, SIZE]
        first = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
        assert first.in_channels == 4
        assert model.input_mean.flatten().tolist() == pytest.approx(list(GREY_MEAN) * 4)


@pytest.mark.parametrize("network, first_conv",
                         [("resnet50", "conv1.weight"), ("densenet121", "features.conv0.weight")])
def test_imagenet_first_conv_is_adapted_and_keeps_a_constant_images_response(network, first_conv, tmp_path):
    classifier = get_registry().create("classifier", network, width=0.25)
    rgb = torch.randn(16, 3, 7, 7, generator=torch.Generator().manual_seed(0))
    torch.save({first_conv: rgb}, tmp_path / "weights.pth")
    constant = torch.full((1, 3, 11, 11), 0.8, dtype=torch.float64)
    expected = torch.nn.functional.conv2d(constant, rgb.double())
    for channels in (1, 2, 4, 5):
        model = classifier.build(channels, 2)
        report = classifier.load_weights(model, tmp_path / "weights.pth")
        assert report.matched == [first_conv]
        adapted = model.state_dict()[first_conv]
        assert adapted.shape == (16, channels, 7, 7)
        response = torch.nn.functional.conv2d(constant[:, :1].expand(1, channels, 11, 11), adapted.double())
        torch.testing.assert_close(response, expected, atol=1e-4, rtol=1e-5)
    # four channels: R, G, B, R, the repeated red filter halved on each of its two channels
    four = classifier.build(4, 2)
    classifier.load_weights(four, tmp_path / "weights.pth")
    expected_four = torch.stack([rgb[:, 0] / 2, rgb[:, 1], rgb[:, 2], rgb[:, 0] / 2], dim=1)
    torch.testing.assert_close(four.state_dict()[first_conv], expected_four, atol=1e-7, rtol=0)


class Legacy(Synthesizer):
    """A third-party synthesizer written before channel counts were declared: copies of real images."""

    name = "legacy"

    def generate(self, train, target, n, *, seed, volumes=None, run=DEFAULT_RUN):
        idx = np.flatnonzero(train.labels == train.class_index(target))[:1].repeat(n)
        return ImageSet(train.images[idx], train.labels[idx], train.class_names, train.patient_ids[idx],
                        source_index=idx)


def test_synthesizers_that_cannot_take_four_channels_refuse_by_name_before_fitting(four_channels, monkeypatch,
                                                                                   tmp_path):
    registry = get_registry()
    declared = {name: registry.entry("synthesizer", name).resolve().accepted_channels
                for name in ("duplicate", "augment", "pix2pix", "acgan", "mixup", "xpgan", "drr")}
    assert declared == {"duplicate": None, "augment": None, "pix2pix": None, "acgan": None, "mixup": None,
                        "xpgan": (1, 3), "drr": (1, 3)}
    assert Legacy.accepted_channels == (1, 3)  # the default: what synthesizers written before assumed
    xpgan = registry.entry("synthesizer", "xpgan").resolve()

    def never(*args, **kwargs):
        raise AssertionError("fit ran")

    monkeypatch.setattr(xpgan, "fit", never)
    monkeypatch.setattr(Legacy, "fit", never)
    for name in ("xpgan", "drr", Legacy()):
        label = name if isinstance(name, str) else "legacy"
        with pytest.raises(SynthaugError) as err:
            synthaug.balance(four_channels, name, test_per_class=2, out=tmp_path / "never.h5")
        assert str(err.value) == (f"synthesizer {label!r} takes images with 1 or 3 channels; the training split's "
                                  f"images have 4: use a synthesizer that declares 4 (docs/plugins.md, Channels)")
    with pytest.raises(SynthaugError, match="synthesizer 'xpgan' takes images with 1 or 3 channels"):
        synthaug.fit_synthesizer(four_channels, "xpgan", tmp_path / "ckpt", test_per_class=2)
    assert not (tmp_path / "never.h5").exists() and not (tmp_path / "ckpt").exists()
    # 1 or 3 is a declaration, not a limit of the code
    assert len(Legacy().generate(four_channels, "tumour", 2, seed=0)) == 2


def test_gans_train_on_four_channels_and_draw_grey_sample_grids(four_channels, tmp_path):
    from PIL import Image

    for name, options in (("acgan", dict(ngf=4, ndf=4, batch_size=4, epochs=1)),
                          ("pix2pix", dict(ngf=4, ndf=4, batch_size=2, epochs=1, source_class="healthy"))):
        work = tmp_path / name
        result = synthaug.balance(four_channels, name, synth_options=options, test_per_class=2, device="cpu",
                                  work_dir=work)
        made = result.train.subset(np.flatnonzero(result.train.synth == name))
        assert made.image_shape == (4, SIZE, SIZE) and len(made) == 2
        grids = sorted(work.glob("samples/*.png"))
        assert grids and Image.open(grids[0]).mode == "L"  # the channel mean, not a 4-channel RGBA picture


def test_quality_features_read_four_channels_and_a_grey_network_is_refused(four_channels, tmp_path):
    from synthaug.assess.features import FeatureConfig, feature_net
    from synthaug.pipeline.store import open_store, write_store

    grey = tmp_path / "grey.h5"
    first = ImageSet(four_channels.images[:, :1].copy(), four_channels.labels, four_channels.class_names,
                     four_channels.patient_ids)
    write_store(grey, {"train": first, "test": first})
    store = tmp_path / "four.h5"
    write_store(store, {"train": four_channels, "test": four_channels})
    config = FeatureConfig(epochs=1, size=SIZE, batch_size=8)
    dataset = open_store(store, "train")
    net = feature_net(None, dataset, config)
    assert net.info["in_channels"] == 4 and net(four_channels.images[:3]).shape == (3, net.dim)
    grey_net = feature_net(None, open_store(grey, "train"), config)
    grey_net.save(tmp_path / "grey-features")
    with pytest.raises(SynthaugError, match=r"grey-features: feature network 'densenet121' takes 1-channel images; "
                                            r".*four.h5 holds 4-channel images"):
        feature_net(tmp_path / "grey-features", dataset, config)


def test_figures_options_and_specs_take_any_count():
    from synthaug.experiments.spec import check_data
    from synthaug.pipeline.report import viewable

    image = np.arange(4 * 2 * 2, dtype=np.float32).reshape(4, 2, 2) / 16
    np.testing.assert_array_equal(viewable(image), image.mean(axis=0))  # C not in (1, 3): the channel mean
    np.testing.assert_array_equal(viewable(image[:3]), image[:3].transpose(1, 2, 0))  # RGB
    np.testing.assert_array_equal(viewable(image[:1] * 2), np.clip(image[0] * 2, 0, 1))  # grey, clipped
    assert SourceOptions(channels=4).channels == 4 and SourceOptions(channels=np.int64(7)).channels == 7
    with pytest.raises(SynthaugError, match="channels must be a whole number >= 1; got 0"):
        SourceOptions(channels=0)
    assert check_data({"source": "ctsim", "channels": 4})["channels"] == 4
    with pytest.raises(SynthaugError, match=r"data.channels: expected an integer >= 1; got 0"):
        check_data({"source": "ctsim", "channels": 0})


def test_sources_that_cannot_make_a_channel_count_refuse_it(tmp_path):
    import synthaug
    from synthaug.errors import SynthaugError

    with pytest.raises(SynthaugError, match="dataset 'ctsim' makes radiographs of 1 channel .*got --channels 4"):
        synthaug.load_images("ctsim", preset="tiny", channels=4)
    four = np.random.default_rng(0).random((4, 4, 8, 8)).astype(np.float32)
    store = synthaug.write_store(tmp_path / "four.h5", {"train": synthaug.ImageSet(four, [0, 1, 0, 1], ("a", "b"),
                                                                                   ["p", "q", "r", "s"])})
    with pytest.raises(SynthaugError, match="the store's images have 4 channels; --channels 3 cannot be made"):
        synthaug.load_images("h5", store, channels=3)
    grey = synthaug.load_images("h5", store, channels=1)  # 4 -> 1 is the mean, as for RGB -> grey
    np.testing.assert_allclose(grey.images[:, 0], four.mean(1), atol=1e-6)
