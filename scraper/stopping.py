"""Stopping a run: the signals that stop it, the grace its pages get, their handlers.

Ctrl-C, SIGTERM and SIGHUP stop taking new work; what is in flight gets
``STOP_GRACE`` seconds. One place installs the handlers for the single-process
crawl, the shared crawl and the exporter alike.

A crawl started from Python (``scraper.crawl``, ``run``, ``acrawl``) runs within
``no_stop_handlers()``: the signals belong to the program that called it, and a
``KeyboardInterrupt`` there closes the crawl instead.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scraper.stats import CrawlStats

STOP_GRACE = 3.0
"""Seconds that requests in flight get to finish after Ctrl-C, SIGTERM or SIGHUP."""
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

_HANDLERS_WANTED: ContextVar[bool] = ContextVar("scraper_stop_handlers", default=True)


@contextmanager
def no_stop_handlers() -> Iterator[None]:
    """Within this block (and the tasks it starts), ``add_stop_handlers`` sets none."""
    token = _HANDLERS_WANTED.set(False)
    try:
        yield
    finally:
        _HANDLERS_WANTED.reset(token)


def add_stop_handlers(stop: Callable[[signal.Signals], None]) -> list[signal.Signals]:
    """Have each stop signal call ``stop(signum)`` on the running loop; return those set.

    A signal that is ignored (SIGHUP under nohup) stays ignored; off the main
    thread or within ``no_stop_handlers()`` none is set, and the caller stops the
    run itself.
    """
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    if not _HANDLERS_WANTED.get():
        return installed
    for signum in STOP_SIGNALS:
        if signal.getsignal(signum) is signal.SIG_IGN:
            continue
        try:
            loop.add_signal_handler(signum, stop, signum)
        except (ValueError, RuntimeError, NotImplementedError):
            break
        installed.append(signum)
    return installed


def remove_stop_handlers(installed: list[signal.Signals]) -> None:
    """Undo ``add_stop_handlers``."""
    loop = asyncio.get_running_loop()
    for signum in installed:
        loop.remove_signal_handler(signum)
    installed.clear()


async def report_progress(
    stats: Callable[[], CrawlStats], show: Callable[[CrawlStats], None]
) -> None:
    """Show the crawl's counts four times a second, until cancelled."""
    while True:
        await asyncio.sleep(0.25)
        show(stats())
