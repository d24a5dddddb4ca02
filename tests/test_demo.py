"""`synthaug demo` end to end on the tiny preset: report, figures, counts, same test split, metrics
that follow from the confusion matrices, the same result for the same seed."""

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from synthaug import read_store
from synthaug.cli import main
from synthaug.experiments.demo import PRESETS

CLASSES = ["covid", "normal", "viral"]  # ctsim's classes, in order


def _run_demo(out: Path, *args: str) -> dict:
    result = CliRunner().invoke(main, ["--quiet", "demo", "--preset", "tiny", "--out", str(out), *args])
    assert result.exit_code == 0, result.output
    assert f"report: {out / 'report.md'}" in result.output
    return json.loads((out / "summary.json").read_text())


def _metrics_from_confusion(cm: np.ndarray, positive: str = "covid") -> dict:
    """accuracy, F1s, per-class scores and covid sensitivity/specificity recomputed from a confusion
    matrix (rows true, columns predicted; 0 where a denominator is 0)."""
    cm = np.asarray(cm, float)
    tp, predicted, true = np.diag(cm), cm.sum(0), cm.sum(1)
    ratio = lambda a, b: np.divide(a, b, out=np.zeros_like(a), where=b > 0)  # noqa: E731
    precision, recall = ratio(tp, predicted), ratio(tp, true)
    f1 = ratio(2 * precision * recall, precision + recall)
    p = CLASSES.index(positive)
    negatives = cm.sum() - true[p]
    return {"n": int(cm.sum()), "accuracy": tp.sum() / cm.sum(), "macro_f1": f1.mean(),
            "weighted_f1": (f1 * true).sum() / cm.sum(),
            "per_class": {c: {"precision": precision[i], "recall": recall[i], "f1": f1[i], "support": int(true[i])}
                          for i, c in enumerate(CLASSES)},
            "sensitivity": recall[p], "specificity": (negatives - (predicted[p] - tp[p])) / negatives}


def _without_paths(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k not in ("data", "files")}


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory) -> tuple[Path, dict]:
    """`synthaug demo --preset tiny` (pix2pix, seed 0), run once for the tests of this module."""
    out = tmp_path_factory.mktemp("demo") / "report"
    return out, _run_demo(out)


def test_demo_tiny_writes_a_complete_report(tiny_report, tmp_path):
    out, summary = tiny_report
    for name in ("report.md", "summary.json", "samples.png", "original/confusion.png", "balanced/curves.png",
                 "original/metrics.json", "balanced/manifest.json"):
        assert (out / name).is_file(), name
    per_class = PRESETS["tiny"].test_per_class
    counts = summary["counts"]
    assert summary["synthesizer"] == "pix2pix" and summary["seed"] == 0
    assert counts["test"] == {c: per_class for c in CLASSES}
    deficits = {c: counts["balanced_train"][c] - counts["original_train"][c] for c in CLASSES}
    assert counts["synthetic"] == deficits

    # The stores themselves: the original training split is imbalanced, the balanced one is not, and it
    # is the original one plus synthetic images of the classes short of the majority.
    original, balanced = read_store(out / "original.h5", "train"), read_store(out / "balanced.h5", "train")
    assert original.counts() == counts["original_train"] and balanced.counts() == counts["balanced_train"]
    assert len(set(original.counts().values())) > 1
    assert len(set(balanced.counts().values())) == 1
    assert set(original.synth) == {"real"} and balanced.counts(synthetic=True) == deficits
    real = balanced.synth == "real"
    assert list(balanced.origin[real]) == list(original.origin)
    np.testing.assert_array_equal(balanced.images[real], original.images)

    # Both runs were evaluated on the very same real test images, test_per_class of each class.
    a, b = read_store(out / "original.h5", "test"), read_store(out / "balanced.h5", "test")
    assert list(a.origin) == list(b.origin) and set(a.synth) == {"real"}
    np.testing.assert_array_equal(a.images, b.images)
    assert np.bincount(a.labels, minlength=3).tolist() == [per_class] * 3

    report = (out / "report.md").read_text()
    for name in ("original", "balanced"):
        run = summary["metrics"][name]
        # summary.json holds what the run's metrics.json holds
        assert _without_paths(json.loads((out / name / "metrics.json").read_text())) == _without_paths(run)
        cm = np.array(run["confusion"])
        assert cm.shape == (3, 3) and cm.sum(1).tolist() == [per_class] * 3  # every test image, once
        expected = _metrics_from_confusion(cm)
        assert run["n"] == expected["n"] == 3 * per_class and run["positive_class"] == "covid"
        for key in ("accuracy", "macro_f1", "weighted_f1", "sensitivity", "specificity"):
            assert run[key] == pytest.approx(expected[key], abs=1e-12), (name, key)
        for c in CLASSES:
            for key in ("precision", "recall", "f1"):
                assert run["per_class"][c][key] == pytest.approx(expected["per_class"][c][key], abs=1e-12), (name, c, key)
            assert run["per_class"][c]["support"] == per_class
        # the report's table shows these numbers
        row = (f"| {name} | " + ", ".join(f"{c} {n}" for c, n in counts[f"{name}_train"].items()) +
               f" | {run['accuracy']:.3f} | {run['macro_f1']:.3f} | {run['sensitivity']:.3f} | {run['specificity']:.3f} |")
        assert row in report, row
    assert "![samples](samples.png)" in report
    assert [p.name for p in out.parent.iterdir()] == ["report"]  # no temporary left behind

    # The same seed gives the same stores and the same measurements (ctsim is cached now: seconds).
    again = _run_demo(tmp_path / "again")
    assert again["counts"] == summary["counts"]
    for name in ("original", "balanced"):
        assert _without_paths(again["metrics"][name]) == _without_paths(summary["metrics"][name]), name
    assert read_store(tmp_path / "again" / "balanced.h5", "train").images.tobytes() == balanced.images.tobytes()
    assert read_store(tmp_path / "again" / "balanced.h5", "test").images.tobytes() == b.images.tobytes()


def test_demo_run_directories_are_complete_where_they_land(tiny_report):
    """docs/demo.md: original/ and balanced/ are complete run directories that `synthaug evaluate --run`
    accepts; their manifests and metrics name the stores in the report directory (not the temporary
    directory the report was written in)."""
    out, summary = tiny_report
    for name in ("original", "balanced"):
        manifest = json.loads((out / name / "manifest.json").read_text())
        assert Path(manifest["data"]["path"]) == (out / f"{name}.h5").resolve(), manifest["data"]["path"]
        assert Path(summary["metrics"][name]["data"]) == (out / f"{name}.h5").resolve()
        result = CliRunner().invoke(main, ["--quiet", "evaluate", "--run", str(out / name)])
        assert result.exit_code == 0, result.output
        metrics = json.loads((out / name / "metrics.json").read_text())
        assert _without_paths(metrics) == _without_paths(summary["metrics"][name])


def test_demo_with_a_volume_synthesizer_projects_ctsim_cts_of_training_patients_only(tmp_path):
    out = tmp_path / "report"
    result = CliRunner().invoke(main, ["--quiet", "demo", "--preset", "tiny", "--synth", "drr", "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["synthesizer"] == "drr" and summary["counts"]["synthetic"] == {"covid": 11, "normal": 0, "viral": 0}
    train, test = read_store(out / "balanced.h5", "train"), read_store(out / "balanced.h5", "test")
    made = train.synth == "drr"
    assert made.sum() == 11 and all(o.startswith("ctsim:") for o in train.origin[made])
    # the CTs are the radiographs' own patients; none of the test patients' was projected
    assert set(train.patient_ids[made]) <= set(train.patient_ids[~made])
    assert not set(train.patient_ids[made]) & set(test.patient_ids)


def test_demo_bad_preset_is_a_usage_error():
    result = CliRunner().invoke(main, ["demo", "--preset", "huge"])
    assert result.exit_code == 2 and "huge" in result.output
