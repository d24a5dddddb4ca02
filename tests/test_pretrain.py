"""Synthetic pretraining, then fine-tuning on the real split: an arm's ``pretrain = { epochs = N }``, and
the training option ``init`` it rests on (a run starting from an earlier run's weights)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from _specs import assert_refused_before_any_work, tiny_spec
from click.testing import CliRunner

from synthaug import SynthaugError
from synthaug.cli import main
from synthaug.experiments.spec import load_spec
from synthaug.kit.files import file_hash
from synthaug.pipeline.runs import RunPaths, read_manifest
from synthaug.pipeline.train import TrainConfig


def write(tmp_path: Path, extra: str = "pretrain = { epochs = 1 }\non = \"sampler\"") -> Path:
    return tiny_spec(tmp_path / "pretrain.toml", f'[arms.pre]\nsynthesizer = "augment"\n{extra}', epochs=2)


def run(spec: Path, out: Path):
    return CliRunner().invoke(main, ["--quiet", "experiment", "run", str(spec), "--out", str(out)])


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pretrain")
    out = tmp / "out"
    result = run(write(tmp), out)
    assert result.exit_code == 0, result.output
    return tmp, out


def test_the_first_stage_trains_on_the_synthetic_store_and_the_second_fine_tunes_on_the_real_split(pretrained):
    _, out = pretrained
    cell = out / "cells" / "pre--small--seed0"
    first, second = read_manifest(cell / "pretrain"), read_manifest(cell / "run")
    assert first["status"] == second["status"] == "finished"
    assert len(first["history"]) == 1 and len(second["history"]) == 2  # pretrain's epochs, then the recipe's
    assert first["data"]["sha256"] == file_hash(out / "stores" / "pre-seed0.h5")  # real + augment's images
    assert second["data"]["sha256"] == file_hash(out / "stores" / "unbalanced-seed0.h5")  # the real split
    assert second["config"]["init"] == str(cell / "pretrain") and second["config"]["sampler"] == "balanced"
    assert first["config"]["sampler"] == "none"  # `on` applies to the fine-tuning only
    assert second["weights"] == {"init": str(RunPaths(cell / "pretrain").best),
                                 "sha256": file_hash(RunPaths(cell / "pretrain").best)}
    with open(out / "results.csv", newline="") as fh:
        rows = {r["arm"]: r for r in csv.DictReader(fh)}
    assert rows["pre"]["status"] == "done" and rows["pre"]["n_synthetic"] == "5"  # the pretraining store's
    saved = json.loads((out / "experiment.json").read_text())["spec"]["arms"][1]
    assert saved["pretrain"] == {"epochs": 1} and saved["on"] == "sampler" and "ratio" not in saved


def test_a_cell_killed_in_its_second_stage_resumes_without_pretraining_again(pretrained):
    tmp, out = pretrained
    cell = out / "cells" / "pre--small--seed0"
    before = json.loads((cell / "cell.json").read_text())["metrics"]
    best = RunPaths(cell / "pretrain").best
    stamp = best.stat().st_mtime_ns
    (cell / "cell.json").unlink()
    shutil.rmtree(cell / "run")  # as if killed before the fine-tuning's first epoch ended
    result = run(write(tmp), out)
    assert result.exit_code == 0, result.output
    assert best.stat().st_mtime_ns == stamp  # the first stage was reused, not trained again
    assert json.loads((cell / "cell.json").read_text())["metrics"] == before


@pytest.mark.parametrize("extra, message", [
    ("pretrain = { epochs = 0 }", "arms.pre.pretrain.epochs: expected an integer >= 1; got 0"),
    ("pretrain = { epoch = 2 }", "arms.pre.pretrain: unknown key 'epoch'"),
    ("pretrain = { epochs = 1 }\non = \"duplicate\"", "arms.pre.on: the fine-tuning after pretrain is on the real"),
    ("pretrain = { epochs = 1 }\nratio = 0.5", "arms.pre: give one of ratio, pretrain"),
])
def test_a_bad_pretrain_is_refused_before_any_work(tmp_path, extra, message):
    assert_refused_before_any_work(write(tmp_path, extra), tmp_path / "out", message)


def test_init_is_for_scratch_runs_and_must_exist(tmp_path, pretrained):
    with pytest.raises(SynthaugError, match=r"init r \(weights of an earlier run\) applies to --mode scratch only"):
        TrainConfig(classifier="resnet50", mode="finetune", weights="w.pt", init="r")
    assert load_spec(write(tmp_path)).arm("pre").recipe == {"sampler": "balanced"}
    from synthaug.pipeline.train import train

    store = pretrained[1] / "stores" / "unbalanced-seed0.h5"
    with pytest.raises(SynthaugError, match=r"init .*nowhere: no finished run or checkpoint file there"):
        train(store, tmp_path / "r", TrainConfig(classifier="resnet50", init=str(tmp_path / "nowhere")))
    other = tmp_path / "other.pt"
    import torch

    torch.save({"model": {"fc.weight": torch.zeros(2, 2)}}, other)
    with pytest.raises(SynthaugError, match=r"init .*other.pt: not the weights of this classifier"):
        train(store, tmp_path / "r2", TrainConfig(classifier="resnet50", init=str(other), epochs=1,
                                                   classifier_options={"width": 0.25}))
    assert not (tmp_path / "r2" / "checkpoints").exists()
