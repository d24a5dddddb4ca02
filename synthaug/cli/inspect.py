"""``synthaug inspect SOURCE``: class counts (real and synthetic) per split and the image shape."""

from __future__ import annotations

import json
from pathlib import Path

import click

from synthaug.cli import main
from synthaug.cli.common import load_from_cli, parse_key_values, source_options
from synthaug.errors import SynthaugError


def describe_source(data: str, **options) -> dict:
    from synthaug.pipeline.load import get_source

    source = get_source(data)
    info: dict = {"source": data}
    if "images" in source.provides:
        images, _ = load_from_cli(data, **options)
        info.update({"splits": {"all": {"classes": images.counts(), "synthetic": images.counts(synthetic=True)}},
                     "image_shape": list(images.image_shape), "skipped": images.meta.get("skipped", 0)})
    if "volumes" in source.provides:
        from synthaug.pipeline.load import binary_volumes, load_volumes

        # The source's own options (e.g. ctsim's preset/scale) describe the volumes too.
        extra = parse_key_values(options.get("source_options", ()), "--source-option")
        vols = binary_volumes(load_volumes(data, options.get("data_dir"), seed=options.get("data_seed", 0), **extra),
                              options.get("binary"))
        info["volumes"] = {"classes": vols.counts(), "count": len(vols)}
    return info


@main.command("inspect")
@click.argument("source")
@source_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def inspect_command(ctx: click.Context, source: str, as_json: bool, **options) -> None:
    """Counts per class and split of a store (.h5 path) or of a registered SOURCE."""
    from synthaug.pipeline.store import store_info

    if source.endswith((".h5", ".hdf5")) or Path(source).is_file():
        given = [f"--{name.replace('_', '-')}" for name in options
                 if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE]
        if given:
            raise SynthaugError(f"inspect {source}: a store is read as written; {', '.join(given)} applies to "
                                f"a registered source only")
        info = store_info(source)
    else:
        info = describe_source(source, **options)
    if as_json:
        click.echo(json.dumps(info))
        return
    for split, counts in info.get("splits", {}).items():
        synthetic = counts["synthetic"]
        rows = ", ".join(f"{c} {n}" + (f" ({synthetic[c]} synthetic)" if synthetic.get(c) else "")
                         for c, n in counts["classes"].items())
        click.echo(f"{split}: {rows}")
    if "image_shape" in info:
        click.echo(f"image shape (C, H, W): {tuple(info['image_shape'])}")
    if "volumes" in info:
        click.echo(f"volumes: {info['volumes']['classes']}")
