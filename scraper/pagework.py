"""A fetched page into records and links, without ever holding the event loop.

``PageWork.extract(page, kind)`` runs the page kind's patterns (and callback)
on ``page`` and returns the ``Extraction``, or a ``Failure`` saying why the page
is lost. Both crawl loops use it: the one of a single process
(``scraper.crawler``) and the one of a crawl shared through Redis
(``scraper.sharedcrawl``).

Nothing a page or a spider does may hold the event loop: a page whose patterns
need longer than ``INLINE_EXTRACT_BUDGET``, and every page with a Python
callback, is extracted in a daemon thread. A callback gets ``callback_timeout``
seconds; one that runs past it fails its page (``callback timeout``) and is left
behind in its thread, which the process does not wait for when it exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from scraper.callbacks import Callback
from scraper.extract import Extraction, ExtractTimeout, extract
from scraper.jsonpage import PageFailed
from scraper.models import Page
from scraper.spec import SpiderSpec
from scraper.threads import DaemonThreads

log = logging.getLogger("scraper")

INLINE_EXTRACT_BUDGET = 0.05
"""Seconds a page's patterns may run on the event loop; slower pages go to a thread."""
EXTRACT_THREADS = 2
"""Pages (without a callback) whose patterns run in threads at once."""

T = TypeVar("T")


@dataclass(frozen=True)
class Failure:
    """Why a page failed: ``reason`` is counted in the stats, ``detail`` is logged."""

    reason: str
    detail: str


def internal_error(exc: Exception) -> Failure:
    """The failure of a page that met a bug or an input nobody foresaw."""
    hint = "" if log.isEnabledFor(logging.INFO) else " (-v shows where)"
    return Failure("internal error", f"internal error: {type(exc).__name__}: {exc}{hint}")


class PageWork:
    """Extracts the pages of one crawl of ``spider``; made inside the crawl's event loop."""

    def __init__(self, spider: SpiderSpec, callbacks: Mapping[str, Callback]) -> None:
        self.spider = spider
        self.settings = spider.settings
        self.callbacks = callbacks
        self._threads = DaemonThreads("scraper-extract")
        self._extract_slots = asyncio.Semaphore(EXTRACT_THREADS)

    async def extract(self, page: Page, kind: str) -> Extraction | Failure:
        """Extract ``page`` where it cannot hold the event loop up for long."""
        callback = self.callbacks.get(kind)
        if callback is not None:
            return await self._run_callback(page, kind, callback)
        result = self._extract(page, kind, INLINE_EXTRACT_BUDGET)
        if result is not None:
            return result
        # A page whose patterns need longer goes to a thread, so that it holds up
        # neither the event loop nor the fetches in flight while it runs.
        async with self._extract_slots:
            outcome = await self._in_thread(lambda: self._extract(page, kind))
        assert outcome is not None
        return outcome

    async def _run_callback(
        self, page: Page, kind: str, callback: Callback
    ) -> Extraction | Failure:
        """Extract ``page`` with its callback in a thread, under ``callback_timeout``.

        The timeout runs from the moment the callback is called (the patterns before
        it have their own). A callback past it is abandoned: its thread runs on, and
        what it returns, if it ever does, is dropped.
        """
        loop = asyncio.get_running_loop()
        limit = self.settings.callback_timeout
        name = self.spider.pages[kind].callback
        expired = Failure(
            "callback timeout",
            f"callback {name} ran past {limit:g}s (callback_timeout); the page is given up "
            "and the callback left running in its thread",
        )
        future: asyncio.Future[Extraction | Failure | None] = loop.create_future()

        def expire() -> None:
            if not future.done():
                future.set_result(expired)

        def start_clock() -> None:
            timer = loop.call_later(limit, expire)
            future.add_done_callback(lambda _: timer.cancel())

        def timed(user_page: Page) -> Iterable[Any] | None:
            loop.call_soon_threadsafe(start_clock)
            return callback(user_page)

        self._in_thread(lambda: self._extract(page, kind, callback=timed), future)
        outcome = await future
        assert outcome is not None
        return outcome

    def _in_thread(
        self, call: Callable[[], T], future: asyncio.Future[T] | None = None
    ) -> asyncio.Future[T]:
        """``call()`` in a daemon thread; its result (or exception) in ``future``.

        The thread delivers to the event loop only, and nothing once ``future`` is
        done (cancelled, timed out) or the loop closed: a thread that ends late
        never reports its page.
        """
        loop = asyncio.get_running_loop()
        done = future if future is not None else loop.create_future()

        def deliver(result: T | None, error: BaseException | None) -> None:
            if done.done():
                return
            if error is None:
                done.set_result(result)  # type: ignore[arg-type]
            elif isinstance(error, Exception):
                done.set_exception(error)
            else:  # SystemExit and the like raised in a thread: a failure like any other
                done.set_exception(RuntimeError(f"{type(error).__name__}: {error}"))

        def work() -> None:
            try:
                outcome: tuple[T | None, BaseException | None] = (call(), None)
            except BaseException as exc:
                outcome = (None, exc)
            with contextlib.suppress(RuntimeError):  # a closed loop: the crawl ended without it
                loop.call_soon_threadsafe(deliver, *outcome)

        self._threads.submit(work)
        return done

    def _extract(
        self,
        page: Page,
        kind: str,
        budget: float | None = None,
        callback: Callback | None = None,
    ) -> Extraction | Failure | None:
        """Extract ``page``; a failure of its patterns or callback is a ``Failure``.

        With ``budget`` (inline, on the event loop), a page that needs longer gives
        ``None``. Without, this runs in a thread: it neither logs nor counts, so
        that a thread that ends after the crawl reports nothing.
        """
        page_spec = self.spider.pages[kind]
        inline = budget is not None and budget < self.settings.extract_timeout
        try:
            if inline:
                return extract(page, page_spec, self.spider, callback, timeout=budget)
            return extract(page, page_spec, self.spider, callback, concurrent=budget is None)
        except ExtractTimeout as timeout:
            if inline:
                return None
            return Failure(
                "extract timeout",
                f"the patterns took over {self.settings.extract_timeout}s (extract_timeout); "
                f"stopped in {timeout.args[0]!r}",
            )
        except PageFailed as failed:  # the page is not what its kind reads (not JSON)
            return Failure(failed.reason, failed.detail)
        except BaseException as exc:
            if callback is None:
                raise  # not the user's code: the page fails as an internal error
            # A user's callback may fail in any way (sys.exit() too); one page is lost.
            return Failure(
                "callback error",
                f"callback {page_spec.callback} raised {type(exc).__name__}: {exc}",
            )
