"""The code in docs/plugins.md works: its Python blocks run in order as one module."""

import re
import sys
import types
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_plugins_md_examples_run():
    text = (DOCS / "plugins.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 5
    module = types.ModuleType("plugins_md_example")
    sys.modules[module.__name__] = module
    try:
        exec(compile("\n".join(blocks), "docs/plugins.md", "exec"), module.__dict__)
    finally:
        del sys.modules[module.__name__]
    import numpy as np

    import synthaug
    from synthaug.contract.types import Volume

    registry = synthaug.get_registry()
    net = registry.create("classifier", "tinynet").build(1, 3)
    import torch
    assert net(torch.zeros(2, 1, 16, 16)).shape == (2, 3)
    vol = Volume(np.random.default_rng(0).normal(size=(8, 9, 10)).astype(np.float32), (1, 1, 2))
    assert registry.create("projector", "mip").project(vol).shape == (1, 10, 8)
    # the kit's example: fitted, saved (tensors only) and loaded back to the same images
    import tempfile

    data = synthaug.load_images("checkers", size=16, noise=0.0)
    tiny = module.TinyGAN(epochs=2, batch_size=4)
    tiny.fit(data, run=synthaug.RunContext(device="cpu"))
    assert [h["epoch"] for h in tiny.history] == [1, 2] and all(h["D"] > 0 for h in tiny.history)
    with tempfile.TemporaryDirectory() as directory:
        tiny.save(directory)
        loaded = module.TinyGAN.load(directory)
        assert sorted(p.name for p in Path(directory).iterdir()) == ["generator.pt", "synthesizer.json"]
    first = tiny.generate(data, "fine", 3, seed=1).images
    np.testing.assert_array_equal(first, loaded.generate(data, "fine", 3, seed=1).images)
    assert loaded.config == tiny.config and first.shape == (3, 1, 16, 16) and loaded.seed == 0
    # the measured estimate counts activations; the default one does not
    measured = module.MeasuredTinyGAN(batch_size=4)
    measured.check(data, {"fine": 1})
    default = module.TinyGAN(batch_size=4)
    default.check(data, {"fine": 1})
    (_, m), (_, d) = measured._memory_checked, default._memory_checked
    assert m["parts"]["activations"] > 0 == d["parts"]["activations"]
    assert m["parts"]["parameters"] == d["parts"]["parameters"] > 0
    clean = synthaug.load_images("checkers", size=16, noise=0.0)  # the source's declared option
    assert set(np.unique(clean.images)) == {0.0, 1.0} and clean.counts() == {"fine": 5, "coarse": 20}
    import pytest
    with pytest.raises(synthaug.SynthaugError, match="option 'noise' of dataset 'checkers' must be a number; got 'x'"):
        synthaug.load_images("checkers", noise="x")


def test_every_documented_cli_command_exists():
    from synthaug.cli import main

    text = (DOCS / "cli.md").read_text()
    documented = set(re.findall(r"^## `synthaug (\w+)", text, re.M))
    assert documented and documented <= set(main.commands)


def test_plugins_options_output_in_cli_md_is_what_the_command_prints():
    from click.testing import CliRunner

    from synthaug.cli import main

    text = (DOCS / "cli.md").read_text()
    shown = re.search(r"\$ synthaug plugins --options augment\n(.*?)```", text, re.S).group(1)
    result = CliRunner().invoke(main, ["plugins", "--options", "augment"])
    assert result.exit_code == 0 and result.output == shown


# ---- the kit's example, installed as a package and run through the command line ---------------------------
def _kit_example(tmp_path: Path) -> dict:
    """docs/plugins.md's TinyGAN block written out as an installed distribution (module + dist-info with
    its entry point), as pip would leave it; the environment for a synthaug process that finds it."""
    import os

    text = (DOCS / "plugins.md").read_text()
    block = re.search(r"<!-- the kit's example[^\n]*-->\n```python\n(.*?)```", text, re.S).group(1)
    site = tmp_path / "site"
    (site / "synthaug_tinygan-1.0.dist-info").mkdir(parents=True)
    (site / "synthaug_tinygan.py").write_text(block)
    (site / "synthaug_tinygan-1.0.dist-info" / "METADATA").write_text("Name: synthaug-tinygan\nVersion: 1.0\n")
    (site / "synthaug_tinygan-1.0.dist-info" / "entry_points.txt").write_text(
        "[synthaug]\ntinygan = synthaug_tinygan\n")
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    return dict(os.environ, PYTHONPATH=path, SYNTHAUG_QUIET="1", OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")


def _weights(fitted: Path) -> str:
    import json

    return json.loads((fitted / "synthesizer.json").read_text())["weights"]["generator"]


def test_kit_example_resumes_after_sigkill_to_the_same_weights(tmp_path, kaggle_first):
    import os
    import signal
    import subprocess
    import time

    import torch

    env = _kit_example(tmp_path)
    fit = [sys.executable, "-m", "synthaug", "fit", "--synth", "tinygan", "--data", "kaggle", "--data-dir",
           str(kaggle_first), "--size", "16", "--test-per-class", "2", "--synth-option", "epochs=60",
           "--device", "cpu"]
    subprocess.run([*fit, "--out", str(tmp_path / "whole")], env=env, check=True, timeout=300)
    work = tmp_path / "work"
    state = work / "train_state.pt"
    killed = subprocess.Popen([*fit, "--work-dir", str(work), "--out", str(tmp_path / "resumed")], env=env,
                              start_new_session=True)
    deadline = time.monotonic() + 300
    while killed.poll() is None and time.monotonic() < deadline:
        if state.is_file() and torch.load(state, weights_only=True)["epoch"] >= 3:
            break
        time.sleep(0.05)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    stopped = torch.load(state, weights_only=True)["epoch"]
    assert 3 <= stopped < 60 and not (tmp_path / "resumed").exists()  # killed mid-fit, nothing half-written
    subprocess.run([*fit, "--work-dir", str(work), "--out", str(tmp_path / "resumed")], env=env, check=True,
                   timeout=300)
    assert torch.load(state, weights_only=True)["epoch"] == 60
    assert _weights(tmp_path / "resumed") == _weights(tmp_path / "whole")
    # the control, in this process: one epoch less gives other weights (the comparison can fail)
    sys.path.insert(0, str(tmp_path / "site"))
    try:
        import synthaug_tinygan

        import synthaug

        data = synthaug.load_images("kaggle", kaggle_first, size=16)
        shorter = synthaug.fit_synthesizer(data, synthaug_tinygan.TinyGAN(epochs=59), tmp_path / "shorter",
                                           test_per_class=2, device="cpu")
    finally:
        sys.path.remove(str(tmp_path / "site"))
        sys.modules.pop("synthaug_tinygan", None)
    assert shorter.hashes["generator"] != _weights(tmp_path / "whole")


@pytest.mark.slow
def test_kit_example_fits_under_two_process_torchrun(tmp_path, kaggle_first):
    import json
    import shutil
    import subprocess

    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    env = _kit_example(tmp_path)
    fit = ["-m", "synthaug", "fit", "--synth", "tinygan", "--data", "kaggle", "--data-dir", str(kaggle_first),
           "--size", "16", "--test-per-class", "2", "--synth-option", "epochs=3", "--device", "cpu"]
    done = subprocess.run([torchrun, "--standalone", "--nproc_per_node=2", "--no-python", sys.executable, *fit,
                           "--out", str(tmp_path / "two")], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    subprocess.run([sys.executable, *fit, "--out", str(tmp_path / "one")], env=env, check=True, timeout=300)
    two, one = (json.loads((tmp_path / k / "synthesizer.json").read_text()) for k in ("two", "one"))
    assert [h["processes"] for h in two["history"]] == [2, 2, 2] and [h["processes"] for h in one["history"]] == [1] * 3
    # the same first step in both (same draws and initial weights; the gradient averaged over the halves is
    # the whole batch's): the first epoch's mean D loss agrees closely, a different seed's does not
    assert abs(two["history"][0]["D"] - one["history"][0]["D"]) < 0.05
