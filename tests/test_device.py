"""The device convention (``--device``, ``Synthesizer.device``) and the memory check before training.

The tests marked ``cuda`` need a GPU (``pytest -m cuda``); without one they skip, saying so.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import synthaug
from synthaug.cli import main
from synthaug.errors import SynthaugError
from synthaug.kit import memory
from synthaug.kit.device import check_device, resolve_device
from synthaug.kit.memory import TrainingEstimate, check_memory, cpu_available_bytes, saved_bytes

from _classifier_data import shapes_store
from xpgan_helpers import register_small_classifier, small_cnn  # noqa: F401  (fixture)

CUDA = torch.cuda.is_available()
#: A CUDA device this machine does not have: cuda:0 without CUDA, cuda:N past the last one with it.
MISSING = f"cuda:{torch.cuda.device_count() if CUDA else 0}"

PIX2PIX = dict(ngf=8, ndf=8, batch_size=2, epochs=1)
ACGAN = dict(ngf=8, ndf=8, batch_size=8, epochs=1)
XPGAN = dict(batch_size=4, max_steps=2, r1_gamma=0.0, volume_shape=[16, 16, 8], classifier="xpgan-test-cnn")
TRAINABLE = {"pix2pix": PIX2PIX, "acgan": ACGAN, "xpgan": {"preset": "small", **XPGAN}}


@pytest.fixture(scope="module")
def ctsim():
    """ctsim's tiny preset: 28 radiographs at 32 px (covid 2, normal 13, viral 13) and their CTs."""
    return synthaug.load_images("ctsim", preset="tiny"), synthaug.load_volumes("ctsim", preset="tiny")


def one_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


# ---- --device --------------------------------------------------------------------------------------
def test_check_device_accepts_the_four_forms_and_names_the_bad_value():
    assert check_device("auto") == "auto" and check_device(" CPU ") == "cpu"
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    for bad in ("tpu", "cpu:1", "cuda:x", "cuda:-1", ""):
        with pytest.raises(SynthaugError, match=r"^device must be one of auto, cpu, cuda or cuda:N; got"):
            check_device(bad)
    with pytest.raises(SynthaugError, match=rf"^device '{MISSING}': "):
        resolve_device(MISSING)
    if CUDA:
        assert resolve_device("cuda:0") == torch.device("cuda", 0)


@pytest.mark.parametrize("command", [
    ["balance", "--synth", "duplicate", "--out", "OUT/b.h5"],
    ["fit", "--synth", "pix2pix", "--out", "OUT/fit"],
    ["train", "--classifier", "resnet50", "--data", "OUT/none.h5", "--out", "OUT/run"],
    ["demo", "--preset", "tiny", "--out", "OUT/demo"],
    ["experiment", "run", "demo", "--preset", "tiny", "--out", "OUT/exp"],
])
@pytest.mark.parametrize("device, message", [
    (MISSING, f"--device '{MISSING}': " + ("this machine has" if CUDA else "no CUDA device is available")),
    ("gpu", "--device must be one of auto, cpu, cuda or cuda:N; got 'gpu'"),
])
def test_every_command_refuses_an_unusable_device_in_one_line(tmp_path, command, device, message):
    command = [part.replace("OUT", str(tmp_path)) for part in command]
    result = CliRunner().invoke(main, [*command, "--device", device])
    assert result.exit_code == 2
    assert one_line(result).startswith(f"Error: {message}")
    assert list(tmp_path.iterdir()) == []  # refused before any work


def test_help_shows_one_device_option_everywhere():
    for command in (["balance"], ["fit"], ["train"], ["demo"], ["experiment", "run"]):
        text = CliRunner().invoke(main, [*command, "--help"]).output
        assert "--device auto|cpu|cuda[:N]" in text, command


# ---- the attribute reaches every trainable synthesizer ------------------------------------------------
@pytest.mark.parametrize("name", sorted(TRAINABLE))
def test_the_core_hands_the_device_to_each_trainable_synthesizer(ctsim, name):
    images, volumes = ctsim
    kwargs = dict(test_per_class=1, synth_options=TRAINABLE[name], volumes=volumes if name == "xpgan" else None)
    # a device this machine lacks is refused by the plugin itself, before training: it read run.device
    with pytest.raises(SynthaugError, match=rf"^device '{MISSING}': "):
        synthaug.balance(images, name, device=MISSING, **kwargs)
    # the device is the run's, not an option (the old spelling is an unknown option now)
    with pytest.raises(SynthaugError, match="unknown option 'device'"):
        synthaug.balance(images, name, **{**kwargs, "synth_options": {**TRAINABLE[name], "device": "cpu"}})
    result = synthaug.balance(images, name, device="cpu", **kwargs)
    recorded = result.config["synthesizer"]["memory"]
    assert recorded["device"] == "cpu" and recorded["estimate_bytes"] > 0
    assert "device" not in result.config["synthesizer"]["config"]  # the core's, not a synthesizer option


@pytest.mark.parametrize("name", sorted(TRAINABLE))
def test_checkpoints_whose_config_holds_a_device_still_load(ctsim, tmp_path, name):
    """acgan and xpgan saved ``device`` in their config before the core owned it; such a checkpoint
    (even one trained on a GPU) loads, and generates on this machine's device."""
    images, volumes = ctsim
    vols = volumes if name == "xpgan" else None
    fitted = synthaug.fit_synthesizer(images, name, tmp_path / "ckpt", test_per_class=1, synth_options=TRAINABLE[name],
                                      volumes=vols, device="cpu")
    path = tmp_path / "ckpt" / "synthesizer.json"
    info = json.loads(path.read_text())
    assert info["memory"]["device"] == "cpu" and info["memory"]["peak_bytes"] >= info["memory"]["start_bytes"] > 0
    info["config"]["device"] = "cuda"  # as an old acgan/xpgan checkpoint trained on a GPU wrote it
    path.write_text(json.dumps(info))
    result = synthaug.balance(images, name, test_per_class=1, synth_checkpoint=tmp_path / "ckpt", volumes=vols)
    assert result.config["synthesizer"]["memory"] == {"device": "cpu",
                                                      "estimate_bytes": info["memory"]["estimate_bytes"]}
    made = result.train.subset(np.flatnonzero(result.train.synth == name))
    assert len(made) == sum(result.deficits.values()) > 0
    assert np.isfinite(made.images).all() and made.images.min() >= 0 and made.images.max() <= 1
    assert fitted.memory["device"] == "cpu"


# ---- xpgan's preset -------------------------------------------------------------------------------
def test_xpgan_auto_preset_is_small_on_the_cpu_and_says_so(ctsim, tmp_path, capsys):
    from synthaug.kit import progress

    images, volumes = ctsim
    was = progress.is_quiet()
    progress.set_quiet(False)
    try:
        synthaug.fit_synthesizer(images, "xpgan", tmp_path / "ckpt", test_per_class=1, volumes=volumes,
                                 synth_options=XPGAN, device="cpu")
    finally:
        progress.set_quiet(was)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("xpgan: preset")]
    assert lines == ["xpgan: preset small (auto on the CPU; --synth-option preset=paper or preset=small chooses)"]
    info = json.loads((tmp_path / "ckpt" / "synthesizer.json").read_text())
    assert info["config"]["preset"] == "small" and info["state"]["preset"] == "small"
    assert info["state"]["network"]["latent_dim"] == 64 and info["state"]["network"]["channel_max"] == 32


# ---- the memory check -------------------------------------------------------------------------------
def test_saved_bytes_counts_what_backward_keeps_and_not_the_weights():
    with torch.device("meta"):
        net = torch.nn.Sequential(torch.nn.Linear(10, 20), torch.nn.ReLU(), torch.nn.Linear(20, 3))
        x = torch.zeros(8, 10)
        # the input of the first layer (8 x 10) and the ReLU's output (8 x 20, also the second layer's
        # input: one storage), float32; the weights (seen transposed) are not activations
        assert saved_bytes(lambda: net(x).sum()) == (8 * 10 + 8 * 20) * 4
        with torch.no_grad():
            assert saved_bytes(lambda: net(x).sum()) == 0
    assert memory.parameter_bytes(net) == (10 * 20 + 20 + 20 * 3 + 3) * 4


def test_available_memory_is_capped_by_the_cgroup(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24682416 kB\nMemAvailable:   20000000 kB\n")
    v2 = tmp_path / "v2"
    v2.mkdir()
    assert cpu_available_bytes(meminfo, v2) == 20000000 * 1024  # no cgroup files: MemAvailable
    (v2 / "memory.max").write_text("max\n")
    (v2 / "memory.current").write_text("1000\n")
    assert cpu_available_bytes(meminfo, v2) == 20000000 * 1024  # "max": no limit
    (v2 / "memory.max").write_text(f"{8 * 2 ** 30}\n")
    (v2 / "memory.current").write_text(f"{3 * 2 ** 30}\n")
    assert cpu_available_bytes(meminfo, v2) == 5 * 2 ** 30
    v1 = tmp_path / "v1" / "memory"
    v1.mkdir(parents=True)
    (v1 / "memory.limit_in_bytes").write_text("9223372036854771712\n")  # v1's "no limit"
    (v1 / "memory.usage_in_bytes").write_text("2052423680\n")
    assert cpu_available_bytes(meminfo, tmp_path / "v1") == 20000000 * 1024
    (v1 / "memory.limit_in_bytes").write_text(f"{4 * 2 ** 30}\n")
    assert cpu_available_bytes(meminfo, tmp_path / "v1") == 4 * 2 ** 30 - 2052423680


def test_check_memory_refuses_in_one_line_and_names_the_option(monkeypatch):
    estimate = TrainingEstimate("thing (batch 8)", "cpu", parameters=10 ** 9, activations=2 * 10 ** 9, data=10 ** 8)
    assert estimate.total == int(memory.SAFETY_FACTOR * (4 * 10 ** 9 + 2 * 10 ** 9)) + 10 ** 8 + memory.HEADROOM_BYTES
    with pytest.raises(SynthaugError) as err:
        check_memory(estimate, "use a smaller --batch-size", available=4 * 10 ** 9)
    assert str(err.value) == (f"thing (batch 8) needs about {memory.gigabytes(estimate.total)} to train on cpu; "
                              f"4.0 GB are available: use a smaller --batch-size (or SYNTHAUG_SKIP_MEMORY_CHECK=1 "
                              f"to try anyway)")
    record = check_memory(estimate, "-", available=estimate.total)  # fits exactly
    assert record["estimate_bytes"] == estimate.total and record["peak_bytes"] is None
    monkeypatch.setenv(memory.SKIP_ENV, "1")
    assert check_memory(estimate, "-", available=1)["available_bytes"] == 1  # skipped, still recorded


@pytest.mark.parametrize("name, option", [
    ("pix2pix", "use a smaller --synth-option batch_size (now 2) or --synth-option ngf=8"),
    ("acgan", "use a smaller --synth-option batch_size (now 8) or --synth-option ngf=8 ndf=8"),
    ("xpgan", "use --synth-option preset=small or a smaller --synth-option batch_size (now 4)"),
])
def test_balance_refuses_what_cannot_fit_before_training(tmp_path, monkeypatch, name, option):
    register_small_classifier()
    monkeypatch.setattr(memory, "cpu_available_bytes", lambda *a: 10 ** 6)  # 1 MB free
    options = {k: v for k, v in TRAINABLE[name].items() if k not in ("preset", "classifier")}
    args = ["balance", "--synth", name, "--data", "ctsim", "--source-option", "preset=tiny", "--test-per-class", "1",
            "--device", "cpu", "--out", str(tmp_path / "b.h5")]
    args += ["--volumes", "ctsim", "--synth-option", "preset=paper"] if name == "xpgan" else []
    for key, value in options.items():
        args += ["--synth-option", f"{key}={json.dumps(value)}"]
    trained = []
    monkeypatch.setattr(torch.optim.Adam, "step", lambda *a, **k: trained.append(1))
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    line = one_line(result)
    assert line.startswith(f"Error: {name} (") and "to train on cpu; 0.00 GB are available: " in line
    assert option in line
    assert trained == [] and not (tmp_path / "b.h5").exists()


def test_train_refuses_a_batch_that_cannot_fit_and_records_the_estimate(tmp_path, monkeypatch):
    store = shapes_store(tmp_path / "s.h5", n_train=6, n_test=2)
    args = ["train", "--classifier", "resnet50", "--data", str(store), "--epochs", "1", "--batch-size", "4",
            "--device", "cpu", "--no-augment", "--val-fraction", "0", "--out"]
    with monkeypatch.context() as patch:
        patch.setattr(memory, "cpu_available_bytes", lambda *a: 10 ** 6)
        result = CliRunner().invoke(main, [*args, str(tmp_path / "refused")])
    assert result.exit_code == 2
    assert "use a smaller --batch-size (now 4)" in one_line(result)
    assert one_line(result).startswith("Error: resnet50 (batch 4)")
    assert not (tmp_path / "refused").exists()

    result = CliRunner().invoke(main, [*args, str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    recorded = json.loads((tmp_path / "run" / "manifest.json").read_text())["memory"]
    assert recorded["device"] == "cpu" and recorded["peak_bytes"] >= recorded["start_bytes"] > 0
    from synthaug.registry import create

    model = create("classifier", "resnet50").build(1, 2)
    weights = sum(p.numel() for p in model.parameters()) * 4
    parts = recorded["parts"]
    assert parts["parameters"] == weights and parts["optimizer_states"] == 2.0
    assert recorded["estimate_bytes"] == (int(memory.SAFETY_FACTOR * (4 * weights + parts["activations"]))
                                          + parts["data"] + memory.HEADROOM_BYTES)
    assert parts["activations"] > 4 * 32 * 32 * 64 * 4  # at least the first stage's maps of 4 images


# ---- CUDA (a GPU session runs these: pytest -m cuda) ----------------------------------------------------
@pytest.mark.parametrize("name", sorted(TRAINABLE))
@pytest.mark.cuda
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
def test_trainable_synthesizers_fit_and_generate_on_cuda(ctsim, tmp_path, name):
    images, volumes = ctsim
    result = synthaug.balance(images, name, test_per_class=1, synth_options=TRAINABLE[name], device="cuda",
                              volumes=volumes if name == "xpgan" else None, out=tmp_path / "b.h5")
    assert result.config["synthesizer"]["memory"]["device"].startswith("cuda")
    made = result.train.subset(np.flatnonzero(result.train.synth == name))
    assert len(made) == sum(result.deficits.values()) > 0
    images_made = np.asarray(made.images)
    assert np.isfinite(images_made).all() and 0 <= images_made.min() and images_made.max() <= 1


@pytest.mark.cuda
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
def test_xpgan_preset_auto_is_paper_on_cuda():
    from synthaug.registry import create

    synth = create("synthesizer", "xpgan")
    assert synth.config.resolved_preset("cuda") == "paper" and synth.config.resolved_preset("cpu") == "small"


@pytest.mark.cuda
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
@pytest.mark.parametrize("compile_model", [False, True])
def test_classifier_trains_on_cuda_with_bf16_and_channels_last(tmp_path, compile_model):
    store = shapes_store(tmp_path / "s.h5", n_train=16, n_test=4)
    args = ["train", "--classifier", "resnet50", "--data", str(store), "--epochs", "2", "--batch-size", "8",
            "--device", "cuda", "--out", str(tmp_path / "run")] + (["--compile"] if compile_model else [])
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["config"]["bf16"] is True
    assert manifest["memory"]["device"] == "cuda" and 0 < manifest["memory"]["peak_bytes"]
    assert manifest["memory"]["peak_bytes"] <= manifest["memory"]["estimate_bytes"]
    assert all(np.isfinite(r["train_loss"]) for r in manifest["history"])
    best = torch.load(tmp_path / "run" / "checkpoints" / "best.pt", weights_only=True)["model"]
    assert not any(k.startswith("_orig_mod") for k in best)  # the plain model's weights, compiled or not


@pytest.mark.cuda
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
def test_torch_siddon_on_cuda_equals_the_cpu():
    from synthaug import Geometry
    from synthaug.registry import create

    rng = np.random.default_rng(0)
    hu = rng.uniform(-1000, 1000, (24, 20, 16)).astype(np.float32)
    projector = create("projector", "siddon", backend="torch")
    geometry = Geometry(height=24, width=20)
    poses = torch.tensor([[0, 0, 0, 0, 0, 0], [3, -2, 5, 4, -3, 2]], dtype=torch.float32)
    cpu = projector.project_torch(torch.from_numpy(hu), (1.5, 1.5, 2.0), geometry, poses, mode="raw")
    volume = torch.from_numpy(hu).cuda().requires_grad_(True)
    gpu = projector.project_torch(volume, (1.5, 1.5, 2.0), geometry, poses.cuda(), mode="raw")
    assert gpu.device.type == "cuda"
    np.testing.assert_allclose(gpu.detach().cpu().numpy(), cpu.numpy(), rtol=1e-4, atol=1e-4)
    gpu.sum().backward()  # differentiable on the GPU
    assert volume.grad is not None and torch.isfinite(volume.grad).all() and volume.grad.abs().sum() > 0
    on_device = create("projector", "siddon", backend="torch", device="cuda")
    from synthaug import Volume

    image = on_device.project(Volume(hu, (1.5, 1.5, 2.0)), geometry, mode="raw")
    np.testing.assert_allclose(image, cpu[0].numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.cuda
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
def test_xpgan_joint_step_runs_on_cuda():
    from synthaug_plugins.xpgan_projector.networks import NetworkConfig
    from synthaug_plugins.xpgan_projector.training import Batch, JointTrainer, ObjectiveConfig

    device = torch.device("cuda")
    net = NetworkConfig.small(16, volume_shape=(16, 16, 8))
    classifier = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                     torch.nn.Linear(4, 2))
    trainer = JointTrainer(net, classifier, ObjectiveConfig(r1_interval=1), 4, device)
    b = 4
    batch = Batch(real=torch.rand(b, 1, 16, 16, device=device), real_labels=torch.randint(2, (b,), device=device),
                  ct=torch.rand(b, 1, 16, 16, 8, device=device) * 2 - 1, drr=torch.rand(b, 1, 16, 16, device=device),
                  ct_labels=torch.randint(2, (b,), device=device))
    logs = trainer.step(batch)  # with R1 (interval 1): the double backward on the GPU too
    assert "r1" in logs and all(np.isfinite(v) for v in logs.values())
    assert all(p.device.type == "cuda" for p in trainer.generator.parameters())


def test_the_memory_example_of_plugins_md_trains_and_refuses(tiny_images, monkeypatch):
    import re
    import sys
    import types

    text = (Path(__file__).resolve().parents[1] / "docs" / "plugins.md").read_text()
    module = types.ModuleType("plugins_md_memory")
    sys.modules[module.__name__] = module
    try:
        exec(compile("\n".join(re.findall(r"```python\n(.*?)```", text, re.S)), "docs/plugins.md", "exec"),
             module.__dict__)
    finally:
        del sys.modules[module.__name__]
    measured = module.MeasuredTinyGAN(batch_size=8)
    result = synthaug.balance(tiny_images, measured, test_per_class=1, device="cpu")
    assert result.train.counts() == {"covid": 8, "normal": 8, "viral": 8}
    recorded = result.config["synthesizer"]["memory"]
    image_bytes = 16 * 16 * 4
    # G: Linear(16 + 3, 64), Linear(64, 256); D: Linear(256 + 3, 64), Linear(64, 1): 34,625 float32 weights.
    # Saved for backward at batch 8: G's input (19), ReLU output (64), tanh output (256); D's input (259),
    # its first layer's output (64, LeakyReLU's input) and LeakyReLU's output (64): 726 floats per image.
    parameters, activations = 34_625 * 4, 8 * 726 * 4
    parts = measured.memory["parts"]
    assert parts["parameters"] == parameters and parts["activations"] == activations
    assert recorded == {"device": "cpu", "estimate_bytes": int(1.5 * (4 * parameters + activations))
                        + 18 * image_bytes + memory.HEADROOM_BYTES}  # + the 18 training images it keeps
    monkeypatch.setattr(memory, "cpu_available_bytes", lambda *a: memory.HEADROOM_BYTES)
    with pytest.raises(SynthaugError, match=r"^tinygan \(batch 8\) needs about 0\.27 GB to train on cpu; 0\.27 GB are "
                                            r"available: use a smaller --synth-option batch_size \(now 8\)"):
        synthaug.balance(tiny_images, module.MeasuredTinyGAN(batch_size=8), test_per_class=1, device="cpu")


def test_the_processes_of_a_torchrun_share_the_machines_memory(monkeypatch):
    monkeypatch.setattr(memory, "cpu_available_bytes", lambda *a: 8 * 10 ** 9)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert memory.available_bytes("cpu") == 8 * 10 ** 9 and memory.fits_in_memory(4 * 10 ** 9)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # four processes of one run on this machine
    assert memory.available_bytes("cpu") == 2 * 10 ** 9
    assert memory.fits_in_memory(10 ** 9) and not memory.fits_in_memory(10 ** 9 + 1)
    record = check_memory(TrainingEstimate("net", "cpu", 10 ** 8, 0), "smaller")  # reads the share itself
    assert record["available_bytes"] == 2 * 10 ** 9
