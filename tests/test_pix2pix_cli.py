"""pix2pix through the CLI: `synthaug balance --synth pix2pix`, `synthaug fit`, and `--synth-checkpoint` reuse."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from test_pix2pix import paired_set

import synthaug
from synthaug import read_store
from synthaug.cli import main
from synthaug.pipeline.store import write_store

SMALL = ("--synth-option", "ngf=8", "--synth-option", "ndf=8")


def run(*args):
    return CliRunner().invoke(main, ["--quiet", *map(str, args)])


def store_config(path):
    with h5py.File(path) as f:
        return json.loads(f.attrs["config"])


def assert_traceable(train):
    """Every synthetic image names a real source image of the training split and carries its origin."""
    synthetic = np.flatnonzero(train.synth == "pix2pix")
    assert len(synthetic) > 0
    for i in synthetic:
        j = train.source_index[i]
        assert train.synth[j] == "real" and train.origin[i] == train.origin[j]
        translated = train.class_names[train.labels[i]] != "normal"
        assert train.class_names[train.labels[j]] == "normal"
        assert (train.extras["checkpoint"][i] != b"duplicate") == translated


@pytest.mark.parametrize("layout", ["kaggle_first", "kaggle_later"])
def test_balance_with_pix2pix_on_both_kaggle_layouts(tmp_path, request, layout):
    out = tmp_path / "balanced.h5"
    result = run("balance", "--synth", "pix2pix", "--data", "kaggle", "--data-dir", request.getfixturevalue(layout),
                 "--size", 32, "--test-per-class", 3, "--synth-option", "epochs=1", *SMALL, "--out", out, "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["splits"]["train"]["classes"] == {"covid": 8, "normal": 8, "viral": 8}
    assert info["splits"]["train"]["synthetic"] == {"covid": 5, "normal": 1, "viral": 0}  # = the deficits
    train = read_store(out, "train")
    assert_traceable(train)
    synth = store_config(out)["synthesizer"]
    assert synth["pairing"] == "random" and set(synth["checkpoints"]) == {"covid"}
    covid = np.flatnonzero((train.synth == "pix2pix") & (train.labels == 0))
    assert {train.extras["checkpoint"][i].decode() for i in covid} == {synth["checkpoints"]["covid"][:16]}


def test_fit_then_balance_reuses_the_checkpoint(tmp_path, kaggle_first):
    fitted = tmp_path / "p2p"
    data = ("--data", "kaggle", "--data-dir", kaggle_first, "--size", 32, "--test-per-class", 3)
    result = run("fit", "--synth", "pix2pix", *data, "--epochs", 2, "--batch-size", 2, "--pairing", "nearest",
                 *SMALL, "--out", fitted)
    assert result.exit_code == 0, result.output
    info = json.loads((fitted / "synthesizer.json").read_text())
    assert info["targets"] == ["covid"] and info["config"]["pairing"] == "nearest" and info["config"]["epochs"] == 2
    assert sorted(p.name for p in (fitted / "samples").iterdir()) == ["covid_epoch001.png", "covid_epoch002.png"]
    assert (fitted / "split.json").is_file() and not (tmp_path / "p2p.work").exists()
    assert not (fitted / "measures.json").exists()  # kaggle has no twins to measure against

    out = tmp_path / "balanced.h5"
    result = run("balance", "--synth", "pix2pix", *data, "--synth-checkpoint", fitted, "--out", out)
    assert result.exit_code == 0, result.output
    config = store_config(out)
    assert config["synthesizer"]["checkpoints"] == {"covid": info["weights"]["generator_covid"]}
    assert config["synthesizer"]["pairing"] == "nearest"
    assert_traceable(read_store(out, "train"))

    # a different split seed would leak test images into the fitted generator: refused
    result = run("balance", "--synth", "pix2pix", *data, "--seed", 1, "--synth-checkpoint", fitted, "--out", out)
    assert result.exit_code == 2 and "different test split" in result.output
    # a checkpoint of another size: refused before anything runs
    result = run("balance", "--synth", "pix2pix", *data[:4], "--size", 48, "--test-per-class", 3,
                 "--synth-checkpoint", fitted, "--out", tmp_path / "other.h5")
    assert result.exit_code == 2 and "trained on 32x32x1 images; the data is 48x48x1" in result.output
    assert not (tmp_path / "other.h5").exists()


def test_fit_paired_writes_measures_on_held_out_twins(tmp_path):
    source = tmp_path / "pairs.h5"
    write_store(source, {"all": paired_set(12)})
    fitted = tmp_path / "p2p"
    result = run("fit", "--synth", "pix2pix", "--data", "h5", "--data-dir", source, "--test-per-class", 4,
                 "--epochs", 1, "--pairing", "paired", *SMALL, "--out", fitted)
    assert result.exit_code == 0, result.output
    measures = json.loads((fitted / "measures.json").read_text())
    covid = measures["targets"]["covid"]
    assert covid["n"] == 4  # the 4 held-out covid images, each with its twin
    assert set(covid["model"]) == set(covid["identity"]) == {"l1", "psnr", "ssim"}
    assert 0 < covid["identity"]["ssim"] < 1 and covid["identity"]["l1"] > 0
    assert "identity" in result.output


@pytest.mark.parametrize("args, message", [
    (("--pairing", "paired"), "pairing 'paired' needs 'covid' images with a lesion-free twin"),
    (("--source-class", "healthy"), "source class 'healthy' does not exist"),
    (("--pairing", "twins"), "pairing must be one of random, paired, nearest"),
    (("--synth-option", "lambda=3"), "unknown option 'lambda'"),
])
def test_fit_bad_input_exit_2_before_training(tmp_path, kaggle_first, args, message):
    result = run("fit", "--synth", "pix2pix", "--data", "kaggle", "--data-dir", kaggle_first, "--size", 32,
                 "--test-per-class", 3, "--epochs", 1, *args, "--out", tmp_path / "p2p")
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "p2p").exists() and not (tmp_path / "p2p.work").exists()


def test_balance_with_pix2pix_paired_on_ctsim(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTHAUG_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "balanced.h5"
    result = run("balance", "--synth", "pix2pix", "--data", "ctsim", "--source-option", "preset=tiny",
                 "--test-per-class", 1, "--synth-option", "epochs=1", "--synth-option", "pairing=paired", *SMALL,
                 "--out", out, "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    real = {c: n - 1 for c, n in synthaug.load_images("ctsim", preset="tiny").counts().items()}  # 1 held out
    deficits = {c: max(real.values()) - n for c, n in real.items()}
    assert info["splits"]["train"]["synthetic"] == deficits and deficits["covid"] > 0
    assert_traceable(read_store(out, "train"))
    assert store_config(out)["synthesizer"]["pairing"] == "paired"
