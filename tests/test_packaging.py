"""Every Python package in the tree is installed (pyproject lists packages explicitly)."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = set()
    for top, installed_as in (("synthaug", "synthaug"), ("plugins", "synthaug_plugins")):
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top).parts
            found.add(".".join((installed_as, *rel)))
    assert found == listed, f"missing: {sorted(found - listed)}, stale: {sorted(listed - found)}"


def test_every_bundled_plugin_has_an_entry_point():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    targets = set(config["project"]["entry-points"]["synthaug"].values())
    for plugin in (ROOT / "plugins").glob("*/plugin.py"):
        assert f"synthaug_plugins.{plugin.parent.name}.plugin" in targets, plugin


def test_license_is_an_spdx_string_and_setuptools_can_read_it():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert config["project"]["license"] == "MIT"  # PEP 639; the table form is deprecated
    assert any(r.startswith("setuptools>=77") for r in config["build-system"]["requires"])


def test_python_dash_m_synthaug_runs_the_command_and_the_api_is_top_level():
    import subprocess
    import sys

    import synthaug
    from synthaug.pipeline import evaluate, project, train

    out = subprocess.run([sys.executable, "-m", "synthaug", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "Usage: synthaug" in out.stdout and "balance" in out.stdout
    assert synthaug.train is train.train and synthaug.evaluate is evaluate.evaluate
    assert synthaug.project is project.project
