"""The experiment directory's layout has one owner, :class:`synthaug.experiments.layout.Layout`: its
paths are the ones existing experiment directories hold (pinned here, so that a rerun still finds an
earlier run's fits, stores and cells), and a run writes nothing that the layout does not name."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from synthaug.cli import main
from synthaug.experiments.layout import Layout
from synthaug.experiments.spec import JOINT, Arm, Cell, ClassifierArm, grid, load_spec


def test_the_layout_is_the_one_existing_experiment_directories_hold():
    out = Path("exp")
    layout = Layout(out)
    pix2pix = Arm("p2p", "pix2pix", "pix2pix", options={"epochs": 1, "ngf": 8})
    unbalanced = Arm("none", "unbalanced", None, strategy="none")
    joint = Arm("xpgan_c", "xpgan C", "xpgan", measure="joint")
    scratch = ClassifierArm("scratch", "from scratch", "resnet50")
    cell = Cell(pix2pix, scratch, 2)

    assert layout.experiment_json == out / "experiment.json"
    assert layout.not_run_json == out / "not-run.json"
    assert layout.results_csv == out / "results.csv"
    assert layout.comparisons_json == out / "comparisons.json"
    assert layout.report_md == out / "report.md"
    assert layout.headline_figure == out / "figures" / "headline.png"
    assert layout.confusion_figure("p2p", "scratch") == out / "figures" / "confusion-p2p--scratch.png"
    assert layout.samples_figure("p2p") == out / "figures" / "samples-p2p.png"
    assert layout.reliability_figure("p2p", "scratch") == out / "figures" / "reliability-p2p--scratch.png"

    fit = layout.fit_dir(pix2pix, 1)
    assert fit == out / "fits" / "pix2pix-2e755dfe-seed1"  # the hash of the synthesizer and its options
    assert layout.fit_dir(Arm("other", "same fit", "pix2pix", options={"ngf": 8, "epochs": 1}), 1) == fit
    assert layout.fit_dir(Arm("p2p", "pix2pix", "pix2pix"), 0) == out / "fits" / "pix2pix-50030e93-seed0"
    assert layout.work_dir_of(fit) == out / "fits" / "pix2pix-2e755dfe-seed1.work"
    assert layout.fit_record(fit) == out / "fits" / "pix2pix-2e755dfe-seed1.json"

    store = layout.store(pix2pix, 0)
    assert store == out / "stores" / "p2p-seed0.h5"
    assert layout.store(unbalanced, 3) == layout.store(joint, 3) == out / "stores" / "unbalanced-seed3.h5"
    assert layout.store_record(store) == out / "stores" / "p2p-seed0.json"

    assert layout.cell_dir(cell) == out / "cells" / "p2p--scratch--seed2"
    assert layout.cell_json(cell) == out / "cells" / "p2p--scratch--seed2" / "cell.json"
    assert layout.run_dir(cell) == out / "cells" / "p2p--scratch--seed2" / "run"
    assert layout.cell_dir(Cell(joint, None, 0)) == out / "cells" / f"xpgan_c--{JOINT}--seed0"

    assert layout.quality_dir("p2p", 0) == out / "quality" / "p2p-seed0"
    assert layout.quality_json("p2p", 0) == out / "quality" / "p2p-seed0" / "quality.json"
    assert layout.quality_figures("p2p", 0) == out / "quality" / "p2p-seed0" / "figures"
    assert layout.features_dir(1) == out / "quality" / "features-seed1"
    assert layout.features_info(1) == out / "quality" / "features-seed1" / "features.json"
    assert layout.quality_record(1) == out / "quality" / "seconds-seed1.json"
    assert layout.link(layout.headline_figure) == "figures/headline.png"


def test_quality_measured_reads_back_the_store_keys_and_seeds(tmp_path):
    layout = Layout(tmp_path)
    for key, seed in [("with-seed-in-name", 0), ("p2p", 12)]:
        layout.quality_json(key, seed).parent.mkdir(parents=True)
        layout.quality_json(key, seed).write_text("{}")
    layout.features_info(0).parent.mkdir(parents=True)
    layout.features_info(0).write_text("{}")  # the feature network is no measured store
    (layout.quality_root / "p2p-seedX").mkdir()
    (layout.quality_root / "p2p-seedX" / "quality.json").write_text("{}")  # not a seed: not one of ours
    assert layout.quality_measured() == [("p2p", 12), ("with-seed-in-name", 0)]


def _files(out: Path) -> set[Path]:
    return {p for p in out.rglob("*") if not p.is_dir()}  # hidden files (locks, temporaries) included


def _outside_the_layout(out: Path, spec) -> list[str]:
    """Every file of ``out`` that is neither a file the layout names nor inside a directory it names
    (a fit, its work directory, a training run, a quality measurement or a feature network: their
    insides are the formats of the modules that write them)."""
    layout = Layout(out)
    seeds = range(spec.seeds)
    cells = grid(spec)
    files = {layout.experiment_json, layout.not_run_json, layout.results_csv, layout.comparisons_json,
             layout.report_md, layout.headline_figure}
    files |= {layout.confusion_figure(c.arm.key, c.classifier_key) for c in cells}
    files |= {layout.reliability_figure(c.arm.key, c.classifier_key) for c in cells}
    files |= {layout.samples_figure(arm.key) for arm in spec.arms}
    files |= {layout.cell_json(c) for c in cells}
    directories = {layout.run_dir(c) for c in cells} | {layout.pretrain_dir(c) for c in cells}
    for arm in spec.arms:
        for seed in seeds:
            store, fit = layout.store(arm, seed), layout.fit_dir(arm, seed)
            files |= {store, layout.store_record(store), layout.fit_record(fit)}
            directories |= {fit, layout.work_dir_of(fit), layout.quality_dir(arm.store_key, seed)}
    for seed in seeds:
        files.add(layout.quality_record(seed))
        directories.add(layout.features_dir(seed))
    return sorted(str(path.relative_to(out)) for path in _files(out)
                  if path not in files and not any(d in path.parents for d in directories))


def test_an_arm_named_like_a_folder_of_the_layout_is_refused():
    from synthaug.errors import SynthaugError
    from synthaug.experiments.spec import check_arm

    with pytest.raises(SynthaugError, match=r"^arms.features: the name 'features' is reserved"):
        check_arm("features", {"synthesizer": "augment"})
    assert check_arm("features2", {"synthesizer": "augment"}).key == "features2"


def test_the_check_finds_a_file_the_layout_does_not_name(tmp_path):
    spec = load_spec("liang2021", preset="tiny", seeds=1)
    layout = Layout(tmp_path)
    cell = grid(spec)[0]
    named = [layout.results_csv, layout.run_dir(cell) / "manifest.json", layout.features_info(0),
             layout.work_dir_of(layout.fit_dir(spec.arm("pix2pix"), 0)) / "state.pt"]
    strays = [tmp_path / "notes.txt", tmp_path / "stores" / ".pix2pix-seed0.h5.tmp1", layout.cell_dir(cell) / "x.json",
              tmp_path / "fits" / "pix2pix-00000000-seed0" / "a.pt", layout.quality_root / "other-seed0.json"]
    for path in named + strays:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
    assert _outside_the_layout(tmp_path, spec) == sorted(str(p.relative_to(tmp_path)) for p in strays)


@pytest.fixture(scope="module")
def liang_one_seed(tmp_path_factory):
    """liang2021 tiny, one seed: a fitted synthesizer (pix2pix), stores, trained and not-run cells (the
    transfer cells need --weights), quality measured, the report."""
    out = tmp_path_factory.mktemp("layout") / "run"
    result = CliRunner().invoke(main, ["--quiet", "experiment", "run", "liang2021", "--preset", "tiny", "--seeds", "1",
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out, load_spec("liang2021", preset="tiny", seeds=1), result.output


def test_a_run_writes_nothing_outside_the_layout(liang_one_seed):
    out, spec, output = liang_one_seed
    layout = Layout(out)
    assert _outside_the_layout(out, spec) == []
    assert f"report: {layout.report_md}" in output
    # and what it names is where the run put it
    pix2pix = spec.arm("pix2pix")
    fit = layout.fit_dir(pix2pix, 0)
    for path in (layout.experiment_json, layout.not_run_json, layout.results_csv, layout.comparisons_json,
                 layout.report_md, layout.headline_figure, layout.samples_figure("pix2pix"), layout.fit_record(fit),
                 layout.quality_record(0), layout.features_info(0), layout.quality_json("pix2pix", 0)):
        assert path.is_file(), path
    assert fit.is_dir() and not layout.work_dir_of(fit).exists()  # the work directory goes with the fit done
    for arm in spec.arms:
        assert layout.store(arm, 0).is_file() and layout.store_record(layout.store(arm, 0)).is_file()
    done = [c for c in grid(spec) if c.classifier.key == "scratch"]
    assert done and all(layout.cell_json(c).is_file() and layout.run_dir(c).is_dir() for c in done)
    assert all(layout.confusion_figure(c.arm.key, "scratch").is_file() for c in done)
    assert all(layout.reliability_figure(c.arm.key, "scratch").is_file() for c in done)
    assert not any(layout.cell_dir(c).exists() for c in grid(spec) if c not in done)  # not run: nothing written
    assert layout.quality_measured() == sorted((arm.store_key, 0) for arm in spec.arms if arm.synthesizer)


def test_the_report_command_and_a_rerun_write_nothing_outside_the_layout(liang_one_seed):
    out, spec, _ = liang_one_seed
    before = _files(out)
    result = CliRunner().invoke(main, ["--quiet", "experiment", "report", str(out)])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["--quiet", "experiment", "run", "liang2021", "--preset", "tiny", "--seeds", "1",
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert _files(out) == before  # a rerun reuses every fit, store and cell where the layout put them
    assert _outside_the_layout(out, spec) == []
