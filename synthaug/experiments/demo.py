"""``synthaug demo``: the main job on the built-in data set, as a small experiment.

One split of ctsim (simulated covid/normal/viral radiographs from a real chest CT), six arms: the
unbalanced training split, the same split with a class-weighted loss and with a class-balanced
sampler, balanced by ``duplicate``, by ``augment`` and by the chosen synthesizer (default: the best
registered, ``pix2pix`` > ``augment`` > ``duplicate``); one ResNet50 each, all measured on the same
real test images; the report says which arm won, by how much, and whether the synthesizer beat each
classical baseline (:mod:`synthaug.experiments.report`).

Presets (``demo.toml``): ``tiny`` (tests, seconds), ``demo`` (2 CPU cores: 64 px, 100 test images per
class), ``paper`` (liang2021's sizes: 224 px, 60 test images per class, 60 epochs; a GPU).
"""

from __future__ import annotations

from pathlib import Path

from synthaug.errors import SynthaugError

#: ddpm is not among them: its cpu fit alone takes 3 to 13 minutes on 2 cores (docs/ddpm.md), over the
#: demo's budget; ``synthaug demo --synth ddpm`` runs it.
PREFERENCE = ("pix2pix", "augment", "duplicate")
#: Options of a synthesizer when it is the demo's, per preset (the spec's arm gets them).
SYNTH_OPTIONS = {
    "tiny": {"pix2pix": {"epochs": 1, "ngf": 8, "ndf": 8}, "acgan": {"epochs": 1, "ngf": 8, "ndf": 8},
             "xpgan": {"preset": "small", "max_steps": 2, "batch_size": 4, "classifier_options": {"width": 0.25}},
             "ddpm": {"channels": [8, 16], "epochs": 1, "timesteps": 50, "steps": 2, "figure_every": 0}},
    "demo": {"pix2pix": {"epochs": 5}, "acgan": {"epochs": 20},
             "xpgan": {"preset": "small", "max_steps": 64, "batch_size": 8}},
    "paper": {"pix2pix": {"epochs": 100}},
}


def best_synthesizer() -> str:
    from synthaug.registry import get_registry

    names = set(get_registry().names("synthesizer"))
    return next(name for name in PREFERENCE if name in names)


def demo_spec(preset: str = "demo", synthesizer: str | None = None, classifier: str = "resnet50",
              epochs: int | None = None, seed: int = 0):
    """The demo's :class:`~synthaug.experiments.spec.Spec`: demo.toml with the synthesizer filled in."""
    from synthaug.experiments.spec import apply_preset, check_spec, read_spec_file
    from synthaug.registry import get_registry

    if preset not in SYNTH_OPTIONS:
        raise SynthaugError(f"unknown preset {preset!r}; presets are {', '.join(SYNTH_OPTIONS)}")
    raw, origin = read_spec_file("demo")
    synth = synthesizer or best_synthesizer()
    arm = raw["arms"]["synthesis"]
    arm.update(synthesizer=synth, label=synth, options=SYNTH_OPTIONS[preset].get(synth, {}))
    raw["classifiers"]["resnet50"]["classifier"] = classifier
    raw["classifiers"]["resnet50"]["label"] = f"{classifier} from scratch"
    table = apply_preset(raw, preset, "demo.toml")
    if epochs is not None:
        table["classifiers"]["resnet50"]["recipe"]["epochs"] = epochs
    data = dict(table["data"])
    data["seed"] = seed
    if get_registry().entry("synthesizer", synth).resolve().needs_volumes:
        data["volumes"] = data["source"]  # ctsim's labeled CTs of the same simulated patients
    return check_spec(table, data, preset, origin)


def run_demo(preset: str = "demo", out: str | Path = "reports/demo", *, seed: int = 0, synthesizer: str | None = None,
             classifier: str = "resnet50", epochs: int | None = None, device: str = "auto",
             command: str | None = None) -> Path:
    """Run the demo into experiment directory ``out`` (a rerun finishes an interrupted one); return it."""
    from synthaug.experiments.runner import run_experiment

    spec = demo_spec(preset, synthesizer, classifier, epochs, seed)
    return run_experiment(spec, out, device=device, command=command)
