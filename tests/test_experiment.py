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
    assert [a.key for a in liang.arms] == ["unbalanced", "original", "augment", "duplicate_no_augment", "weighted_loss",
                                           "balanced_sampler", "pix2pix", "ddpm-guidance1", "ddpm-guidance2",
                                           "ddpm-guidance4"]
    assert {a.options["preset"] for a in liang.arms if a.synthesizer == "ddpm"} == {"cpu"}
    assert [a.options["guidance"] for a in load_spec("liang2021", preset="paper").arms[-3:]] == [1, 2, 4]
    assert load_spec("liang2021", preset="paper").arms[-1].options["preset"] == "paper"
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


SWEPT_DDPM = ("ddpm-guidance1", "ddpm-guidance2", "ddpm-guidance4")


def test_liang_tiny_writes_every_cell_and_reports_the_transfer_cells_as_not_run(liang_tiny):
    out, output = liang_tiny
    rows = read_results(out)
    assert len(rows) == 10 * 2 * 2  # arms (ddpm's guidance sweep is three) x classifiers x seeds
    done = [r for r in rows if r["status"] == "done"]
    not_run = [r for r in rows if r["status"] == "not run"]
    assert {r["classifier"] for r in done} == {"scratch"} and len(done) == 20
    assert {r["classifier"] for r in not_run} == {"transfer"}
    assert all("--weights resnet50=PATH" in r["reason"] for r in not_run)
    report = (out / "report.md").read_text()
    assert "## Cells not run" in report and "--weights" in report
    assert (out / "figures" / "headline.png").stat().st_size > 1000


def sklearn_measures(y, pred, positive: int, num_classes: int) -> dict[str, float]:
    """Every measure results.csv can hold, computed by scikit-learn from labels and predictions alone
    (independently of synthaug's confusion-matrix code); zero divisions count as 0, as synthaug's do."""
    from sklearn import metrics

    labels = list(range(num_classes))
    per = metrics.precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    others = y != positive
    return {
        "accuracy": metrics.accuracy_score(y, pred),
        "macro_f1": metrics.f1_score(y, pred, labels=labels, average="macro", zero_division=0),
        "weighted_f1": metrics.f1_score(y, pred, labels=labels, average="weighted", zero_division=0),
        "balanced_accuracy": metrics.recall_score(y, pred, labels=labels, average="macro", zero_division=0),
        "precision": per[0][positive], "recall": per[1][positive], "f1": per[2][positive],
        "specificity": metrics.recall_score(others, pred != positive, zero_division=0),
        **{f"{name}[{k}]": per[i][k] for i, name in enumerate(("precision", "recall", "f1")) for k in labels},
    }


def test_every_measure_in_results_follows_from_the_predictions(liang_tiny):
    """Each measure column of results.csv, recomputed by scikit-learn from the cell's predictions file;
    the confusion matrix in cell.json agrees with the same file."""
    out, _ = liang_tiny
    rows = read_results(out)
    names = ["covid", "normal", "viral"]
    head = list(rows[0])
    measures = head[head.index("n_synthetic") + 1:]
    done = [r for r in rows if r["status"] == "done"]
    assert len(done) == 20
    for row in done:
        cell = json.loads((out / "cells" / row["cell"] / "cell.json").read_text())
        with open(out / cell["predictions"], newline="") as fh:
            preds = list(csv.DictReader(fh))
        y = np.array([names.index(p["label"]) for p in preds])
        pred = np.array([names.index(p["prediction"]) for p in preds])
        assert int(row["n_test"]) == len(y) == 6  # 2 real test images per class
        expected = sklearn_measures(y, pred, positive=0, num_classes=3)
        expected = {k.replace("[0]", "[covid]").replace("[1]", "[normal]").replace("[2]", "[viral]"): v
                    for k, v in expected.items()}
        # from the file's probabilities: auc and auprc of covid (the positive class) against the rest, ECE over
        # 15 bins of the top-class confidence and the Brier score summed over the classes (3 classes)
        from sklearn.metrics import average_precision_score, roc_auc_score

        probabilities = np.array([[float(p[f"p[{name}]"]) for name in names] for p in preds])
        expected["auc"] = roc_auc_score(y == 0, probabilities[:, 0]) if 0 < (y == 0).sum() < len(y) else None
        expected["auprc"] = average_precision_score(y == 0, probabilities[:, 0])
        top, right = probabilities.max(1), probabilities.argmax(1) == y
        bins = np.clip(np.ceil(top * 15).astype(int) - 1, 0, 14)
        expected["ece"] = sum(abs(right[bins == b].mean() - top[bins == b].mean()) * (bins == b).sum() / len(y)
                              for b in set(bins.tolist()))
        expected["brier"] = np.mean(((probabilities - np.eye(3)[y]) ** 2).sum(1))
        assert sorted(measures) == sorted(expected)  # every column recomputed, none left out
        for name in measures:
            assert float(row[name]) == pytest.approx(expected[name], abs=2e-6), (row["cell"], name)
        rebuilt = np.zeros((3, 3), int)
        np.add.at(rebuilt, (y, pred), 1)
        assert (rebuilt == np.asarray(cell["metrics"]["confusion"])).all()


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
    for arm in ("original", "augment", "duplicate_no_augment", "pix2pix", *SWEPT_DDPM):  # covid 3 -> 8, others 8
        assert int(by_arm[arm]["n_train"]) == 24 and int(by_arm[arm]["n_synthetic"]) == 5
    for arm in ("weighted_loss", "balanced_sampler"):  # the unbalanced split, used another way
        assert (by_arm[arm]["n_train"], by_arm[arm]["n_synthetic"]) == (by_arm["unbalanced"]["n_train"], "0")


def test_the_report_compares_each_synthesizer_with_each_named_baseline(liang_tiny):
    out, output = liang_tiny
    comparisons = json.loads((out / "comparisons.json").read_text())
    # compare_to defaults to every baseline arm: pix2pix against each of them, named before the run
    baselines = load_spec("liang2021", preset="tiny").baselines_compared()
    synthesized = ["pix2pix", *SWEPT_DDPM]
    assert len(baselines) >= 3 and not set(synthesized) & set(baselines)
    assert [(c["arm"], c["classifier"], c["baseline"]) for c in comparisons] == [
        (arm, "scratch", [base, "scratch"]) for arm in synthesized for base in baselines]
    rows = [r for r in read_results(out) if r["status"] == "done" and r["classifier"] == "scratch"]
    means = {arm: np.mean([float(r["macro_f1"]) for r in rows if r["arm"] == arm]) for arm in baselines}
    # the strongest classical baseline is information only: flagged, and named in the report
    assert {c["baseline"][0] for c in comparisons if c["strongest_baseline"]} == {max(means, key=means.get)}
    report = (out / "report.md").read_text()
    assert "Strongest classical baseline with ResNet50 from scratch, for information only" in report
    assert f"{len(comparisons)} comparisons" in report and "Holm's method" in report
    assert "Bootstrap unit: the test image" in report
    for comp in comparisons:
        pix = [float(r["macro_f1"]) for r in rows if r["arm"] == comp["arm"]]
        base = [float(r["macro_f1"]) for r in rows if r["arm"] == comp["baseline"][0]]
        assert comp["seed"]["mean"] == pytest.approx(np.mean(pix) - np.mean(base), abs=1e-6)
        assert comp["seed"]["low"] == pytest.approx(stats.paired_seed_comparison(base, pix)["low"], abs=1e-5)
        assert comp["bootstrap"]["over_seeds"] is False and comp["seed_bootstrap"]["over_seeds"] is True
        assert comp["p"] == comp["seed_bootstrap"]["p"] and comp["holm_comparisons"] == len(comparisons)
        # the verdict follows the rule: the seeds' interval and the Holm-adjusted p-value on one side of 0
        side = 1 if comp["seed"]["low"] > 0 else -1 if comp["seed"]["high"] < 0 else 0
        implied = ("helped" if side > 0 else "hurt") if side and comp["p_holm"] < 0.05 else "cannot be told apart"
        assert comp["verdict"] == implied and f"): {implied}" in comp["sentence"]
        assert comp["sentence"] in output and comp["sentence"] in report
        # ROC-AUC and AUPRC of covid compared by the same rule, in the report too
        assert set(comp["threshold_free"]) == {"auc", "auprc"}
        for free in comp["threshold_free"].values():
            assert free["holm_comparisons"] == len(comparisons) and free["sentence"] in report
    adjusted = stats.holm([c["p"] for c in comparisons])
    assert [c["p_holm"] for c in comparisons] == pytest.approx(adjusted)
    # the ways of using synthesis, ranked by their difference from the strongest baseline, best first
    section = report.split("## The ways of using synthesis, ranked")[1].split("\n## ")[0]
    ranked = [line.split(" | ") for line in section.splitlines() if line.startswith("| ") and line[2].isdigit()]
    against = sorted((c for c in comparisons if c["strongest_baseline"]), key=lambda c: -c["seed_bootstrap"]["diff"])
    assert [r[1] for r in ranked] == [load_spec("liang2021", preset="tiny").arm(c["arm"]).label for c in against]
    assert len(ranked) == len(synthesized)
    for row, c in zip(ranked, against):  # the t interval over seeds at 1 - 0.05/m, wider than the 95% one
        half = stats.t_quantile(1, 1 - 0.05 / len(comparisons)) * c["seed"]["std"] / np.sqrt(2)
        assert row[5] == f"{c['seed']['mean'] - half:+.3f} to {c['seed']['mean'] + half:+.3f}"
        assert half >= c["seed"]["half_width"]
    helped = [c for c in against if c["verdict"] == "helped"]
    assert ("None of the 4 ways of using synthesis helped" in section) == (not helped)


def with_predictions(liang_tiny, out: Path, correct) -> Path:
    """A copy of the tiny liang2021 experiment (its records, not its stores or checkpoints) in which
    every finished cell's predictions are rewritten: all right where ``correct(arm, seed)``, otherwise
    all wrong (each image called the next class); the confusion matrices follow."""
    source, _ = liang_tiny
    out.mkdir()
    for name in ("experiment.json", "not-run.json"):
        (out / name).write_bytes((source / name).read_bytes())
    names = ["covid", "normal", "viral"]
    for cell_file in (source / "cells").glob("*/cell.json"):
        cell = json.loads(cell_file.read_text())
        with open(source / cell["predictions"], newline="") as fh:
            reader = csv.DictReader(fh)
            fields, preds = reader.fieldnames, list(reader)
        row = next(r for r in read_results(source) if r["cell"] == cell_file.parent.name)
        right = correct(row["arm"], int(row["seed"]))
        cm = np.zeros((3, 3), int)
        for p in preds:
            label = names.index(p["label"])
            guess = label if right else (label + 1) % 3
            p["prediction"] = names[guess]
            cm[label, guess] += 1
        cell["metrics"]["confusion"] = cm.tolist()
        (out / cell["predictions"]).parent.mkdir(parents=True, exist_ok=True)
        with open(out / cell["predictions"], "w", newline="") as fh:
            writer = csv.DictWriter(fh, fields)
            writer.writeheader()
            writer.writerows(preds)
        (out / "cells" / cell_file.parent.name).mkdir(parents=True, exist_ok=True)
        (out / "cells" / cell_file.parent.name / "cell.json").write_text(json.dumps(cell))
    return out


@pytest.mark.parametrize("case, correct, verdict", [
    # pix2pix right on every test image, every baseline wrong on every one: +1 at both seeds (a bootstrap
    # draw that misses a class scores the perfect arm below 1, so only the seeds' interval is exactly +1)
    ("clearly better", lambda arm, seed: arm == "pix2pix", "helped"),
    ("clearly worse", lambda arm, seed: arm != "pix2pix", "hurt"),
    # +1 at seed 0, -1 at seed 1: the interval over seeds straddles 0 (and every bootstrap draw averages 0)
    ("straddling", lambda arm, seed: (arm == "pix2pix") == (seed == 0), "cannot be told apart"),
])
def test_the_report_verdict_follows_the_intervals_of_constructed_predictions(liang_tiny, tmp_path, case, correct,
                                                                             verdict):
    from synthaug.experiments.report import write_report

    out = with_predictions(liang_tiny, tmp_path / "exp", correct)
    write_report(out)
    everything = json.loads((out / "comparisons.json").read_text())
    m = len(everything)  # every synthesizer arm against each baseline: Holm's correction counts them all
    comparisons = [c for c in everything if c["arm"] == "pix2pix"]
    assert len(comparisons) == len(load_spec("liang2021", preset="tiny").baselines_compared())
    rows = [r for r in read_results(out) if r["status"] == "done"]
    pix = [float(r["macro_f1"]) for r in rows if r["arm"] == "pix2pix"]
    assert all(v in (0.0, 1.0) for v in pix)  # the constructed predictions reached results.csv
    for comp in comparisons:
        seed, boot = comp["seed"], comp["bootstrap"]
        if verdict == "helped":
            assert seed["low"] == seed["high"] == pytest.approx(1.0) and boot["low"] > 0.3
        elif verdict == "hurt":
            assert seed["low"] == seed["high"] == pytest.approx(-1.0) and boot["high"] < -0.3
        else:
            assert seed["mean"] == pytest.approx(0.0) and seed["low"] < 0 < seed["high"]
        if verdict != "cannot be told apart":  # every draw on one side: p = 2 / 2001, times m comparisons
            assert comp["p"] == pytest.approx(2 / 2001) and comp["p_holm"] == pytest.approx(m * 2 / 2001)
        assert comp["verdict"] == verdict and f"): {verdict}" in comp["sentence"]
        assert comp["sentence"] in (out / "report.md").read_text()


def test_one_seed_gives_no_verdict_and_an_old_directory_is_still_reported(liang_tiny, tmp_path):
    """A one-seed report judges nothing (the interval over test images covers test-set noise only); cells
    of an older run without class probabilities or stores report the new columns as missing."""
    from synthaug.experiments.report import write_report

    out = with_predictions(liang_tiny, tmp_path / "exp", lambda arm, seed: arm == "pix2pix")
    for cell in list((out / "cells").iterdir()):
        if cell.name.endswith("seed1"):
            for path in cell.rglob("*"):
                if path.is_file():
                    path.unlink()
    write_report(out)
    comparisons = json.loads((out / "comparisons.json").read_text())
    assert {c["verdict"] for c in comparisons} == {"not judged"} and all(c["p"] is None for c in comparisons)
    for comp in (c for c in comparisons if c["arm"] == "pix2pix"):
        assert comp["bootstrap"]["low"] > 0  # the test images alone would have said "helped"
        assert comp["sentence"].endswith("): not judged (1 seed: the interval covers test-set noise only, not "
                                         "training variance).")
    report = (out / "report.md").read_text()
    assert "With 1 seed no verdict is given" in report and "helped" not in report and "hurt" not in report
    rows = [r for r in read_results(out) if r["status"] == "done"]
    assert all(r["auc"] and r["ece"] and r["brier"] for r in rows)
    # an older run: predictions without probabilities, experiment.json without compare_to
    saved = json.loads((out / "experiment.json").read_text())
    saved["spec"].pop("compare_to", None)
    (out / "experiment.json").write_text(json.dumps(saved))
    for predictions in (out / "cells").glob("*/run/predictions.csv"):
        with open(predictions, newline="") as fh:
            kept = [{k: v for k, v in row.items() if not k.startswith("p[")} for row in csv.DictReader(fh)]
        with open(predictions, "w", newline="") as fh:
            writer = csv.DictWriter(fh, ["index", "origin", "label", "prediction"])
            writer.writeheader()
            writer.writerows(kept)
    write_report(out)
    rows = [r for r in read_results(out) if r["status"] == "done"]
    assert rows and all(r["auprc"] == r["ece"] == r["brier"] == "" for r in rows)
    assert "| n/a | n/a | n/a |" in (out / "report.md").read_text()
    assert len(json.loads((out / "comparisons.json").read_text())) == len(comparisons)


def test_experiment_list_names_every_bundled_spec_with_its_title_and_presets():
    import tomllib

    from synthaug.experiments.spec import bundled_specs

    result = run_cli("list")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["demo", "liang2021", "quan2021", "recipes"]
    for line, (name, path) in zip(lines, sorted(bundled_specs().items())):
        title = tomllib.loads(path.read_text())["title"]
        assert line == f"{name:<12} {title}  [presets: demo, paper, tiny]"


def test_experiment_show_prints_the_resolved_spec_with_its_arms_and_classifiers():
    result = run_cli("show", "liang2021", "--preset", "tiny", "--seeds", "1")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["name"] == "liang2021" and shown["preset"] == "tiny" and shown["seeds"] == 1
    assert [a["key"] for a in shown["arms"]] == ["unbalanced", "original", "augment", "duplicate_no_augment",
                                                 "weighted_loss", "balanced_sampler", "pix2pix", *SWEPT_DDPM]
    assert [(a["synthesizer"], a["baseline"], a.get("recipe")) for a in shown["arms"]] == [
        (None, True, None), ("duplicate", True, None), ("augment", True, None),
        ("duplicate", True, {"augment": False}), (None, True, {"loss_weights": "balanced"}),
        (None, True, {"sampler": "balanced"}), ("pix2pix", False, None), *[("ddpm", False, None)] * 3]
    assert [(c["key"], c["classifier"], c["recipe"]["mode"]) for c in shown["classifiers"]] == [
        ("scratch", "resnet50", "scratch"), ("transfer", "resnet50", "transfer")]
    assert shown["data"]["size"] == 32 and shown["split"] == {"test_per_class": 2}  # the tiny preset applied
    assert shown["measures"] == ["accuracy", "macro_f1", "precision", "recall", "f1"]
    paper = json.loads(run_cli("show", "liang2021", "--preset", "paper").output)
    assert paper["data"]["size"] == 224 and paper["split"] == {"test_per_class": 60} and paper["seeds"] == 3
    refused = run_cli("show", "liang2022")
    assert refused.exit_code == 2 and "liang2021" in refused.output


def test_experiment_report_rewrites_the_runs_report_and_refuses_a_directory_that_is_no_experiment(liang_tiny,
                                                                                                    tmp_path):
    out, _ = liang_tiny
    written = {name: (out / name).read_bytes() for name in ("results.csv", "report.md", "comparisons.json")}
    for name in written:
        (out / name).unlink()
    result = run_cli("report", str(out))
    assert result.exit_code == 0, result.output
    assert {name: (out / name).read_bytes() for name in written} == written  # the run's own report, byte for byte
    comparisons = json.loads(written["comparisons.json"])
    assert result.output.strip().splitlines() == [*(c["sentence"] for c in comparisons), f"report: {out / 'report.md'}"]
    empty = tmp_path / "not-an-experiment"
    empty.mkdir()
    refused = run_cli("report", str(empty))
    assert refused.exit_code == 2
    assert refused.output.strip().splitlines() == [
        f"Error: {empty}: not an experiment directory (no experiment.json; run `synthaug experiment run`)"]
    assert list(empty.iterdir()) == []


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
    text = spec.read_text().replace("[split]\ntest_per_class = 2",
                                    "[task]\nbinary = \"covid\"\n\n[split]\ntest_fraction = 0.2")
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
    assert boot["low"] > 0
    seed = stats.paired_seed_comparison([0.6], [0.95])
    assert stats.verdict({"seed": seed, "bootstrap": boot}) == "not judged"  # one seed: no verdict
    two = stats.paired_bootstrap([(y, poor, good)] * 2, "macro_f1", None, num_classes=3, over_seeds=True)
    seeds = stats.paired_seed_comparison([0.6, 0.62], [0.95, 0.93])
    assert stats.verdict({"seed": seeds, "p": two["p"]}) == "helped"
    same = stats.paired_bootstrap([(y, poor, poor)] * 2, "macro_f1", None, num_classes=3, over_seeds=True)
    flat = stats.paired_seed_comparison([0.6, 0.6], [0.6, 0.6])
    assert stats.verdict({"seed": flat, "p": same["p"]}) == "cannot be told apart" and same["diff"] == 0


def test_the_recipes_spec_puts_every_way_of_using_synthesis_against_the_classical_baselines():
    spec = load_spec("recipes", preset="demo")
    assert spec.seeds >= 5 and spec.data["size"] == 32
    ways = {a.key: (a.ratio, a.pretrain, a.pool, a.filter) for a in spec.arms}
    assert [a.key for a in spec.arms if a.baseline] == ["duplicate", "weighted_loss", "balanced_sampler"]
    assert [ways[f"ddpm_share-ratio{r}"][0] for r in ("0.25", "0.5", "1.0")] == [0.25, 0.5, 1.0]
    assert ways["ddpm_pretrain"][1] == {"epochs": 3} and ways["ddpm_pool"][2] == {"per_image": 4, "p": 0.5}
    assert ways["ddpm_filter"][3]["confidence"] == 0.8
    # every ddpm arm fits the same network: one fit per seed for the whole grid
    from synthaug.experiments.layout import Layout

    fits = {Layout("x").fit_dir(a, 0) for a in spec.arms if a.synthesizer == "ddpm"}
    assert len(fits) == 1
    paper = load_spec("recipes", preset="paper")
    assert paper.data["size"] == 224 and paper.arm("ddpm_pool").pool == {"per_image": 10, "p": 0.5}
