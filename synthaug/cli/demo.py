"""``synthaug demo``: the main job on the built-in ctsim data set."""

from __future__ import annotations

import click

from synthaug.cli import main


@main.command("demo")
@click.option("--preset", type=click.Choice(["tiny", "demo", "paper"]), default="demo", show_default=True)
@click.option("--out", type=click.Path(path_type=str, file_okay=False), default="reports/demo", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--synth", default=None, help="Synthesizer (default: the best registered: pix2pix > augment > duplicate).")
@click.option("--classifier", default="resnet50", show_default=True)
@click.option("--epochs", type=int, default=None, help="Override the preset's training epochs.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
def demo_command(preset, out, seed, synth, classifier, epochs, device):
    """Generate ctsim, balance it, train on original vs balanced data, and write a report."""
    import json

    from synthaug.experiments.demo import run_demo

    report = run_demo(preset, out, seed=seed, synthesizer=synth, classifier=classifier, epochs=epochs, device=device)
    summary = json.loads((report / "summary.json").read_text())
    for name, metrics in summary["metrics"].items():
        click.echo(f"{name:>9}: accuracy {metrics['accuracy']:.3f}  macro F1 {metrics['macro_f1']:.3f}")
    click.echo(f"report: {report / 'report.md'}")
