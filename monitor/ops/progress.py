"""Progress of long commands (``replay``, ``bench``) on stderr, so stdout stays the result.

On a terminal each task is a rich progress bar; otherwise one plain line per finished task
(a CI log shows what ran, with no control characters); library callers get ``SILENT``.
A task is a context manager that yields ``advance(steps=1)``::

    with progress.task("processing", total=len(items)) as advance:
        for batch in batches:
            ...
            advance(len(batch))
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

__all__ = ["SILENT", "Advance", "BarProgress", "LineProgress", "Progress", "progress_for"]

Advance = Callable[[int], None]
REFRESH_PER_S = 5  # a bar redraws seldom: benches measure this very process


class Progress:
    """Reports nothing: the default of every function that takes a ``progress``."""

    @contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[Advance]:
        """A unit of work of ``total`` steps (None: unknown); yields ``advance``."""
        yield _ignore


def _ignore(steps: int = 1) -> None:
    return None


SILENT = Progress()


class LineProgress(Progress):
    """One line per finished task, ``description: done/total``, for logs and pipes."""

    def __init__(self, stream: TextIO, prefix: str = "") -> None:
        self.stream = stream
        self.prefix = prefix

    @contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[Advance]:
        done = 0

        def advance(steps: int = 1) -> None:
            nonlocal done
            done += steps

        yield advance
        count = f"{done}/{total}" if total is not None else str(done)
        self.stream.write(f"{self.prefix}{description}: {count}\n")
        self.stream.flush()


class BarProgress(Progress):
    """A rich progress bar per task on a terminal; it stays, finished, once the task is done.

    Only stderr is taken over while a bar runs (log lines print above it); stdout is left
    alone, so a command's output is the same with and without a terminal.
    """

    def __init__(self, stream: TextIO, prefix: str = "") -> None:
        self.stream = stream
        self.prefix = prefix

    @contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[Advance]:
        from rich import progress as rich
        from rich.console import Console

        bar = rich.Progress(
            rich.TextColumn("{task.description}"),
            rich.BarColumn(),
            rich.MofNCompleteColumn(),
            rich.TimeElapsedColumn(),
            console=Console(file=self.stream, force_terminal=True),
            refresh_per_second=REFRESH_PER_S,
            redirect_stdout=False,
            redirect_stderr=True,
        )
        with bar:
            task_id = bar.add_task(f"{self.prefix}{description}", total=total)

            def advance(steps: int = 1) -> None:
                bar.advance(task_id, steps)

            yield advance
            if total is None:
                bar.update(task_id, total=bar.tasks[0].completed)


def is_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is an interactive terminal that can draw a bar."""
    try:
        return stream.isatty() and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def progress_for(stream: TextIO | None = None, prefix: str = "") -> Progress:
    """Bars on a terminal, plain lines otherwise, on ``stream`` (default: stderr)."""
    target = stream if stream is not None else sys.stderr
    return BarProgress(target, prefix) if is_terminal(target) else LineProgress(target, prefix)
