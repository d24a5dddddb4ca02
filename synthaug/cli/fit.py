"""``synthaug fit``: train a synthesizer alone on the training split and save it for ``balance --synth-checkpoint``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from synthaug.cli import main
from synthaug.cli.common import (
    data_options,
    device_option,
    load_from_cli,
    parse_key_values,
    test_split_kwargs,
    test_split_options,
    volumes_from_cli,
)


@main.command("fit")
@click.option("--synth", "synth", required=True, help="Synthesizer to train (see `synthaug plugins`).")
@data_options
@test_split_options  # as `balance` holds them out: the test images never reach fit
@click.option("--seed", type=int, default=0, show_default=True,
              help="The run's seed: the test split (use the same one with balance), the synthesizer's initial "
                   "weights and draws.")
@click.option("--strategy", default="auto", show_default=True, help="Which classes need synthesizing (as in balance).")
@click.option("--epochs", type=int, default=None, help="Training epochs (synthesizer option; pix2pix: 100).")
@click.option("--batch-size", type=int, default=None, help="Batch size (synthesizer option; pix2pix: 1).")
@click.option("--pairing", default=None, help="pix2pix: random | paired | nearest.")
@click.option("--source-class", default=None, help="pix2pix: class translated into the others (normal).")
@click.option("--synth-option", "synth_options", multiple=True, metavar="KEY=VALUE",
              help="Any other synthesizer option (e.g. ngf=32); repeatable.")
@click.option("--work-dir", type=click.Path(path_type=str, file_okay=False), default=None,
              help="Per-epoch training state (an interrupted fit run again resumes from it); default OUT.work, "
                   "removed after success (a --work-dir given is kept).")
@device_option
@click.option("--out", required=True, type=click.Path(path_type=str, file_okay=False), help="Output directory.")
def fit_command(synth, test_per_class, test_fraction, seed, strategy, epochs, batch_size, pairing, source_class,
                synth_options, work_dir, device, out, **data):
    """Train a synthesizer on the training split and save it to OUT (weights, config, measures)."""
    from synthaug.kit.distributed import main_process
    from synthaug.pipeline.balance import parse_strategy
    from synthaug.pipeline.checkpoint import fit_synthesizer

    split = test_split_kwargs(test_per_class, test_fraction)
    options = parse_key_values(synth_options, "--synth-option")
    named = {"epochs": epochs, "batch_size": batch_size, "pairing": pairing, "source_class": source_class}
    options.update({k: v for k, v in named.items() if v is not None})
    images, source = load_from_cli(**data)
    volumes = volumes_from_cli(**data)
    fitted = fit_synthesizer(images, synth, out, seed=seed, synth_options=options, volumes=volumes,
                             strategy=parse_strategy(strategy), work_dir=work_dir, source=source, device=device,
                             **split)
    if not main_process():  # under torchrun, rank 0 reports
        return
    click.echo(f"wrote {out}: {fitted.name} {json.dumps(fitted.describe().get('checkpoints', {}))}")
    measures_path = Path(out) / "measures.json"
    if measures_path.is_file():  # held-out real test images, never seen in training
        for target, m in json.loads(measures_path.read_text())["targets"].items():
            click.echo(f"{target}: {m['n']} test pairs  " + "  ".join(
                f"{k} {m['model'][k]:.4f} (identity {m['identity'][k]:.4f})" for k in ("l1", "psnr", "ssim")))
