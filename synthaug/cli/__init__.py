"""The ``synthaug`` command: thin click commands over the Python API.

Exit codes: 0 success, 2 bad input or usage (one line on stderr naming the file or value).
Commands live one per module in this package and import heavy libraries only inside their body,
so ``synthaug --help`` and ``synthaug plugins`` answer fast.
"""

from __future__ import annotations

import click

from synthaug.errors import SynthaugError


class CliError(click.ClickException):
    exit_code = 2


class SynthaugGroup(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except SynthaugError as exc:
            raise CliError(str(exc)) from exc


@click.group(cls=SynthaugGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="synthaug")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def main(quiet: bool) -> None:
    """Balance imbalanced medical image sets by synthesizing the rare class."""
    from synthaug.kit import progress

    progress.set_quiet(quiet or progress.is_quiet())


def _add_commands() -> None:
    """Import every module of this package: each adds its command to ``main`` (one module a command)."""
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


_add_commands()
