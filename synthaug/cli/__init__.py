"""The ``synthaug`` command: thin click commands over the Python API.

Exit codes: 0 success, 2 bad input or usage (one line on stderr naming the file or value), 130
interrupted by Ctrl-C (one line saying how to go on).
Commands live one per module in this package and import heavy libraries only inside their body,
so ``synthaug --help`` and ``synthaug plugins`` answer fast.
"""

from __future__ import annotations

import click

from synthaug.errors import SynthaugError

#: Ctrl-C: the shell's code for SIGINT, and one line on how to go on.
INTERRUPTED_EXIT = 130
INTERRUPTED = ("synthaug: interrupted; nothing half-written was left. Run the same command again: `experiment run` "
               "and `demo` continue where they stopped, `train --resume` continues a training run, `fit` (and "
               "`balance` given a --work-dir) resumes the synthesizer's training, others start over.")


class CliError(click.ClickException):
    exit_code = 2


class OutputCommand(click.Command):
    """A command with an ``--out`` is that output's one writer from start to end (``kit.files.hold``):
    a second run given the same output refuses at once, before any work, naming the first."""

    def invoke(self, ctx: click.Context):
        out = ctx.params.get("out")
        if not out:
            return super().invoke(ctx)
        from synthaug.kit.files import hold

        # A sharded experiment run (--shard, --workers) holds its directory together with the grid's other
        # shards, each fit, store and cell inside claimed on its own; a run of the whole grid holds it alone.
        shared = bool(ctx.params.get("shard")) or (ctx.params.get("workers") or 1) > 1
        with hold(out, shared=shared):
            return super().invoke(ctx)


class SynthaugGroup(click.Group):
    """Turns SynthaugError into exit code 2, and takes the group's own options anywhere on the line."""

    command_class = OutputCommand
    group_class = type  # subgroups (``experiment``) are SynthaugGroups too

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # `synthaug balance ... --quiet` means `synthaug --quiet balance ...`: a user should not have to
        # know which options belong to the group. Only the group's flags are moved, and only those
        # after the command name (no command defines an option of the same name).
        flags = {name for param in self.params if isinstance(param, click.Option) and param.is_flag
                 for name in param.opts + param.secondary_opts}
        command_at = next((i for i, a in enumerate(args) if a in self.commands), None)
        if command_at is not None:
            head, tail = args[:command_at + 1], args[command_at + 1:]
            moved = [a for a in tail if a in flags]
            args = moved + head + [a for a in tail if a not in flags]
        return super().parse_args(ctx, args)

    def resolve_command(self, ctx: click.Context, args: list[str]):
        name, command, rest = super().resolve_command(ctx, args)
        _one_process_unless_distributed(name)
        return name, command, rest

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except SynthaugError as exc:
            raise CliError(str(exc)) from exc
        except KeyboardInterrupt:
            # Ctrl-C: every output is written under a temporary name and renamed when complete, and the
            # temporary one is removed on the way out, so there is nothing half-written to warn about.
            click.echo(INTERRUPTED, err=True)
            ctx.exit(INTERRUPTED_EXIT)
        finally:
            from synthaug.kit import distributed

            distributed.finish()  # under torchrun: leave the process group (a no-op in one process)


#: Commands that may run under torchrun: ``train``, ``fit`` and ``balance`` (several processes, one
#: run: batches and generated chunks shared out, rank 0 writes) and the read-only ones. The others
#: would do the whole job once per process, so they refuse.
DISTRIBUTED_COMMANDS = ("train", "fit", "balance", "plugins", "inspect")


def _one_process_unless_distributed(command: str | None) -> None:
    import os

    if int(os.environ.get("WORLD_SIZE", "1") or 1) <= 1:
        return
    if command in DISTRIBUTED_COMMANDS:
        if int(os.environ.get("RANK", "0") or 0) != 0:  # rank 0 shows the progress; the others run quietly
            from synthaug.kit import progress

            progress.set_quiet(True)
        return
    raise SynthaugError(f"`synthaug {command}` runs in one process: start it without torchrun "
                        f"(torchrun shares out `synthaug train`, `fit` and `balance`; see docs/scaling.md)")


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
