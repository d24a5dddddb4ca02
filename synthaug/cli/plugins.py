"""``synthaug plugins``: what is registered, and which plugins failed to load."""

from __future__ import annotations

import json

import click

from synthaug.cli import main


@main.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="JSON list of {name, kind, module, version}.")
@click.option("--kind", type=click.Choice(["synthesizer", "projector", "classifier", "dataset"]), default=None)
def plugins_command(as_json: bool, kind: str | None) -> None:
    """List registered synthesizers, projectors, classifiers and dataset sources."""
    from synthaug.registry import get_registry

    registry = get_registry()
    rows = [r for r in registry.listing() if kind in (None, r["kind"])]
    if as_json:
        click.echo(json.dumps([{k: r[k] for k in ("name", "kind", "module", "version")} for r in rows]))
    else:
        for r in rows:
            click.echo(f"{r['kind']:<12} {r['name']:<14} {r['module']} {r['version']}  {r['summary']}")
    for name, error in sorted(registry.failed.items()):
        click.echo(f"plugin {name!r} failed to load: {error}", err=True)
