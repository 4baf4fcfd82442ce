"""Stopping a run: the signals that stop it, the grace its pages get, their handlers.

Ctrl-C, SIGTERM and SIGHUP stop taking new work; what is in flight gets
``STOP_GRACE`` seconds. One place installs the handlers for the single-process
crawl, the shared crawl and the exporter alike.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scraper.stats import CrawlStats

STOP_GRACE = 3.0
"""Seconds that requests in flight get to finish after Ctrl-C, SIGTERM or SIGHUP."""
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def add_stop_handlers(stop: Callable[[signal.Signals], None]) -> list[signal.Signals]:
    """Have each stop signal call ``stop(signum)`` on the running loop; return those set.

    A signal that is ignored (SIGHUP under nohup) stays ignored; off the main
    thread none can be set, and the caller stops the run itself.
    """
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
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
