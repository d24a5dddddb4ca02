import runpy
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_pipeline_example_composes_the_python_api(tmp_path, kaggle_later):
    pipeline = runpy.run_path(str(EXAMPLES / "pipeline.py"))
    summary = pipeline["run"]("kaggle", str(kaggle_later), str(tmp_path / "b.h5"), synth="duplicate", size=32,
                              test_per_class=2)
    assert summary["test"] == {"covid": 2, "normal": 2, "viral": 2}
    assert summary["deficits"] == {"covid": 5, "normal": 1, "viral": 0}
    assert summary["balanced"] == {"covid": 9, "normal": 9, "viral": 9}
    assert summary["first_item"] == [[1, 32, 32], 0]


def test_pipeline_example_runs_as_a_script(tmp_path, kaggle_first):
    out = subprocess.run([sys.executable, str(EXAMPLES / "pipeline.py"), "--data", "kaggle", "--data-dir",
                          str(kaggle_first), "--size", "24", "--test-per-class", "2", "--synth", "augment",
                          "--out", str(tmp_path / "b.h5")], capture_output=True, text=True,
                         env={"SYNTHAUG_QUIET": "1", "PATH": ""})
    assert out.returncode == 0, out.stderr
    assert "'balanced': {'covid': 9, 'normal': 9, 'viral': 9}" in out.stdout
