"""A synthetic share: ``ratio`` synthetic images per real image of each rare class, on top of another
arm's treatment (classical balancing by duplicate or augment, a balanced sampler or loss, or nothing)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from _specs import assert_refused_before_any_work, tiny_spec
from click.testing import CliRunner

import synthaug
from synthaug import Share, SynthaugError, read_store
from synthaug.cli import main
from synthaug.experiments.spec import load_spec


def synthetic_counts(train, name: str) -> dict[str, int]:
    return {c: int(((train.labels == i) & (train.synth == name)).sum()) for i, c in enumerate(train.class_names)}


def test_a_ratio_adds_its_share_of_each_rare_class_on_top_of_duplication(tiny_images, tmp_path):
    # training split after 1 test image per class: covid 3, normal 7, viral 8 (the majority)
    result = synthaug.balance(tiny_images, "augment", strategy=Share(ratio=0.5), fill="duplicate", test_per_class=1,
                              seed=4, out=tmp_path / "share.h5")
    train = read_store(tmp_path / "share.h5")
    assert synthetic_counts(train, "duplicate") == {"covid": 5, "normal": 1, "viral": 0}  # up to the majority
    assert synthetic_counts(train, "augment") == {"covid": 2, "normal": 0, "viral": 0}  # 0.5 x 3, half up; normal
    assert train.counts() == {"covid": 10, "normal": 8, "viral": 8}  # is the median class, not rare
    assert result.config["strategy"] == {"ratio": 0.5} and result.config["fill"]["added"] == {"covid": 5, "normal": 1,
                                                                                            "viral": 0}
    # the duplicates are those of the duplicate arm of the same seed: the share is what differs
    plain = synthaug.balance(tiny_images, "duplicate", test_per_class=1, seed=4, out=tmp_path / "dup.h5")
    dup = read_store(plain.path)
    assert np.array_equal(train.images[train.synth == "duplicate"], dup.images[dup.synth == "duplicate"])
    assert np.array_equal(train.images[train.synth == "real"], dup.images[dup.synth == "real"])


def test_a_ratio_alone_and_a_table_of_counts(tiny_images):
    alone = synthaug.balance(tiny_images, "augment", strategy=Share(ratio=0.25), test_per_class=1).train
    assert synthetic_counts(alone, "augment") == {"covid": 1, "normal": 0, "viral": 0}  # 0.75 -> 1
    assert len(alone) == 18 + 1
    table = synthaug.balance(tiny_images, "augment", strategy=Share.of({"covid": 4}), test_per_class=1).train
    assert synthetic_counts(table, "augment") == {"covid": 4, "normal": 0, "viral": 0}


@pytest.mark.parametrize("make, message", [
    (lambda: Share(ratio=0), "ratio 0: expected synthetic images per real image, a number in (0, 100]"),
    (lambda: Share.of("some"), "ratio 'some': expected synthetic images per real image (e.g. 0.25)"),
    (lambda: Share(), "exactly one of them"),
])
def test_a_bad_share_is_one_line(make, message):
    with pytest.raises(SynthaugError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        make()


def test_a_fill_that_learns_is_refused(tiny_images):
    with pytest.raises(SynthaugError, match="fill 'ddpm' learns from the data"):
        synthaug.balance(tiny_images, "augment", strategy=Share(ratio=0.5), fill="ddpm", test_per_class=1)


# ---- in a spec ------------------------------------------------------------------------------------
def write(tmp_path: Path, share: str) -> Path:
    return tiny_spec(tmp_path / "share.toml", f'[arms.share]\nsynthesizer = "augment"\n{share}', covid=6)


def test_a_ratio_sweep_in_a_spec_adds_the_shares_it_promises(tmp_path):
    path = write(tmp_path, 'ratio = [0.25, 1.0]\non = "duplicate"')
    spec = load_spec(path)
    assert [(a.key, a.ratio, a.fill) for a in spec.arms[1:]] == [("share-ratio0.25", 0.25, "duplicate"),
                                                                  ("share-ratio1.0", 1.0, "duplicate")]
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["--quiet", "experiment", "run", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    with open(out / "results.csv", newline="") as fh:
        rows = {r["arm"]: r for r in csv.DictReader(fh)}
    # training split: covid 4, normal 8, viral 8; duplication adds 4 covid, the share 0.25 x 4 = 1 or 1.0 x 4 = 4
    assert (rows["duplicate"]["n_train"], rows["duplicate"]["n_synthetic"]) == ("24", "4")
    assert (rows["share-ratio0.25"]["n_train"], rows["share-ratio0.25"]["n_synthetic"]) == ("25", "5")
    assert (rows["share-ratio1.0"]["n_train"], rows["share-ratio1.0"]["n_synthetic"]) == ("28", "8")
    train = read_store(out / "stores" / "share-ratio0.25-seed0.h5")
    assert synthetic_counts(train, "augment") == {"covid": 1, "normal": 0, "viral": 0}
    saved = json.loads((out / "experiment.json").read_text())["spec"]["arms"]
    assert saved[0].keys() == {"key", "label", "synthesizer", "strategy", "options", "baseline", "measure", "note"}
    assert (saved[1]["ratio"], saved[1]["on"]) == (0.25, "duplicate")


def test_a_share_on_a_sampler_trains_with_the_balanced_sampler(tmp_path):
    spec = load_spec(write(tmp_path, 'ratio = 0.5\non = "sampler"'))
    share = spec.arm("share")
    assert share.fill is None and share.recipe == {"sampler": "balanced"}
    assert load_spec(write(tmp_path, 'ratio = 0.5\non = "loss_weights"')).arm("share").recipe == {
        "loss_weights": "balanced"}


@pytest.mark.parametrize("share, message", [
    ('on = "duplicate"', "arms.share.on: says what a synthetic share comes on top of; give the share"),
    ('ratio = 0.5\non = "smote"', "arms.share.on: expected one of none, duplicate, augment, sampler, loss_weights"),
    ('ratio = 0.5\nstrategy = "auto"', "arms.share: give strategy or ratio, not both"),
    ("ratio = 0", "arms.share.ratio 0: expected synthetic images per real image"),
    ("ratio = []", "arms.share.ratio: an empty list sweeps nothing"),
    ("ratio = { covid = -1 }", "arms.share.ratio.covid: expected an integer >= 0"),
])
def test_a_bad_share_in_a_spec_is_refused_before_any_work(tmp_path, share, message):
    assert_refused_before_any_work(write(tmp_path, share), tmp_path / "out", message)


def test_the_quality_of_a_share_store_measures_both_its_synthesizers(tmp_path):
    from _specs import DDPM

    arm = DDPM.replace("GUIDANCE", "2").replace("[arms.ddpm]", '[arms.ddpm]\nratio = 0.5\non = "duplicate"')
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["--quiet", "experiment", "run", str(tiny_spec(tmp_path / "q.toml", arm)),
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    table = json.loads((out / "quality" / "ddpm-seed0" / "quality.json").read_text())["table"]
    assert {(r["synthesizer"], r["class"]) for r in table if r["synthesizer"] != "real (train)"} >= {
        ("duplicate", "covid"), ("ddpm", "covid")}
