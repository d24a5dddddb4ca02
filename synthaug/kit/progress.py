"""Progress bars for every long step (fit, generate, render, train), silenced globally.

Plugins call :func:`track` or :func:`bar`; the CLI's ``--quiet`` (or ``SYNTHAUG_QUIET=1``) turns all
of them off. Bars go to stderr so that ``--json`` output on stdout stays clean.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")
_quiet = os.environ.get("SYNTHAUG_QUIET", "") not in ("", "0")


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = bool(quiet)


def is_quiet() -> bool:
    return _quiet


def note(text: str) -> None:
    """One line on stderr (a choice made for the user, e.g. a preset taken), unless quiet."""
    if not _quiet:
        import sys

        print(text, file=sys.stderr, flush=True)


class _Silent:
    def update(self, advance: int = 1, **fields) -> None:  # noqa: D401 - same shape as _Bar
        pass


class _Bar:
    def __init__(self, progress, task):
        self._progress, self._task = progress, task

    def update(self, advance: int = 1, **fields) -> None:
        """Advance by ``advance`` steps; ``fields`` (e.g. ``loss=0.3``) are shown after the bar."""
        text = "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items())
        self._progress.update(self._task, advance=advance, info=text)


@contextmanager
def bar(description: str, total: int | None, *, shown: bool = True) -> Iterator[_Bar | _Silent]:
    """A progress bar as a context manager: ``with bar("fit", 100) as b: b.update(loss=0.1)``.
    ``shown=False`` (a run context's ``progress``) or quiet: nothing is shown."""
    if _quiet or not shown:
        yield _Silent()
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn(), TextColumn("{task.fields[info]}"))
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        task = progress.add_task(description, total=total, info="")
        yield _Bar(progress, task)


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate over ``items`` with a progress bar."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with bar(description, total) as b:
        for item in items:
            yield item
            b.update()
