"""The terminal side of a run: exit codes, and a stderr that cannot fail it.

Records go to stdout (or ``-o``); logs, progress and the stats summary go to
stderr, and a closed or full stderr changes neither the records nor the exit
code. ``scraper.cli`` documents the exit codes and is the one place that turns
errors into them.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scraper.stats import CrawlStats

EXIT_OK, EXIT_FAILURES, EXIT_USAGE = 0, 1, 2
EXIT_BY_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}


def keep_standard_streams_safe() -> None:
    """Make a closed or failing stderr (or a closed stdin/stdout) harmless to the run.

    A standard descriptor (0, 1, 2) that was closed when we started would be
    handed to the next file opened, the output or the state, where a stray
    message would then land: /dev/null takes its place. Python starts with
    ``sys.stdout``/``sys.stderr`` None then; ``sys.stdout`` stays None (``scraper
    run`` refuses to write records there), and ``sys.stderr`` becomes /dev/null, as
    ``print(file=None)`` would write to stdout. Logging never raises: a log line
    that cannot be written (stderr on a full disk) must not cost a record.
    """
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            opened = os.open(os.devnull, os.O_RDWR)
            if opened != fd:
                os.dup2(opened, fd)
                os.close(opened)
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - for the run
    logging.raiseExceptions = False


def tell(text: str) -> None:
    """Print a line on stderr; a stderr that cannot take it does not change the outcome."""
    try:
        print(text, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        drop_stderr()


def drop_stderr() -> None:
    """Point ``sys.stderr`` at /dev/null, after a write to it failed."""
    # The failed text stays in stderr's buffer and would fail again at exit, turning
    # the exit status into 120: point stderr at /dev/null instead.
    sys.stderr = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - for the run


class Progress:
    """A one-line live display on stderr, redrawn in place."""

    def show(self, stats: CrawlStats) -> None:
        self._draw("\r\x1b[K" + stats.progress_line())

    def clear(self) -> None:
        self._draw("\r\x1b[K")

    @staticmethod
    def _draw(text: str) -> None:
        try:
            sys.stderr.write(text)
            sys.stderr.flush()
        except (OSError, ValueError):
            drop_stderr()  # a terminal gone away costs the display, not the crawl
