"""The terminal side of a run: exit codes, and a stderr that cannot fail it.

Records go to stdout (or ``-o``); logs, progress and the stats summary go to
stderr, and a closed or full stderr changes neither the records nor the exit
code. ``scraper.cli`` documents the exit codes and is the one place that turns
errors into them.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING, NoReturn

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


def exit_now(code: int) -> NoReturn:
    """End the process with ``code``, skipping the interpreter's teardown.

    By the time a command returns, all it opened is closed: the output, the state,
    the lock files, the Redis connection and its event loop, ``--workers``' server
    and its temporary folder. What is left for the interpreter's exit is run here:
    the at-exit functions (logging's flush and close, finalizers) and the flush of
    stdout and stderr; then ``os._exit``. The teardown skipped (freeing every module
    and object) takes 0.2 s on an idle machine and over 1 s with four processes on
    two cores, and the crawl's processes must all be gone within 1 s of its end.
    A thread other than the main one still running (none of ours is) gets the
    normal exit, which waits for it. As at a normal exit, a stdout that cannot take
    what is left in its buffer turns a success into 120; stderr changes nothing.
    """
    main = threading.main_thread()
    if any(t is not main and t.is_alive() and not t.daemon for t in threading.enumerate()):
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            if stream is sys.stdout and code == EXIT_OK:
                code = 120
    os._exit(code)


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
