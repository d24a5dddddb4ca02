"""`synthaug demo` end to end on the tiny preset: report, figures, counts, same test split."""

import json

import numpy as np
from click.testing import CliRunner

from synthaug import read_store
from synthaug.cli import main


def test_demo_tiny_writes_a_complete_report(tmp_path):
    out = tmp_path / "report"
    result = CliRunner().invoke(main, ["--quiet", "demo", "--preset", "tiny", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"report: {out / 'report.md'}" in result.output
    for name in ("report.md", "summary.json", "samples.png", "original/confusion.png", "balanced/curves.png",
                 "original/metrics.json", "balanced/manifest.json"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    counts = summary["counts"]
    assert len(set(counts["balanced_train"].values())) == 1  # balanced
    assert counts["original_train"] != counts["balanced_train"]
    assert counts["test"] == {"covid": 1, "normal": 1, "viral": 1}
    deficits = {c: counts["balanced_train"][c] - counts["original_train"][c] for c in counts["test"]}
    assert counts["synthetic"] == deficits
    for run in summary["metrics"].values():
        assert 0.0 <= run["accuracy"] <= 1.0 and len(run["confusion"]) == 3
        assert sum(map(sum, run["confusion"])) == 3  # evaluated on the 3 real test images
    # Both runs were evaluated on the very same real test images.
    a, b = read_store(out / "original.h5", "test"), read_store(out / "balanced.h5", "test")
    assert list(a.origin) == list(b.origin) and set(a.synth) == {"real"}
    np.testing.assert_array_equal(a.images, b.images)
    report = (out / "report.md").read_text()
    assert "| original |" in report and "| balanced |" in report and "![samples](samples.png)" in report
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temporary left behind


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
