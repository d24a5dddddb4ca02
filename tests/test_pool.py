"""A replacement pool (DA-Fusion): k synthetic variants per real rare-class image, each training item
swapped for one of them with probability p; in the trainer, in ``open_store`` and as an experiment arm."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from _specs import assert_refused_before_any_work, tiny_spec
from click.testing import CliRunner

import synthaug
from synthaug import Share, SynthaugError, open_store
from synthaug.cli import main
from synthaug.pipeline.pool import draws, pool_variants, swap
from synthaug.pipeline.runs import read_manifest


def test_variants_follow_the_source_image_or_are_dealt_out_in_turn():
    labels = np.array([0, 0, 1, 0, 0, 0, 0, 1])
    synth = np.array(["real", "real", "real", "augment", "augment", "augment", "augment", "augment"])
    made_from = np.array([-1, -1, -1, 1, 0, 1, 0, 2])
    variants = pool_variants(labels, synth, made_from)
    assert [v.tolist() for v in variants[:3]] == [[4, 6], [3, 5], [7]] and all(len(v) == 0 for v in variants[3:])
    from_noise = pool_variants(labels, synth, np.full(8, -1))
    assert [v.tolist() for v in from_noise[:3]] == [[3, 5], [4, 6], [7]]


def test_a_swap_replaces_about_p_of_the_items_deterministically_for_a_seed():
    variants = [np.array([1000 + r]) for r in range(1000)] + [np.zeros(0, np.int64)] * 1000
    rows = np.arange(1000)
    first = swap(rows, variants, 0.5, seed=3, epoch=1)
    replaced = first != rows
    assert 440 < replaced.sum() < 560 and (first[replaced] == rows[replaced] + 1000).all()
    assert np.array_equal(first, swap(rows, variants, 0.5, seed=3, epoch=1))
    assert not np.array_equal(first, swap(rows, variants, 0.5, seed=3, epoch=2))
    assert np.array_equal(swap(rows[::-1], variants, 0.5, seed=3, epoch=1), first[::-1])  # per row, not per place
    assert (swap(rows, variants, 0.0, 3, 1) == rows).all() and (swap(rows, variants, 1.0, 3, 1) >= 1000).all()


@pytest.fixture
def pool_store(tiny_images, tmp_path):
    # training split after 1 test image per class: covid 3, normal 7, viral 8; 2 variants per covid image
    # (the one class below the median)
    synthaug.balance(tiny_images, "augment", strategy=Share(ratio=2), test_per_class=1, seed=0,
                     out=tmp_path / "pool.h5")
    return tmp_path / "pool.h5"


def test_open_store_gives_the_real_images_each_standing_in_for_a_variant_with_probability_p(pool_store):
    plain = open_store(pool_store)
    pool = open_store(pool_store, pool=0.5, seed=1)
    assert len(pool) == 18 and len(plain) == 18 + 6
    counts = [len(pool.replaced()) for epoch in range(40) if pool.set_epoch(epoch) is None]
    assert 0.3 < np.mean(counts) / 3 < 0.7  # 3 items have variants (the covid images)
    pool.set_epoch(7)
    for i in range(len(pool)):
        image, label = pool[i]
        row = pool._current[i]
        assert label == pool.labels[i] and (plain.synth[row] == "augment") == (i in pool.replaced())
        assert np.array_equal(image.numpy(), plain[row][0].numpy())
    again = open_store(pool_store, pool=0.5, seed=1)
    again.set_epoch(7)
    assert np.array_equal(again.replaced(), pool.replaced())
    with pytest.raises(SynthaugError, match="pool p must be a probability in \\[0, 1\\]; got 2"):
        open_store(pool_store, pool=2)


def test_the_trainer_visits_the_real_images_and_swaps_about_p_of_them(pool_store, tmp_path):
    from synthaug.pipeline.train import TrainConfig, train

    run = train(pool_store, tmp_path / "run", TrainConfig(classifier="resnet50", epochs=2, batch_size=8, pool_p=0.5,
                                                          val_fraction=0.0, classifier_options={"width": 0.25}))
    history = read_manifest(run)["history"]
    store = open_store(pool_store)
    variants = pool_variants(store.labels, store.synth, store.source_index)
    real = np.flatnonzero(store.synth == "real")
    for record in history:
        u, _ = draws(len(variants), 0, record["epoch"])
        assert record["pool_replaced"] == sum(1 for r in real if len(variants[r]) and u[r] < 0.5)
    assert 0 < sum(r["pool_replaced"] for r in history) < 6


def write(tmp_path: Path, extra: str) -> Path:
    return tiny_spec(tmp_path / "pool.toml", f'[arms.pooled]\nsynthesizer = "augment"\n{extra}', covid=6)


def test_a_pool_arm_stores_k_variants_per_rare_image_and_trains_with_p(tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["--quiet", "experiment", "run", str(write(tmp_path, "pool = { per_image = 3, "
                                       "p = 0.5 }")), "--out", str(out)])
    assert result.exit_code == 0, result.output
    with open(out / "results.csv", newline="") as fh:
        rows = {r["arm"]: r for r in csv.DictReader(fh)}
    assert rows["pooled"]["n_synthetic"] == "12"  # covid: 4 training images x 3; normal and viral tie
    manifest = read_manifest(out / "cells" / "pooled--small--seed0" / "run")
    assert manifest["config"]["pool_p"] == 0.5 and "pool_replaced" in manifest["history"][0]


@pytest.mark.parametrize("extra, message", [
    ("pool = { per_image = 0 }", "arms.pooled.pool.per_image: expected an integer >= 1; got 0"),
    ("pool = { per_image = 2, p = 1.5 }", "arms.pooled.pool.p must be a probability in [0, 1]; got 1.5"),
    ("pool = { per_image = 2, k = 1 }", "arms.pooled.pool: unknown key 'k'"),
    ("pool = { per_image = 2 }\nstrategy = \"auto\"", "arms.pooled: give strategy or pool, not both"),
    ("pool = { per_image = 2 }\non = \"duplicate\"", "arms.pooled.on: a pool trains on the real training split"),
    ("pool = { per_image = 2 }\nratio = 1", "arms.pooled: give one of ratio, pool"),
])
def test_a_bad_pool_is_refused_before_any_work(tmp_path, extra, message):
    assert_refused_before_any_work(write(tmp_path, extra), tmp_path / "out", message)
