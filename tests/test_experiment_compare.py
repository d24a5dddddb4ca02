"""The experiment report's comparisons on a constructed experiment directory (no training): the baselines
named before the run (compare_to), Holm's correction, the patient as the bootstrap unit where a test
split's patient ids repeat, the threshold-free measures and calibration in results.csv and report.md,
and the reliability diagrams (issue #26)."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from synthaug.errors import SynthaugError
from synthaug.experiments.spec import grid, load_spec

SPEC = """
name = "constructed"
seeds = 3
measures = ["accuracy", "macro_f1"]
headline = "accuracy"
positive = "covid"
compare_to = {compare_to}

[data]
source = "ctsim"

[task]
binary = "covid"

[split]
test_per_class = 60

[arms.unbalanced]
strategy = "none"

[arms.duplicate]
synthesizer = "duplicate"
baseline = true

[arms.augment]
synthesizer = "augment"
baseline = true

[arms.synthetic]
synthesizer = "augment"
label = "a synthesizer"

{extra}
[classifiers.small]
classifier = "resnet50"
recipe = {{ epochs = 1 }}
"""

JOINT_ARM = """
[arms.joint]
synthesizer = "xpgan"
measure = "joint"
label = "xpgan's C"
"""

PATIENTS, PER_PATIENT = 40, 3
#: share of patients an arm gets right, per seed: the synthesizer clearly better at every seed
RATES = {"unbalanced": (0.55, 0.6, 0.5), "duplicate": (0.6, 0.65, 0.6), "augment": (0.65, 0.6, 0.6),
         "synthetic": (0.95, 0.9, 0.95), "joint": (0.6, 0.62, 0.64)}


def write_spec(tmp_path: Path, compare_to: str = '["duplicate", "augment"]', extra: str = "") -> Path:
    path = tmp_path / "constructed.toml"
    path.write_text(SPEC.format(compare_to=compare_to, extra=extra))
    return path


def _test_split(seed: int):
    """A seed's test split: 40 patients of 3 images each, a patient's images all of its class."""
    from synthaug.contract.types import ImageSet

    rng = np.random.default_rng(100 + seed)
    labels = np.repeat(rng.integers(0, 2, PATIENTS), PER_PATIENT)
    ids = np.repeat([f"s{seed}-patient{i:02d}" for i in range(PATIENTS)], PER_PATIENT)
    origins = [f"image-{seed}-{i:03d}.png" for i in range(len(labels))]
    images = np.zeros((len(labels), 1, 4, 4), np.float32)
    return ImageSet(images, labels, ("covid", "rest"), ids, origin=np.array(origins))


def _probabilities(y: np.ndarray, rate: float, rng) -> np.ndarray:
    """Right or wrong per patient (all of a patient's images together), confident either way."""
    right = np.repeat(rng.random(PATIENTS) < rate, PER_PATIENT)
    p_true = np.where(right, rng.uniform(0.6, 0.95, len(y)), rng.uniform(0.05, 0.4, len(y)))
    p = np.empty((len(y), 2))
    p[np.arange(len(y)), y] = p_true
    p[np.arange(len(y)), 1 - y] = 1 - p_true
    return p


def build(out: Path, spec_path: Path) -> None:
    """experiment.json, one store (its test split) per seed, every cell's predictions and cell.json."""
    from synthaug.experiments.layout import Layout
    from synthaug.kit.files import write_json
    from synthaug.pipeline.evaluate import write_predictions
    from synthaug.pipeline.metrics import classification_metrics
    from synthaug.pipeline.store import write_store

    spec = load_spec(spec_path)
    layout = Layout(out)
    out.mkdir()
    write_json(layout.experiment_json, {"kind": "synthaug-experiment", "spec": spec.to_dict()})
    write_json(layout.not_run_json, {})
    for seed in range(spec.seeds):
        test = _test_split(seed)
        store = layout.stores_dir / f"unbalanced-seed{seed}.h5"
        store.parent.mkdir(exist_ok=True)
        write_store(store, {"test": test})
        for cell in [c for c in grid(spec) if c.seed == seed]:
            rng = np.random.default_rng([seed, len(cell.arm.key)])
            p = _probabilities(test.labels, RATES[cell.arm.key][seed], rng)
            predictions = layout.run_dir(cell) / "predictions.csv"
            predictions.parent.mkdir(parents=True)
            write_predictions(predictions, test.labels, p, test.class_names, list(test.origin))
            metrics = classification_metrics(test.labels, p.argmax(1), test.class_names, p, positive="covid")
            write_json(layout.cell_json(cell), {
                "cell": cell.key, "arm": cell.arm.key, "classifier": cell.classifier_key, "network": "resnet50",
                "seed": seed, "status": "done", "store": layout.link(store),
                "predictions": layout.link(predictions), "metrics": metrics,
                "train_counts": {"train": {"covid": 10, "rest": 10}, "synthetic": {"covid": 0, "rest": 0},
                                 "test": {c: int((test.labels == i).sum()) for i, c in enumerate(test.class_names)}},
                "seconds": 1.0})


@pytest.fixture(scope="module")
def constructed(tmp_path_factory):
    from synthaug.experiments.report import write_report

    root = tmp_path_factory.mktemp("compare")
    out = root / "exp"
    build(out, write_spec(root))
    write_report(out)
    return out


def _results(out: Path) -> list[dict]:
    with open(out / "results.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_compare_to_names_the_baselines_before_the_run(tmp_path):
    spec = load_spec(write_spec(tmp_path))
    assert spec.compare_to == ["duplicate", "augment"] and spec.baselines_compared() == ["duplicate", "augment"]
    assert "compare_to" not in spec.identity()  # the report's business: a rerun may change it
    default = load_spec(_without_compare_to(tmp_path))
    assert default.compare_to == ["unbalanced", "duplicate", "augment"]  # every baseline arm
    for bad, message in (('["synthetic"]', "'synthetic' is not a baseline arm"), ('["nope"]', "'nope' is not"),
                         ('"augment"', "expected a list"), ("[]", "expected a list")):
        with pytest.raises(SynthaugError, match=f"^compare_to: .*{message}"):
            load_spec(write_spec(tmp_path, bad))


def _without_compare_to(tmp_path: Path) -> Path:
    path = tmp_path / "default.toml"
    path.write_text("\n".join(line for line in SPEC.format(compare_to="x", extra="").splitlines()
                              if not line.startswith("compare_to")))
    return path


def test_each_synthesizer_arm_is_compared_with_each_named_baseline_holm_corrected(constructed):
    from synthaug.experiments import stats

    comps = json.loads((constructed / "comparisons.json").read_text())
    assert [(c["arm"], c["baseline"]) for c in comps] == [("synthetic", ["duplicate", "small"]),
                                                          ("synthetic", ["augment", "small"])]
    assert [c["holm_comparisons"] for c in comps] == [2, 2]
    assert [c["p_holm"] for c in comps] == pytest.approx(stats.holm([c["p"] for c in comps]))
    for comp in comps:
        assert comp["seed"]["n"] == 3 and comp["seed"]["low"] > 0
        assert comp["p_holm"] < 0.05 and comp["verdict"] == "helped"
        assert comp["sentence"].endswith("): helped.") and "Holm-adjusted over 2 comparisons" in comp["sentence"]
    # the unbalanced arm (not named) is only in the table and in the strongest-baseline line
    report = (constructed / "report.md").read_text()
    assert "(compare_to: duplicate, augment)" in report and "small: 2 comparisons" in report
    assert "Holm's method" in report and "Strongest classical baseline with small, for information only" in report


def test_the_patient_is_the_bootstrap_unit_where_ids_repeat(constructed):
    from synthaug.experiments import stats
    from synthaug.pipeline.evaluate import read_predictions

    comps = json.loads((constructed / "comparisons.json").read_text())
    comp = comps[0]
    assert comp["bootstrap"]["unit"] == comp["seed_bootstrap"]["unit"] == "patient"
    assert comp["bootstrap"]["n_units"] == [PATIENTS] * 3 and comp["bootstrap"]["n_images"] == [120] * 3
    report = (constructed / "report.md").read_text()
    assert "Bootstrap unit: the patient. The test split of seed 0 holds 120 images of 40 patients" in report
    assert "40 test patients (120 images) per seed" in comp["sentence"]
    # a patient's images are right or wrong together: resampling images would understate the noise
    pairs = []
    for seed in range(3):
        y, a, _ = read_predictions(constructed / f"cells/duplicate--small--seed{seed}/run/predictions.csv",
                                   ["covid", "rest"])
        _, b, _ = read_predictions(constructed / f"cells/synthetic--small--seed{seed}/run/predictions.csv",
                                   ["covid", "rest"])
        pairs.append((y, a, b))
    images = stats.paired_bootstrap(pairs, "accuracy", None, num_classes=2)
    assert comp["bootstrap"]["half_width"] > 1.3 * images["half_width"]
    assert comp["bootstrap"]["diff"] == pytest.approx(images["diff"])


def test_threshold_free_measures_and_calibration_per_cell(constructed):
    from synthaug.pipeline.evaluate import read_predictions, read_probabilities
    from synthaug.pipeline.metrics import probability_measures

    rows = _results(constructed)
    assert {"auc", "auprc", "ece", "brier"} <= set(rows[0])
    for row in rows:
        path = constructed / "cells" / row["cell"] / "run" / "predictions.csv"
        y, _, _ = read_predictions(path, ["covid", "rest"])
        expected = probability_measures(y, read_probabilities(path, ["covid", "rest"]), positive=0)
        for name, value in expected.items():
            assert float(row[name]) == pytest.approx(value, abs=2e-6), (row["cell"], name)
        assert 0 <= float(row["ece"]) <= 1 and 0 <= float(row["brier"]) <= 1  # binary: the covid probability
    comps = json.loads((constructed / "comparisons.json").read_text())
    for comp in comps:
        assert set(comp["threshold_free"]) == {"auc", "auprc"}
        for measure, free in comp["threshold_free"].items():
            assert free["measure"] == measure and free["holm_comparisons"] == 2 and free["seed"]["n"] == 3
    report = (constructed / "report.md").read_text()
    section = report.split("## Threshold-free measures and calibration", 1)[1].split("\n## ", 1)[0]
    assert "auc: ROC-AUC of covid against the rest" in section
    assert "15 equal-width bins of the covid probability" in section
    assert "Brier score of the covid probability" in section
    assert all(free["sentence"] in section for c in comps for free in c["threshold_free"].values())
    for arm in ("unbalanced", "duplicate", "augment", "synthetic"):
        figure = constructed / "figures" / f"reliability-{arm}--small.png"
        assert figure.stat().st_size > 1000 and f"(figures/reliability-{arm}--small.png)" in section


def test_intervals_of_the_table_and_per_class_f1_stay_inside_0_1(constructed):
    report = (constructed / "report.md").read_text()
    table = report.split("## Results", 1)[1].split("\n## ", 1)[0]
    synthetic = next(line for line in table.splitlines() if line.startswith("| a synthesizer |"))
    low, high = (float(x) for x in synthetic.rstrip(" |").rsplit("|", 1)[1].split(" to "))
    assert 0.8 < low < high <= 1.0
    per_class = report.split("## Per-class F1 (mean over seeds, 95% interval)", 1)[1].split("\n## ", 1)[0]
    line = next(row for row in per_class.splitlines() if row.startswith("| a synthesizer |"))
    for cell in line.strip("|").split("|")[2:]:
        interval = cell.split("(")[1].rstrip(") ")
        low, high = (float(x) for x in interval.split(" to "))
        assert 0.0 <= low <= high <= 1.0


def test_a_jointly_trained_classifier_is_compared_with_the_baselines_of_its_network(tmp_path):
    """quan2021's XPGAN C: its cells have no classifier of the spec; it is compared with the named
    baselines trained by a classifier of the same network, in the same table (one Holm family)."""
    from synthaug.experiments.report import write_report

    out = tmp_path / "exp"
    build(out, write_spec(tmp_path, extra=JOINT_ARM))
    write_report(out)
    comps = json.loads((out / "comparisons.json").read_text())
    assert [(c["arm"], c["classifier"], c["baseline"]) for c in comps] == [
        ("synthetic", "small", ["duplicate", "small"]), ("synthetic", "small", ["augment", "small"]),
        ("joint", "joint", ["duplicate", "small"]), ("joint", "joint", ["augment", "small"])]
    assert {c["holm_comparisons"] for c in comps} == {4}
    joint = comps[2:]
    assert all(c["verdict"] == "cannot be told apart" for c in joint)  # about the baselines' rates: no difference
    assert all(c["verdict"] == "helped" for c in comps[:2])
    assert "xpgan's C (its jointly trained classifier) vs duplicate" in joint[0]["sentence"]
    assert "small: 4 comparisons" in (out / "report.md").read_text()


def test_the_report_says_when_a_table_has_too_many_comparisons_for_the_bootstrap(tmp_path):
    from synthaug.experiments import report

    spec = load_spec(write_spec(tmp_path))
    many = [{"seeds": 3, "holm_comparisons": 60, "baseline": ["augment", "small"]}]
    text = report._method_text(spec, many, None)
    assert "a table of 60 comparisons cannot reach 0.05 after Holm's correction" in text
    few = [{"seeds": 3, "holm_comparisons": 6, "baseline": ["augment", "small"]}]
    assert "cannot reach" not in report._method_text(spec, few, None)
    one_seed = [{"seeds": 1, "holm_comparisons": 0, "baseline": ["augment", "small"]}]
    assert "With 1 seed no verdict is given" in report._method_text(spec, one_seed, None)
