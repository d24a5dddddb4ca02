"""Options shared by commands that read a data source (inspect, balance, fit), the test-split options
(balance, fit), and KEY=VALUE parsing."""

from __future__ import annotations

import json
from typing import Any

import click

from synthaug.errors import SynthaugError

_SOURCE_OPTIONS = [
    click.option("--data-dir", type=click.Path(path_type=str), default=None,
                 help="Folder (or .h5 file) of the source."),
    click.option("--size", type=int, default=None, help="Resize images to SIZE x SIZE."),
    click.option("--channels", type=click.IntRange(min=1), default=1, show_default=True,
                 help="Image channels: 1 (grey), 3 (RGB), or any count the source gives (e.g. 4 MRI sequences)."),
    click.option("--skip-bad", is_flag=True, help="Skip unreadable image files and report how many."),
    click.option("--include", "include", multiple=True, help="Extra class to include (e.g. lung_opacity)."),
    click.option("--source-option", "source_options", multiple=True, metavar="KEY=VALUE",
                 help="Source-specific option (e.g. scale=0.1 for ctsim); repeatable."),
    click.option("--data-seed", "data_seed", type=int, default=0, show_default=True,
                 help="Seed of a simulated data set (ctsim): which patients it draws. The run's --seed "
                      "never changes the data."),
    click.option("--binary", default=None, metavar="CLASS",
                 help="Two classes: CLASS against all the others (named 'rest'), e.g. --binary covid."),
]
_DATA = click.option("--data", "data", default="ctsim", show_default=True,
                     help="Dataset source: kaggle, imagefolder, h5, ctsim, ... (see `synthaug plugins`).")
_VOLUMES = [
    click.option("--volumes", default=None,
                 help="Volume source for synthesizers that project CT (mosmed, nifti, ctsim). The same source "
                      "as --data takes the same --source-option values."),
    click.option("--volumes-dir", type=click.Path(path_type=str), default=None),
]


class DeviceType(click.ParamType):
    """``--device auto|cpu|cuda|cuda:N``: checked when parsed (``cuda`` without CUDA, or a ``cuda:N``
    beyond the devices present, is one line and exit code 2 before any work)."""

    name = "device"

    def get_metavar(self, param, ctx=None) -> str:
        return "auto|cpu|cuda[:N]"

    def convert(self, value, param, ctx):
        from synthaug.kit.device import check_device

        return check_device(value, "--device")


DEVICE = DeviceType()


def device_option(func=None, *, default: str | None = None):
    """The one ``--device`` of every command that trains or generates (balance, fit, train, demo,
    experiment run). ``default=None`` (balance, fit): ``auto``."""
    option = click.option("--device", type=DEVICE, default=default, show_default="auto",
                          help="Where networks train and run: auto (CUDA when available), cpu, cuda or cuda:N.")
    return option if func is None else option(func)


def _apply(func, options):
    for option in reversed(options):
        func = option(func)
    return func


def data_options(func):
    """``--data --data-dir --size --channels --skip-bad --include --source-option --volumes --volumes-dir``."""
    return _apply(func, [_DATA, *_SOURCE_OPTIONS, *_VOLUMES])


def source_options(func):
    """The options that describe one source named elsewhere (``inspect SOURCE``): no --data, no volumes."""
    return _apply(func, _SOURCE_OPTIONS)


_TEST_SPLIT = [
    click.option("--test-per-class", type=int, default=None,
                 help="Real test images held out per class [default: 60, liang2021]."),
    click.option("--test-fraction", type=float, default=None,
                 help="Instead: this fraction of each class's real images held out (0 < F < 1; quan2021: 0.2)."),
]


def test_split_options(func):
    """``--test-per-class K`` or ``--test-fraction F`` (one of them; see :func:`test_split_kwargs`)."""
    return _apply(func, _TEST_SPLIT)


def test_split_kwargs(test_per_class: int | None, test_fraction: float | None) -> dict[str, Any]:
    """The keyword arguments of ``balance``/``fit_synthesizer`` for the test-split options; both given
    is an error (neither: the API's default of 60 per class)."""
    if test_per_class is not None and test_fraction is not None:
        raise SynthaugError(f"give --test-per-class or --test-fraction, not both (got {test_per_class} "
                            f"and {test_fraction})")
    if test_fraction is not None:
        return {"test_fraction": test_fraction}
    return {} if test_per_class is None else {"test_per_class": test_per_class}


def parse_key_values(pairs: tuple[str, ...], what: str) -> dict[str, Any]:
    """``("epochs=5", "pairing=paired")`` -> ``{"epochs": 5, "pairing": "paired"}`` (JSON-typed values)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SynthaugError(f"{what} {pair!r}: expected KEY=VALUE")
        try:
            out[key.strip().replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip().replace("-", "_")] = value
    return out


def load_from_cli(data, data_dir, size, channels, skip_bad, include, source_options, data_seed=0, binary=None,
                  **_volumes):
    """The ImageSet the data options describe (and a dict describing the source for the run config)."""
    from synthaug.pipeline.load import as_binary, load_images

    extra = parse_key_values(source_options, "--source-option")
    images = load_images(data, data_dir, size=size, channels=int(channels), skip_bad=skip_bad,
                         classes=include or None, seed=data_seed, lazy=True, **extra)
    if skip_bad and images.meta.get("skipped"):
        click.echo(f"skipped {images.meta['skipped']} unreadable image file(s)", err=True)
    if binary is not None:
        images = as_binary(images, binary)
    source = {"name": data, "data_dir": data_dir, "size": size, "channels": int(channels), "options": extra,
              **({"data_seed": data_seed} if data_seed else {}),
              **{k: v for k, v in images.meta.items() if k not in ("skipped_files", "binary")}, "binary": binary}
    return images, source


def volumes_from_cli(volumes, volumes_dir, data=None, data_seed=0, source_options=(), binary=None, **_images):
    """The VolumeSet of ``--volumes`` (None without it). A volume source that is also the image source
    (a simulator giving both, such as the built-in data) gets the same source options, so its CTs are
    those of the patients whose radiographs were loaded."""
    if not volumes:
        return None
    from synthaug.pipeline.load import binary_volumes, load_volumes

    extra = parse_key_values(source_options, "--source-option") if volumes == data else {}
    return binary_volumes(load_volumes(volumes, volumes_dir, seed=data_seed, **extra), binary)
