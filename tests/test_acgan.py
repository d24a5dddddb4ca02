"""acgan synthesizer (CovidGAN): networks and size rule, training, generate, save/load, resume, checks, CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from synthaug.contract.run import RunContext
from synthaug.contract.types import ImageSet
from synthaug.errors import SynthaugError
from synthaug.registry import create
from synthaug_plugins.acgan.networks import Discriminator, Generator, acgan_geometry
from synthaug_plugins.acgan.synthesizer import ACGAN
from synthaug_plugins.acgan.training import ACGANNets, weights_hash

TINY = dict(ngf=8, ndf=8, batch_size=8)


def two_class(n: int = 16, size: int = 32, channels: int = 1, seed: int = 0) -> ImageSet:
    """n bright (mean 0.75) and n dark (mean 0.25) noisy images: classes a class head can tell apart."""
    rng = np.random.default_rng(seed)
    labels = np.repeat([0, 1], n)
    means = np.where(labels == 0, 0.75, 0.25)[:, None, None, None]
    images = np.clip(means + 0.1 * rng.standard_normal((2 * n, channels, size, size)), 0, 1)
    return ImageSet(images, labels, ("bright", "dark"), [f"p{i}" for i in range(2 * n)],
                    origin=[f"img{i}.png" for i in range(2 * n)])


@pytest.fixture(scope="module")
def fitted():
    data = two_class(8)
    synth = ACGAN(epochs=2, **TINY)
    synth.fit(data)
    return synth, data


# ---- networks and the size rule ---------------------------------------------------------------
@pytest.mark.parametrize("size, geometry", [(32, (4, 3, 32)), (64, (4, 4, 64)), (128, (4, 5, 128)),
                                            (256, (4, 6, 256)), (224, (7, 5, 224)), (112, (7, 4, 112)),
                                            (48, (6, 3, 48)), (8, (4, 1, 8)), (45, (4, 4, 64)), (250, (4, 6, 256)),
                                            (18, (4, 3, 32))])
def test_size_rule(size, geometry):
    assert acgan_geometry(size) == geometry


def test_too_small_is_refused():
    with pytest.raises(SynthaugError, match="at least 8x8 pixels; got 6x6"):
        acgan_geometry(6)


@pytest.mark.parametrize("size", [32, 48, 45, 224])
@pytest.mark.parametrize("channels", [1, 3])
def test_networks_shapes(size, channels):
    g, d = Generator(channels, size, 3, latent_dim=10, ngf=4).eval(), Discriminator(channels, size, 3, ndf=4).eval()
    work = acgan_geometry(size)[2]
    x = g(torch.randn(2, 10), torch.tensor([0, 2]))
    assert x.shape == (2, channels, work, work) and x.abs().max() <= 1
    src, cls = d(x)
    assert src.shape == (2,) and cls.shape == (2, 3)


def test_layers_as_documented():
    g, d = Generator(1, 64, 3, ngf=64), Discriminator(1, 64, 3, ndf=64)
    convs = [m for m in g.body if isinstance(m, torch.nn.ConvTranspose2d)]
    assert g.project.out_features == 512 * 4 * 4 and g.embed.weight.shape == (3, 100)
    assert [(m.in_channels, m.out_channels) for m in convs] == [(512, 256), (256, 128), (128, 64), (64, 1)]
    assert isinstance(g.body[-1], torch.nn.Tanh)
    convs = [m for m in d.features if isinstance(m, torch.nn.Conv2d)]
    assert [m.out_channels for m in convs] == [64, 128, 256, 512] and all(m.stride == (2, 2) for m in convs)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in d.features) == 3  # none after the first conv
    slopes = {m.negative_slope for m in d.features if isinstance(m, torch.nn.LeakyReLU)}
    assert slopes == {0.2} and {m.p for m in d.features if isinstance(m, torch.nn.Dropout)} == {0.25}
    assert d.adversarial.in_features == 512 * 4 * 4 and d.classifier.out_features == 3


def test_class_embedding_multiplies_the_noise():
    g = Generator(1, 32, 2, latent_dim=8, ngf=4).eval()
    z = torch.randn(1, 8)
    assert not torch.allclose(g(z, torch.tensor([0])), g(z, torch.tensor([1])))
    with torch.no_grad():
        g.embed.weight[1] = 0  # z * 0: class 1's images no longer depend on z
    assert torch.allclose(g(z, torch.tensor([1])), g(torch.randn(1, 8), torch.tensor([1])))


def test_one_step_updates_both_networks_with_finite_losses():
    torch.manual_seed(0)
    nets = ACGANNets(1, 32, 2, latent_dim=10, ngf=4, ndf=4)
    before = weights_hash(nets.generator), weights_hash(nets.discriminator)
    losses = nets.train_step(torch.rand(4, 1, 32, 32) * 2 - 1, torch.tensor([0, 1, 0, 1]), torch.randn(4, 10),
                             torch.tensor([1, 1, 0, 0]))
    assert set(losses) == {"D", "G_adv", "G_cls", "D_cls_real", "acc_real"}
    assert all(math.isfinite(v) for v in losses.values())
    assert 0.5 < losses["D"] < 2.5 and abs(losses["D_cls_real"] - math.log(2)) < 0.2  # an untrained D guesses
    assert (weights_hash(nets.generator), weights_hash(nets.discriminator)) != before
    assert all(p.requires_grad for p in nets.discriminator.parameters())  # unfrozen after the G update


# ---- fit and generate -------------------------------------------------------------------------
def test_fit_learns_the_classes():
    """Class head and conditional generator both learn bright vs dark (30 short epochs, about 2 s)."""
    synth = ACGAN(epochs=30, lr=1e-3, **TINY)
    synth.fit(two_class())
    history = synth.history
    assert [h["epoch"] for h in history] == list(range(1, 31))
    assert all(math.isfinite(v) for h in history for v in h.values())
    assert history[-1]["D_cls_real"] < 0.25 * history[0]["D_cls_real"]
    unseen = two_class(seed=5)
    with torch.no_grad():
        _, logits = synth.discriminator(torch.from_numpy(unseen.images) * 2 - 1)
    assert (logits.argmax(1).numpy() == unseen.labels).mean() >= 0.9
    bright, dark = synth.sample("bright", 16, seed=1).mean(), synth.sample("dark", 16, seed=1).mean()
    assert bright - dark > 0.15, (bright, dark)  # the same noise, two classes: G follows the label


def test_fit_changes_weights_and_is_deterministic_for_a_seed(fitted):
    synth, data = fitted
    torch.manual_seed(0)
    initial = ACGANNets(1, 32, 2, ngf=8, ndf=8).generator  # what fit starts from with seed 0
    assert weights_hash(initial) != synth.hash
    again = ACGAN(epochs=2, **TINY)
    again.fit(data)
    other = ACGAN(epochs=2, **TINY)
    other.fit(data, run=RunContext(seed=1))
    assert again.hash == synth.hash != other.hash
    assert len(synth.history) == 2 and all(math.isfinite(v) for v in synth.history[-1].values())


def test_generate_shapes_provenance_and_determinism(fitted):
    synth, data = fitted
    out = synth.generate(data, "dark", 5, seed=3)
    assert out.images.shape == (5, 1, 32, 32) and out.images.dtype == np.float32
    assert out.images.min() >= 0 and out.images.max() <= 1 and out.images.std() > 0
    assert out.class_names == data.class_names and set(out.labels) == {1}
    assert set(out.source_index) == {-1} and set(out.patient_ids) == {"acgan"}
    assert list(out.origin) == [f"acgan z-sample {k}" for k in range(5)]
    assert set(out.extras["checkpoint"]) == {synth.hash[:16].encode()}
    assert np.array_equal(out.images, synth.generate(data, "dark", 5, seed=3).images)
    assert not np.allclose(out.images, synth.generate(data, "dark", 5, seed=4).images)
    # the k-th image depends on the seed and k only, not on how many are asked for (up to float rounding)
    assert np.allclose(out.images[:2], synth.generate(data, "dark", 2, seed=3).images, atol=1e-5)
    info = synth.describe()
    assert info["name"] == "acgan" and info["image_shape"] == [1, 32, 32] and info["work_size"] == 32
    assert info["checkpoints"] == {"generator": synth.hash} and info["epochs_trained"] == 2


@pytest.mark.parametrize("size, channels", [(45, 1), (32, 3)])
def test_other_sizes_and_channels(size, channels):
    data = two_class(4, size=size, channels=channels)
    synth = ACGAN(epochs=1, ngf=4, ndf=4, batch_size=8)
    synth.fit(data)
    out = synth.generate(data, "bright", 3, seed=0)
    assert out.images.shape == (3, channels, size, size) and 0 <= out.images.min() and out.images.max() <= 1


def test_save_load_round_trip(tmp_path, fitted):
    synth, data = fitted
    synth.save(tmp_path / "ckpt")
    loaded = ACGAN.load(tmp_path / "ckpt")
    assert loaded.config == synth.config and loaded.hash == synth.hash and loaded.class_names == data.class_names
    loaded.check(data, {"dark": 3})
    assert np.array_equal(loaded.generate(data, "dark", 4, seed=2).images,
                          synth.generate(data, "dark", 4, seed=2).images)
    info = json.loads((tmp_path / "ckpt" / "synthesizer.json").read_text())
    assert info["name"] == "acgan" and info["weights"] == {"generator": synth.hash} and len(info["history"]) == 2
    assert info["seed"] == 0 and "seed" not in info["config"]  # the fit's seed is the run's, not an option
    assert loaded.history == synth.history and loaded.describe()["checkpoints"] == {"generator": synth.hash}
    # a checkpoint written before the kit (its one "hash", a "seed" option) still loads
    old = {k: v for k, v in info.items() if k not in ("weights", "seed")}
    (tmp_path / "ckpt" / "synthesizer.json").write_text(json.dumps({**old, "hash": synth.hash,
                                                                    "config": {**info["config"], "seed": 0}}))
    assert ACGAN.load(tmp_path / "ckpt").hash == synth.hash
    with pytest.raises(SynthaugError, match="trained on 32x32x1 images; the data is 48x48x1"):
        loaded.check(two_class(4, size=48), {"dark": 1})
    renamed = ImageSet(data.images, data.labels, ("light", "dark"), data.patient_ids)
    with pytest.raises(SynthaugError, match="trained on classes bright, dark; the data has light, dark"):
        loaded.check(renamed, {"dark": 1})
    weights = tmp_path / "ckpt" / "generator.pt"
    state = torch.load(weights, weights_only=True)
    state["project.weight"] += 1
    torch.save(state, weights)
    with pytest.raises(SynthaugError, match="does not match synthesizer.json"):
        ACGAN.load(tmp_path / "ckpt")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour without CUDA")
def test_cuda_without_cuda(tmp_path, fitted):
    synth, data = fitted
    with pytest.raises(SynthaugError, match="device 'cuda': no CUDA device is available"):
        ACGAN(**TINY).check(data, {"dark": 1}, run=RunContext(device="cuda"))  # training: refused before it starts
    synth.save(tmp_path)
    info = json.loads((tmp_path / "synthesizer.json").read_text())
    info["config"]["device"] = "cuda"  # a checkpoint trained on a GPU machine
    (tmp_path / "synthesizer.json").write_text(json.dumps(info))
    loaded = ACGAN.load(tmp_path)
    loaded.check(data, {"dark": 1})  # generating needs no GPU: it runs on the CPU
    assert np.array_equal(loaded.generate(data, "dark", 2, seed=0).images,
                          synth.generate(data, "dark", 2, seed=0).images)


def test_resume_continues_where_it_stopped(tmp_path, monkeypatch):
    data = two_class(8)  # 16 images, batch 8: 2 steps an epoch
    uninterrupted = ACGAN(epochs=3, **TINY)
    uninterrupted.fit(data)

    calls = {"n": 0}
    step = ACGANNets.train_step

    def crash_in_third_epoch(self, *args):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return step(self, *args)

    monkeypatch.setattr(ACGANNets, "train_step", crash_in_third_epoch)
    interrupted = ACGAN(epochs=3, **TINY)
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit(data, run=RunContext(work_dir=tmp_path))
    monkeypatch.setattr(ACGANNets, "train_step", step)
    assert torch.load(tmp_path / "train_state.pt", weights_only=True)["epoch"] == 2  # nothing unpickled
    resumed = ACGAN(epochs=3, **TINY)
    resumed.fit(data, run=RunContext(work_dir=tmp_path))
    assert resumed.hash == uninterrupted.hash
    assert resumed.history == uninterrupted.history
    grids = sorted(p.name for p in (tmp_path / "samples").iterdir())
    assert grids == ["epoch001.png", "epoch002.png", "epoch003.png"]
    from PIL import Image
    assert Image.open(tmp_path / "samples" / grids[0]).size == (6 * 32, 2 * 32)  # 6 columns, a row per class

    # a state of another size, of other network widths or of another seed is refused before training
    with pytest.raises(SynthaugError, match=r"train_state.pt: the state of another acgan fit \(image_shape: "
                                            r"32x32x1 there, 48x48x1 in this run\); remove it or choose another"):
        ACGAN(epochs=3, **TINY).check(two_class(4, size=48), {"dark": 1}, run=RunContext(work_dir=tmp_path))
    wider = ACGAN(epochs=3, ngf=16, ndf=8, batch_size=8)
    with pytest.raises(SynthaugError, match=r"train_state.pt: .* \(option ngf: 8 there, 16 in this run\)") as err:
        wider.fit(data, run=RunContext(work_dir=tmp_path))
    assert "\n" not in str(err.value)
    with pytest.raises(SynthaugError, match=r"\(seed: 0 there, 1 in this run\)"):
        ACGAN(epochs=3, **TINY).fit(data, run=RunContext(work_dir=tmp_path, seed=1))


# ---- bad input --------------------------------------------------------------------------------
def test_check_refuses_a_deficit_of_a_class_without_real_images():
    data = two_class(4)
    data = ImageSet(data.images, data.labels * 0, ("bright", "dark", "viral"), data.patient_ids)  # all bright
    with pytest.raises(SynthaugError, match="class 'dark' .* the training split has no real 'dark' images") as err:
        ACGAN(**TINY).check(data, {"bright": 0, "dark": 3})
    assert "\n" not in str(err.value)
    ACGAN(**TINY).check(data, {"dark": 0})  # no deficit for it: fine


@pytest.mark.parametrize("make, deficits, message", [
    (lambda: two_class(2), {"viral": 1}, "unknown class 'viral'; classes are bright, dark"),
    (lambda: two_class(2, size=6), {"dark": 1}, "at least 8x8 pixels; got 6x6"),
    (lambda: ImageSet(two_class(2).images[..., :24], [0, 0, 1, 1], ("bright", "dark"), list("abcd")), {"dark": 1},
     "square images; got 32x24"),
])
def test_check_rejects_bad_data(make, deficits, message):
    with pytest.raises(SynthaugError, match=message):
        ACGAN(**TINY).check(make(), deficits)


@pytest.mark.parametrize("options, message", [
    ({"epochs": 0}, "acgan epochs must be at least 1; got 0"),
    ({"dropout": 1.0}, r"acgan dropout must lie in \[0, 1\); got 1.0"),
    ({"lr": 0}, "acgan lr must be > 0; got 0"),
    ({"lambda_cls": 2}, "unknown option 'lambda_cls'"),
    ({"seed": 1}, "unknown option 'seed'"),  # the run's (RunContext.seed, --seed)
    ({"epochs": "x"}, "option 'epochs' of synthesizer 'acgan' must be an int; got 'x'"),
])
def test_bad_options_are_one_line_errors(options, message):
    with pytest.raises(SynthaugError, match=message):
        ACGAN(**options)


def test_a_bad_device_is_refused_before_training():
    # the device is the run's (RunContext.device, --device), checked by check() before any training
    with pytest.raises(SynthaugError, match="unknown option 'device'"):
        ACGAN(device="tpu", **TINY)
    synth = ACGAN(**TINY)
    assert "device" not in json.dumps(synth.describe()["config"])
    with pytest.raises(SynthaugError, match=r"^device must be one of auto, cpu, cuda or cuda:N; got 'tpu'$"):
        synth.check(two_class(2), {"dark": 1}, run=RunContext(device="tpu"))


def test_unfitted_and_foreign_checkpoints_are_refused(tmp_path, fitted):
    synth, data = fitted
    with pytest.raises(SynthaugError, match="acgan is not fitted"):
        ACGAN().generate(data, "dark", 1, seed=0)
    with pytest.raises(SynthaugError, match="not a synthesizer checkpoint"):
        ACGAN.load(tmp_path)
    (tmp_path / "synthesizer.json").write_text(json.dumps({"name": "pix2pix", "config": {}}))
    with pytest.raises(SynthaugError, match="holds a 'pix2pix' checkpoint; expected 'acgan'"):
        ACGAN.load(tmp_path)


# ---- registration and the CLI -----------------------------------------------------------------
def test_registered_by_entry_point_without_importing_torch():
    synth = create("synthesizer", "acgan", epochs=2, latent_dim=16)
    assert isinstance(synth, ACGAN) and synth.trainable and synth.config.latent_dim == 16
    code = ("import sys, synthaug.registry as r; r.get_registry().entry('synthesizer', 'acgan');"
            "print('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_balance_with_acgan_through_the_cli(tmp_path, kaggle_first):
    from synthaug import read_store
    from synthaug.cli import main
    from synthaug.pipeline.store import store_info

    out = tmp_path / "balanced.h5"
    result = CliRunner().invoke(main, [
        "--quiet", "balance", "--synth", "acgan", "--data", "kaggle", "--data-dir", str(kaggle_first),
        "--size", "32", "--test-per-class", "1", "--synth-option", "epochs=1", "--synth-option", "ngf=8",
        "--synth-option", "ndf=8", "--synth-option", "batch_size=8", "--out", str(out)])
    assert result.exit_code == 0, result.output
    info = store_info(out)
    assert info["splits"]["train"]["classes"] == {"covid": 10, "normal": 10, "viral": 10}
    assert info["splits"]["train"]["synthetic"] == {"covid": 5, "normal": 1, "viral": 0}  # 5 / 9 / 10 real
    assert info["splits"]["test"]["synthetic"] == {"covid": 0, "normal": 0, "viral": 0}
    train = read_store(out, "train")
    synthetic = train.synth == "acgan"
    assert set(train.source_index[synthetic]) == {-1} and set(train.patient_ids[synthetic]) == {"acgan"}
