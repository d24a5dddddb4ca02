"""``synthaug balance``: hold out the real test split, synthesize the deficits, write a store."""

from __future__ import annotations

import json

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


@main.command("balance")
@click.option("--synth", "synth", default="augment", show_default=True, help="Synthesizer (see `synthaug plugins`).")
@data_options
@click.option("--strategy", default="auto", show_default=True,
              help="auto | minority | not minority | not majority | all | none | per-source | RATIO (binary: "
                   "minority/majority wanted, in (0, 1]) | CLASS=COUNT,... (final counts; below the current count "
                   "trims the class).")
@test_split_options
@click.option("--seed", type=int, default=0, show_default=True,
              help="The run's seed: the test split, the synthesizer's training and its images (not the data).")
@click.option("--synth-option", "synth_options", multiple=True, metavar="KEY=VALUE",
              help="Synthesizer option (e.g. epochs=5, pairing=paired); repeatable.")
@click.option("--synth-checkpoint", type=click.Path(path_type=str), default=None,
              help="Reuse a synthesizer fitted by `synthaug fit` instead of training one.")
@click.option("--work-dir", type=click.Path(path_type=str, file_okay=False), default=None,
              help="Where a trainable synthesizer keeps per-epoch state while it fits (a rerun resumes from it).")
@device_option
@click.option("--out", required=True, type=click.Path(path_type=str, dir_okay=False), help="Output store (.h5).")
@click.option("--json", "as_json", is_flag=True, help="Print the store's counts as JSON.")
def balance_command(synth, strategy, test_per_class, test_fraction, seed, synth_options, synth_checkpoint, work_dir,
                    device, out, as_json, **data):
    """Balance the training split of a data set with a synthesizer and write an HDF5 store."""
    from synthaug.api import balance
    from synthaug.kit.distributed import main_process
    from synthaug.pipeline.balance import parse_strategy
    from synthaug.pipeline.store import store_info

    strategy_value = parse_strategy(strategy)
    split = test_split_kwargs(test_per_class, test_fraction)
    options = parse_key_values(synth_options, "--synth-option")
    images, source = load_from_cli(**data)
    volumes = volumes_from_cli(**data)
    result = balance(images, synth, strategy=strategy_value, seed=seed, out=out, synth_options=options,
                     volumes=volumes, synth_checkpoint=synth_checkpoint, work_dir=work_dir, source=source,
                     device=device,
                     **split)
    if not main_process():  # under torchrun, rank 0 reports
        return
    if as_json:
        click.echo(json.dumps(store_info(result.path)))
    else:
        click.echo(f"wrote {result.path}: train {result.train.counts()} "
                   f"(synthetic {result.train.counts(synthetic=True)}), test {result.test.counts()}")
