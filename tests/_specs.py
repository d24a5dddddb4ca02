"""Small experiment specs for the tests: the tiny ctsim data (32 px, a few simulated patients) and a
quarter-width ResNet50, with the arms a test is about; and the check that a bad spec is refused."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

DATA = """
seeds = SEEDS
positive = "covid"

[data]
source = "ctsim"
size = 32
options = { preset = "tiny", counts = { covid = COVID, normal = 10, viral = 10 } }

[split]
test_per_class = 2
"""

CLASSIFIER = """
[classifiers.small]
classifier = "resnet50"
recipe = { epochs = EPOCHS, batch_size = 8, classifier_options = { width = 0.25 } }
"""

#: ddpm at its smallest (an 8/16-wide U-Net, 1 epoch, 2 DDIM steps), its guidance left to fill in.
DDPM = """
[arms.ddpm]
label = "diffusion"
synthesizer = "ddpm"

[arms.ddpm.options]
channels = [8, 16]
epochs = 1
timesteps = 50
steps = 2
batch_size = 8
figure_every = 0
guidance = GUIDANCE
"""

DUPLICATE = """
[arms.duplicate]
synthesizer = "duplicate"
baseline = true
"""


def tiny_spec(path: Path, arms: str, *, covid: int = 5, epochs: int = 1, seeds: int = 1, name: str = "") -> Path:
    """A spec at ``path`` named ``name`` (default the file's stem): the tiny data, the baseline arm
    ``duplicate``, ``arms`` (TOML; text before the first table continues ``duplicate``'s), the classifier."""
    data = DATA.replace("SEEDS", str(seeds)).replace("COVID", str(covid))
    classifier = CLASSIFIER.replace("EPOCHS", str(epochs))
    path.write_text(f'name = "{name or path.stem}"\n{data}{DUPLICATE}{arms}\n{classifier}')
    return path


def run(*args) -> object:
    from synthaug.cli import main

    return CliRunner().invoke(main, ["--quiet", *map(str, args)])


def assert_refused_before_any_work(spec: Path, out: Path, message: str) -> None:
    """``experiment run`` of ``spec`` exits 2 with one line containing ``message`` and writes nothing."""
    result = run("experiment", "run", spec, "--out", out)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and message in lines[0], result.output
    assert not out.exists()
