"""`synthaug demo` end to end on the tiny preset: a six-arm experiment (unbalanced, duplicate, augment,
a class-weighted loss, a class-balanced sampler, the synthesizer) on one split; counts, the shared test
split, measures that follow from the confusion matrices, the comparison printed, the same results for
the same seed, every stage timed (printed, recorded in experiment.json, shown in the report's Time
section)."""

import csv
import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from synthaug import read_store
from synthaug.cli import main
from synthaug.kit import progress

CLASSES = ["covid", "normal", "viral"]  # ctsim's classes, in order
ARMS = ["unbalanced", "duplicate", "augment", "weighted_loss", "balanced_sampler", "synthesis"]
STORES = ["unbalanced", "duplicate", "augment", "synthesis"]  # the loss and sampler arms train on the unbalanced store
SYNTH = ARMS.index("synthesis")
LABELS = {"synthesis": "pix2pix", "weighted_loss": "class-weighted loss", "balanced_sampler": "class-balanced sampler"}


def _run_demo(out, *args: str, quiet: bool = True) -> list[dict]:
    """Run the tiny demo into ``out``; not ``quiet``: with progress on (the suite runs quietly), its
    stderr kept in ``out/demo-stderr.txt``."""
    was_quiet = progress.is_quiet()
    progress.set_quiet(quiet)
    try:
        result = CliRunner().invoke(main, [*(["--quiet"] if quiet else []), "demo", "--preset", "tiny",
                                           "--out", str(out), *args])
    finally:
        progress.set_quiet(was_quiet)
    assert result.exit_code == 0, result.output
    if quiet:
        assert "stage data:" not in result.output  # quiet means no stage lines either
    else:
        (out / "demo-stderr.txt").write_text(result.stderr)
    assert f"report: {out / 'report.md'}" in result.output
    comparisons = json.loads((out / "comparisons.json").read_text())
    # the synthesizer against each baseline named before the run (compare_to: every baseline arm)
    from synthaug.experiments.demo import demo_spec

    assert [(c["arm"], c["baseline"][0]) for c in comparisons] == [
        ("synthesis", base) for base in demo_spec("tiny").baselines_compared()]
    assert all(c["sentence"] in result.output and c["verdict"] == "not judged" for c in comparisons)  # 1 seed
    (out / "demo-output.txt").write_text(result.output)
    with open(out / "results.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def tiny_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "report"
    return out, _run_demo(out, quiet=False)


def test_demo_tiny_runs_every_arm_on_one_test_split(tiny_demo):
    out, rows = tiny_demo
    assert [r["arm"] for r in rows] == ARMS and {r["status"] for r in rows} == {"done"}
    assert rows[SYNTH]["synthesizer"] == "pix2pix"  # the best registered synthesizer
    stores = {arm: out / "stores" / f"{arm}-seed0.h5" for arm in STORES}
    train = {arm: read_store(path, "train") for arm, path in stores.items()}
    test = {arm: read_store(path, "test") for arm, path in stores.items()}
    # every arm is measured on the same real test images: 2 per class (tiny preset)
    for arm in STORES[1:]:
        assert list(test[arm].origin) == list(test["unbalanced"].origin)
        np.testing.assert_array_equal(test[arm].images, test["unbalanced"].images)
    assert test["unbalanced"].counts() == {c: 2 for c in CLASSES} and set(test["unbalanced"].synth) == {"real"}
    # unbalanced: the training split as it is; the others: it plus the deficits, made by their synthesizer
    base = train["unbalanced"]
    assert set(base.synth) == {"real"} and len(set(base.counts().values())) > 1
    deficits = {c: max(base.counts().values()) - n for c, n in base.counts().items()}
    for arm, synth in (("duplicate", "duplicate"), ("augment", "augment"), ("synthesis", "pix2pix")):
        t = train[arm]
        assert len(set(t.counts().values())) == 1 and t.counts(synthetic=True) == deficits
        assert set(t.synth[t.synth != "real"]) == {synth}
        np.testing.assert_array_equal(t.images[t.synth == "real"], base.images)


def test_demo_measures_follow_from_the_confusion_matrices(tiny_demo):
    out, rows = tiny_demo
    report = (out / "report.md").read_text()
    for row in rows:
        cell = json.loads((out / "cells" / row["cell"] / "cell.json").read_text())
        cm = np.asarray(cell["metrics"]["confusion"], float)
        assert cm.sum(1).tolist() == [2, 2, 2]  # every test image, once
        tp = np.diag(cm)
        recall = tp / cm.sum(1)
        precision = np.divide(tp, cm.sum(0), out=np.zeros(3), where=cm.sum(0) > 0)
        f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(3), where=precision + recall > 0)
        assert float(row["accuracy"]) == pytest.approx(tp.sum() / 6, abs=1e-6)
        assert float(row["macro_f1"]) == pytest.approx(f1.mean(), abs=1e-6)
        assert float(row["recall"]) == pytest.approx(recall[0], abs=1e-6)  # covid sensitivity
        negatives = cm[1:].sum()
        assert float(row["specificity"]) == pytest.approx((negatives - cm[1:, 0].sum()) / negatives, abs=1e-6)
        label = LABELS.get(row["arm"], row["arm"])
        accuracy, macro_f1 = float(row["accuracy"]), float(row["macro_f1"])
        assert f"| {label} | resnet50 from scratch | 1 | {accuracy:.3f} | {macro_f1:.3f} |" in report
    assert "best mean macro_f1" in report  # which arm won, and by how much


def test_demo_measures_the_synthetic_images_and_reports_their_quality(tiny_demo):
    out, _ = tiny_demo
    # one feature network for the seed, and a quality directory per synthesizing arm
    assert (out / "quality" / "features-seed0" / "features.json").is_file()
    tables = {arm: json.loads((out / "quality" / f"{arm}-seed0" / "quality.json").read_text())["table"]
              for arm in ("duplicate", "augment", "synthesis")}
    covid = {arm: next(r for r in rows if r["class"] == "covid" and r["synthesizer"] != "real (train)")
             for arm, rows in tables.items()}
    assert covid["duplicate"]["synthesizer"] == "duplicate" and covid["duplicate"]["copies_pixels"] == 1.0
    assert covid["synthesis"]["synthesizer"] == "pix2pix" and covid["synthesis"]["n"] == 5
    # the fitted pix2pix measured itself on the seed's test split: G(twin) against the 2 covid test images
    checkpoint = json.loads((out / "quality" / "synthesis-seed0" / "quality.json").read_text())["checkpoint"]
    assert checkpoint["synthesizer"] == "pix2pix" and checkpoint["measures"]["targets"]["covid"]["n"] == 2
    assert {"model", "identity"} <= set(checkpoint["measures"]["targets"]["covid"])
    # 2 test images per class in the tiny preset: too few for FID and the rest, said so rather than faked
    assert "needs at least 4 images" in covid["augment"]["skipped"]
    report = (out / "report.md").read_text()
    assert "## Quality of the synthetic images" in report
    assert "](quality/duplicate-seed0/figures/nearest-duplicate-covid.png)" in report
    assert (out / "quality" / "duplicate-seed0" / "figures" / "nearest-duplicate-covid.png").stat().st_size > 0
    printed = (out / "demo-output.txt").read_text()
    assert "quality of duplicate covid images (seed 0, 5 images)" in printed and "100% copies" in printed


def test_demo_runs_are_complete_run_directories(tiny_demo):
    out, rows = tiny_demo
    run = out / "cells" / rows[SYNTH]["cell"] / "run"
    result = CliRunner().invoke(main, ["--quiet", "evaluate", "--run", str(run)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["accuracy"] == pytest.approx(float(rows[SYNTH]["accuracy"]), abs=1e-6)


def test_demo_same_seed_same_results(tiny_demo, tmp_path):
    out, rows = tiny_demo
    _run_demo(tmp_path / "again")
    assert (tmp_path / "again" / "results.csv").read_text() == (out / "results.csv").read_text()
    assert read_store(tmp_path / "again" / "stores" / "synthesis-seed0.h5", "train").images.tobytes() == \
        read_store(out / "stores" / "synthesis-seed0.h5", "train").images.tobytes()


def _stages(out) -> list[dict]:
    return json.loads((out / "experiment.json").read_text())["stages"]


def test_demo_times_every_stage_prints_each_as_it_finishes_and_reports_them(tiny_demo):
    out, rows = tiny_demo
    stages = _stages(out)
    names = [s["name"] for s in stages]
    fits = sorted(p.name for p in (out / "fits").iterdir() if p.is_dir())
    stores = sorted(p.stem for p in (out / "stores").glob("*.h5"))
    assert len(fits) == 1 and len(stores) == 4
    # one entry per stage: the data, the fit, every store's balance, every cell, quality, the report
    assert sorted(names) == sorted(["data", *(f"fit {f}" for f in fits), *(f"balance {s}" for s in stores),
                                    *(f"cell {r['cell']}" for r in rows), "quality seed0", "report"])
    assert names[0] == "data" and names[-2:] == ["quality seed0", "report"]
    assert names.index(f"fit {fits[0]}") < names.index("balance synthesis-seed0")  # the fit before its store
    assert all(s["seconds"] >= 0 and not s.get("reused") for s in stages)  # a fresh run measured them all
    # the stages do not overlap (a store's balance excludes its fit, a cell its store): within the total
    total = json.loads((out / "experiment.json").read_text())["seconds"]
    assert sum(s["seconds"] for s in stages) <= total + 0.01
    # each printed on stderr as it finished, in order
    printed = [line for line in (out / "demo-stderr.txt").read_text().splitlines() if line.startswith("stage ")]
    assert printed == [f"stage {s['name']}: {s['seconds']:.1f} s" for s in stages]
    # the report's Time section: the same stages and seconds, and the total
    time_section = (out / "report.md").read_text().split("## Time", 1)[1]
    for s in stages:
        assert f"| {s['name']} | {s['seconds']:.1f} |" in time_section
    assert f"Total wall time of the last run: {total:.1f} s" in time_section


def test_rerunning_the_demo_keeps_the_seconds_each_reused_stage_took(tiny_demo, tmp_path):
    out, _ = tiny_demo
    again = tmp_path / "rerun"
    shutil.copytree(out, again)
    _run_demo(again)
    assert (again / "results.csv").read_text() == (out / "results.csv").read_text()
    first = {s["name"]: s for s in _stages(out)}
    rerun = _stages(again)
    assert sorted(s["name"] for s in rerun) == sorted(first)
    for s in rerun:
        if s["name"] in ("data", "report"):  # read and written again by every run
            assert not s.get("reused")
        else:  # nothing else was redone: the seconds are the first run's, marked as reused
            assert s["reused"] is True and s["seconds"] == first[s["name"]]["seconds"]
    assert "(earlier run)" in (again / "report.md").read_text().split("## Time", 1)[1]


def test_demo_with_a_volume_synthesizer_projects_ctsim_cts_of_training_patients_only(tmp_path):
    out = tmp_path / "report"
    rows = _run_demo(out, "--synth", "drr")
    assert rows[SYNTH]["synthesizer"] == "drr"
    train, test = read_store(out / "stores" / "synthesis-seed0.h5", "train"), \
        read_store(out / "stores" / "synthesis-seed0.h5", "test")
    made = train.synth == "drr"
    assert made.sum() == int(rows[SYNTH]["n_synthetic"]) > 0 and all(o.startswith("ctsim:") for o in train.origin[made])
    # the CTs are the radiographs' own patients; none of the test patients' was projected
    assert set(train.patient_ids[made]) <= set(train.patient_ids[~made])
    assert not set(train.patient_ids[made]) & set(test.patient_ids)


def test_demo_bad_preset_is_a_usage_error():
    result = CliRunner().invoke(main, ["demo", "--preset", "huge"])
    assert result.exit_code == 2 and "huge" in result.output
