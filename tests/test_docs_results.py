"""docs/results/tables.py rewrites the measured tables of docs/*.md from a run's own files.

The fake runs are written by synthaug's own writers (results.csv by ``experiments.report.results_csv``
from cell.json files, quality.json rows by ``assess.report.table_row``), so the helper is tested on
the format the runs write, not on a copy of it.
"""

import csv
import importlib.util
import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
MARKER = re.compile(r"^<!-- results:([a-z0-9-]+) (begin|end) -->$", re.M)
STAMP = {"commit": "abc1234", "dirty": True, "date": "2026-12-01", "cores": 2}


@pytest.fixture(scope="module")
def tables():
    spec = importlib.util.spec_from_file_location("docs_results_tables", RESULTS / "tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---- fake runs, written by synthaug's writers ------------------------------------------------------
def per_class(cm: np.ndarray, classes: list[str]) -> dict:
    out = {}
    for i, c in enumerate(classes):
        tp, predicted, true = cm[i, i], cm[:, i].sum(), cm[i].sum()
        p, r = (tp / predicted if predicted else 0.0), (tp / true if true else 0.0)
        out[c] = {"precision": float(p), "recall": float(r), "f1": float(2 * p * r / (p + r) if p + r else 0.0)}
    return out


def fake_experiment(out: Path, spec, confusions: dict, counts: dict, classes: list[str]) -> None:
    """experiment.json, a cell.json per (arm, seed) of ``confusions`` (first classifier), not-run.json
    for the rest, and results.csv as `synthaug experiment report` writes it."""
    from synthaug.experiments.report import collect, results_csv
    from synthaug.experiments.spec import grid

    out.mkdir(parents=True)
    (out / "experiment.json").write_text(json.dumps({"kind": "synthaug-experiment", "spec": spec.to_dict()}))
    not_run = {}
    for cell in grid(spec):
        if cell.arm.key not in confusions or cell.classifier not in (None, spec.classifiers[0]):
            not_run[cell.key] = "no --weights resnet50=PATH"
            continue
        cm = np.asarray(confusions[cell.arm.key][cell.seed])
        directory = out / "cells" / cell.key
        directory.mkdir(parents=True)
        (directory / "cell.json").write_text(json.dumps({
            "cell": cell.key, "arm": cell.arm.key, "classifier": cell.classifier_key, "network": "resnet50",
            "seed": cell.seed, "status": "done", "store": f"stores/{cell.arm.key}-seed{cell.seed}.h5",
            "predictions": f"cells/{cell.key}/run/predictions.csv",
            "metrics": {"per_class": per_class(cm, classes), "confusion": cm.tolist(), "roc_auc": {"macro": 0.9}},
            "train_counts": counts[cell.arm.key], "seconds": 1.0}))
    (out / "not-run.json").write_text(json.dumps(not_run))
    spec_, rows = collect(out)
    (out / "results.csv").write_text(results_csv(spec_, rows))
    (out / "docs-results.json").write_text(json.dumps(STAMP))


def fidelity(seed: int) -> dict:
    r = np.random.default_rng(seed).uniform(0.01, 0.99, 12)
    return {"fid": {"value": 10 * r[0], "se": r[1]}, "fid_inf": {"value": 10 * r[2], "se": 3 * r[3]},
            "kid": {"value": r[4] / 10, "std": r[5] / 10}, "precision": r[6], "recall": r[7], "density": r[8],
            "coverage": r[9], "two_sample": {"auc": r[10], "low": r[10] - 0.05, "high": min(r[10] + 0.05, 1.0)}}


def quality_json(path: Path, synthesizer: str, seed: int, classes=("covid",), n=113, real=22) -> None:
    from synthaug.assess.report import REFERENCE, json_ready, table_row

    rows = [table_row(REFERENCE, c, real, fidelity(100 + i), None) for i, c in enumerate(classes)]
    rows += [table_row(synthesizer, c, n, fidelity(seed + i),
                       {"pixels": {"copies": 0.25 * seed % 1, "near_copies": 0.5}}) for i, c in enumerate(classes)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(json_ready({"table": rows})))


CLASSES = ["covid", "normal", "viral"]
TRAIN = {"covid": 22, "normal": 134, "viral": 135}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    from synthaug.experiments.demo import demo_spec

    out = tmp_path_factory.mktemp("demo") / "run"
    rng = np.random.default_rng(0)
    confusions = {arm: [rng.integers(0, 40, (3, 3)) + np.diag([60, 60, 60])]
                  for arm in ("unbalanced", "duplicate", "augment", "synthesis")}
    counts = {"unbalanced": {"train": TRAIN, "synthetic": {"covid": 0, "normal": 0, "viral": 0}}}
    for arm in ("duplicate", "augment", "synthesis"):
        counts[arm] = {"train": {c: 135 for c in CLASSES}, "synthetic": {"covid": 113, "normal": 1, "viral": 0}}
    for c in counts.values():
        c["test"] = {k: 100 for k in CLASSES}
    fake_experiment(out, demo_spec("tiny", "pix2pix"), confusions, counts, CLASSES)
    for seed, key in enumerate(("augment", "duplicate", "synthesis"), start=1):
        quality_json(out / "quality" / f"{key}-seed0" / "quality.json", "x", seed)
    saved = json.loads((out / "experiment.json").read_text())
    stages = [{"name": "data", "seconds": 61.25}, {"name": "fit pix2pix-1234abcd-seed0", "seconds": 140.0},
              {"name": "cell unbalanced--resnet50--seed0", "seconds": 44.04, "reused": True}]
    (out / "experiment.json").write_text(json.dumps({**saved, "stages": stages, "seconds": 390.5}))
    return out


def page_with(names: list[str], body: str = "| old | table |\n|---|---|\n| 1 | 2 |") -> str:
    blocks = "".join(f"\nText before {n}.\n\n<!-- results:{n} begin -->\n{body}\n<!-- results:{n} end -->\n"
                     "\nText after.\n" for n in names)
    return f"# A page\n\n```\nsynthaug demo --preset demo\n```\n{blocks}"


def block(text: str, name: str) -> list[str]:
    lines = text.split("\n")
    return lines[lines.index(f"<!-- results:{name} begin -->") + 1:lines.index(f"<!-- results:{name} end -->")]


def outside(text: str) -> str:
    return re.sub(r"<!-- results:(\S+) begin -->.*?<!-- results:\1 end -->", "", text, flags=re.S)


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_demo_tables_hold_the_runs_numbers(tables, demo_run, tmp_path):
    page = tmp_path / "demo.md"
    page.write_text(page_with(["demo-table", "demo-quality", "demo-time"]))
    before = page.read_text()
    tables.write("demo", demo_run, page)
    text = page.read_text()
    assert outside(text) == outside(before)
    line = "Measured at commit abc1234 + uncommitted changes on 2026-12-01 (2 CPU cores) by `docs/results/demo.sh`."
    results = [r for r in csv.DictReader(open(demo_run / "results.csv", newline="")) if r["status"] == "done"]
    got = block(text, "demo-table")
    assert got[:2] == [line, ""]
    assert cells(got[2]) == ["training set", "images per class", "accuracy", "macro-F1", "covid recall",
                             "covid precision"]
    rows = [cells(r) for r in got[4:]]
    assert [r[0] for r in rows] == ["unbalanced", "duplicate", "augment", "pix2pix"]
    for row, result in zip(rows, results):
        assert row[2:] == [f"{float(result[m]):.3f}" for m in ("accuracy", "macro_f1", "recall", "precision")]
    assert rows[0][1] == "covid 22, normal 134, viral 135"
    assert [r[1] for r in rows[1:]] == ["135 each (113 covid copies)", "135 each (113 covid flipped/rotated)",
                                        "135 each (113 covid translated from normal)"]  # normal's 1 left out
    quality = block(text, "demo-quality")
    assert quality[:2] == [line, ""]
    rows = [cells(r) for r in quality[4:]]
    assert [r[0] for r in rows] == ["augment", "duplicate", "pix2pix", "real training images (reference)"]
    for row, key in zip(rows, ("augment", "duplicate", "synthesis", "augment")):
        data = json.loads((demo_run / "quality" / f"{key}-seed0" / "quality.json").read_text())["table"]
        q = data[0] if row[0].startswith("real") else data[1]
        assert row[1:7] == [str(q["n"]), f"{q['fid_inf']:.1f} ± {q['fid_inf_se']:.1f}", f"{q['precision']:.2f}",
                            f"{q['recall']:.2f}", f"{q['coverage']:.2f}",
                            f"{q['auc']:.2f} [{q['auc_low']:.2f}, {q['auc_high']:.2f}]"]
        assert row[7:] == (["—", "—"] if row[0].startswith("real") else
                           [f"{100 * q['copies_pixels']:.0f}%", f"{100 * q['near_copies_pixels']:.0f}%"])
    timing = block(text, "demo-time")
    assert timing[:2] == [line, ""]
    assert [cells(r) for r in timing[2:7]] == [["stage", "seconds"], ["---", "---:"], ["data", "61.2"],
                                               ["fit pix2pix-1234abcd-seed0", "140.0"],
                                               ["cell unbalanced--resnet50--seed0", "44.0 (earlier run)"]]
    assert "Total wall time of the last run: 390.5 s (6.5 min)." in timing
    tables.write("demo", demo_run, page)  # the same run again: the same page, byte for byte
    assert page.read_text() == text


def test_seeds_table_means_std_and_interval(tables, tmp_path):
    from synthaug.experiments.spec import load_spec
    from synthaug.experiments.stats import proportion_interval

    spec = load_spec("liang2021", preset="tiny", seeds=3)
    rng = np.random.default_rng(1)
    arms = ("unbalanced", "original", "augment", "pix2pix")
    confusions = {a: [rng.integers(0, 30, (3, 3)) + np.diag([70, 70, 70]) for _ in range(3)] for a in arms}
    counts = {a: {"train": TRAIN, "synthetic": {}, "test": {c: 100 for c in CLASSES}} for a in arms}
    run = tmp_path / "liang"
    fake_experiment(run, spec, confusions, counts, CLASSES)
    page = tmp_path / "experiments.md"
    page.write_text(page_with(["liang2021-table"]))
    tables.write("liang2021", run, page, "liang2021-table")
    got = block(page.read_text(), "liang2021-table")
    assert got[0].endswith("by `docs/results/liang2021.sh`.")
    assert cells(got[2])[1:3] == ["accuracy", "macro-F1"]
    results = [r for r in csv.DictReader(open(run / "results.csv", newline="")) if r["status"] == "done"]
    rows = [cells(r) for r in got[4:]]
    assert [r[0] for r in rows] == ["unbalanced", "original (covid duplicated)", "augment (flip + 5° rotation)",
                                    "pix2pix (normal → covid)"]
    best = max(arms, key=lambda a: statistics.mean(float(r["macro_f1"]) for r in results if r["arm"] == a))
    for row, arm in zip(rows, arms):
        mine = [r for r in results if r["arm"] == arm]
        assert len(mine) == 3
        expected = []
        for m in ("accuracy", "macro_f1", "precision", "recall", "f1"):
            values = [float(r[m]) for r in mine]
            text = f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"
            expected.append(f"**{text}**" if m == "macro_f1" and arm == best else text)
        # without predictions the report's interval is the logit-scale t interval of the seeds' values
        interval = proportion_interval([float(r["macro_f1"]) for r in mine])
        assert 0 <= interval["low"] <= interval["high"] <= 1
        expected.append(f"{interval['low']:.3f} to {interval['high']:.3f}")
        assert row[1:] == expected


def test_comparisons_table_signs_and_verdicts(tables, tmp_path):
    run = tmp_path / "quan"
    run.mkdir()
    base = ["xray_only", "densenet121"]
    found = [{"arm": "covidgan", "classifier": "densenet121", "baseline": base, "p_holm": 0.9123,
              "seed_bootstrap": {"diff": 0.0012, "low": -0.0149, "high": 0.0171}, "verdict": "cannot be told apart"},
             {"arm": "drr", "classifier": "densenet121", "baseline": ["augment", "densenet121"], "p_holm": 0.0041,
              "seed_bootstrap": {"diff": -0.0304, "low": -0.0521, "high": -0.0102}, "verdict": "hurt",
              "seed": {"diff": -0.03, "low": -0.061, "high": -0.004}},
             {"arm": "drr", "classifier": "densenet121", "baseline": base, "p_holm": 1.0,
              "seed": {"diff": 0.002, "low": None, "high": None},
              "verdict": "not judged"},
             {"arm": "xpgan", "classifier": "densenet121", "baseline": None, "verdict": None,
              "sentence": "no baseline"}]
    (run / "comparisons.json").write_text(json.dumps(found))
    page = tmp_path / "p.md"
    page.write_text(page_with(["quan2021-comparisons"]))
    tables.write("quan2021", run, page, "quan2021-comparisons")
    rows = [cells(r) for r in block(page.read_text(), "quan2021-comparisons")[4:]]
    assert rows == [["+DRR", "augment", "−0.030 (−0.052 to −0.010)", "−0.061 to −0.004", "0.004", "hurt"],
                    ["+DRR", "xray_only", "+0.002", "n/a", "1.000", "not judged"],
                    ["acgan", "xray_only", "+0.001 (−0.015 to +0.017)", "n/a", "0.912", "cannot be told apart"]]


def test_quality_tables(tables, tmp_path):
    run = tmp_path / "quality"
    for seed, name in enumerate(tables.QUALITY_STORES, start=1):
        quality_json(run / "quality" / name / "quality.json", name, seed)
    for epochs in (2, 6):
        quality_json(run / "quality" / f"epochs-{epochs}" / "quality.json", "duplicate", epochs,
                     classes=("covid", "normal", "viral"))
    page = tmp_path / "quality.md"
    page.write_text(page_with(["quality-table", "quality-feature-epochs"]))
    tables.write("quality", run, page)
    text = page.read_text()
    rows = [cells(r) for r in block(text, "quality-table")[4:]]
    assert [r[0] for r in rows] == [*tables.QUALITY_STORES, "real training images (reference)"]
    duplicate = json.loads((run / "quality" / "duplicate" / "quality.json").read_text())["table"][1]
    assert rows[0][1:5] == ["113", f"{duplicate['fid_inf']:.1f} ± {duplicate['fid_inf_se']:.1f}",
                            f"{duplicate['kid']:.3f} ± {duplicate['kid_std']:.3f}", f"{duplicate['precision']:.2f}"]
    epochs = block(text, "quality-feature-epochs")
    assert cells(epochs[2]) == ["feature epochs", "covid (22 training images): FID∞ ± se, two-sample AUC",
                                "normal (22): FID∞ ± se, two-sample AUC"]
    assert [cells(r)[0] for r in epochs[4:]] == ["2 (default)", "6"]


def test_a_page_without_the_markers_is_one_line(demo_run, tmp_path):
    page = tmp_path / "nomarkers.md"
    page.write_text("# no tables here\n")
    done = subprocess.run([sys.executable, str(RESULTS / "tables.py"), "write", "demo", str(demo_run), str(page)],
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and str(page) in done.stderr
    assert "<!-- results:demo-table begin -->" in done.stderr
    assert page.read_text() == "# no tables here\n"


def test_without_a_stamp_the_current_commit(tables, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.csv").write_text("x\n")
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip("not a git checkout")
    found = tables.provenance(run)
    assert found["commit"] == head.stdout.strip() and re.fullmatch(r"\d{4}-\d\d-\d\d", found["date"])


def test_every_marker_in_docs_names_a_script(tables):
    seen = 0
    for page in sorted((ROOT / "docs").glob("*.md")):
        text = page.read_text(encoding="utf-8")
        found = MARKER.findall(text)
        names = dict.fromkeys(name for name, _ in found)
        for name in names:
            assert found.count((name, "begin")) == 1 and found.count((name, "end")) == 1, f"{page.name}: {name}"
            lines = block(text, name)
            script = name.split("-")[0]
            assert (RESULTS / f"{script}.sh").is_file(), f"{page.name}: {name} names no docs/results/{script}.sh"
            assert name in tables.FAMILIES[script], f"{page.name}: tables.py makes no {name}"
            assert re.fullmatch(rf"Measured at commit \w+( \+ uncommitted changes)? on \d{{4}}-\d\d-\d\d "
                                rf"\(\d+ CPU cores?(, [^)]+)?\) by `docs/results/{script}\.sh`\.", lines[0]), lines[0]
            seen += 1
    assert seen >= 6
