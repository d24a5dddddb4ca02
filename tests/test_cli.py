import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from synthaug import read_store
from synthaug.cli import main


def run(*args):
    return CliRunner().invoke(main, ["--quiet", *map(str, args)])


def test_plugins_json_lists_name_kind_module_version():
    result = run("plugins", "--json")
    assert result.exit_code == 0
    rows = json.loads(result.output)
    dup = next(r for r in rows if r["name"] == "duplicate")
    assert dup == {"name": "duplicate", "kind": "synthesizer", "module": "synthaug_plugins.baselines.plugin",
                   "version": "0.1.0"}


@pytest.mark.parametrize("layout", ["kaggle_first", "kaggle_later"])
def test_balance_duplicate_on_both_kaggle_layouts(tmp_path, request, layout):
    data_dir = request.getfixturevalue(layout)
    out = tmp_path / "balanced.h5"
    result = run("balance", "--synth", "duplicate", "--data", "kaggle", "--data-dir", data_dir, "--size", 32,
                 "--test-per-class", 3, "--out", out, "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    train, test = info["splits"]["train"], info["splits"]["test"]
    assert train["classes"] == {"covid": 8, "normal": 8, "viral": 8}
    assert train["synthetic"] == {"covid": 5, "normal": 1, "viral": 0}  # = the deficits
    assert test["classes"] == {"covid": 3, "normal": 3, "viral": 3}
    assert test["synthetic"] == {"covid": 0, "normal": 0, "viral": 0}
    assert info["image_shape"] == [1, 32, 32]
    config = json.loads(__import__("h5py").File(out).attrs["config"])
    assert config["source"]["layout"] == ("first" if layout == "kaggle_first" else "later")


def test_inspect_raw_source_and_store(tmp_path, kaggle_first):
    result = run("inspect", "kaggle", "--data-dir", kaggle_first, "--size", 24, "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["splits"]["all"]["classes"] == {"covid": 6, "normal": 10, "viral": 11}
    assert info["image_shape"] == [1, 24, 24]
    out = tmp_path / "b.h5"
    assert run("balance", "--synth", "augment", "--data", "kaggle", "--data-dir", kaggle_first, "--size", 24,
               "--test-per-class", 2, "--out", out).exit_code == 0
    info = json.loads(run("inspect", out, "--json").output)
    assert info["splits"]["train"]["synthetic"] == {"covid": 5, "normal": 1, "viral": 0}  # 9 viral - (4, 8)


@pytest.mark.parametrize("args, message", [
    (["--data", "kaggle", "--data-dir", "/nonexistent/dir"], "/nonexistent/dir: no such directory"),
    (["--data", "kagle", "--data-dir", "."], "unknown dataset 'kagle'; registered: "),
    (["--synth", "duplcate"], "did you mean 'duplicate'?"),
    (["--strategy", "covid=-2"], "strategy count for 'covid' must be a whole number >= 0; got -2"),
    (["--strategy", "bogus"], "unknown strategy 'bogus'"),
    (["--test-per-class", 7], "class 'covid' has 6 real images; cannot hold out 7"),
    (["--include", "lung_opacity"], "'lung_opacity' is not in the first release"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, kaggle_first, args, message):
    out = tmp_path / "out" / "b.h5"
    base = {"--synth": "duplicate", "--data": "kaggle", "--data-dir": str(kaggle_first), "--test-per-class": "2"}
    for k, v in zip(args[::2], args[1::2]):
        base[k] = str(v)
    result = run("balance", *[x for kv in base.items() for x in kv], "--size", 24, "--out", out)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.output
    assert not out.exists() and not (out.parent.exists() and os.listdir(out.parent))


def test_corrupt_png_error_and_skip_bad(tmp_path, kaggle_first):
    bad = kaggle_first / "COVID-19 Radiography Database" / "NORMAL" / "NORMAL (4).png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    out = tmp_path / "b.h5"
    result = run("balance", "--synth", "duplicate", "--data", "kaggle", "--data-dir", kaggle_first, "--size", 24,
                 "--test-per-class", 2, "--out", out)
    assert result.exit_code == 2 and "NORMAL (4).png: unreadable image" in result.output and not out.exists()
    result = run("balance", "--synth", "duplicate", "--data", "kaggle", "--data-dir", kaggle_first, "--size", 24,
                 "--test-per-class", 2, "--skip-bad", "--out", out)
    assert result.exit_code == 0 and "skipped 1 unreadable image file(s)" in result.output
    assert read_store(out, "test").counts()["normal"] == 2


def test_console_script_runs_and_help_is_fast():
    bin_dir = os.path.dirname(sys.executable)
    out = subprocess.run([os.path.join(bin_dir, "synthaug"), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "balance" in out.stdout and "plugins" in out.stdout


def test_global_options_may_follow_the_command(tmp_path, kaggle_first):
    out = tmp_path / "b.h5"
    result = CliRunner().invoke(main, ["balance", "--synth", "duplicate", "--data", "kaggle", "--data-dir",
                                       str(kaggle_first), "--size", "24", "--test-per-class", "2", "--out", str(out),
                                       "--quiet"])
    assert result.exit_code == 0, result.output
    assert "reading images" not in result.output  # the progress bar was silenced
    from synthaug.kit import progress

    assert progress.is_quiet()
    progress.set_quiet(False)
    result = CliRunner().invoke(main, ["plugins", "-q", "--kind", "classifier"])
    assert result.exit_code == 0 and "resnet50" in result.output and progress.is_quiet()
    progress.set_quiet(True)


def test_inspect_refuses_source_options_for_a_store(tmp_path, kaggle_first):
    out = tmp_path / "b.h5"
    assert run("balance", "--synth", "duplicate", "--data", "kaggle", "--data-dir", kaggle_first, "--size", 24,
               "--test-per-class", 2, "--out", out).exit_code == 0
    result = run("inspect", out, "--size", 32)
    assert result.exit_code == 2
    assert f"inspect {out}: a store is read as written; --size applies to a registered source only" in result.output
    # options inspect never used are not offered at all
    for option in ("--volumes", "--volumes-dir", "--data"):
        result = run("inspect", "kaggle", option, "x")
        assert result.exit_code == 2 and f"No such option '{option}'" in result.output


def test_ill_typed_synth_option_is_a_one_line_error(kaggle_first, tmp_path):
    out = tmp_path / "b.h5"
    result = run("balance", "--synth", "pix2pix", "--data", "kaggle", "--data-dir", kaggle_first, "--size", 32,
                 "--test-per-class", 2, "--synth-option", "epochs=x", "--out", out)
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == \
        "Error: option 'epochs' of synthesizer 'pix2pix' must be an int; got 'x'"
    assert not out.exists() and not list(tmp_path.glob(".b.h5*"))


def store_config(path):
    import h5py

    with h5py.File(path) as f:
        return json.loads(f.attrs["config"])


def test_balance_with_a_test_fraction(tmp_path, kaggle_first):
    out = tmp_path / "f.h5"
    result = run("balance", "--synth", "duplicate", "--data", "kaggle", "--data-dir", kaggle_first, "--size", 16,
                 "--test-fraction", 0.2, "--out", out, "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["splits"]["test"]["classes"] == {"covid": 1, "normal": 2, "viral": 2}  # round(0.2 x 6 / 10 / 11)
    assert info["splits"]["train"]["classes"] == {"covid": 9, "normal": 9, "viral": 9}
    config = store_config(out)
    assert config["test_fraction"] == 0.2 and config["test_per_class"] is None and config["split"]["fraction"] == 0.2


@pytest.mark.parametrize("command", ["balance", "fit"])
def test_test_per_class_and_test_fraction_together_are_refused(tmp_path, kaggle_first, command):
    out = tmp_path / "work" / "out"
    result = run(command, "--synth", "duplicate", "--data", "kaggle", "--data-dir", kaggle_first,
                 "--test-per-class", 2, "--test-fraction", 0.2, "--out", out)
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == ["Error: give --test-per-class or --test-fraction, not both (got 2 and 0.2)"]
    assert not out.parent.exists()


def test_test_fraction_outside_zero_one_names_the_value(tmp_path, kaggle_first):
    result = run("balance", "--synth", "duplicate", "--data", "kaggle", "--data-dir", kaggle_first, "--size", 16,
                 "--test-fraction", 1.5, "--out", tmp_path / "b.h5")
    assert result.exit_code == 2
    assert result.output.strip() == "Error: test fraction must be a number between 0 and 1 (exclusive); got 1.5"
    assert not (tmp_path / "b.h5").exists()


def test_strategy_none_writes_the_unbalanced_store(tmp_path, kaggle_first):
    out = tmp_path / "n.h5"
    result = run("balance", "--synth", "pix2pix", "--data", "kaggle", "--data-dir", kaggle_first, "--size", 16,
                 "--test-per-class", 2, "--strategy", "none", "--out", out, "--json")
    assert result.exit_code == 0, result.output  # pix2pix is not trained: there is nothing to make
    info = json.loads(result.output)
    assert info["splits"]["train"]["classes"] == {"covid": 4, "normal": 8, "viral": 9}
    assert info["splits"]["train"]["synthetic"] == {"covid": 0, "normal": 0, "viral": 0}
    config = store_config(out)
    assert config["synthesizer"] is None and config["strategy"] == "none"
    assert config["deficits"] == {"covid": 0, "normal": 0, "viral": 0}


def test_binary_task_from_the_command_line(tmp_path, kaggle_first):
    result = run("inspect", "kaggle", "--data-dir", kaggle_first, "--size", 16, "--binary", "covid", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["splits"]["all"]["classes"] == {"covid": 6, "rest": 21}
    out = tmp_path / "b.h5"
    result = run("balance", "--synth", "duplicate", "--data", "kaggle", "--data-dir", kaggle_first, "--size", 16,
                 "--binary", "covid", "--test-per-class", 2, "--out", out, "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["splits"]["train"]["classes"] == {"covid": 19, "rest": 19}
    assert info["splits"]["train"]["synthetic"] == {"covid": 15, "rest": 0}
    assert store_config(out)["source"]["binary"] == "covid"
    result = run("balance", "--synth", "duplicate", "--data", "kaggle", "--data-dir", kaggle_first, "--size", 16,
                 "--binary", "cat", "--out", tmp_path / "c.h5")
    assert result.exit_code == 2
    assert result.output.strip() == "Error: binary class 'cat' is not a class; classes are covid, normal, viral"
