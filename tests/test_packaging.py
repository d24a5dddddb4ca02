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
