"""Sweeps in experiment specs (a list of option values: one arm per value), sampling options (options a
fitted synthesizer takes anew, which arms may differ in while sharing one fit), and reruns that add arms.

The runs use ddpm at its smallest (8/16-wide U-Net, 1 epoch, 2 DDIM steps) on 32 px ctsim images.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _specs import DDPM, tiny_spec
from click.testing import CliRunner

from synthaug import SynthaugError, read_store
from synthaug.cli import main
from synthaug.experiments.spec import expand_sweeps, load_spec
from synthaug.pipeline.store import open_store


def write(tmp_path: Path, guidance: str = "[1, 4]", extra: str = "", name: str = "sweep.toml") -> Path:
    return tiny_spec(tmp_path / name, extra + DDPM.replace("GUIDANCE", guidance), name="sweep")


def run_cli(*args):
    return CliRunner().invoke(main, ["--quiet", *map(str, args)])


# ---- expanding a sweep ----------------------------------------------------------------------------
def test_a_list_of_values_expands_into_one_named_arm_per_value(tmp_path):
    spec = load_spec(write(tmp_path, "[1, 2, 4]"))
    ddpm = [a for a in spec.arms if a.synthesizer == "ddpm"]
    assert [a.key for a in ddpm] == ["ddpm-guidance1", "ddpm-guidance2", "ddpm-guidance4"]
    assert [a.label for a in ddpm] == ["diffusion (guidance 1)", "diffusion (guidance 2)", "diffusion (guidance 4)"]
    assert [a.options["guidance"] for a in ddpm] == [1, 2, 4]
    assert all(a.options["channels"] == [8, 16] for a in ddpm)  # a list-valued option is one value, not a sweep
    assert load_spec(write(tmp_path, "2")).arms[1].key == "ddpm"  # no list: no sweep, the arm's own name


def test_two_swept_options_give_every_combination_and_recipes_sweep_too():
    arms = dict(expand_sweeps({"d": {"synthesizer": "ddpm", "options": {"guidance": [1, 2], "steps": [5, 10]},
                                     "recipe": {"lr": [0.1, 0.01]}}}))
    assert list(arms) == [f"d-guidance{g}-steps{s}-lr{lr}" for g in (1, 2) for s in (5, 10) for lr in (0.1, 0.01)]
    assert arms["d-guidance2-steps5-lr0.01"]["options"] == {"guidance": 2, "steps": 5}
    assert arms["d-guidance2-steps5-lr0.01"]["label"] == "d (guidance 2, steps 5, lr 0.01)"
    swept_channels = dict(expand_sweeps({"d": {"synthesizer": "ddpm", "options": {"channels": [[8, 16], [16, 32]]}}}))
    assert list(swept_channels) == ["d-channels8_16", "d-channels16_32"]  # a list of lists sweeps a list option


@pytest.mark.parametrize("guidance, extra, message", [
    ("[]", "", "arms.ddpm.options.guidance: an empty list sweeps nothing"),
    ("[2, 2]", "", "arms.ddpm.options.guidance: the sweep [2, 2] repeats a value"),
    ("[-1, 2]", "", "arms.ddpm-guidance-1.options: ddpm guidance must be >= 0"),
    ("[1, 2]", "[arms.ddpm-guidance1]\nsynthesizer = \"duplicate\"\n",
     "arms.ddpm-guidance1: two arms have this name once the sweeps are expanded"),
])
def test_a_bad_sweep_is_refused_in_one_line_before_any_work(tmp_path, guidance, extra, message):
    result = run_cli("experiment", "run", write(tmp_path, guidance, extra), "--out", tmp_path / "out")
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and message in lines[0], result.output
    assert not (tmp_path / "out").exists()


# ---- one fit, several sampling settings --------------------------------------------------------------
@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sweep")
    out = tmp / "out"
    result = run_cli("experiment", "run", write(tmp, "[1, 4]"), "--out", out)
    assert result.exit_code == 0, result.output
    return tmp, out


def test_arms_that_differ_only_in_sampling_options_share_one_fit(swept):
    _, out = swept
    fits = sorted(p.name for p in (out / "fits").iterdir() if p.is_dir())
    assert len(fits) == 1 and fits[0].startswith("ddpm-") and fits[0].endswith("-seed0"), fits
    made = {}
    for g in (1, 4):
        path = out / "stores" / f"ddpm-guidance{g}-seed0.h5"
        store = open_store(path)
        assert store.config["synthesizer"]["config"]["guidance"] == g
        assert store.config["synth_checkpoint"].endswith(fits[0])
        train = read_store(path)
        made[g] = train.images[train.synth == "ddpm"]
        real = train.images[train.synth == "real"]
    assert len(made[1]) == len(made[4]) > 0
    assert not np.array_equal(made[1], made[4])  # the same network, guided differently
    assert np.array_equal(real, read_store(out / "stores" / "duplicate-seed0.h5").images[
        read_store(out / "stores" / "duplicate-seed0.h5").synth == "real"])
    results = (out / "results.csv").read_text()
    assert "ddpm-guidance1" in results and "ddpm-guidance4" in results


def test_a_fitted_synthesizer_takes_new_sampling_options_and_refuses_others(swept, tmp_path):
    from synthaug.registry import get_registry

    _, out = swept
    fit = next(p for p in (out / "fits").iterdir() if p.is_dir())
    synth = get_registry().entry("synthesizer", "ddpm").resolve().load(fit)
    # epochs as fitted: accepted
    assert synth.with_sampling_options({"guidance": 3, "steps": 4, "epochs": 1}).config.guidance == 3
    assert synth.config.steps == 4
    with pytest.raises(SynthaugError, match=r"is fitted with epochs=1; epochs=5 would need a new fit .*"
                                            r"sampling options: guidance, steps, sample_batch\)"):
        synth.with_sampling_options({"epochs": 5})
    with pytest.raises(SynthaugError, match="ddpm guidance must be >= 0"):
        synth.with_sampling_options({"guidance": -1})


def test_balance_with_a_checkpoint_and_a_sampling_option(swept, tmp_path):
    _, out = swept
    fit = next(p for p in (out / "fits").iterdir() if p.is_dir())
    common = ("balance", "--synth", "ddpm", "--data", "ctsim", "--size", 32, "--source-option", "preset=tiny",
              "--source-option", 'counts={"covid": 5, "normal": 10, "viral": 10}', "--test-per-class", 2,
              "--synth-checkpoint", fit)
    store = tmp_path / "b.h5"
    result = run_cli(*common, "--synth-option", "guidance=4", "--out", store)
    assert result.exit_code == 0, result.output
    reference = read_store(out / "stores" / "ddpm-guidance4-seed0.h5")
    assert np.array_equal(read_store(store).images, reference.images)  # the experiment's guidance-4 store
    refused = tmp_path / "r.h5"
    result = run_cli(*common, "--synth-option", "epochs=3", "--out", refused)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and "epochs=3 would need a new fit" in lines[0], result.output
    assert not refused.exists()


# ---- a rerun may add arms -----------------------------------------------------------------------------
def test_a_rerun_may_add_arms_but_not_change_one(swept):
    tmp, out = swept
    before = {p: p.stat().st_mtime_ns for p in (out / "cells").rglob("best.pt")}
    grown = write(tmp, "[1, 2, 4]", name="grown.toml")
    result = run_cli("experiment", "run", grown, "--out", out)
    assert result.exit_code == 0, result.output
    after = {p: p.stat().st_mtime_ns for p in (out / "cells").rglob("best.pt")}
    assert {p: after[p] for p in before} == before  # nothing earlier was trained again
    assert sorted(p.relative_to(out / "cells").parts[0] for p in set(after) - set(before)) == [
        "ddpm-guidance2--small--seed0"]
    assert len([p for p in (out / "fits").iterdir() if p.is_dir()]) == 1  # guidance 2 sampled the same fit
    saved = json.loads((out / "experiment.json").read_text())["spec"]
    assert [a["key"] for a in saved["arms"]] == ["duplicate", "ddpm-guidance1", "ddpm-guidance2", "ddpm-guidance4"]
    changed = write(tmp, "[1, 2, 4]", extra="strategy = \"minority\"\n", name="changed.toml")
    result = run_cli("experiment", "run", changed, "--out", out)
    assert result.exit_code == 2 and "holds another experiment (arms.duplicate differ)" in result.output
    dropped = write(tmp, "[1]", name="dropped.toml")
    result = run_cli("experiment", "run", dropped, "--out", out)
    assert result.exit_code == 2 and "arms.ddpm-guidance2 (not in this spec)" in result.output


def test_quan2021s_ddpm_arm_balances_its_binary_task_at_the_tiny_preset(tmp_path):
    """The bundled quan2021 spec's ddpm arm, as its tiny preset resolves it, through the runner: covid
    against the rest, the covid class filled up to the rest's count with ddpm images."""
    from synthaug.experiments.runner import Experiment
    from synthaug.pipeline.store import store_info

    spec = load_spec("quan2021", preset="tiny")
    arm = spec.arm("ddpm")
    assert arm.options["preset"] == "cpu" and arm.options["channels"] == [8, 16]
    experiment = Experiment(tmp_path / "quan", spec)
    experiment.claim()
    info = store_info(experiment.store(arm, 0))["splits"]["train"]
    assert info["classes"]["covid"] == info["classes"]["rest"] and info["synthetic"]["rest"] == 0
    assert info["synthetic"]["covid"] == info["classes"]["rest"] - 8  # 10 covid patients, 20% held out
    assert experiment.layout.fit_dir(arm, 0).is_dir()
