"""Filtering synthetic images: only those a classifier trained on the real split gives the intended
class with high confidence, near-copies of training images dropped, more made until the count is met
or the cap is hit; the store keeps every kept image's scores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _specs import assert_refused_before_any_work, tiny_spec
from click.testing import CliRunner

from synthaug import ImageSet, SynthaugError, Synthesizer, read_store
from synthaug.assess.filter import Filter, filtered
from synthaug.cli import main


def two_classes(n: int = 12, size: int = 8) -> ImageSet:
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], [n // 3, n - n // 3])
    images = (rng.random((n, 1, size, size)) * 0.2 + np.where(labels == 1, 0.7, 0.1)[:, None, None, None])
    return ImageSet(images.astype(np.float32), labels, ("dark", "bright"), [f"p{i}" for i in range(n)])


class HalfRight(Synthesizer):
    """Of every batch, the even images are dark (the class asked for is 'dark'), the odd ones bright;
    with ``copies``, every image is a copy of a real training image of the class."""

    name = "halfright"
    accepted_channels = None

    def __init__(self, copies: bool = False):
        super().__init__()
        self.copies = copies

    def generate(self, train, target, n, *, seed, volumes=None, run=None):
        rng = np.random.default_rng(seed)
        if self.copies:
            real = np.flatnonzero(train.labels == train.class_index(target))
            images = train.images[rng.choice(real, n)]
        else:
            images = rng.random((n, *train.image_shape)).astype(np.float32) * 0.2 + \
                np.where(np.arange(n) % 2 == 0, 0.1, 0.7)[:, None, None, None].astype(np.float32)
        return ImageSet(images, np.full(n, train.class_index(target)), train.class_names, [f"s{i}" for i in range(n)])


def dark_probability(images: np.ndarray) -> np.ndarray:
    """A 'classifier': dark images are class 0 with confidence 0.9."""
    dark = images.reshape(len(images), -1).mean(1) < 0.4
    p = np.where(dark, 0.9, 0.05)
    return np.stack([p, 1 - p], 1)


def test_only_confident_images_are_kept_and_more_are_made_until_the_count_is_met():
    data = two_classes()  # 4 dark, 8 bright: 4 dark wanted
    kept, record = filtered(HalfRight(), data, {"dark": 4, "bright": 0}, 0, dark_probability,
                            Filter(confidence=0.8, copies="keep"))
    assert len(kept["dark"]) == 4 and (kept["dark"].images.mean((1, 2, 3)) < 0.4).all()
    assert (kept["dark"].extras["filter_score"] >= 0.8).all()
    counts = record["classes"]["dark"]
    assert counts["kept"] == 4 and counts["made"] == 8 and counts["below_confidence"] == 4  # one round of 8
    assert "bright" not in record["classes"]


def test_the_cap_stops_the_search_and_the_record_says_how_many_were_kept():
    data = two_classes()
    kept, record = filtered(HalfRight(), data, {"dark": 4}, 0, dark_probability,
                            Filter(confidence=0.95, copies="keep", cap=2))
    assert "dark" not in kept  # nothing reached 0.95
    assert record["classes"]["dark"] == {"wanted": 4, "made": 8, "kept": 0, "below_confidence": 8,
                                         "near_copies": 0, "rounds": 1}


def test_near_copies_of_training_images_are_dropped():
    data = two_classes()
    kept, record = filtered(HalfRight(copies=True), data, {"dark": 4}, 0, dark_probability,
                            Filter(confidence=0.5, copies="drop", cap=3))
    assert "dark" not in kept and record["classes"]["dark"]["near_copies"] == 12
    assert record["near_copy_distance"] > 0
    kept, _ = filtered(HalfRight(copies=True), data, {"dark": 4}, 0, dark_probability,
                       Filter(confidence=0.5, copies="keep"))
    assert len(kept["dark"]) == 4


@pytest.mark.parametrize("rules, message", [
    (dict(confidence=1.5), "filter confidence must lie in [0, 1]; got 1.5"),
    (dict(copies="some"), "filter copies must be one of drop, keep; got 'some'"),
    (dict(cap=0.5), "filter cap must be at least 1"),
])
def test_bad_rules_are_one_line(rules, message):
    with pytest.raises(SynthaugError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Filter(**rules)


DDPM = ("[arms.kept]\nsynthesizer = \"ddpm\"\noptions = { channels = [8, 16], epochs = 1, timesteps = 50, steps = 2, "
        "batch_size = 8, figure_every = 0 }\n")


def write(tmp_path: Path, extra: str) -> Path:
    path = tiny_spec(tmp_path / "filter.toml", DDPM + extra, covid=6)
    path.write_text(path.read_text() + "\n[quality]\nfeature_epochs = 1\n")
    return path


def test_a_filter_arm_keeps_only_images_above_its_threshold_and_records_their_scores(tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["--quiet", "experiment", "run",
                                       str(write(tmp_path, "filter = { confidence = 0.34, cap = 3 }")),
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    record = json.loads((out / "stores" / "kept-seed0.json").read_text())["filter"]
    covid = record["classes"]["covid"]
    assert covid["wanted"] == 4 and covid["made"] <= 12 and covid["kept"] <= 4
    assert covid["made"] == covid["kept"] + covid["below_confidence"] + covid["near_copies"] or covid["kept"] == 4
    train = read_store(out / "stores" / "kept-seed0.h5")
    made = train.synth == "ddpm"
    assert made.sum() == sum(c["kept"] for c in record["classes"].values())
    assert (train.extras["filter_score"][made] >= 0.34).all() and (train.extras["filter_score"][~made] == 0).all()
    assert (out / "quality" / "features-seed0").is_dir()  # the seed's feature network scored them
    report = (out / "report.md").read_text()
    assert f"made {covid['made']} covid images, kept {covid['kept']}" in report


@pytest.mark.parametrize("extra, message", [
    ("filter = { confidence = 2 }", "arms.kept.filter confidence must lie in [0, 1]; got 2"),
    ("filter = { copy = 'drop' }", "arms.kept.filter: unknown key 'copy'"),
    ("filter = {}\npool = { per_image = 1 }", "arms.kept: give one of pool, filter"),
    ("filter = {}\n[arms.drr]\nsynthesizer = \"drr\"\nfilter = {}", "arms.drr.filter: drr projects CT volumes"),
])
def test_a_bad_filter_is_refused_before_any_work(tmp_path, extra, message):
    assert_refused_before_any_work(write(tmp_path, extra), tmp_path / "out", message)
