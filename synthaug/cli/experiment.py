"""``synthaug experiment``: run a spec's grid (arms x classifiers x seeds) and report it."""

from __future__ import annotations

import shlex
import sys

import click

from synthaug.cli import main
from synthaug.cli.common import device_option, parse_key_values
from synthaug.errors import SynthaugError


@main.group("experiment")
def experiment_group() -> None:
    """Both papers' tables as commands: balance with every arm, train, compare, with error bars."""


@experiment_group.command("list")
def list_command() -> None:
    """The experiments that ship with synthaug."""
    from synthaug.experiments.spec import bundled_specs, read_spec_file

    for name, path in sorted(bundled_specs().items()):
        raw, _ = read_spec_file(path)
        presets = ", ".join(sorted(set(raw.get("presets", {})) | {"paper"}))
        click.echo(f"{name:<12} {raw.get('title', '')}  [presets: {presets}]")


def _spec_options(func):
    options = [
        click.argument("spec"),
        click.option("--preset", type=click.Choice(["tiny", "demo", "paper"]), default=None,
                     help="tiny (tests, seconds), demo (2 CPU cores; default on the built-in data), paper (the "
                          "papers' sizes, a GPU; default on other data)."),
        click.option("--seeds", type=int, default=None, help="Run seeds 0..N-1 (default: the spec's)."),
        click.option("--data", "source", default=None, help="Another data source than the spec's (kaggle, h5, ...)."),
        click.option("--data-dir", type=click.Path(path_type=str), default=None),
        click.option("--size", type=int, default=None, help="Resize images to SIZE x SIZE."),
        click.option("--source-option", "source_options", multiple=True, metavar="KEY=VALUE"),
        click.option("--volumes", default=None, help="Volume source for arms that project CT (mosmed, nifti)."),
        click.option("--volumes-dir", type=click.Path(path_type=str), default=None),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _load(spec, preset, seeds, source, data_dir, size, source_options, volumes, volumes_dir):
    from synthaug.experiments.spec import load_spec

    data = {"source": source, "dir": data_dir, "size": size, "volumes": volumes, "volumes_dir": volumes_dir,
            "options": parse_key_values(source_options, "--source-option")}
    return load_spec(spec, preset=preset, seeds=seeds, data=data)


@experiment_group.command("show")
@_spec_options
def show_command(**options) -> None:
    """Print the resolved spec (preset and overrides applied) as JSON, checked but not run."""
    from synthaug.experiments.spec import spec_json

    click.echo(spec_json(_load(**options)))


@experiment_group.command("run")
@_spec_options
@click.option("--weights", multiple=True, metavar="[CLASSIFIER=]PATH",
              help="Local torchvision-format ImageNet state dict for transfer/fine-tuning recipes and jointly "
                   "trained classifiers; repeat per network (resnet50=r.pt densenet121=d.pt).")
@device_option(default="auto")
@click.option("--out", type=click.Path(path_type=str, file_okay=False), required=True)
@click.option("--shard", default=None, metavar="I/N",
              help="Run only the I-th of N shares of the cells (1 <= I <= N), beside the other shares' processes "
                   "(a Slurm job array: --shard $SLURM_ARRAY_TASK_ID/N with --array=1-N).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Run the cells in N local processes (the N shards), then write the report.")
def run_command(weights, device, out, shard, workers, **options) -> None:
    """Run every cell of SPEC (a bundled name or a TOML file); a rerun finishes an interrupted one."""
    from synthaug.experiments.runner import parse_shard, run_experiment, run_workers
    from synthaug.experiments.spec import parse_weights

    if shard is not None and workers > 1:
        raise SynthaugError("--shard and --workers: give one (--workers N runs the N shards itself)")
    shard_of = parse_shard(shard)
    spec = _load(**options)
    weight_files = parse_weights(weights)
    command = shlex.join(["synthaug", *sys.argv[1:]]) if sys.argv and "synthaug" in sys.argv[0] else None
    if workers > 1:
        report = run_workers(spec, out, workers, _shard_arguments(), weights=weight_files, device=device,
                             command=command)
    else:
        report = run_experiment(spec, out, weights=weight_files, device=device, command=command, shard=shard_of)
    _print_summary(report)


def _shard_arguments() -> list[str]:
    """This command's arguments after ``synthaug`` without ``--workers``: what each worker runs, with its
    ``--shard I/N`` added (``--quiet`` passed on)."""
    from synthaug.kit import progress

    params = click.get_current_context().params
    args = ["--quiet"] if progress.is_quiet() else []
    args += ["experiment", "run", params["spec"], "--out", params["out"], "--device", params["device"]]
    flags = {"preset": "--preset", "seeds": "--seeds", "source": "--data", "data_dir": "--data-dir",
             "size": "--size", "volumes": "--volumes", "volumes_dir": "--volumes-dir"}
    for name, flag in flags.items():
        if params.get(name) is not None:
            args += [flag, str(params[name])]
    for name, flag in (("source_options", "--source-option"), ("weights", "--weights")):
        for value in params.get(name) or ():
            args += [flag, value]
    return args


@experiment_group.command("report")
@click.argument("directory", type=click.Path(path_type=str, file_okay=False))
def report_command(directory) -> None:
    """Write results.csv, report.md and figures of an experiment directory (finished or not)."""
    from synthaug.experiments.report import write_report

    write_report(directory)
    _print_summary(directory)


def _print_summary(directory) -> None:
    import json

    from synthaug.experiments.layout import Layout

    layout = Layout(directory)
    for c in json.loads(layout.comparisons_json.read_text()):
        click.echo(c["sentence"])
    click.echo(f"report: {layout.report_md}")
