"""The shared training loop: outputs of a run, transfer schedule, exact resume, learning, errors, CLI."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from synthaug.cli import main
from synthaug.errors import SynthaugError
from synthaug.kit.files import file_hash
from synthaug.pipeline.evaluate import evaluate
from synthaug.pipeline.split import validation_split
from synthaug.pipeline.store import write_store
from synthaug.pipeline.train import TrainConfig, build_augmentation, epoch_order
from synthaug.pipeline.train import train as train_only

from _classifier_data import shapes, shapes_store, torchvision_densenet121_shapes, write_state_dict


def train(*args, **kwargs):
    """train, then evaluate on the store's test split (what `synthaug train` does)."""
    run = train_only(*args, **kwargs)
    evaluate(run)
    return run

TINY = {"width": 0.25}  # quarter-width networks: the loop is the same, the test takes seconds


class Interrupted(Exception):
    pass


def stop_after(epoch):
    def callback(record):
        if record["epoch"] == epoch:
            raise Interrupted
    return callback


def last_model(run):
    return torch.load(run / "checkpoints" / "last.pt", weights_only=True)["model"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return shapes_store(tmp_path_factory.mktemp("data") / "shapes.h5", n_train=6, n_test=3)


@pytest.mark.parametrize("name, optimizer", [("resnet50", "adam"), ("densenet121", "sgd")])
def test_one_epoch_writes_a_complete_run(store, tmp_path, name, optimizer):
    keep = optimizer == "sgd"  # a finished run keeps its optimizer state only when asked
    run = train(store, tmp_path / "run", classifier=name, epochs=1, batch_size=4, optimizer=optimizer,
                classifier_options=TINY, keep_optimizer=keep)
    if keep:
        assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["optimizer"]["param_groups"][0].get(
            "momentum") == 0.9
    names = {p.name for p in run.iterdir()}
    required = {"manifest.json", "history.csv", "metrics.json", "confusion.png", "roc.png", "curves.png", "checkpoints"}
    assert required <= names and names - required <= {"predictions.csv"}  # evaluate's per-image file
    assert {p.name for p in (run / "checkpoints").iterdir()} == ({"last.pt", "best.pt"} if keep else {"best.pt"})
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["weights"] is None
    assert manifest["data"]["sha256"] == file_hash(store)
    assert manifest["data"]["train"] + manifest["data"]["val"] == 12
    assert manifest["data"]["val"] == 2  # 10 % of 6 per class, at least one each
    assert manifest["config"]["classifier"] == name and manifest["versions"]["torch"] == torch.__version__
    record = manifest["history"][0]
    assert record["stage"] == "scratch" and np.isfinite(record["train_loss"]) and record["val_macro_f1"] is not None
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"accuracy", "macro_f1", "per_class", "confusion", "roc_auc", "weighted_f1", "sensitivity",
            "specificity"} <= set(metrics)
    assert np.sum(metrics["confusion"]) == metrics["n"] == 6  # the real test split, 3 per class
    assert set(metrics["per_class"]) == {"covid", "normal"}


def test_learns_an_easy_two_class_problem(tmp_path):
    # Bright disc vs bright bar, 32 px, 40 test images: chance is 0.5. The last epoch is measured
    # (val_fraction=0): with a 10% validation split (8 images) its macro-F1 reached 1.0 in an early epoch
    # and that half-trained epoch was kept, so the test accuracy swung from 0.45 to 1.0 with the seed and
    # the thread count (0.825 made the suite red). Measured like this (seeds 0-7 at 1 torch thread, 0-3 at
    # 2): accuracy 0.875 to 1.0, ROC-AUC 0.9975 to 1.0; the bounds below leave 5 images of margin under
    # the worst of those runs and still lie 5 standard deviations of chance (0.079 at 40 images) above 0.5.
    store = shapes_store(tmp_path / "easy.h5", n_train=40, n_test=20)
    run = train(store, tmp_path / "run", classifier="densenet121", epochs=6, batch_size=16, classifier_options=TINY,
                val_fraction=0)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["accuracy"] >= 0.75 and metrics["roc_auc"]["macro"] >= 0.9


def test_resume_after_interruption_equals_uninterrupted(store, tmp_path):
    options = dict(classifier="resnet50", epochs=3, batch_size=4, scheduler="cosine", classifier_options=TINY,
                   keep_optimizer=True)
    whole = train(store, tmp_path / "whole", **options)
    with pytest.raises(Interrupted):
        train(store, tmp_path / "cut", on_epoch_end=stop_after(1), **options)
    assert json.loads((tmp_path / "cut" / "manifest.json").read_text())["status"] == "running"
    resumed = train(store, tmp_path / "cut", resume=True, **options)
    a, b = last_model(whole), last_model(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    ha = json.loads((whole / "manifest.json").read_text())["history"]
    hb = json.loads((resumed / "manifest.json").read_text())["history"]
    assert [h["train_loss"] for h in ha] == [h["train_loss"] for h in hb]
    assert json.loads((whole / "metrics.json").read_text())["confusion"] == \
        json.loads((resumed / "metrics.json").read_text())["confusion"]


def test_transfer_schedule_frozen_then_last_block(tmp_path):
    store = shapes_store(tmp_path / "s.h5", n_train=4, n_test=2)
    state = write_state_dict(tmp_path / "densenet121.pth", torchvision_densenet121_shapes())
    from synthaug_plugins.densenet121.network import torchvision_to_monai

    expected = {torchvision_to_monai(k): v for k, v in state.items()}
    expected["features.conv0.weight"] = state["features.conv0.weight"].sum(1, keepdim=True)  # grey store
    expected = {k: v for k, v in expected.items() if not k.startswith("class_layers.")}
    seen = {}

    def snapshot(record):
        seen[record["epoch"]] = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)["model"]

    run = train(store, tmp_path / "run", classifier="densenet121", mode="transfer",
                weights=str(tmp_path / "densenet121.pth"), epochs=2, batch_size=4, on_epoch_end=snapshot)
    manifest = json.loads((run / "manifest.json").read_text())
    assert [h["stage"] for h in manifest["history"]] == ["frozen", "finetune"]
    assert [h["lr"] for h in manifest["history"]] == [1e-3, 1e-5]
    assert manifest["weights"]["missing"] == ["class_layers.out.bias", "class_layers.out.weight"]
    assert len(manifest["weights"]["matched"]) == len(expected)
    last_block = ("features.denseblock4.", "features.norm5.")
    frozen, tuned = seen[1], seen[2]
    # stage 1: the whole backbone, BatchNorm statistics included, is exactly the file's
    assert all(torch.equal(frozen[k], v) for k, v in expected.items() if not k.endswith("num_batches_tracked"))
    # stage 2: the last block moved, everything before it did not
    assert all(torch.equal(tuned[k], v) for k, v in expected.items()
               if not k.startswith(last_block) and not k.endswith("num_batches_tracked"))
    assert not torch.equal(tuned["features.denseblock4.denselayer16.layers.conv2.weight"],
                           expected["features.denseblock4.denselayer16.layers.conv2.weight"])


@pytest.fixture(scope="module")
def densenet_weights(tmp_path_factory):
    """A full-size torchvision-format DenseNet-121 state dict (random values) and the dict itself."""
    path = tmp_path_factory.mktemp("weights") / "densenet121.pth"
    return path, write_state_dict(path, torchvision_densenet121_shapes())


def test_finetune_loads_the_weights_and_trains_every_parameter_with_cosine_to_zero(densenet_weights, tmp_path):
    # quan2021's DenseNet121 baseline: ImageNet weights, the whole network from the first epoch at lr,
    # cosine annealing over all epochs, augmentation off
    path, state = densenet_weights
    from synthaug.registry import create
    from synthaug_plugins.densenet121.network import torchvision_to_monai

    store = shapes_store(tmp_path / "s.h5", n_train=4, n_test=2)  # 6 train + 2 val: one batch of 8 = one step
    expected = {torchvision_to_monai(k): v for k, v in state.items()}
    expected["features.conv0.weight"] = state["features.conv0.weight"].sum(1, keepdim=True)  # grey store
    expected = {k: v for k, v in expected.items() if not k.startswith("class_layers.")}
    parameters = {name for name, _ in create("classifier", "densenet121").build(1, 2).named_parameters()}
    seen = {}

    def snapshot(record):
        seen[record["epoch"]] = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)

    lr = 1e-4
    run = train(store, tmp_path / "run", classifier="densenet121", mode="finetune", weights=str(path), epochs=3,
                batch_size=8, lr=lr, scheduler="cosine", augment=False, on_epoch_end=snapshot)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["data"]["train"] == 6
    assert [h["stage"] for h in manifest["history"]] == ["finetune-all"] * 3
    # the rate each epoch trained at: lr * (1 + cos(pi * k / 3)) / 2, then 0 after the last epoch
    assert [h["lr"] for h in manifest["history"]] == pytest.approx([lr, 0.75 * lr, 0.25 * lr])
    assert seen[3]["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.0, abs=1e-12)
    assert seen[1]["scheduler"]["T_max"] == 3  # one cosine period over all epochs
    weights = manifest["weights"]
    assert weights["path"] == str(path) and weights["sha256"] == file_hash(path)
    assert weights["missing"] == ["class_layers.out.bias", "class_layers.out.weight"] and not weights["unexpected"]
    assert len(weights["matched"]) == len(expected)
    after_one_step = seen[1]["model"]
    for key, loaded in expected.items():
        if key.endswith("num_batches_tracked"):
            continue
        moved = after_one_step[key] - loaded
        assert not torch.equal(after_one_step[key], loaded), f"{key} did not train"  # nothing frozen
        if key in parameters:  # started from the file: one Adam step moves each value by at most lr
            assert moved.abs().max() <= 1.01 * lr, key
    assert {k for k in parameters if k.startswith("class_layers.")} == {"class_layers.out.weight",
                                                                        "class_layers.out.bias"}
    assert isinstance(build_augmentation(TrainConfig(augment=False)), torch.nn.Identity)
    assert not isinstance(build_augmentation(TrainConfig()), torch.nn.Identity)


def test_helpers_split_and_order():
    labels = np.array([0] * 20 + [1] * 3)
    real = np.array(["real"] * 23)
    split = validation_split(labels, real, np.arange(23).astype(str), 0.1, seed=0)
    assert np.bincount(labels[split.val]).tolist() == [2, 1]
    assert sorted(np.r_[split.train, split.val].tolist()) == list(range(23))
    assert (split.val_patients, split.withheld) == (3, 0)
    assert validation_split(labels, real, np.arange(23).astype(str), 0.0, seed=0).val.size == 0


def test_validation_is_real_whole_patients_and_nothing_made_from_it_trains():
    # class 0: 12 real images of 6 patients (2 each); class 1: 4 real (patients q0..q3) and
    # 8 synthetic duplicates, two made from each class-1 patient (they carry the source's patient id)
    labels = np.array([0] * 12 + [1] * 4 + [1] * 8)
    synth = np.array(["real"] * 16 + ["duplicate"] * 8)
    patients = np.array([f"p{i // 2}" for i in range(12)] + [f"q{i}" for i in range(4)]
                        + [f"q{i // 2}" for i in range(8)])
    split = validation_split(labels, synth, patients, 0.25, seed=3)
    val_patients = set(patients[split.val])
    assert (synth[split.val] == "real").all()
    assert np.bincount(labels[split.val]).tolist() == [4, 1]  # 25 % of the real images, whole patients
    assert not val_patients & set(patients[split.train])  # no patient, and no copy of one, on both sides
    assert split.withheld == 2 and len(split.train) + len(split.val) + split.withheld == len(labels)
    assert split.val_patients == 3
    # never a class's last patient: one real patient per class leaves that class out of validation
    lone = validation_split(np.array([0, 0, 1]), np.array(["real"] * 3), np.array(["a", "b", "c"]), 0.9, 0)
    assert len(lone.val) == 1 and lone.val[0] in (0, 1) and 2 in lone.train and len(lone.train) == 2
    assert epoch_order(np.arange(9), 0, 1, 4) == epoch_order(np.arange(9), 0, 1, 4)
    assert len(epoch_order(np.arange(9), 0, 1, 4)) == 8  # a lone last sample would break BatchNorm
    assert TrainConfig(mode="transfer", weights="w", epochs=60).stage_two_epochs == 10  # liang2021: 50 + 10
    assert TrainConfig(mode="transfer", weights="w", epochs=1).stage(1) == "frozen"


def test_bad_inputs(store, tmp_path):
    train_only = write_store(tmp_path / "train_only.h5", {"train": shapes(2)})
    with pytest.raises(SynthaugError,
                       match="train_only.h5: training needs a 'train' and a 'test' split; the store has train"):
        train(train_only, tmp_path / "a", epochs=1)
    with pytest.raises(SynthaugError, match="unknown classifier 'resnet'"):
        train(store, tmp_path / "b", classifier="resnet", epochs=1)
    with pytest.raises(SynthaugError, match="mode 'transfer' needs --weights PATH"):
        TrainConfig(mode="transfer")
    with pytest.raises(SynthaugError, match="mode 'finetune' needs --weights PATH"):
        TrainConfig(mode="finetune")
    with pytest.raises(SynthaugError, match="--weights w.pth applies to --mode transfer or finetune only"):
        TrainConfig(weights="w.pth")
    with pytest.raises(SynthaugError, match="finetune_epochs applies to --mode transfer only"):
        TrainConfig(mode="finetune", weights="w.pth", finetune_epochs=2)
    with pytest.raises(SynthaugError, match="mode must be one of scratch, transfer, finetune; got 'imagenet'"):
        TrainConfig(mode="imagenet")
    with pytest.raises(SynthaugError, match="nowhere.pth: no such weights file"):
        train(store, tmp_path / "w", classifier="resnet50", mode="finetune", weights=str(tmp_path / "nowhere.pth"))
    with pytest.raises(SynthaugError, match="positive class 'pneumonia' is not one of covid, normal"):
        train(store, tmp_path / "p", classifier="resnet50", positive_class="pneumonia")
    assert not (tmp_path / "w").exists() and not (tmp_path / "p").exists()  # refused before anything was written
    with pytest.raises(SynthaugError, match="optimizer must be one of adam, sgd; got 'rmsprop'"):
        TrainConfig(optimizer="rmsprop")
    run = train(store, tmp_path / "run", classifier="resnet50", epochs=1, batch_size=4, classifier_options=TINY)
    with pytest.raises(SynthaugError, match="already holds a run; pass --resume"):
        train(store, run, classifier="resnet50", epochs=1, batch_size=4, classifier_options=TINY)
    with pytest.raises(SynthaugError, match=r"--resume .*run: option lr was 0.001 in that run; got 0.01"):
        train(store, run, resume=True, classifier="resnet50", epochs=1, batch_size=4, lr=0.01, classifier_options=TINY)
    with pytest.raises(SynthaugError, match="no checkpoint there"):
        train(store, tmp_path / "never", resume=True)


def test_cli_train_resume_and_evaluate(store, tmp_path):
    runner = CliRunner()
    out = tmp_path / "run"
    args = ["--quiet", "train", "--classifier", "densenet121", "--data", str(store), "--epochs", "1",
            "--batch-size", "4", "--out", str(out)]
    # the CLI has no width option: the standard network, on 32 px images
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "| Precision |" in result.output and "accuracy" in result.output
    again = runner.invoke(main, ["--quiet", "train", "--resume", "--out", str(out), "--lr", "0.1"])
    assert again.exit_code == 2 and "option lr was 0.001 in that run; got 0.1" in again.output
    same = runner.invoke(main, ["--quiet", "train", "--resume", "--out", str(out)])  # finished: re-evaluates
    assert same.exit_code == 0, same.output
    evaluated = runner.invoke(main, ["--quiet", "evaluate", "--run", str(out), "--split", "train"])
    assert evaluated.exit_code == 0, evaluated.output
    metrics = json.loads((out / "metrics-train-shapes.json").read_text())
    assert metrics["n"] == 12 and metrics["split"] == "train"
    bad = runner.invoke(main, ["--quiet", "evaluate", "--run", str(out), "--split", "validation"])
    assert bad.exit_code == 2 and "no split 'validation'" in bad.output
    missing = runner.invoke(main, ["--quiet", "train", "--data", str(store), "--out", str(tmp_path / "x")])
    assert missing.exit_code == 2 and "missing --classifier NAME" in missing.output
    other = shapes_store(tmp_path / "other.h5", n_train=2, n_test=2, classes=("bacterial", "normal"))
    wrong = runner.invoke(main, ["--quiet", "evaluate", "--run", str(out), "--data", str(other)])
    assert wrong.exit_code == 2
    assert "other.h5: classes ['bacterial', 'normal'] differ from the run's ['covid', 'normal']" in wrong.output
    nothing = runner.invoke(main, ["--quiet", "evaluate", "--run", str(tmp_path)])
    assert nothing.exit_code == 2 and "not a training run (no manifest.json)" in nothing.output


def test_device_choice():
    from synthaug.kit.device import resolve_device

    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(SynthaugError, match="device must be one of auto, cpu, cuda or cuda:N; got 'tpu'"):
        TrainConfig(device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(SynthaugError, match="device 'cuda': no CUDA device is available"):
            resolve_device("cuda")


def test_cli_offers_the_quan2021_recipe_and_its_options_reach_the_manifest(densenet_weights, store, tmp_path):
    path, _ = densenet_weights
    runner = CliRunner()
    out = tmp_path / "run"
    result = runner.invoke(main, [
        "--quiet", "train", "--classifier", "densenet121", "--data", str(store), "--mode", "finetune",
        "--weights", str(path), "--lr", "0.002", "--scheduler", "cosine", "--no-augment", "--epochs", "1",
        "--batch-size", "4", "--optimizer", "sgd", "--positive-class", "normal", "--val-fraction", "0.25",
        "--out", str(out)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    config = manifest["config"]
    assert {k: config[k] for k in ("mode", "weights", "lr", "scheduler", "augment", "optimizer", "positive_class",
                                   "val_fraction", "epochs", "batch_size", "finetune_epochs")} == {
        "mode": "finetune", "weights": str(path), "lr": 0.002, "scheduler": "cosine", "augment": False,
        "optimizer": "sgd", "positive_class": "normal", "val_fraction": 0.25, "epochs": 1, "batch_size": 4,
        "finetune_epochs": None}
    assert manifest["weights"]["sha256"] == file_hash(path) and manifest["history"][0]["stage"] == "finetune-all"
    assert json.loads((out / "metrics.json").read_text())["positive_class"] == "normal"
    # resume keeps the run's recipe: a repeated option with another value is refused, naming it
    again = runner.invoke(main, ["--quiet", "train", "--resume", "--out", str(out), "--augment"])
    assert again.exit_code == 2 and "option augment was False in that run; got True" in again.output
    same = runner.invoke(main, ["--quiet", "train", "--resume", "--out", str(out), "--scheduler", "cosine"])
    assert same.exit_code == 0, same.output
    base = ["--quiet", "train", "--classifier", "densenet121", "--data", str(store), "--epochs", "1"]
    for extra, message in [
        (["--mode", "finetune"], "mode 'finetune' needs --weights PATH"),
        (["--positive-class", "pneumonia"], "positive class 'pneumonia' is not one of covid, normal"),
        (["--val-fraction", "1"], "val_fraction must lie in [0, 1); got 1.0"),
        (["--finetune-epochs", "1"], "finetune_epochs applies to --mode transfer only"),
        (["--mode", "finetune", "--weights", str(tmp_path / "none.pth")], "none.pth: no such weights file"),
    ]:
        refused = runner.invoke(main, [*base, *extra, "--out", str(tmp_path / "refused")])
        lines = [line for line in refused.output.splitlines() if line.strip()]
        assert refused.exit_code == 2 and len(lines) == 1 and message in lines[0], (extra, refused.output)
        assert not (tmp_path / "refused").exists()
    bad_choice = runner.invoke(main, [*base, "--scheduler", "step", "--out", str(tmp_path / "refused")])
    assert bad_choice.exit_code == 2 and "'step' is not one of 'none', 'cosine'" in bad_choice.output


def test_steps_per_epoch_caps_the_batches_of_an_epoch(store, tmp_path):
    run = train_only(store, tmp_path / "run", classifier="resnet50", epochs=1, batch_size=4, steps_per_epoch=1,
                     classifier_options=TINY)
    record = json.loads((run / "manifest.json").read_text())["history"][0]
    assert round(record["train_images_per_s"] * record["train_seconds"]) == 4  # one batch of 4 of the 10
    with pytest.raises(SynthaugError, match="steps_per_epoch must be at least 1; got 0"):
        TrainConfig(classifier="resnet50", steps_per_epoch=0)


def test_cli_train_shows_trainconfigs_own_defaults_and_choices():
    """`synthaug train`'s options restate nothing: every default and choice is TrainConfig's, so a new
    default is written once (and --help shows it)."""
    from dataclasses import fields

    from synthaug.cli.train import _CONFIG_OPTIONS
    from synthaug.pipeline import train as train_module

    command = main.commands["train"]
    options = {p.name: p for p in command.params}
    defaults = {f.name: f.default for f in fields(TrainConfig)}
    assert set(_CONFIG_OPTIONS) <= set(options)
    for option, field_name in _CONFIG_OPTIONS.items():
        assert options[option].default == defaults[field_name], option
    for option, allowed in (("mode", train_module.MODES), ("optimizer", train_module.OPTIMIZERS),
                            ("scheduler", train_module.SCHEDULERS), ("log", train_module.LOGS),
                            ("sampler", train_module.SAMPLERS)):
        assert tuple(options[option].type.choices) == allowed, option
