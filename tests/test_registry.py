import inspect
import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest

import synthaug
from synthaug import SynthaugError
from synthaug.contract import hookspecs
from synthaug.registry import build_registry, get_registry, register_plugin, reset_registry

HOOKS = ["register_synthesizers", "register_projectors", "register_classifiers", "register_datasets"]


def test_every_hook_is_documented():
    specs = [n for n, f in inspect.getmembers(hookspecs, inspect.isfunction) if n.startswith("register_")]
    assert sorted(specs) == sorted(HOOKS)
    for name in specs:
        doc = getattr(hookspecs, name).__doc__ or ""
        assert len(doc.split()) > 10, f"hook {name} needs a docstring"


def test_every_hook_registers_through_a_plugin_module():
    module = types.ModuleType("four_hooks")

    class Thing:
        def __init__(self, **kw):
            self.kw = kw

    for hook, name in zip(HOOKS, ["s1", "p1", "c1", "d1"]):
        def impl(register, _name=name):
            register(_name, Thing, summary=f"test {_name}")
        impl.__name__ = hook
        setattr(module, hook, synthaug.hookimpl(impl))
    register_plugin(module, "four_hooks")
    registry = get_registry()
    for kind, name in zip(["synthesizer", "projector", "classifier", "dataset"], ["s1", "p1", "c1", "d1"]):
        made = registry.create(kind, name, x=1)
        assert isinstance(made, Thing) and made.kw == {"x": 1}
    rows = {(r["kind"], r["name"]): r for r in registry.listing()}
    assert rows[("projector", "p1")]["module"] == "four_hooks"


def test_bundled_plugins_load_through_entry_points():
    registry = build_registry()
    assert {"duplicate", "augment"} <= set(registry.names("synthesizer"))
    assert {"kaggle", "imagefolder", "h5"} <= set(registry.names("dataset"))
    assert registry.entry("synthesizer", "duplicate").plugin == "baselines"
    assert registry.names("synthesizer", "dup*") == ["duplicate"]
    assert not registry.failed


def test_unknown_name_lists_registered_and_closest():
    with pytest.raises(SynthaugError) as err:
        get_registry().entry("synthesizer", "agument")
    assert "registered: " in str(err.value) and "augment" in str(err.value)
    assert "did you mean 'augment'?" in str(err.value)


def test_disable_plugins_env(monkeypatch):
    monkeypatch.setenv("SYNTHAUG_DISABLE_PLUGINS", "baselines, other")
    registry = build_registry()
    assert "duplicate" not in registry.names("synthesizer")
    assert "kaggle" in registry.names("dataset")


def _install_fake_dist(tmp_path, name, module_source, monkeypatch):
    """A minimal installed distribution (dist-info + entry point) on sys.path, as pip would leave it."""
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(module_source))
    info = tmp_path / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[synthaug]\n{name} = {name}\n")
    monkeypatch.syspath_prepend(str(tmp_path))


def test_broken_plugin_is_reported_and_others_work(tmp_path, monkeypatch):
    _install_fake_dist(tmp_path, "brokenplug", "raise ImportError('needs libfoo')\n", monkeypatch)
    registry = build_registry()
    assert registry.failed == {"brokenplug": "ImportError: needs libfoo"}
    assert "augment" in registry.names("synthesizer")
    with pytest.raises(SynthaugError, match="plugins that failed to load: brokenplug"):
        registry.entry("synthesizer", "nonesuch")


def test_plugin_whose_factory_fails_names_it(tmp_path, monkeypatch):
    _install_fake_dist(tmp_path, "lazyplug", """
        import synthaug
        @synthaug.hookimpl
        def register_synthesizers(register):
            register("lazy", "lazyplug_missing_module:Thing")
    """, monkeypatch)
    reset_registry()
    with pytest.raises(SynthaugError,
                       match=r"synthesizer 'lazy' from plugin 'lazyplug' failed to load: ModuleNotFoundError"):
        get_registry().create("synthesizer", "lazy")


def test_importing_synthaug_and_listing_plugins_does_not_import_torch():
    code = "import sys, synthaug; synthaug.get_registry().listing(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_third_party_example_installs_and_balances(tmp_path, monkeypatch, tiny_images):
    """The example package is pip-installed into a folder and used through balance, as a user would."""
    import shutil
    from pathlib import Path

    source = tmp_path / "synthaug-noise"  # a copy: building in place would leave build/ in the repo
    shutil.copytree(Path(__file__).resolve().parents[1] / "examples" / "synthaug-noise", source)
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                    str(source)], check=True, capture_output=True)
    monkeypatch.syspath_prepend(str(target))
    reset_registry()
    assert get_registry().entry("synthesizer", "noise").plugin == "noise"
    result = synthaug.balance(tiny_images, "noise", synth_options={"sigma": 0.0}, test_per_class=2)
    made = result.train.subset(np.flatnonzero(result.train.synth == "noise"))
    assert result.train.counts() == {"covid": 7, "normal": 7, "viral": 7}
    np.testing.assert_allclose(made.images, result.train.images[made.source_index], atol=1e-6)


def test_a_hook_that_raises_part_way_registers_nothing():
    module = types.ModuleType("half_broken")

    class Thing:
        pass

    def register_synthesizers(register):
        register("first-of-two", Thing)
        raise RuntimeError("the second name failed")

    def register_projectors(register):
        register("never-committed", Thing)

    module.register_synthesizers = synthaug.hookimpl(register_synthesizers)
    module.register_projectors = synthaug.hookimpl(register_projectors)
    registry = build_registry(load_entry_points=False)
    registry.add_plugin(module, "half_broken")
    assert registry.failed == {"half_broken": "RuntimeError: the second name failed"}
    assert "first-of-two" not in registry.names("synthesizer") and "never-committed" not in registry.names("projector")
    with pytest.raises(SynthaugError,
                       match="unknown synthesizer 'first-of-two'.*plugins that failed to load: half_broken"):
        registry.entry("synthesizer", "first-of-two")


def test_config_options_are_checked_by_name_and_type():
    from dataclasses import dataclass

    from synthaug.contract.config import make_config

    @dataclass
    class Options:
        epochs: int = 1
        lr: float = 0.1
        name: str = "a"
        shape: tuple | None = None
        flag: bool = False

    assert make_config(Options, {"epochs": 3, "lr": 1, "shape": [1, 2], "flag": True}, "x").lr == 1
    for key, value, expected in (("epochs", "x", "an int"), ("epochs", 2.5, "an int"), ("epochs", True, "an int"),
                                 ("lr", "fast", "a number"), ("name", 3, "a string"), ("flag", "yes", "true or false"),
                                 ("shape", 3, "a list or null")):
        with pytest.raises(SynthaugError) as info:
            make_config(Options, {key: value}, "synthesizer 'demo'")
        assert str(info.value) == f"option {key!r} of synthesizer 'demo' must be {expected}; got {value!r}"
    with pytest.raises(SynthaugError, match="synthesizer 'demo': unknown option 'epoch'; options are epochs, flag, lr"):
        make_config(Options, {"epoch": 1}, "synthesizer 'demo'")


def test_every_option_of_every_bundled_plugin_says_what_it_means():
    """`synthaug plugins --options NAME` reads each meaning from the code: a new option without a
    comment fails here."""
    from synthaug.contract.config import describe_options
    from synthaug.registry import KINDS

    reset_registry()
    registry = get_registry()
    undocumented = [f"{kind} {name}: {row['name']}" for kind in KINDS for name, entry in registry.entries[kind].items()
                    if entry.plugin != "noise"
                    for row in describe_options(getattr(entry.resolve(), "Config", None)) if not row["meaning"]]
    assert undocumented == []


def test_plugins_options_prints_types_defaults_and_meanings(tmp_path):
    import json

    from click.testing import CliRunner

    from synthaug.cli import main

    reset_registry()
    result = CliRunner().invoke(main, ["plugins", "--options", "xpgan", "--json"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)
    assert [f["kind"] for f in found] == ["synthesizer", "projector"]  # one name, two kinds
    lambda_drr = next(r for r in found[0]["options"] if r["name"] == "lambda_drr")
    assert lambda_drr == {"name": "lambda_drr", "type": "a number", "default": 2.0, "meaning": "quan2021: λ = 2"}
    result = CliRunner().invoke(main, ["plugins", "--options", "kaggle"])
    assert result.output == "dataset kaggle (synthaug_plugins.sources.plugin): no options\n"
    result = CliRunner().invoke(main, ["plugins", "--options", "pix2px"])
    assert result.exit_code == 2 and "no plugin is called 'pix2px'; registered: acgan, augment," in result.output
