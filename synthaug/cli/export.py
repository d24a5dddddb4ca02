"""``synthaug export STORE DIR``: a store as class folders of PNGs and a provenance.csv."""

from __future__ import annotations

import json

import click

from synthaug.cli import main


@main.command("export")
@click.argument("store", type=click.Path(dir_okay=False, path_type=str))
# Held as ``out`` (not ``dir``): the command is then DIR's one writer (OutputCommand), so a second
# export into the same DIR while the first runs is refused at once.
@click.argument("out", metavar="DIR", type=click.Path(path_type=str))
@click.option("--split", default=None, metavar="NAME", help="Export only this split [default: every split].")
@click.option("--overwrite", is_flag=True, help="Replace DIR if it holds an earlier export.")
@click.option("--json", "as_json", is_flag=True, help="Print the counts written as JSON.")
def export_command(store: str, out: str, split: str | None, overwrite: bool, as_json: bool) -> None:
    """Write STORE as DIR/<split>/<class>/<row>_<synth>.png and DIR/provenance.csv."""
    from synthaug.pipeline.export import export_store

    summary = export_store(store, out, split=split, overwrite=overwrite)
    if as_json:
        click.echo(json.dumps(summary))
        return
    for name, counts in summary["splits"].items():
        click.echo(f"{name}: " + ", ".join(f"{c} {n}" for c, n in counts.items()))
    click.echo(f"wrote {summary['out']} ({summary['bits']}-bit PNGs and provenance.csv)")
