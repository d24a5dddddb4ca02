"""`synthaug experiment`: specs checked before any training, the grid run and resumed, the report.

The runs use the `tiny` presets (ctsim at 32 px, a few simulated patients, quarter-width networks,
one epoch): they test the mechanics and the bookkeeping, not what synthesis is worth.
"""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from synthaug.cli import main
from synthaug.experiments import stats
from synthaug.experiments.spec import load_spec

SMALL_SPEC = """
name = "small"
seeds = 2
measures = ["accuracy", "macro_f1", "recall"]
headline = "macro_f1"
positive = "covid"

[data]
source = "ctsim"
size = 32
options = {{ preset = "tiny", counts = {{ covid = 5, normal = 10, viral = 10 }} }}

[split]
test_per_class = 2

[arms.unbalanced]
strategy = "none"

[arms.duplicate]
synthesizer = "duplicate"
baseline = true

[arms.augment]
synthesizer = "augment"
{augment_extra}

[classifiers.small]
classifier = "resnet50"
recipe = {{ epochs = {epochs}, batch_size = 8, classifier_options = {{ width = 0.25 }} }}
"""


def write_spec(tmp_path: Path, name: str = "small.toml", augment_extra: str = "", epochs: int = 1) -> Path:
    text = SMALL_SPEC.format(augment_extra=augment_extra, epochs=epochs)
    path = tmp_path / name
    path.write_text(text)
    return path


def run_cli(*args: str):
    return CliRunner().invoke(main, ["--quiet", "experiment", *args])


def read_results(out: Path) -> list[dict]:
    with open(out / "results.csv", newline="") as fh:
        return list(csv.DictReader(fh))


# ---------------------------------------------------------------------------------------------
# specs are checked before anything runs
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("old, new, named", [
    ('synthesizer = "augment"', 'synthesizer = "augmnet"', "arms.augment.synthesizer"),
    ('classifier = "resnet50"', 'classifier = "resnet5O"', "classifiers.small.classifier"),
    ('"recall"]', '"recal"]', "measures[2]"),
    ('synthesizer = "augment"', 'synthesizer = "augment"\noptions = { flip = 0.5 }', "arms.augment.options"),
    ("epochs = 1,", "epoch = 1,", "classifiers.small.recipe"),
    ('strategy = "none"', 'strategy = "none"\nlabell = "x"', "arms.unbalanced: unknown key 'labell'"),
    ('headline = "macro_f1"', 'headline = "macro_f1"\nseed = 3', "unknown key 'seed'"),
    ("test_per_class = 2", "test_per_class = 2\ntest_fraction = 0.2", "split: give exactly one"),
])
def test_a_bad_spec_is_refused_before_any_work_naming_the_key(tmp_path, old, new, named):
    spec = tmp_path / "bad.toml"
    spec.write_text(write_spec(tmp_path).read_text().replace(old, new, 1))
    out = tmp_path / "out"
    result = run_cli("run", str(spec), "--out", str(out))
    assert result.exit_code == 2, result.output
    assert named in result.output
    assert len(result.output.strip().splitlines()) == 1 + result.output.count("Usage")  # one line
    assert not out.exists()  # nothing started


def test_unknown_spec_name_and_broken_toml(tmp_path):
    result = run_cli("run", "liang2022", "--out", str(tmp_path / "o"))
    assert result.exit_code == 2 and "liang2021" in result.output and "quan2021" in result.output
    broken = tmp_path / "broken.toml"
    broken.write_text("name = [unclosed")
    result = run_cli("run", str(broken), "--out", str(tmp_path / "o"))
    assert result.exit_code == 2 and "broken.toml" in result.output and "TOML" in result.output


def test_bundled_specs_resolve_in_every_preset():
    for name in ("liang2021", "quan2021", "demo"):
        for preset in ("tiny", "demo", "paper"):
            spec = load_spec(name, preset=preset)
            assert spec.preset == preset and spec.arms and spec.classifiers
    liang = load_spec("liang2021", preset="demo")
    assert liang.split == {"test_per_class": 100}  # the demo preset resolves 5-point differences
    assert [a.key for a in liang.arms] == ["unbalanced", "original", "augment", "pix2pix"]
    assert {c.recipe["mode"] for c in liang.classifiers} == {"scratch", "transfer"}
    quan = load_spec("quan2021", preset="paper")
    assert quan.binary == "covid" and quan.split == {"test_fraction": 0.2} and quan.headline == "f1"
    assert quan.classifiers[0].recipe == {"mode": "finetune", "epochs": 300, "lr": 0.002, "scheduler": "cosine",
                                          "augment": False}
    assert {a.key: a.strategy for a in quan.arms}["drr"] == "per-source"
    assert {a.key: a.measure for a in quan.arms}["xpgan_c"] == "joint"
    # other data than the spec's: the paper preset and none of ctsim's options
    kaggle = load_spec("liang2021", data={"source": "kaggle", "dir": "/data/kaggle"})
    assert kaggle.preset == "paper" and kaggle.data["options"] == {} and kaggle.data["size"] == 224


# ---------------------------------------------------------------------------------------------
# a run: cells, results.csv, the report
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def liang_tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("liang") / "run"
    result = run_cli("run", "liang2021", "--preset", "tiny", "--out", str(out))
    assert result.exit_code == 0, result.output
    return out, result.output


def test_liang_tiny_writes_every_cell_and_reports_the_transfer_cells_as_not_run(liang_tiny):
    out, output = liang_tiny
    rows = read_results(out)
    assert len(rows) == 4 * 2 * 2  # arms x classifiers x seeds
    done = [r for r in rows if r["status"] == "done"]
    not_run = [r for r in rows if r["status"] == "not run"]
    assert {r["classifier"] for r in done} == {"scratch"} and len(done) == 8
    assert {r["classifier"] for r in not_run} == {"transfer"}
    assert all("--weights resnet50=PATH" in r["reason"] for r in not_run)
    report = (out / "report.md").read_text()
    assert "## Cells not run" in report and "--weights" in report
    assert (out / "figures" / "headline.png").stat().st_size > 1000


def test_every_measure_in_results_follows_from_the_cell_confusion_matrix(liang_tiny):
    out, _ = liang_tiny
    for row in read_results(out):
        if row["status"] != "done":
            continue
        cell = json.loads((out / "cells" / row["cell"] / "cell.json").read_text())
        cm = np.asarray(cell["metrics"]["confusion"])
        assert int(row["n_test"]) == cm.sum() == 6  # 2 real test images per class
        tp = np.diag(cm)
        assert float(row["accuracy"]) == pytest.approx(tp.sum() / cm.sum(), abs=1e-6)
        recall_covid = tp[0] / cm[0].sum()
        assert float(row["recall"]) == pytest.approx(recall_covid, abs=1e-6)
        assert float(row["recall[covid]"]) == pytest.approx(recall_covid, abs=1e-6)
        # the predictions file agrees with the confusion matrix
        with open(out / cell["predictions"], newline="") as fh:
            preds = list(csv.DictReader(fh))
        names = ["covid", "normal", "viral"]
        rebuilt = np.zeros((3, 3), int)
        for p in preds:
            rebuilt[names.index(p["label"]), names.index(p["prediction"])] += 1
        assert (rebuilt == cm).all()


def test_all_arms_of_a_seed_share_the_test_images_and_the_counts_follow_the_strategy(liang_tiny):
    out, _ = liang_tiny
    rows = [r for r in read_results(out) if r["status"] == "done"]
    for seed in ("0", "1"):
        origins = set()
        for r in rows:
            if r["seed"] == seed:
                cell = json.loads((out / "cells" / r["cell"] / "cell.json").read_text())
                with open(out / cell["predictions"], newline="") as fh:
                    origins.add(tuple(p["origin"] for p in csv.DictReader(fh)))
        assert len(origins) == 1
    by_arm = {r["arm"]: r for r in rows if r["seed"] == "0"}
    assert int(by_arm["unbalanced"]["n_synthetic"]) == 0
    assert int(by_arm["unbalanced"]["n_train"]) == 5 + 10 + 10 - 6
    for arm in ("original", "augment", "pix2pix"):  # covid 3 -> 8, normal and viral 8 each
        assert int(by_arm[arm]["n_train"]) == 24 and int(by_arm[arm]["n_synthetic"]) == 5


def test_the_report_compares_each_synthesizer_with_the_strongest_baseline(liang_tiny):
    out, output = liang_tiny
    comparisons = json.loads((out / "comparisons.json").read_text())
    assert [(c["arm"], c["classifier"]) for c in comparisons] == [("pix2pix", "scratch")]
    comp = comparisons[0]
    rows = [r for r in read_results(out) if r["status"] == "done" and r["classifier"] == "scratch"]
    means = {arm: np.mean([float(r["macro_f1"]) for r in rows if r["arm"] == arm])
             for arm in ("unbalanced", "original", "augment")}
    assert comp["baseline"][0] == max(means, key=means.get)
    pix = np.mean([float(r["macro_f1"]) for r in rows if r["arm"] == "pix2pix"])
    assert comp["seed"]["mean"] == pytest.approx(pix - means[comp["baseline"][0]], abs=1e-6)
    assert comp["verdict"] in ("helped", "hurt", "cannot be told apart")
    assert comp["sentence"] in output and comp["sentence"] in (out / "report.md").read_text()


def test_rerunning_a_finished_experiment_trains_nothing_and_another_spec_is_refused(liang_tiny, tmp_path):
    out, _ = liang_tiny
    before = {p: p.stat().st_mtime_ns for p in (out / "cells").rglob("best.pt")}
    result = run_cli("run", "liang2021", "--preset", "tiny", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert {p: p.stat().st_mtime_ns for p in (out / "cells").rglob("best.pt")} == before
    result = run_cli("run", "quan2021", "--preset", "tiny", "--out", str(out))
    assert result.exit_code == 2 and "holds another experiment" in result.output


# ---------------------------------------------------------------------------------------------
# killed part-way, run again: the same results
# ---------------------------------------------------------------------------------------------
def _run_process(spec: Path, out: Path, kill_when=None) -> int:
    env = {**os.environ, "SYNTHAUG_QUIET": "1"}
    command = [sys.executable, "-c", "from synthaug.cli import main; main()", "experiment", "run", str(spec),
               "--out", str(out)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if kill_when is None:
        _, err = process.communicate(timeout=600)
        assert process.returncode == 0, err.decode()[-2000:]
        return 0
    deadline = time.time() + 600
    while process.poll() is None and time.time() < deadline:
        if kill_when():
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    process.wait(timeout=60)
    return process.returncode


@pytest.mark.slow
def test_a_killed_experiment_finishes_with_the_same_results_as_an_uninterrupted_one(tmp_path):
    spec = write_spec(tmp_path, epochs=5)
    # two cells: the unbalanced and the duplicated training split of one seed
    text = spec.read_text().replace("seeds = 2", "seeds = 1")
    spec.write_text(text[:text.index("[arms.augment]")] + text[text.index("[classifiers.small]"):])
    reference = tmp_path / "reference"
    _run_process(spec, reference)

    out = tmp_path / "killed"
    # SIGKILL in the middle of a training run (its first epoch checkpointed, the cell not finished)
    def mid_cell() -> bool:
        return len(list((out / "cells").glob("*/cell.json"))) >= 1 and any(
            not (last.parents[2] / "cell.json").exists() for last in (out / "cells").glob("*/run/checkpoints/last.pt"))
    assert _run_process(spec, out, kill_when=mid_cell) == -signal.SIGKILL
    assert not (out / "results.csv").exists()
    _run_process(spec, out)
    assert (out / "results.csv").read_text() == (reference / "results.csv").read_text()
    assert [r["status"] for r in read_results(out)] == ["done", "done"]
    # nothing of the killed run is left: no temporary, no lock file
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name or p.name.endswith(".lock")]


def test_binary_tasks_and_fraction_splits_run_through_the_grid(tmp_path):
    spec = write_spec(tmp_path, augment_extra="")
    text = spec.read_text().replace("[split]\ntest_per_class = 2", "[task]\nbinary = \"covid\"\n\n[split]\ntest_fraction = 0.2")
    spec.write_text(text.replace("seeds = 2", "seeds = 1"))
    out = tmp_path / "out"
    result = run_cli("run", str(spec), "--out", str(out))
    assert result.exit_code == 0, result.output
    rows = read_results(out)
    assert {r["status"] for r in rows} == {"done"}
    cell = json.loads((out / "cells" / rows[0]["cell"] / "cell.json").read_text())
    assert list(cell["metrics"]["per_class"]) == ["covid", "rest"]
    # 20% of 5 covid and of 20 rest, whole patients: 1 and 4 test images
    assert cell["train_counts"]["test"] == {"covid": 1, "rest": 4}
    assert "recall[rest]" in rows[0]


def test_stats_verdicts_on_constructed_arms():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    good = np.where(rng.random(300) < 0.95, y, (y + 1) % 3)
    poor = np.where(rng.random(300) < 0.6, y, (y + 1) % 3)
    boot = stats.paired_bootstrap([(y, poor, good)], "macro_f1", None, num_classes=3)
    assert stats.verdict(None, boot) == "helped"
    same = stats.paired_bootstrap([(y, poor, poor)], "macro_f1", None, num_classes=3)
    assert stats.verdict(None, same) == "cannot be told apart" and same["diff"] == 0
