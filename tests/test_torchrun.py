"""`synthaug train` under torchrun: 2 CPU processes (gloo) against one process, on the same store.

Two checks. (1) Exactness of the machinery: a classifier without BatchNorm, augmentation off, trains
to the same weights in 2 processes as in 1 (each rank takes half of every batch, DDP averages the
gradients: the same mean gradient up to float summation order; tolerance 1e-4 relative), with the
same losses, and only rank 0 writes. (2) A bundled BatchNorm network through the CLI: on the CPU gloo
has no SyncBatchNorm, so each rank normalises its own half batch and the runs drift apart a little;
stated tolerance: the first epoch's training loss within 0.1 of one process's, the same images seen,
the same run-directory layout. A 2-process run interrupted after its first epoch and resumed in one
process ends with the weights of a 1-process run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from _classifier_data import shapes_store

TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent))
SYNTHAUG = str(Path(sys.executable).with_name("synthaug"))
pytestmark = pytest.mark.skipif(TORCHRUN is None or not torch.distributed.is_available(),
                                reason="torch.distributed / torchrun not available")

# A script run under torchrun: registers a BatchNorm-free classifier, then calls synthaug.train.
SCRIPT = textwrap.dedent('''
    import sys

    import torch.nn as nn

    import synthaug
    from synthaug import Classifier, hookimpl
    from synthaug.kit import progress


    class Plain(Classifier):
        name = "plain"

        def build(self, in_channels, num_classes):
            return nn.Sequential(nn.Conv2d(in_channels, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 6, 3, stride=2),
                                 nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, num_classes))

        def load_weights(self, model, path):
            raise NotImplementedError


    class Hooks:
        @hookimpl
        def register_classifiers(self, register):
            register("plain", Plain, summary="conv net without BatchNorm (torchrun test)")


    def stop_after(epoch):
        def callback(record):
            if record["epoch"] == epoch:
                raise SystemExit(3)  # an interruption after this epoch's checkpoint
        return callback


    progress.set_quiet(True)
    synthaug.register_plugin(Hooks(), "plain-test")
    store, out, stop, resume = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "resume"
    synthaug.train(store, out, classifier="plain", epochs=2, batch_size=8, augment=False, device="cpu", lr=0.01,
                   resume=resume, on_epoch_end=stop_after(stop) if stop else None)
''')


def env():
    return dict(os.environ, OMP_NUM_THREADS="1", SYNTHAUG_QUIET="1", PYTHONWARNINGS="ignore")


def torchrun(*args, nproc=2, ok=True):
    done = subprocess.run([TORCHRUN, "--standalone", f"--nproc_per_node={nproc}", *args], env=env(),
                          capture_output=True, text=True, timeout=300)
    assert (done.returncode == 0) == ok, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return shapes_store(tmp_path_factory.mktemp("ddp") / "s.h5", n_train=16, n_test=6)


def history(run):
    return json.loads((run / "manifest.json").read_text())["history"]


def weights(run):
    return torch.load(run / "checkpoints" / "last.pt", weights_only=True)["model"]


def test_two_processes_train_the_same_weights_as_one_and_resume_in_one(store, tmp_path):
    script = tmp_path / "plain.py"
    script.write_text(SCRIPT)
    one, two, mixed = tmp_path / "one", tmp_path / "two", tmp_path / "mixed"
    subprocess.run([sys.executable, str(script), str(store), str(one), "0", "new"], env=env(), check=True, timeout=300)
    torchrun(str(script), str(store), str(two), "0", "new")
    for a, b in zip(history(one), history(two)):
        assert a["processes"] == 1 and b["processes"] == 2
        assert round(a["train_images_per_s"] * a["train_seconds"]) == round(b["train_images_per_s"] * b["train_seconds"])
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-4)
    w1, w2 = weights(one), weights(two)
    assert list(w1) == list(w2)  # the unwrapped model's keys: no "module." prefix from DDP
    for key in w1:
        np.testing.assert_allclose(w2[key].numpy(), w1[key].numpy(), rtol=1e-4, atol=1e-6)
    assert sorted(p.name for p in two.rglob("*")) == sorted(p.name for p in one.rglob("*"))  # rank 0 alone wrote
    # Interrupted after epoch 1 in 2 processes, resumed in 1: the same run as one process throughout.
    torchrun(str(script), str(store), str(mixed), "1", "new", ok=False)
    assert [h["processes"] for h in history(mixed)] == [2]
    subprocess.run([sys.executable, str(script), str(store), str(mixed), "0", "resume"], env=env(), check=True,
                   timeout=300)
    assert [h["processes"] for h in history(mixed)] == [2, 1]
    assert history(mixed)[1]["train_loss"] == pytest.approx(history(one)[1]["train_loss"], rel=1e-4)
    for key, value in weights(one).items():
        np.testing.assert_allclose(weights(mixed)[key].numpy(), value.numpy(), rtol=1e-4, atol=1e-6)


def test_the_cli_trains_a_batchnorm_network_in_two_processes(store, tmp_path):
    common = ["train", "--data", str(store), "--classifier", "densenet121", "--batch-size", "8", "--device", "cpu"]
    one = subprocess.run([SYNTHAUG, *common, "--epochs", "1", "--out", str(tmp_path / "one")], env=env(),
                         capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    done = torchrun(SYNTHAUG, *common, "--epochs", "1", "--out", str(tmp_path / "two"))
    assert done.stdout.count("run: ") == 1  # rank 0 evaluates and reports; the other rank says nothing
    a, b = history(tmp_path / "one")[0], history(tmp_path / "two")[0]
    assert b["processes"] == 2 and abs(a["train_loss"] - b["train_loss"]) < 0.1
    assert round(a["train_images_per_s"] * a["train_seconds"]) == round(b["train_images_per_s"] * b["train_seconds"])
    assert {p.name for p in (tmp_path / "two").iterdir()} == {p.name for p in (tmp_path / "one").iterdir()}
    metrics = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert metrics["n"] == 12 and set(metrics) == set(json.loads((tmp_path / "one" / "metrics.json").read_text()))


def test_commands_that_do_not_split_their_work_refuse_to_run_under_torchrun(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from synthaug.cli import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    result = CliRunner().invoke(main, ["balance", "--data", "ctsim", "--out", str(tmp_path / "s.h5")])
    assert result.exit_code == 2 and not list(tmp_path.iterdir())
    assert "`synthaug balance` runs in one process: start it without torchrun" in result.output
    assert CliRunner().invoke(main, ["plugins"]).exit_code == 0  # read-only commands are fine
