"""pix2pix synthesizer: networks, training pieces, fit/generate/save/load and the bad-input checks."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from synthaug.contract.run import RunContext
from synthaug.contract.types import ImageSet
from synthaug.errors import SynthaugError
from synthaug.registry import create
from synthaug_plugins.pix2pix_translator.measures import agreement
from synthaug_plugins.pix2pix_translator.networks import PatchDiscriminator, UNetGenerator, unet_geometry
from synthaug_plugins.pix2pix_translator.synthesizer import Pix2Pix
from synthaug_plugins.pix2pix_translator.training import Pix2PixNets, augment_pair, linear_decay, nearest_targets

TINY = dict(ngf=8, ndf=8, batch_size=2)


def lesion_pairs(n: int, size: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Smooth 'lungs' and the same images plus a known textured opacity (a stand-in for ctsim's twins)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = []
    for _ in range(n):
        f, p = rng.uniform(1, 3, 2), rng.uniform(0, 6, 2)
        base.append(0.45 + 0.2 * np.sin(2 * np.pi * f[0] * xx + p[0]) * np.cos(2 * np.pi * f[1] * yy + p[1]))
    base = np.asarray(base, np.float32)[:, None]
    texture = np.random.default_rng(7).uniform(-1, 1, (size, size))
    lesion = np.exp(-((xx - 0.3) ** 2 + (yy - 0.5) ** 2) / (2 * 0.2 ** 2)) * (0.3 + 0.3 * texture)
    return base, np.clip(base + lesion[None, None], 0, 1).astype(np.float32)


def paired_set(n: int = 16, size: int = 32, channels: int = 1) -> ImageSet:
    """n normal images, n covid images each with its lesion-free twin (extras like ctsim's)."""
    normal, covid = lesion_pairs(2 * n, size)
    images = np.concatenate([normal[:n], covid[n:]]).repeat(channels, 1)
    twin = np.concatenate([np.zeros_like(normal[:n]), normal[n:]]).repeat(channels, 1)
    return ImageSet(images, [1] * n + [0] * n, ("covid", "normal"), [f"p{i}" for i in range(2 * n)],
                    origin=[f"img{i}.png" for i in range(2 * n)],
                    extras={"twin": twin, "has_twin": np.arange(2 * n) >= n})


# ---- networks ---------------------------------------------------------------------------------
@pytest.mark.parametrize("size, depth, padded", [(256, 8, 256), (224, 5, 224), (64, 6, 64), (32, 5, 32),
                                                 (48, 4, 48), (45, 3, 48), (250, 5, 256)])
def test_unet_depth_rule(size, depth, padded):
    assert unet_geometry(size) == (depth, padded)


@pytest.mark.parametrize("size", [224, 64, 32, 48, 45])
@pytest.mark.parametrize("channels", [1, 3])
def test_generator_keeps_size_and_channels(size, channels):
    g = UNetGenerator(channels, size, ngf=4).eval()
    y = g(torch.rand(2, channels, size, size) * 2 - 1)
    assert y.shape == (2, channels, size, size)
    assert y.abs().max() <= 1  # tanh output


def test_generator_blocks_follow_liang2021():
    g = UNetGenerator(1, 256, ngf=64)
    assert [b[0].out_channels for b in g.down] == [64, 128, 256, 512, 512, 512, 512, 512]
    norms = [any(isinstance(m, torch.nn.BatchNorm2d) for m in b) for b in g.down]
    assert norms == [False] + [True] * 6 + [False]  # none on the first (paper) nor on the 1x1 bottleneck
    dropouts = [any(isinstance(m, torch.nn.Dropout) for m in b) for b in g.up]
    assert dropouts == [True] * 3 + [False] * 4
    assert isinstance(g.down[0][-1], torch.nn.LeakyReLU) and g.down[0][-1].negative_slope == 0.2


def test_patchgan_sees_70x70_patches():
    d = PatchDiscriminator(1, 128, ndf=4).eval()
    source = torch.zeros(1, 1, 128, 128, requires_grad=True)
    out = d(source, torch.zeros(1, 1, 128, 128))
    assert out.shape == (1, 1, 14, 14)
    out[0, 0, 7, 7].backward()
    rows = torch.nonzero(source.grad[0, 0].abs().sum(1)).flatten()
    assert int(rows.max() - rows.min() + 1) == 70


def test_patchgan_shrinks_for_small_images():
    assert PatchDiscriminator(1, 16, ndf=4).n_layers == 2
    assert PatchDiscriminator(1, 32, ndf=4).n_layers == 3


def test_init_is_normal_0_002():
    nets = Pix2PixNets(1, 64, ngf=32, ndf=32)
    w = torch.cat([m.weight.detach().flatten() for m in nets.modules() if isinstance(m, torch.nn.Conv2d)])
    assert abs(float(w.mean())) < 1e-3 and abs(float(w.std()) - 0.02) < 1e-3


# ---- training pieces --------------------------------------------------------------------------
def test_lr_constant_then_linear_decay():
    f = linear_decay(epochs=4, decay_epochs=2)
    assert [round(f(e), 4) for e in range(4)] == [1.0, 1.0, 0.6667, 0.3333]


def test_augmentation_moves_source_and_target_together():
    x = torch.rand(6, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    s, t = augment_pair(x, x.clone(), torch.Generator().manual_seed(0))
    assert torch.equal(s, t) and not torch.allclose(s, x)
    s, _ = augment_pair(x, x, torch.Generator().manual_seed(0), flip_p=1.0, max_degrees=0.0)
    assert torch.allclose(s, x.flip(-1), atol=1e-5)


def test_nearest_pairing_finds_the_matching_image():
    sources, _ = lesion_pairs(10)
    perm = np.random.default_rng(3).permutation(10)
    # targets: the same images shuffled, brighter, lower contrast and noisy
    noise = np.random.default_rng(4).normal(0, 0.01, sources.shape)
    targets = 0.8 * sources[perm] + 0.15 + noise
    assert np.array_equal(perm[nearest_targets(sources, targets)], np.arange(10))


def test_measures_against_identity():
    _, covid = lesion_pairs(4)
    m = agreement(covid, covid, np.zeros_like(covid))
    assert m["model"]["l1"] == 0 and m["model"]["ssim"] > 0.999 and m["model"]["psnr"] > 90
    assert m["identity"]["ssim"] < 0.1


# ---- fit / generate ---------------------------------------------------------------------------
def test_paired_fit_beats_identity_on_ssim():
    data = paired_set(16)
    synth = Pix2Pix(epochs=40, batch_size=4, ngf=16, ndf=16, pairing="paired", flip_p=0.0)
    synth.check(data, {"covid": 8})
    synth.fit(data)
    normal, covid = lesion_pairs(16, seed=99)  # unseen pairs
    m = agreement(synth.translate("covid", normal, seed=0), covid, normal)
    assert m["model"]["ssim"] > m["identity"]["ssim"] + 0.03
    assert m["model"]["l1"] < m["identity"]["l1"]


def test_residual_generator_starts_as_the_identity_and_learns_the_difference():
    from synthaug_plugins.pix2pix_translator.training import Pix2PixNets

    nets = Pix2PixNets(1, 32, ngf=8, ndf=8, residual=True)
    x = torch.rand(3, 1, 32, 32) * 2 - 1
    assert torch.equal(nets.generator.eval()(x), x)  # zero-initialised last layer: exactly the input
    data = paired_set(16)
    synth = Pix2Pix(epochs=40, batch_size=4, ngf=16, ndf=16, pairing="paired", flip_p=0.0, residual=True)
    synth.fit(data)
    normal, covid = lesion_pairs(16, seed=99)
    m = agreement(synth.translate("covid", normal, seed=0), covid, normal)
    assert m["model"]["ssim"] > m["identity"]["ssim"] + 0.03 and m["model"]["l1"] < m["identity"]["l1"]


def test_fit_is_deterministic_for_a_seed():
    data = paired_set(4)
    hashes = []
    for seed in (0, 0, 1):
        synth = Pix2Pix(epochs=1, **TINY)
        synth.fit(data, run=RunContext(seed=seed))
        hashes.append(synth.checkpoints()["covid"])
    assert hashes[0] == hashes[1] != hashes[2]


def test_generate_translates_normals_with_provenance():
    data = paired_set(4)
    synth = Pix2Pix(epochs=1, **TINY)
    synth.fit(data)
    out = synth.generate(data, "covid", 10, seed=5)
    assert out.images.shape == (10, 1, 32, 32) and out.images.min() >= 0 and out.images.max() <= 1
    assert set(out.labels) == {0}
    normals = set(np.flatnonzero(data.labels == 1))
    assert set(out.source_index[:4]) == normals and set(out.source_index[4:8]) == normals  # no reuse before all used
    assert list(out.origin) == [data.origin[i] for i in out.source_index]
    assert list(out.patient_ids) == [data.patient_ids[i] for i in out.source_index]
    assert set(out.extras["checkpoint"]) == {synth.checkpoints()["covid"][:16].encode()}
    again = synth.generate(data, "covid", 10, seed=5)
    assert np.array_equal(out.images, again.images) and np.array_equal(out.source_index, again.source_index)
    assert not np.array_equal(out.images, synth.generate(data, "covid", 10, seed=6).images)


def test_deficit_of_the_source_class_is_filled_by_duplication():
    data = paired_set(4)
    synth = Pix2Pix(epochs=1, **TINY)
    synth.check(data, {"covid": 2, "normal": 3})
    synth.fit(data)
    assert list(synth.generators) == ["covid"]  # nothing is translated into the source class
    out = synth.generate(data, "normal", 3, seed=0)
    assert np.array_equal(out.images, data.images[out.source_index]) and set(out.labels) == {1}
    assert set(out.extras["checkpoint"]) == {b"duplicate"}


def test_dropout_at_generation_switch():
    data = paired_set(4)
    synth = Pix2Pix(epochs=1, dropout_at_generation=False, **TINY)
    synth.fit(data)
    normals = data.images[data.labels == 1]
    assert np.array_equal(synth.translate("covid", normals, seed=1), synth.translate("covid", normals, seed=2))
    synth.config.dropout_at_generation = True
    assert not np.array_equal(synth.translate("covid", normals, seed=1), synth.translate("covid", normals, seed=2))


@pytest.mark.parametrize("pairing", ["random", "nearest"])
def test_unpaired_modes_fit_and_describe(pairing):
    data = paired_set(4)
    synth = Pix2Pix(epochs=1, pairing=pairing, **TINY)
    synth.fit(data)
    info = synth.describe()
    assert info["name"] == "pix2pix" and info["pairing"] == pairing and info["config"]["pairing"] == pairing
    assert info["checkpoints"]["covid"] == synth.checkpoints()["covid"] and info["image_shape"] == [1, 32, 32]


def test_save_load_round_trip(tmp_path):
    data = paired_set(4)
    synth = Pix2Pix(epochs=1, **TINY)
    synth.fit(data)
    synth.save(tmp_path / "ckpt")
    loaded = Pix2Pix.load(tmp_path / "ckpt")
    assert loaded.hashes == synth.hashes and loaded.config == synth.config
    loaded.check(data, {"covid": 3})
    assert np.array_equal(loaded.generate(data, "covid", 3, seed=2).images,
                          synth.generate(data, "covid", 3, seed=2).images)
    info = json.loads((tmp_path / "ckpt" / "synthesizer.json").read_text())
    assert info["weights"]["generator_covid"] == synth.checkpoints()["covid"] and info["targets"] == ["covid"]
    assert info["seed"] == 0 and "seed" not in info["config"]  # the fit's seed is the run's, not an option
    # checkpoints written when work_dir was an option still load
    info["config"]["work_dir"] = "/old/work"
    (tmp_path / "ckpt" / "synthesizer.json").write_text(json.dumps(info))
    assert Pix2Pix.load(tmp_path / "ckpt").config == synth.config
    # a checkpoint of another size or channel count is refused before anything runs
    with pytest.raises(SynthaugError, match="trained on 32x32x1 images; the data is 48x48x1"):
        loaded.check(paired_set(4, size=48), {"covid": 3})
    with pytest.raises(SynthaugError, match="the data is 32x32x3"):
        loaded.check(paired_set(4, channels=3), {"covid": 3})
    # weights that do not match the recorded hash
    weights = tmp_path / "ckpt" / "generator_covid.pt"
    state = torch.load(weights, weights_only=True)
    state["out.0.bias"] += 1
    torch.save(state, weights)
    with pytest.raises(SynthaugError, match="does not match"):
        Pix2Pix.load(tmp_path / "ckpt")


def test_resume_continues_where_it_stopped(tmp_path, monkeypatch):
    data = paired_set(4)
    uninterrupted = Pix2Pix(epochs=3, **TINY)
    uninterrupted.fit(data)

    calls = {"n": 0}
    step = Pix2PixNets.train_step

    def crash_in_third_epoch(self, s, t):
        calls["n"] += 1
        if calls["n"] == 5:  # 2 steps an epoch: the third epoch's first step
            raise KeyboardInterrupt
        return step(self, s, t)

    monkeypatch.setattr(Pix2PixNets, "train_step", crash_in_third_epoch)
    interrupted = Pix2Pix(epochs=3, **TINY)
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit(data, run=RunContext(work_dir=tmp_path))
    monkeypatch.setattr(Pix2PixNets, "train_step", step)
    # the per-epoch state holds tensors, numbers, strings and lists only: nothing is unpickled
    assert torch.load(tmp_path / "train_state_covid.pt", weights_only=True)["epoch"] == 2
    resumed = Pix2Pix(epochs=3, **TINY)
    resumed.fit(data, run=RunContext(work_dir=tmp_path))
    assert (tmp_path / "train_state_covid.pt").is_file()  # the core, not the plugin, removes a work dir
    assert resumed.hashes == uninterrupted.hashes
    grids = sorted(p.name for p in (tmp_path / "samples").iterdir())
    assert grids == ["covid_epoch001.png", "covid_epoch002.png", "covid_epoch003.png"]
    from PIL import Image
    assert Image.open(tmp_path / "samples" / grids[0]).size == (3 * 32, 4 * 32)  # source | generated | target, 4 rows


# ---- bad input --------------------------------------------------------------------------------
def _three_class(n_normal=3):
    data = paired_set(4)
    keep = np.flatnonzero(data.labels == 0).tolist() + np.flatnonzero(data.labels == 1)[:n_normal].tolist()
    return data.subset(keep)


@pytest.mark.parametrize("options, deficits, data, message", [
    ({}, {"covid": 2}, lambda: _three_class(0), "the training split has no 'normal' images"),
    ({}, {"viral": 2}, paired_set, "target class 'viral' does not exist; classes are covid, normal"),
    ({"source_class": "healthy"}, {"covid": 2}, paired_set, "source class 'healthy' does not exist"),
    ({"target_classes": "normal"}, {}, paired_set, "source and target class are both 'normal'"),
    ({"pairing": "paired"}, {"covid": 2},
     lambda: paired_set().with_provenance(extras={}), "pairing 'paired' needs 'covid' images with a lesion-free twin"),
    ({"target_classes": "viral"}, {}, paired_set, "target class 'viral' does not exist"),
])
def test_check_rejects_bad_input_before_training(options, deficits, data, message):
    with pytest.raises(SynthaugError, match=message):
        Pix2Pix(epochs=1, **options).check(data(), deficits)


def test_bad_options_are_one_line_errors():
    with pytest.raises(SynthaugError, match="pairing must be one of random, paired, nearest; got 'twins'"):
        Pix2Pix(pairing="twins")
    with pytest.raises(SynthaugError, match="unknown option 'lambda'"):
        Pix2Pix(**{"lambda": 10})
    with pytest.raises(SynthaugError, match="epochs must be at least 1"):
        Pix2Pix(epochs=0)
    with pytest.raises(SynthaugError, match="unknown option 'work_dir'"):
        Pix2Pix(work_dir="work")  # the run context's, not an option


def test_resume_state_of_another_size_is_refused(tmp_path):
    first = Pix2Pix(epochs=1, **TINY)
    first.fit(paired_set(4, size=32), run=RunContext(work_dir=tmp_path))
    second = Pix2Pix(epochs=1, **TINY)
    with pytest.raises(SynthaugError, match=r"train_state_covid.pt: the state of another pix2pix fit \(image_shape: "
                                            r"32x32x1 there, 48x48x1 in this run\); remove it or choose another"):
        second.check(paired_set(4, size=48), {"covid": 1}, run=RunContext(work_dir=tmp_path))
    for changed, seed, message in (({"ngf": 16}, 0, "option ngf: 8 there, 16 in this run"),
                                   ({}, 1, "seed: 0 there, 1 in this run")):
        with pytest.raises(SynthaugError, match=message):
            Pix2Pix(epochs=1, **{**TINY, **changed}).check(paired_set(4, size=32), {"covid": 1},
                                                           run=RunContext(work_dir=tmp_path, seed=seed))


def test_non_square_images_are_refused():
    data = paired_set(4)
    data = ImageSet(data.images[..., :24], data.labels, data.class_names, data.patient_ids)
    with pytest.raises(SynthaugError, match="square images; got 32x24"):
        Pix2Pix().check(data, {"covid": 1})


# ---- registration -----------------------------------------------------------------------------
def test_registered_by_entry_point_without_importing_torch():
    synth = create("synthesizer", "pix2pix", epochs=2, pairing="nearest")
    assert isinstance(synth, Pix2Pix) and synth.trainable
    code = ("import sys, synthaug.registry as r; r.get_registry().entry('synthesizer', 'pix2pix');"
            "print('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
