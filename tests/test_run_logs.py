"""Runs people can watch and keep: per-epoch lines on a non-terminal stderr, history.csv, TensorBoard,
ROC curves, slim finished runs, and every training setting from a --config file or --train-option."""

import csv
import json
import re
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from synthaug.cli import main
from synthaug.errors import SynthaugError
from synthaug.kit import progress
from synthaug.pipeline.metrics import binary_roc_auc, roc_curve
from synthaug.pipeline.train import HISTORY_COLUMNS, train

from _classifier_data import shapes_store


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return shapes_store(tmp_path_factory.mktemp("data") / "shapes.h5", n_train=6, n_test=3)


def test_train_from_a_config_file_shows_each_epoch_and_keeps_history_and_tensorboard(store, tmp_path, monkeypatch):
    monkeypatch.setattr(progress, "_quiet", False)  # the lines a user sees (other test modules silence them)
    config = tmp_path / "train.toml"
    config.write_text('classifier = "resnet50"\nepochs = 2\nbatch_size = 4\nscheduler = "cosine"\n'
                      'hflip_p = 0.25\n[classifier_options]\nwidth = 0.25\n')
    run = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", "--data", str(store), "--config", str(config), "--train-option",
                                       "rotation_degrees=3", "--train-option", "weight_decay=1e-4", "--epochs", "2",
                                       "--log", "tensorboard", "--device", "cpu", "--out", str(run)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((run / "manifest.json").read_text())
    settings = manifest["config"]
    assert (settings["classifier"], settings["scheduler"], settings["hflip_p"], settings["rotation_degrees"],
            settings["weight_decay"], settings["classifier_options"]) == ("resnet50", "cosine", 0.25, 3, 1e-4,
                                                                          {"width": 0.25})
    history, best = manifest["history"], manifest["best"]
    # one line per epoch on stderr (not a terminal here), with the measures the manifest keeps
    lines = [line for line in result.stderr.splitlines()
             if re.match(r"resnet50 epoch \d/2 \(scratch\): train loss", line)]
    assert len(lines) == 2
    for line, r in zip(lines, history):
        assert f"train loss {r['train_loss']:.4f} acc {r['train_accuracy']:.3f}" in line
        assert f"val loss {r['val_loss']:.4f} acc {r['val_accuracy']:.3f} macro-F1 {r['val_macro_f1']:.3f}" in line
        assert re.search(r"\| best macro-F1 \d\.\d{3} \(epoch [12]\) \| \d+\.\d s$", line)
    assert f"best macro-F1 {best['val_macro_f1']:.3f} (epoch {best['epoch']})" in lines[-1]
    # history.csv: the manifest's history as a table
    with open(run / "history.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == HISTORY_COLUMNS and [int(r["epoch"]) for r in rows] == [1, 2]
    for row, r in zip(rows, history):
        assert float(row["train_loss"]) == pytest.approx(r["train_loss"], rel=1e-5)
        assert float(row["val_macro_f1"]) == pytest.approx(r["val_macro_f1"], rel=1e-5)
    assert int(rows[-1]["best_epoch"]) == best["epoch"]
    # TensorBoard events hold the same numbers
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("loss/train")] == \
        [(r["epoch"], pytest.approx(r["train_loss"], rel=1e-6)) for r in history]
    assert [e.step for e in events.Scalars("macro_f1/val")] == [1, 2]
    # a finished run keeps the best weights, not the optimizer state; evaluate drew the ROC curves
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.pt"]
    assert (run / "roc.png").stat().st_size > 0 and (run / "confusion.png").stat().st_size > 0


@pytest.mark.parametrize("config_text, args, message", [
    ('classifier = "resnet50"\nepoch = 2\n', [], "train.toml: unknown training option 'epoch'; options are "),
    ('classifier = "resnet50"\nepochs = "two"\n', [],
     "train.toml: option 'epochs' of training must be an int; got 'two'"),
    ('classifier = "resnet50"\nepochs = [2\n', [], "train.toml: not valid TOML"),
    ('classifier = "resnet50"\n', ["--train-option", "lr=fast"],
     "option 'lr' of training must be a number; got 'fast'"),
    ('classifier = "resnet50"\n', ["--train-option", "scheduler=linear"],
     "scheduler must be one of none, cosine; got 'linear'"),
    ('classifier = "resnet50"\n', ["--train-option", "epochs"], "--train-option 'epochs': expected KEY=VALUE"),
])
def test_bad_settings_are_one_line_errors_before_any_work(store, tmp_path, config_text, args, message):
    config = tmp_path / "train.toml"
    config.write_text(config_text)
    result = CliRunner().invoke(main, ["--quiet", "train", "--data", str(store), "--config", str(config), *args,
                                       "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_finished_full_resnet50_run_is_slim_and_resume_has_nothing_left_to_do(store, tmp_path):
    options = dict(classifier="resnet50", epochs=1, batch_size=4, steps_per_epoch=1, device="cpu")
    run = train(store, tmp_path / "run", **options)  # full width: 23.5 M parameters
    size = sum(p.stat().st_size for p in run.rglob("*") if p.is_file())
    best = (run / "checkpoints" / "best.pt").stat().st_size
    assert best > 90e6 and size < 120e6 and not (run / "checkpoints" / "last.pt").exists()
    manifest = (run / "manifest.json").read_text()
    assert train(store, run, resume=True, **options) == run  # finished: nothing to continue, nothing changed
    assert (run / "manifest.json").read_text() == manifest
    kept = train(store, tmp_path / "kept", keep_optimizer=True, **options)
    state = torch.load(kept / "checkpoints" / "last.pt", weights_only=True)
    assert len(state["optimizer"]["state"]) > 0  # Adam's moments: what makes last.pt larger than best.pt
    assert (kept / "checkpoints" / "last.pt").stat().st_size > 2 * best


def test_log_tensorboard_without_the_package_is_refused_before_any_work(store, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # an import of it raises ImportError
    with pytest.raises(SynthaugError, match="--log tensorboard needs the tensorboard package"):
        train(store, tmp_path / "run", classifier="resnet50", epochs=1, log="tensorboard")
    assert not (tmp_path / "run").exists()


def test_roc_curve_area_is_the_auc_with_ties():
    rng = np.random.default_rng(3)
    positive = rng.random(200) < 0.3
    scores = np.round(rng.random(200) + 0.4 * positive, 1)  # coarse scores: many ties
    fpr, tpr = roc_curve(positive, scores)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert np.trapezoid(tpr, fpr) == pytest.approx(binary_roc_auc(positive, scores), abs=1e-12)
    assert len(fpr) == len(np.unique(scores)) + 1  # one point per distinct threshold
    assert roc_curve(np.ones(4, bool), np.arange(4)) is None
