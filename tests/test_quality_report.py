"""What `synthaug quality` writes (synthaug/assess/report.py) and the command (synthaug/cli/quality.py),
on a tiny store of smooth blobs: one class named with markdown characters, a synthesizer that copies
training images and one that draws new blobs."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from synthaug.assess.features import FeatureConfig

ODD = "a|b_c*$x$"
CLASSES = (ODD, "normal")
COPIES = "duplicate"
FRESH = "fresh"
SIZE = 24


def blobs(rng: np.random.Generator, n: int, label: int) -> np.ndarray:
    """``n`` RGB images of a few Gaussian blobs; the class sets their colour and width."""
    yy, xx = np.mgrid[:SIZE, :SIZE] / SIZE
    images = np.zeros((n, 3, SIZE, SIZE), np.float32)
    colour = np.array([[0.9, 0.4, 0.3], [0.3, 0.5, 0.9]][label])[:, None, None]
    for image in images:
        for _ in range(3):
            cy, cx = rng.random(2)
            width = 0.08 + 0.08 * label + 0.04 * rng.random()
            image += colour * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * width ** 2))
    return np.clip(images + 0.03 * rng.standard_normal(images.shape), 0, 1).astype(np.float32)


def tiny_store(path):
    from synthaug.contract.types import ImageSet
    from synthaug.pipeline.store import write_store

    rng = np.random.default_rng(0)
    per_class_train, per_class_test, synthetic = 12, 10, 10
    real = [blobs(rng, per_class_train, c) for c in (0, 1)]
    labels = np.repeat([0, 1, 0, 1], [per_class_train, per_class_train, synthetic, synthetic])
    copied = np.arange(synthetic)  # the first real training images of class ODD
    images = np.concatenate([*real, real[0][copied], blobs(rng, synthetic, 1)])
    real_rows = 2 * per_class_train
    origin = [f"img{i}.png" for i in range(real_rows)] + [f"img{i}.png" for i in copied] + \
             [f"drawn{i}" for i in range(synthetic)]
    # copies keep their source's patient (as balancing by duplication does): the paired-truth section
    patients = [f"p{i}" for i in range(real_rows)] + [f"p{i}" for i in copied] + [f"s{i}" for i in range(synthetic)]
    train = ImageSet(images, labels, CLASSES, patients, origin=origin,
                     synth=["real"] * real_rows + [COPIES] * synthetic + [FRESH] * synthetic,
                     source_index=[-1] * real_rows + list(copied) + [-1] * synthetic)
    test_labels = np.repeat([0, 1], per_class_test)
    names = [f"t{i}" for i in range(len(test_labels))]
    test = ImageSet(np.concatenate([blobs(rng, per_class_test, c) for c in (0, 1)]), test_labels, CLASSES, names,
                    origin=[f"{name}.png" for name in names])
    return write_store(path, {"train": train, "test": test}), real_rows, copied


# A thin DenseNet (64 features) at 32 px: the measures cost little more than the store takes to read.
FAST = FeatureConfig(epochs=1, size=32, options={"width": 0.0625})


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    from synthaug.assess.run import quality

    root = tmp_path_factory.mktemp("quality")
    store, real_rows, copied = tiny_store(root / "tiny.h5")
    out = root / "tiny-quality"
    result = quality(store, out=out, feature_config=FAST)
    return store, out, result, real_rows, copied


def test_writes_every_file(measured):
    store, out, result, *_ = measured
    assert result.path == out
    names = {p.name for p in out.iterdir()}
    assert {"quality.json", "nearest.csv", "quality.md", "features", "figures"} <= names
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.tmp")]
    figures = sorted((out / "figures").iterdir())
    kinds = {p.name.split("-")[0] for p in figures}
    assert kinds == {"grid", "nearest", "distances", "projection", "intensity"}
    assert len(figures) == 5 * len(result.groups)
    for figure in figures:
        assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 1000
        assert "|" not in figure.name and "*" not in figure.name


def test_json_table_has_the_reference_and_group_rows(measured):
    from synthaug.assess import report, run

    _, out, result, *_ = measured
    data = json.loads((out / "quality.json").read_text())
    table = data["table"]
    assert [(r["synthesizer"], r["class"]) for r in table] == [
        ("real (train)", ODD), ("real (train)", "normal"), (COPIES, ODD), (FRESH, "normal")]
    duplicate = table[2]
    assert duplicate["copies_pixels"] == 1.0 and duplicate["near_copies_pixels"] == 1.0
    assert duplicate["copies_features"] == 1.0
    assert table[3]["copies_pixels"] == 0.0
    assert {"fid", "fid_inf", "kid", "precision", "coverage", "auc", "auc_low"} <= set(duplicate)
    # issue #26: equal-size FID / PRDC, grouped two-sample test, memorisation across classes
    reference = table[0]  # 12 real training images against 10 test images: 10 draws of 10 of the 12
    assert (reference["subsample_size"], reference["subsamples"]) == (10, 10) and reference["fid_std"] > 0
    assert (duplicate["subsample_size"], duplicate["subsamples"], duplicate["fid_std"]) == (10, 1, 0.0)
    assert {"precision_std", "recall_std", "density_std", "coverage_std"} <= set(duplicate)
    assert duplicate["nearest_other_class_pixels"] == duplicate["near_copies_other_class_pixels"] == 0.0
    assert (duplicate["auc_real_groups"], duplicate["auc_synthetic_groups"]) == (10, 10)
    group = data["groups"][0]
    assert group["fidelity"]["subsampled"] == {"size": 10, "subsamples": 1, "of": None}
    assert group["fidelity"]["two_sample"]["grouped"].startswith("folds and interval by source")
    assert group["memorisation"]["pixels"]["nearest_classes"] == {ODD: 10}
    assert set(data["method"]) == {"two_sample", "fid_prdc", "memorisation"}
    assert data["groups"][0]["synthesizer"] == COPIES and data["store"] == str(result.store)
    assert run.summary_rows is report.summary_rows  # one table, re-exported by run


def test_nearest_csv_names_the_copied_rows(measured):
    _, out, result, real_rows, copied = measured
    with open(out / "nearest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == sum(g.rows.size for g in result.groups)
    duplicates = [r for r in rows if r["synthesizer"] == COPIES]
    assert [int(r["row"]) for r in duplicates] == list(range(real_rows, real_rows + len(copied)))
    assert [int(r["pixel_nearest_row"]) for r in duplicates] == list(copied)
    assert [int(r["feature_nearest_row"]) for r in duplicates] == list(copied)
    assert all(r["class"] == ODD and r["copy"] == "True" and float(r["pixel_distance"]) < 1e-6 for r in duplicates)
    assert duplicates[0]["origin"] == "img0.png" and duplicates[0]["pixel_mirrored"] == "False"
    assert all(r["pixel_nearest_class"] == r["feature_nearest_class"] == ODD for r in duplicates)
    assert all(r["pixel_nearest_class"] in CLASSES for r in rows)
    with open(out / "nearest.csv", newline="") as fh:  # the columns of before come first, in their order
        header = next(csv.reader(fh))
    assert header[:12] == ["synthesizer", "class", "row", "origin", "feature_nearest_row", "feature_distance",
                           "feature_mirrored", "pixel_nearest_row", "pixel_distance", "pixel_mirrored", "copy",
                           "near_copy"]
    assert all(r["copy"] == "False" for r in rows if r["synthesizer"] == FRESH)


def test_markdown_has_the_table_words_and_escaped_names(measured):
    _, out, result, *_ = measured
    text = (out / "quality.md").read_text()
    escaped = r"a\|b\_c\*\$x\$"
    assert f"| real (train) | {escaped} |" in text and f"| {COPIES} | {escaped} | 10 |" in text
    assert ODD not in text  # never unescaped: it would split the table's cells
    assert f"**{COPIES}/{escaped}**: 100 % of the synthetic images are copies of training images" in text
    assert "FID∞" in text and "two-sample AUC" in text
    assert "grouped by source" in text and "subsampled to the smaller's size" in text and "of *any* class" in text
    assert "only comparable between stores that share that real training split" in text
    for figure in (out / "figures").iterdir():
        assert f"](figures/{figure.name})" in text
    # the copies against their patient's real image: identical
    # the copies share their sources' patient ids, but a copy against its own source is no paired truth
    assert "## Paired truth" not in text


def without_issue_26(data):
    """A quality.json as written before issue #26: no subsampling, groups or classes of the nearest image."""
    def strip(fidelity):
        if "skipped" in fidelity:
            return fidelity
        fidelity = {k: v for k, v in fidelity.items() if k not in ("subsampled", "prdc_std")}
        fidelity["fid"] = {"value": fidelity["fid"]["value"], "se": fidelity["fid"]["se"]}
        fidelity["two_sample"] = {k: fidelity["two_sample"][k] for k in ("auc", "low", "high", "folds")}
        return fidelity

    old = {k: v for k, v in data.items() if k not in ("table", "method")}
    old["classes"] = {c: {**info, "reference": strip(info["reference"])} for c, info in data["classes"].items()}
    old["groups"] = [{**g, "fidelity": strip(g["fidelity"]),
                      "memorisation": {space: {k: v for k, v in m.items() if k in ("copies", "near_copies")}
                                       for space, m in g["memorisation"].items()}} for g in data["groups"]]
    return old


def test_a_quality_json_from_before_issue_26_still_reads(measured, tmp_path):
    """The table of an older quality.json (no spreads, groups or nearest classes) comes out with the
    columns it has; quality.md's cells and the experiment report's show dashes for the rest."""
    from synthaug.assess.report import summary_rows, table_cells
    from synthaug.experiments.quality import _cells

    _, out, *_ = measured
    old = without_issue_26(json.loads((out / "quality.json").read_text()))
    rows = summary_rows(old)
    assert [r["synthesizer"] for r in rows] == ["real (train)", "real (train)", COPIES, FRESH]
    assert "fid_std" not in rows[2] and "nearest_other_class_pixels" not in rows[2] and rows[2]["copies_pixels"] == 1.0
    cells = table_cells(rows[2])
    assert cells[3] == "–" and cells[7] == number_of(rows[2]["precision"]) and cells[-2:] == ["–", "–"]
    assert _cells(rows[2])[-2:] == ["100%", "100%"]


def number_of(value):
    from synthaug.assess.report import number

    return number(value, 2)


def test_saved_feature_network_gives_the_same_features(measured):
    from synthaug.assess.run import quality

    store, out, result, *_ = measured
    again = quality(store, features=out / "features", classes=[ODD])
    assert again.features["network"] == result.features["network"]
    np.testing.assert_allclose(again.groups[0].features, result.groups[0].features, rtol=1e-5, atol=1e-6)
    before, after = result.groups[0].memorisation["features"], again.groups[0].memorisation["features"]
    assert after["copies"] == before["copies"] == 1.0
    np.testing.assert_array_equal(after["nearest"], before["nearest"])


def test_an_error_while_writing_leaves_no_directory(measured, monkeypatch, tmp_path):
    from synthaug.assess import figures, report
    from synthaug.pipeline.store import open_store

    store, _, result, *_ = measured

    def broken(*args, **kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(figures, "plot_projection", broken)
    target = tmp_path / "q"
    train, test = open_store(store, "train"), open_store(store, "test")
    try:
        with pytest.raises(RuntimeError, match="interrupted"):
            report.write_quality(result, target, train=train, test=test)
    finally:
        train.close()
        test.close()
    assert os.listdir(tmp_path) == []


def test_markdown_escape_and_json_of_numpy_values():
    from synthaug.assess.figures import slug
    from synthaug.assess.report import escape, json_ready  # escape: synthaug.kit.markdown

    assert escape("a|b_c*[x]<y>`z`\nw") == r"a\|b\_c\*\[x\]\<y\>\`z\` w"
    plain = json_ready({"name": np.str_("dup"), "n": np.int64(3), "x": np.float32(0.5), "nan": float("nan"),
                        "rows": np.arange(2), "t": (1, 2)})
    assert json.loads(json.dumps(plain)) == {"name": "dup", "n": 3, "x": 0.5, "nan": None, "rows": [0, 1], "t": [1, 2]}
    assert type(plain["name"]) is str and slug(ODD) == "a-b_c-x"


def run_cli(*args):
    from synthaug.cli import main

    return CliRunner().invoke(main, ["quality", *map(str, args)])


@pytest.mark.parametrize("case, message", [("class", "--class 'nosuch'"), ("store", "missing.h5: no such store file"),
                                           ("out", "is not the output of `synthaug quality`")])
def test_cli_bad_input_is_one_line_exit_2(measured, tmp_path, case, message):
    store, out, *_ = measured
    target = tmp_path / "q"
    if case == "out":  # a folder of someone's files: replacing it would delete them
        target.mkdir()
        (target / "notes.txt").write_text("mine")
    args = {"class": [store, "--class", "nosuch"], "store": [tmp_path / "missing.h5"], "out": [store]}[case]
    result = run_cli(*args, "--out", target)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.output
    assert os.listdir(tmp_path) == (["q"] if case == "out" else [])
    assert case != "out" or os.listdir(target) == ["notes.txt"]


def test_cli_measures_a_store(measured, tmp_path):
    store, out, *_ = measured
    target = tmp_path / "cli"
    result = run_cli(store, "--features", out / "features", "--class", "normal", "--no-figures", "--out", target)
    assert result.exit_code == 0, result.output
    assert f"wrote {target}" in result.output and FRESH in result.output and COPIES not in result.output
    assert (target / "quality.md").is_file() and not (target / "figures").exists()


def test_features_from_a_local_torchvision_weights_file(measured, tmp_path):
    """``--features PATH``: the registered classifier whose layout the file fits is found by its keys
    (a DenseNet-121 state dict here), its weights hash is recorded, and the run measures in its 1024
    features; a file that fits no registered layout is refused, naming the file."""
    from synthaug.assess.run import quality
    from synthaug.errors import SynthaugError
    from synthaug.kit.files import file_hash

    from _classifier_data import torchvision_densenet121_shapes, write_state_dict

    store, *_ = measured
    weights = tmp_path / "densenet121.pth"
    write_state_dict(weights, torchvision_densenet121_shapes())
    result = quality(store, features=weights, classes=[ODD], feature_config=FeatureConfig(size=32))
    assert result.features["network"] == "densenet121" and result.features["dim"] == 1024
    assert result.features["weights_sha256"] == file_hash(weights) and result.features["source"] == str(weights)
    assert result.groups[0].features.shape == (10, 1024)
    memorisation = result.groups[0].memorisation
    # a copy lies at distance 0 from its source in any feature space (random weights here: the copy
    # threshold, the closest test image, may be 0 too, so the fraction of copies proves nothing)
    assert np.all(memorisation["features"]["synthetic_distance"] < 1e-6) and memorisation["pixels"]["copies"] == 1.0

    foreign = tmp_path / "inception.pth"
    write_state_dict(foreign, {"Mixed_5b.branch1x1.conv.weight": (64, 192, 1, 1)})
    with pytest.raises(SynthaugError, match="inception.pth: its tensors fit no registered classifier"):
        quality(store, features=foreign, classes=[ODD])


def test_the_python_call_is_the_top_level_synthaug_quality():
    import synthaug
    from synthaug.assess.run import quality

    assert synthaug.quality is quality and "quality" in synthaug.__all__
