"""``synthaug plugins``: what is registered, and which plugins failed to load."""

from __future__ import annotations

import json

import click

from synthaug.cli import main


@main.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="JSON list of {name, kind, module, version}.")
@click.option("--kind", type=click.Choice(["synthesizer", "projector", "classifier", "dataset"]), default=None)
@click.option("--options", "options_of", metavar="NAME", default=None,
              help="Print the options of plugin NAME (--synth-option, --classifier-option, --source-option, ...): "
                   "name, type, default and meaning, from its Config.")
def plugins_command(as_json: bool, kind: str | None, options_of: str | None) -> None:
    """List registered synthesizers, projectors, classifiers and dataset sources."""
    from synthaug.registry import get_registry

    registry = get_registry()
    if options_of is not None:
        _print_options(registry, options_of, kind, as_json)
        return
    rows = [r for r in registry.listing() if kind in (None, r["kind"])]
    if as_json:
        click.echo(json.dumps([{k: r[k] for k in ("name", "kind", "module", "version")} for r in rows]))
    else:
        for r in rows:
            click.echo(f"{r['kind']:<12} {r['name']:<14} {r['module']} {r['version']}  {r['summary']}")
    for name, error in sorted(registry.failed.items()):
        click.echo(f"plugin {name!r} failed to load: {error}", err=True)


def _print_options(registry, name: str, kind: str | None, as_json: bool) -> None:
    """Every plugin called ``name`` (a synthesizer and a projector may share one: ``xpgan``), or the one
    of ``kind``; its Config's options as a table (or JSON)."""
    from synthaug.contract.config import describe_options
    from synthaug.errors import SynthaugError
    from synthaug.registry import KINDS

    kinds = [kind] if kind else [k for k in KINDS if name in registry.entries[k]]
    if not kinds:
        names = sorted({n for k in KINDS for n in registry.entries[k]})
        raise SynthaugError(f"no plugin is called {name!r}; registered: {', '.join(names)}")
    found = []
    for k in kinds:
        entry = registry.entry(k, name)  # an unknown name of the given kind fails here, naming the registered ones
        cls = entry.resolve()
        rows = describe_options(getattr(cls, "Config", None))
        for row in rows:  # a fitted checkpoint takes new values of these (balance --synth-checkpoint -o ...)
            if row["name"] in getattr(cls, "sampling_options", ()):
                row["sampling"] = True
                row["meaning"] = f"{row['meaning']} [sampling option: a fitted checkpoint takes a new value]"
        found.append({"kind": k, "name": name, "module": entry.module, "options": rows})
    if as_json:
        click.echo(json.dumps(found, default=str))
        return
    for item in found:
        click.echo(f"{item['kind']} {item['name']} ({item['module']})"
                   + (": no options" if not item["options"] else ""))
        for row in item["options"]:
            default = json.dumps(row["default"], default=str)
            click.echo(f"  {row['name']:<22} {row['type']:<24} {default:<10} {row['meaning']}".rstrip())
