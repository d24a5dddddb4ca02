"""``synthaug demo``: the main job on the built-in ctsim data set, as a small experiment."""

from __future__ import annotations

import click

from synthaug.cli import main
from synthaug.cli.common import device_option


@main.command("demo")
@click.option("--preset", type=click.Choice(["tiny", "demo", "paper"]), default="demo", show_default=True)
@click.option("--out", type=click.Path(path_type=str, file_okay=False), default="reports/demo", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the simulated data set.")
@click.option("--synth", default=None,
              help="Synthesizer (default: the best registered: pix2pix > augment > duplicate).")
@click.option("--classifier", default="resnet50", show_default=True)
@click.option("--epochs", type=int, default=None, help="Override the preset's training epochs.")
@device_option(default="auto")
def demo_command(preset, out, seed, synth, classifier, epochs, device):
    """Simulate ctsim; train on it unbalanced, duplicated, augmented and synthesized; compare."""
    import json
    import shlex
    import sys
    from pathlib import Path

    from synthaug.experiments.demo import run_demo
    from synthaug.experiments.layout import Layout
    from synthaug.experiments.quality import quality_sentences

    command = shlex.join(["synthaug", *sys.argv[1:]]) if sys.argv and "synthaug" in sys.argv[0] else None
    report = run_demo(preset, out, seed=seed, synthesizer=synth, classifier=classifier, epochs=epochs, device=device,
                      command=command)
    layout = Layout(report)
    for c in json.loads(layout.comparisons_json.read_text()):
        click.echo(c["sentence"])
    for line in quality_sentences(Path(report)):
        click.echo(line)
    click.echo(f"report: {layout.report_md}")
