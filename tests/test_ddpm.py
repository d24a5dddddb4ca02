"""ddpm synthesizer: class-conditional samples, guidance, determinism, resume, save/load, bad input, CLI, torchrun.

The class test fits a small U-Net on a constructed two-class set whose classes a rule tells apart (a
bright disc against a bright horizontal bar, random positions and sizes, 16 px): the rule labels the
samples of the requested class as that class at least 90% of the time with guidance 1 and 2 (measured
0.95-1.0 over fit seeds 0-2), and with guidance 0 the requested class makes no difference at all (the
same seed gives the same images for both classes), so the rule agrees with the requested class half of
the time, up to the images it cannot label (tolerance 0.5 +- 0.1).
"""

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
from synthaug_plugins.ddpm.diffusion import Diffusion, initial_noise
from synthaug_plugins.ddpm.networks import EMA, build_unet
from synthaug_plugins.ddpm.options import DDPMConfig
from synthaug_plugins.ddpm.synthesizer import DDPM

#: A U-Net small enough for a test: two levels (sides divisible by 2), two DDIM steps.
TINY = dict(channels=(8, 16), batch_size=8, steps=2, figure_every=0)
#: The class test's fit: 30 epochs of 8 steps on 128 images of 16 px (about 25 s on one thread).
CLASS_FIT = dict(channels=(16, 32), batch_size=16, epochs=30, lr=3e-3, figure_every=0)


def disc_or_bar(n: int = 64, size: int = 16, seed: int = 0) -> ImageSet:
    """n bright discs (class "disc") and n bright horizontal bars ("bar") on a dark ground, at random
    positions and sizes, alternating."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images = np.full((2 * n, 1, size, size), 0.1, np.float32)
    for i in range(2 * n):
        cy, cx = rng.uniform(size * 0.3, size * 0.7, 2)
        if i % 2 == 0:
            r = rng.uniform(size * 0.15, size * 0.25)
            images[i, 0][(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 0.9
        else:
            half, thick = rng.uniform(size * 0.3, size * 0.42), rng.uniform(2, 3) * size / 16
            images[i, 0][(np.abs(yy - cy) <= thick / 2) & (np.abs(xx - cx) <= half)] = 0.9
    return ImageSet(images, np.arange(2 * n) % 2, ("disc", "bar"), [f"p{i}" for i in range(2 * n)],
                    origin=[f"img{i}.png" for i in range(2 * n)])


def rule(images: np.ndarray) -> np.ndarray:
    """0 (disc), 1 (bar) or -1 (nothing bright): the bright pixels of the 3x3-smoothed image, a bar
    when they spread more than 2.5 times as much across as down."""
    from scipy.ndimage import uniform_filter

    out = np.full(len(images), -1)
    for i, image in enumerate(images[:, 0]):
        ys, xs = np.nonzero(uniform_filter(image, 3, mode="nearest") > 0.5)
        if len(ys) >= 2:
            out[i] = int(xs.var() > 2.5 * ys.var())
    return out


@pytest.fixture(scope="module")
def fitted():
    data = disc_or_bar()
    synth = DDPM(**CLASS_FIT)
    synth.fit(data)
    return synth, data


@pytest.fixture(scope="module")
def tiny_fitted():
    data = disc_or_bar(4, size=8)
    synth = DDPM(epochs=2, **TINY)
    synth.fit(data)
    return synth, data


# ---- what it learns ---------------------------------------------------------------------------
def test_the_rule_tells_the_real_classes_apart():
    data = disc_or_bar(seed=3)
    assert np.array_equal(rule(data.images), data.labels)


def test_guided_samples_are_of_the_requested_class_and_unguided_ones_ignore_it(fitted):
    synth, data = fitted
    for guidance in (1, 2):
        synth.config.guidance = guidance
        for label, name in enumerate(data.class_names):
            agree = float((rule(synth.sample(name, 60, seed=1 + label)) == label).mean())
            assert agree >= 0.9, (guidance, name, agree)
    synth.config.guidance = 0
    disc, bar = synth.sample("disc", 60, seed=1), synth.sample("bar", 60, seed=1)
    assert np.array_equal(disc, bar)  # the class asked for makes no difference
    labels = rule(disc)
    assert 0.4 <= ((labels == 0).mean() + (labels == 1).mean()) / 2 <= 0.6
    assert 0.1 < (labels == 0).mean() < 0.9  # the unconditional model makes both shapes
    synth.config.guidance = CLASS_FIT.get("guidance", DDPMConfig().guidance)


def test_the_training_loss_falls(fitted):
    synth, _ = fitted
    losses = [h["loss"] for h in synth.history]
    assert [h["epoch"] for h in synth.history] == list(range(1, 31)) and all(map(math.isfinite, losses))
    assert np.mean(losses[-5:]) < 0.4 * losses[0], losses


# ---- generation -------------------------------------------------------------------------------
def test_generate_shapes_provenance_and_determinism(tiny_fitted):
    synth, data = tiny_fitted
    out = synth.generate(data, "bar", 5, seed=3)
    assert out.images.shape == (5, 1, 8, 8) and out.images.dtype == np.float32
    assert 0 <= out.images.min() and out.images.max() <= 1 and out.images.std() > 0
    assert set(out.labels) == {1} and set(out.source_index) == {-1} and set(out.patient_ids) == {"ddpm"}
    assert list(out.origin) == [f"ddpm sample {k}" for k in range(5)]
    assert set(out.extras["checkpoint"]) == {synth.hash[:16].encode()}
    assert np.array_equal(out.images, synth.generate(data, "bar", 5, seed=3).images)
    assert not np.allclose(out.images, synth.generate(data, "bar", 5, seed=4).images)
    info = synth.describe()
    assert info["name"] == "ddpm" and info["checkpoints"] == {"unet": synth.hash} and info["epochs_trained"] == 2


def test_parts_give_the_images_of_one_generate(tiny_fitted):
    """Image k depends on the seed and k alone: any split of the rows gives the same images (up to
    float rounding where a batch of another size takes other kernels)."""
    synth, data = tiny_fitted
    synth.config.sample_batch = 3
    whole = synth.generate(data, "disc", 7, seed=5).images
    parts = [synth.generate_part(data, "disc", 7, seed=5, rows=rows).images
             for rows in (slice(0, 2), slice(2, 3), slice(3, 7))]
    synth.config.sample_batch = DDPMConfig().sample_batch
    assert np.allclose(np.concatenate(parts), whole, atol=1e-5)
    assert np.allclose(synth.generate(data, "disc", 2, seed=5).images, whole[:2], atol=1e-5)
    assert np.array_equal(initial_noise(5, slice(2, 4), (1, 8, 8)), initial_noise(5, slice(0, 4), (1, 8, 8))[2:])


def test_guidance_is_one_batched_forward_of_both_predictions():
    """Guidance g > 1: u + g (c - u) from one forward of the doubled batch; 0 and 1 need one prediction."""
    torch.manual_seed(0)
    unet = build_unet(1, 2, DDPMConfig(channels=(8, 16), attention=True)).eval()
    with torch.no_grad():  # MONAI zero-initialises each block's last convolution: the labels would not count
        for p in unet.parameters():
            p.add_(0.1 * torch.randn_like(p))
    calls = []
    unet.register_forward_hook(lambda module, args, kwargs, out: calls.append(kwargs["class_labels"].tolist()),
                               with_kwargs=True)
    diffusion, noise = Diffusion(100), torch.randn(3, 1, 8, 8)
    guided = diffusion.sample(unet, noise, 1, 2, steps=2, guidance=3.0)
    assert calls == [[1, 1, 1, 2, 2, 2]] * 2  # both labels, one forward per step
    calls.clear()
    conditional = diffusion.sample(unet, noise, 1, 2, steps=2, guidance=1.0)
    assert calls == [[1, 1, 1]] * 2
    # the same step by hand, with two separate forwards
    diffusion.sampler.set_timesteps(2)
    x = noise.clone()
    with torch.no_grad():
        for t in diffusion.sampler.timesteps:
            c, u = (unet(x, t.expand(3), class_labels=torch.full((3,), k)) for k in (1, 2))
            x, _ = diffusion.sampler.step(u + 3.0 * (c - u), int(t), x)
    assert torch.allclose(guided, x, atol=1e-5) and not torch.allclose(guided, conditional, atol=1e-3)


def test_ema_follows_the_weights_with_a_warm_up():
    net = torch.nn.Linear(2, 1)
    ema = EMA(net, 0.9)
    with torch.no_grad():
        net.weight.fill_(1.0)
    before = ema.model.weight.clone()
    ema.update(net)  # step 0: decay min(0.9, 1/10) = 0.1
    assert torch.allclose(ema.model.weight, 0.1 * before + 0.9)
    assert int(ema.updates) == 1 and not ema.model.weight.requires_grad and "updates" in ema.state_dict()


# ---- resume, save / load ----------------------------------------------------------------------
def test_a_killed_fit_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path, monkeypatch):
    data = disc_or_bar(8, size=8)  # 16 images, batch 8: 2 steps an epoch
    uninterrupted = DDPM(epochs=3, **TINY)
    uninterrupted.fit(data)

    calls = {"n": 0}
    step = Diffusion.train_step

    def crash_in_third_epoch(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return step(self, *args, **kwargs)

    monkeypatch.setattr(Diffusion, "train_step", crash_in_third_epoch)
    with pytest.raises(KeyboardInterrupt):
        DDPM(epochs=3, **TINY).fit(data, run=RunContext(work_dir=tmp_path))
    monkeypatch.setattr(Diffusion, "train_step", step)
    assert torch.load(tmp_path / "train_state.pt", weights_only=True)["epoch"] == 2
    resumed = DDPM(epochs=3, **{**TINY, "guidance": 3.0, "steps": 4})  # sampling options: the state resumes
    resumed.fit(data, run=RunContext(work_dir=tmp_path))
    assert resumed.hash == uninterrupted.hash and resumed.history == uninterrupted.history
    with pytest.raises(SynthaugError, match=r"train_state.pt: the state of another ddpm fit \(option p_uncond: "
                                            r"0.15 there, 0.2 in this run\)") as err:
        DDPM(epochs=3, p_uncond=0.2, **TINY).fit(data, run=RunContext(work_dir=tmp_path))
    assert "\n" not in str(err.value)


def test_a_figure_every_few_epochs_and_after_the_last(tmp_path):
    from PIL import Image

    data = disc_or_bar(4, size=8)
    DDPM(epochs=3, **{**TINY, "figure_every": 2}).fit(data, run=RunContext(work_dir=tmp_path))
    grids = sorted(p.name for p in (tmp_path / "samples").iterdir())
    assert grids == ["epoch002.png", "epoch003.png"]
    assert Image.open(tmp_path / "samples" / grids[0]).size == (4 * 8, 2 * 8)  # 4 columns, a row per class


def test_save_load_round_trip(tmp_path, tiny_fitted):
    synth, data = tiny_fitted
    synth.save(tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["synthesizer.json", "unet.pt"]
    loaded = DDPM.load(tmp_path / "ckpt")
    assert loaded.config == synth.config and loaded.hash == synth.hash and loaded.class_names == data.class_names
    loaded.check(data, {"bar": 2})
    assert np.array_equal(loaded.generate(data, "bar", 3, seed=2).images, synth.generate(data, "bar", 3, seed=2).images)
    info = json.loads((tmp_path / "ckpt" / "synthesizer.json").read_text())
    assert info["weights"] == {"unet": synth.hash} and info["config"]["channels"] == [8, 16]
    assert info["config"]["preset"] == "cpu" and info["config"]["epochs"] == 2 and len(info["history"]) == 2
    with pytest.raises(SynthaugError, match="trained on 8x8x1 images; the data is 16x16x1"):
        loaded.check(disc_or_bar(4, size=16), {"bar": 1})
    state = torch.load(tmp_path / "ckpt" / "unet.pt", weights_only=True)
    state["conv_in.conv.weight"] += 1
    torch.save(state, tmp_path / "ckpt" / "unet.pt")
    with pytest.raises(SynthaugError, match="does not match synthesizer.json"):
        DDPM.load(tmp_path / "ckpt")


# ---- channels and sizes -----------------------------------------------------------------------
@pytest.mark.parametrize("channels, shape", [(3, (8, 8)), (2, (8, 12))])
def test_any_channel_count_and_sides_the_depth_allows(channels, shape):
    data = disc_or_bar(3, size=12)
    images = np.repeat(data.images[:, :, :shape[0], :shape[1]], channels, axis=1)
    data = ImageSet(images, data.labels, data.class_names, data.patient_ids)
    synth = DDPM(epochs=1, **TINY)
    synth.fit(data)
    out = synth.generate(data, "disc", 2, seed=0)
    assert out.images.shape == (2, channels, *shape) and 0 <= out.images.min() and out.images.max() <= 1


def test_a_size_the_unet_cannot_take_is_refused_before_training(monkeypatch):
    monkeypatch.setattr(DDPM, "start", lambda *args: pytest.fail("training started"))
    with pytest.raises(SynthaugError) as err:
        DDPM().fit(disc_or_bar(2, size=30))
    assert str(err.value) == ("ddpm's U-Net of 3 levels (channels 16,32,64) needs image sides divisible by 4; "
                              "got 30x30: use --size 32 or fewer levels (--synth-option channels=...)")
    DDPM(channels=(16, 32)).check(disc_or_bar(2, size=30), {"bar": 1})  # two levels: sides divisible by 2


# ---- options and bad input --------------------------------------------------------------------
def test_presets_and_explicit_options():
    cpu, paper = DDPMConfig(), DDPMConfig(preset="paper")
    assert (cpu.channels, cpu.res_blocks, cpu.attention, cpu.steps) == ((16, 32, 64), 1, False, 20)
    assert (paper.channels, paper.res_blocks, paper.attention, paper.steps) == ((64, 128, 256, 256, 512), 2, True, 50)
    mine = DDPMConfig(preset="paper", channels="32,64", attention=False, epochs=3)
    assert (mine.channels, mine.attention, mine.epochs, mine.res_blocks) == ((32, 64), False, 3, 2)
    with torch.device("meta"):  # the paper U-Net builds (attention at the two coarsest levels below full size)
        unet = build_unet(1, 3, paper)
    assert [hasattr(block, "attentions") for block in unet.down_blocks] == [False, False, False, True, True]
    assert unet.class_embedding.num_embeddings == 4  # three classes and "no class"


@pytest.mark.parametrize("options, message", [
    ({"guidance": -1}, r"ddpm guidance must be >= 0 \(0 unconditional, 1 conditional\); got -1"),
    ({"steps": 0}, "ddpm steps must be at least 1; got 0"),
    ({"steps": 20, "timesteps": 10}, r"ddpm steps must be at most timesteps \(10\); got 20"),
    ({"p_uncond": 1.0}, r"ddpm p_uncond must lie in \[0, 1\); got 1.0"),
    ({"p_uncond": 0.0}, "ddpm guidance 2.0 needs the unconditional prediction, which p_uncond 0 never trains"),
    ({"ema_decay": 1}, r"ddpm ema_decay must lie in \[0, 1\); got 1"),
    ({"schedule": "quadratic"}, "ddpm schedule must be one of cosine, linear, scaled_linear; got 'quadratic'"),
    ({"prediction": "x0"}, "ddpm prediction must be one of epsilon, v_prediction; got 'x0'"),
    ({"preset": "gpu"}, "ddpm preset must be one of cpu, paper; got 'gpu'"),
    ({"channels": "32,abc"}, "ddpm channels must be widths such as 32,64,64"),
    ({"channels": [0, 8]}, "ddpm channels must be widths such as 32,64,64"),
    ({"lr": 0}, "ddpm lr must be > 0; got 0"),
    ({"seed": 1}, "unknown option 'seed'"),
    ({"guidance": "x"}, "option 'guidance' of synthesizer 'ddpm' must be a number; got 'x'"),
])
def test_bad_options_are_one_line_errors(options, message):
    with pytest.raises(SynthaugError, match=message) as err:
        create("synthesizer", "ddpm", **options)
    assert "\n" not in str(err.value)


def test_check_refuses_a_deficit_of_a_class_without_real_images():
    data = disc_or_bar(4, size=8)
    data = ImageSet(data.images, data.labels * 0, ("disc", "bar"), data.patient_ids)
    with pytest.raises(SynthaugError, match="ddpm learns class 'bar' .* no real 'bar' images"):
        DDPM(**TINY).check(data, {"bar": 3})
    DDPM(**TINY).check(data, {"disc": 1, "bar": 0})


def test_unfitted_is_refused(tiny_fitted):
    _, data = tiny_fitted
    with pytest.raises(SynthaugError, match="ddpm is not fitted"):
        DDPM().generate(data, "bar", 1, seed=0)


def test_the_memory_estimate_counts_the_activations_of_a_step():
    data = disc_or_bar(4, size=16)
    small, large = (DDPM(batch_size=b).estimate(data, None, RunContext(device="cpu")).memory for b in (4, 16))
    assert small.parameters == large.parameters > 0
    assert 3.5 < large.activations / small.activations < 4.5  # activations grow with the batch
    assert "batch 16" in large.what and "channels 16,32,64" in large.what


# ---- registration and the CLI -----------------------------------------------------------------
def test_registered_by_entry_point_without_importing_torch():
    synth = create("synthesizer", "ddpm", epochs=2)
    assert isinstance(synth, DDPM) and synth.trainable and synth.splits_generation
    code = ("import sys, synthaug.registry as r; r.get_registry().entry('synthesizer', 'ddpm');"
            "print('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_every_option_is_documented():
    from dataclasses import fields

    from synthaug.cli import main

    result = CliRunner().invoke(main, ["plugins", "--options", "ddpm", "--json"])
    assert result.exit_code == 0, result.output
    (found,) = json.loads(result.output)
    rows = {row["name"]: row for row in found["options"]}
    assert list(rows) == [f.name for f in fields(DDPMConfig)]
    assert all(len(row["meaning"]) > 20 for row in rows.values()), rows
    assert [name for name, row in rows.items() if row.get("sampling")] == ["guidance", "steps", "sample_batch"]
    assert rows["guidance"]["meaning"].endswith("[sampling option: a fitted checkpoint takes a new value]")


def run_cli(*args):
    from synthaug.cli import main

    return CliRunner().invoke(main, ["--quiet", *map(str, args)])


CLI_TINY = ("--size", 16, "--test-per-class", 1, "--synth-option", "channels=8,16", "--synth-option", "epochs=1",
            "--synth-option", "steps=2", "--synth-option", "batch_size=8")


@pytest.mark.parametrize("layout", ["kaggle_first", "kaggle_later"])
def test_balance_with_ddpm_on_both_kaggle_layouts(tmp_path, request, layout):
    from synthaug import read_store

    out = tmp_path / "balanced.h5"
    result = run_cli("balance", "--synth", "ddpm", "--data", "kaggle", "--data-dir", request.getfixturevalue(layout),
                     *CLI_TINY, "--out", out, "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["splits"]["train"]["classes"] == {"covid": 10, "normal": 10, "viral": 10}
    assert info["splits"]["train"]["synthetic"] == {"covid": 5, "normal": 1, "viral": 0}  # 5 / 9 / 10 real
    train = read_store(out, "train")
    synthetic = train.synth == "ddpm"
    assert synthetic.sum() == 6 and set(train.source_index[synthetic]) == {-1}


@pytest.mark.parametrize("option, fragment", [
    ("guidance=-1", "ddpm guidance must be >= 0"),
    ("steps=0", "ddpm steps must be at least 1; got 0"),
    ("channels=8,16,32,64", "needs image sides divisible by 8; got 20x20: use --size 24"),
])
def test_bad_options_exit_2_in_one_line(tmp_path, kaggle_first, option, fragment):
    out = tmp_path / "b.h5"
    result = run_cli("balance", "--synth", "ddpm", "--data", "kaggle", "--data-dir", kaggle_first, "--size", 20,
                     "--test-per-class", 1, "--synth-option", option, "--out", out)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and fragment in lines[0], result.output
    assert not out.exists()


# ---- torchrun: sharded generation -------------------------------------------------------------
@pytest.mark.slow
def test_balance_in_two_processes_writes_the_store_of_one(tmp_path):
    """A fitted ddpm's images shared out among 2 processes by chunks (256 images): each image from the
    seed and its row alone, the store's bytes those of one process."""
    from test_torchrun import TORCHRUN, sha256, synthaug_cli

    from synthaug.pipeline.store import read_store
    from tests.conftest import make_kaggle_later

    if TORCHRUN is None or not torch.distributed.is_available():
        pytest.skip("torch.distributed / torchrun not available")
    root = make_kaggle_later(tmp_path / "data", counts=(20, 300, 30, 0), size=16)
    data = ["--data", "kaggle", "--data-dir", str(root), "--size", "16", "--test-per-class", "5", "--seed", "2"]
    options = [a for pair in (("--synth-option", o) for o in ("channels=8,16", "epochs=1", "steps=2", "batch_size=8"))
               for a in pair]
    synthaug_cli("fit", *data, "--synth", "ddpm", *options, "--out", str(tmp_path / "ck"))
    for nproc in (1, 2):
        done = synthaug_cli("balance", *data, "--synth", "ddpm", "--synth-checkpoint", str(tmp_path / "ck"),
                            "--out", str(tmp_path / f"b{nproc}.h5"), nproc=nproc)
        assert done.stdout.count("wrote ") == 1  # rank 0 reports
    assert sha256(tmp_path / "b1.h5") == sha256(tmp_path / "b2.h5")
    assert read_store(tmp_path / "b2.h5", "train").counts(synthetic=True) == {"covid": 280, "normal": 0, "viral": 270}


@pytest.mark.slow
def test_a_fit_in_two_processes_ends_near_the_fit_of_one(tmp_path):
    """Each process takes half of every batch and the gradients are averaged: the same mean gradient up
    to float summation order (GroupNorm normalises each image alone, so no batch statistics differ).
    Stated tolerance: the EMA weights within 1% (relative L2; measured 0.04%) of one process's; the
    control, another --seed, lands far beyond it."""
    from test_torchrun import TORCHRUN, synthaug_cli

    from tests.conftest import make_kaggle_later

    if TORCHRUN is None or not torch.distributed.is_available():
        pytest.skip("torch.distributed / torchrun not available")
    root = make_kaggle_later(tmp_path / "data", counts=(20, 40, 30, 0), size=16)
    fit = ["fit", "--synth", "ddpm", "--data", "kaggle", "--data-dir", str(root), "--size", "16",
           "--test-per-class", "5", *[a for o in ("channels=8,16", "epochs=2", "batch_size=8", "steps=2")
                                     for a in ("--synth-option", o)]]
    synthaug_cli(*fit, "--out", str(tmp_path / "one"))
    synthaug_cli(*fit, "--out", str(tmp_path / "two"), nproc=2)
    synthaug_cli(*fit, "--seed", "1", "--out", str(tmp_path / "other"))
    weights = {k: torch.load(tmp_path / k / "unet.pt", weights_only=True) for k in ("one", "two", "other")}

    def distance(run):
        a, b = weights[run], weights["one"]
        return float(sum(((a[k] - b[k]) ** 2).sum() for k in b) ** 0.5 / sum((b[k] ** 2).sum() for k in b) ** 0.5)

    assert distance("two") < 0.01 and distance("other") > 0.1, (distance("two"), distance("other"))
    histories = [json.loads((tmp_path / k / "synthesizer.json").read_text())["history"] for k in ("one", "two")]
    assert [h["processes"] for h in histories[1]] == [2, 2]
    assert all(abs(a["loss"] - b["loss"]) < 0.05 for a, b in zip(*histories))
