"""The code in docs/plugins.md works: its Python blocks run in order as one module."""

import re
import sys
import types
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_plugins_md_examples_run():
    text = (DOCS / "plugins.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 5
    module = types.ModuleType("plugins_md_example")
    sys.modules[module.__name__] = module
    try:
        exec(compile("\n".join(blocks), "docs/plugins.md", "exec"), module.__dict__)
    finally:
        del sys.modules[module.__name__]
    import numpy as np

    import synthaug
    from synthaug.contract.types import Volume

    registry = synthaug.get_registry()
    net = registry.create("classifier", "tinynet").build(1, 3)
    import torch
    assert net(torch.zeros(2, 1, 16, 16)).shape == (2, 3)
    vol = Volume(np.random.default_rng(0).normal(size=(8, 9, 10)).astype(np.float32), (1, 1, 2))
    assert registry.create("projector", "mip").project(vol).shape == (1, 10, 8)
    # the trainable example saves tensors only and loads back the same generator
    import tempfile

    smooth = module.Smooth(steps=3, batch_size=4)
    smooth.device = "cpu"
    data = synthaug.load_images("checkers", size=16, noise=0.0)
    smooth.fit(data)
    with tempfile.TemporaryDirectory() as directory:
        smooth.save(directory)
        loaded = module.Smooth.load(directory)
        assert sorted(p.name for p in Path(directory).iterdir()) == ["smooth.pt", "synthesizer.json"]
    loaded.device = "cpu"
    first = smooth.generate(data, "fine", 3, seed=1).images
    np.testing.assert_array_equal(first, loaded.generate(data, "fine", 3, seed=1).images)
    assert loaded.config == smooth.config and first.shape == (3, 1, 16, 16)
    clean = synthaug.load_images("checkers", size=16, noise=0.0)  # the source's declared option
    assert set(np.unique(clean.images)) == {0.0, 1.0} and clean.counts() == {"fine": 5, "coarse": 20}
    import pytest
    with pytest.raises(synthaug.SynthaugError, match="option 'noise' of dataset 'checkers' must be a number; got 'x'"):
        synthaug.load_images("checkers", noise="x")


def test_every_documented_cli_command_exists():
    from synthaug.cli import main

    text = (DOCS / "cli.md").read_text()
    documented = set(re.findall(r"^## `synthaug (\w+)", text, re.M))
    assert documented and documented <= set(main.commands)


def test_plugins_options_output_in_cli_md_is_what_the_command_prints():
    from click.testing import CliRunner

    from synthaug.cli import main

    text = (DOCS / "cli.md").read_text()
    shown = re.search(r"\$ synthaug plugins --options augment\n(.*?)```", text, re.S).group(1)
    result = CliRunner().invoke(main, ["plugins", "--options", "augment"])
    assert result.exit_code == 0 and result.output == shown
