"""The crawl loop: workers taking requests from the frontier, within per-host limits.

``Crawler.run()`` starts ``concurrency`` workers. Each takes the next request
from the ``Frontier``, checks it against the host's robots.txt, waits for a
slot of its host (``per_host`` at once, ``delay`` or ``Crawl-delay`` apart,
slower after a 429/503), fetches it, extracts it, writes its records (but
those ``unique:`` finds written before, see ``UniqueRecords``) and gives the
links it found back to the frontier. A page that fails is counted and
logged; the crawl goes on, whatever the page does: an exception nobody
foresaw fails that page alone (``internal error``), never a worker. Only an
output or a crawl state that cannot be written stops the crawl, with the error
raised from ``run()``. The crawl ends when the frontier is empty and no page is
in flight. SIGINT, SIGTERM and SIGHUP stop taking new requests and give the
ones in flight ``STOP_GRACE`` seconds to finish.

With the state of ``--incremental`` re-crawls (``scraper.incremental``), a page
that yielded records in an earlier run is not fetched, one whose last answer
was kept is asked whether it changed (a 304 leads to the links of that answer),
and only the records not written before are written.

Nothing a page or a spider does may hold the event loop: pages are extracted
by ``scraper.pagework`` (slow patterns and callbacks in daemon threads).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from scraper.callbacks import Callback
from scraper.errors import FetchError, OutputError
from scraper.fetch import Fetcher
from scraper.frontier import Frontier, UniqueRecords
from scraper.hosts import HostSlots
from scraper.models import Record, Request
from scraper.output import RecordSink
from scraper.pagework import Failure, PageWork, internal_error
from scraper.robots import RobotsRules
from scraper.spec import SpiderSpec
from scraper.stats import CrawlStats
from scraper.stopping import (
    STOP_GRACE,
    add_stop_handlers,
    remove_stop_handlers,
    report_progress,
)
from scraper.wire import open_wire

if TYPE_CHECKING:
    import httpx

    from scraper.incremental import RecrawlState
    from scraper.state import CrawlState

log = logging.getLogger("scraper")


class _OutputGone(Exception):
    """The output or the crawl state cannot be written: the crawl stops with ``error``."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class _Interrupted(Exception):
    """A stop signal came while the frontier was loading."""


class Crawler:
    """Runs one spider to the end, writing its records to ``writer`` as pages come in.

    With ``state``, what is admitted and done is kept in SQLite (see
    ``scraper.state``), and the crawl continues from what the state holds.
    ``pause``, when given, is awaited before each new request is taken: the
    Python API's reader, behind on the records, holds the crawl so.
    """

    def __init__(
        self,
        spider: SpiderSpec,
        writer: RecordSink,
        *,
        callbacks: Mapping[str, Callback] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        on_progress: Callable[[CrawlStats], None] | None = None,
        state: CrawlState | None = None,
        shard: tuple[int, int] = (0, 1),
        pause: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.spider = spider
        self.settings = spider.settings
        self.writer = writer
        self.callbacks = callbacks or {}
        self.transport = transport
        self.on_progress = on_progress
        self.state = state
        self._recrawl: RecrawlState | None = None
        """The state of ``--incremental`` re-crawls, when the crawl keeps one."""
        if state is not None:
            from scraper.incremental import RecrawlState

            self._recrawl = state if isinstance(state, RecrawlState) else None
        self.shard = shard
        self.pause = pause
        self.stats = CrawlStats()
        self.stopped_by: signal.Signals | None = None
        self._hosts: dict[str, HostSlots] = {}
        self._stop = asyncio.Event()
        self._changed = asyncio.Event()
        self._in_flight = 0
        self._fatal: Exception | None = None
        self._robots: RobotsRules | None = None
        self._signals: list[signal.Signals] = []

    async def run(self) -> CrawlStats:
        """Crawl until no request is left (or a stop signal); return the stats."""
        self.stats = CrawlStats(incremental=self._recrawl is not None)
        self._stop = asyncio.Event()
        self._changed = asyncio.Event()
        self._signals = add_stop_handlers(self.stop)
        completed = False
        tasks: list[asyncio.Future[Any]] = []
        wire = None
        try:
            if not self._load_frontier():
                return self.stats
            wire = open_wire(self.settings, self.transport)
            fetcher = Fetcher(wire, self.settings, self.frontier.allows, self._throttle)
            self._robots = RobotsRules(fetcher) if self.settings.robots else None
            self._pages = PageWork(self.spider, self.callbacks)
            workers = [
                asyncio.create_task(self._work(fetcher)) for _ in range(self.settings.concurrency)
            ]
            tasks += workers
            crawl: asyncio.Future[Any] = asyncio.gather(*workers)
            stopping: asyncio.Future[Any] = asyncio.create_task(self._stop.wait())
            tasks += [crawl, stopping]
            if self.on_progress:
                tasks.append(
                    asyncio.create_task(report_progress(lambda: self.stats, self.on_progress))
                )
            await asyncio.wait({crawl, stopping}, return_when=asyncio.FIRST_COMPLETED)
            completed = crawl.done() and not self._stop.is_set()
            if not crawl.done():
                if self._fatal is None:
                    log.warning("stopping: finishing the pages in flight (up to %.0fs)", STOP_GRACE)
                self._notify()
                await asyncio.wait({crawl}, timeout=STOP_GRACE)
        finally:
            # Every task is cancelled and awaited here, so none is left to report a page
            # (or an exception nobody retrieved) after the summary.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            remove_stop_handlers(self._signals)
            if wire is not None:
                await wire.aclose()
            self.stats.finished = time.monotonic()
        if self._fatal is not None:
            raise self._fatal
        if completed and self._recrawl is not None:
            self._recrawl.end_run()
        return self.stats

    def _load_frontier(self) -> bool:
        """Make the frontier; ``False`` when a stop signal came meanwhile.

        Loading a large state takes seconds of work that never yields to the event
        loop, so a stop signal then interrupts it where it is (nothing is written yet).
        """
        loading = True

        def interrupt(signum: int, frame: object) -> None:
            self.stop(signal.Signals(signum))
            if loading:
                raise _Interrupted

        previous: dict[signal.Signals, Any] = {}
        try:
            try:
                for signum in self._signals:
                    previous[signum] = signal.signal(signum, interrupt)
                self.frontier = Frontier(self.spider, self.stats, self.state, self.shard)
                self.unique = UniqueRecords(self.spider, self.stats, self.state)
            finally:
                loading = False
                for signum, handler in previous.items():
                    signal.signal(signum, handler)
        except _Interrupted:
            return False
        return True

    def stop(self, signum: signal.Signals = signal.SIGINT) -> None:
        """Stop taking new requests; what is in flight gets ``STOP_GRACE`` seconds."""
        self.stopped_by = self.stopped_by or signum
        self._stop.set()

    async def _work(self, fetcher: Fetcher) -> None:
        while not self._stop.is_set():
            if self.pause is not None:
                await self.pause()
            request = self.frontier.next()
            if request is None:
                if self._in_flight == 0:
                    self._notify()  # the crawl is over: wake the others so they end too
                    return
                await self._changed.wait()
                continue
            self._in_flight += 1
            try:
                try:
                    await self._process(fetcher, request)
                except _OutputGone:
                    raise
                except Exception as exc:  # a bug, or an input nobody foresaw: this page only
                    self._fail(request, internal_error(exc))
                    log.info("the internal error on %s:", request.url, exc_info=exc)
            except _OutputGone as gone:  # the output is gone: stop, report it
                self._fatal = self._fatal or gone.error
                self._stop.set()
            finally:
                self._in_flight -= 1
                self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _process(self, fetcher: Fetcher, request: Request) -> None:
        recrawl, last = self._recrawl, None
        if recrawl is not None:
            last = recrawl.last_answer(request)
            if recrawl.skips(request, last):
                self.stats.done_before += 1
                self._finish(request)
                return
        host = self._host(request.host)
        if self._robots is not None:
            allowed, crawl_delay = await self._robots.check(request.url)
            if not allowed:
                self.stats.skipped["robots.txt"] += 1
                log.info("not fetching %s: disallowed by robots.txt", request.url)
                self._finish(request)
                return
            host.delay = max(host.delay, crawl_delay)
        conditional = last.conditional if last is not None else None
        async with host:
            try:
                page = await fetcher.fetch(request, headers=conditional)
            except FetchError as failure:
                self._fail(request, Failure(failure.reason, failure.detail))
                return
        if page.status == 304 and conditional and recrawl and last:
            # Unchanged since its last answer: its links lead on as they did then.
            for link in recrawl.links(request):
                self.frontier.follow(link)
            recrawl.not_modified(request, last, page)
            self.stats.not_modified += 1
            self._finish(request)
            return
        kind = request.page or self.spider.first_page
        result = await self._pages.extract(page, kind)
        if isinstance(result, Failure):
            self._fail(request, result)
            return
        # Links before records: a page that fails on the way leaves no records behind.
        for link in result.requests:
            self.frontier.follow(link)
        records = self.unique.keep(result.records, kind)
        if recrawl is not None:
            records, unchanged = recrawl.new_records(records, kind)
            self.stats.unchanged += unchanged
            recrawl.answered(request, last, page, result.requests, bool(result.records))
        left_out = self._write(records, page.url)
        self.stats.pages += 1
        self.stats.records += len(records) - left_out.total()
        self.stats.dropped.update(result.dropped)
        self.stats.dropped.update(left_out)
        self.stats.skipped.update(result.skipped)
        if self.spider.pages[kind].makes_records and not (result.records or result.dropped):
            self.stats.page_without_match(kind, page.url)
            log.info("no match on %s (page kind %r)", page.url, kind)
        self._finish(request)

    def _fail(self, request: Request, failure: Failure) -> None:
        self.stats.failed[failure.reason] += 1
        log.warning("failed %s: %s", request.url, failure.detail)
        self._finish(request, failed=True)

    def _write(self, records: list[Record], url: str) -> Counter[str]:
        try:
            return self.writer.write(records, url=url)
        except (OSError, OutputError) as exc:  # a full disk, a closed pipe: the run ends
            raise _OutputGone(exc) from None

    def _finish(self, request: Request, *, failed: bool = False) -> None:
        if self.state is None:
            return
        self.frontier.finish(request, failed=failed)
        try:
            self.state.commit(self.writer.size)
        except OutputError as exc:
            raise _OutputGone(exc) from None
        except Exception as exc:  # a state that cannot be kept is no state to resume from
            raise _OutputGone(
                OutputError(
                    f"cannot save the crawl state in {self.state.path}: "
                    f"{type(exc).__name__}: {exc}. The records of the pages saved before are "
                    "in the output; free some space and run again with --resume."
                )
            ) from None

    def _throttle(self, host: str, seconds: float) -> None:
        log.warning("%s asks us to slow down: pausing it for %.1fs", host, seconds)
        self._host(host).pause(seconds)

    def _host(self, host: str) -> HostSlots:
        slots = self._hosts.get(host)
        if slots is None:
            settings = self.settings
            slots = HostSlots(settings.per_host, settings.delay, settings.jitter)
            self._hosts[host] = slots
        return slots


def run_spider(
    spider: SpiderSpec,
    writer: RecordSink,
    **options: object,
) -> tuple[CrawlStats, signal.Signals | None]:
    """Run ``spider`` to the end in a new event loop; return its stats and stop signal."""
    crawler = Crawler(spider, writer, **options)  # type: ignore[arg-type]
    _keep_large_buffers()
    stats = asyncio.run(crawler.run())
    return stats, crawler.stopped_by


def _keep_large_buffers() -> None:
    """Have glibc keep freed page-sized buffers for reuse instead of unmapping each one.

    The aiohttp wire reads every response into a new 256 KiB buffer (and a page's text,
    decoded, can pass 128 KiB on any wire). glibc maps blocks over
    128 KiB straight from the kernel and unmaps them when freed, until it sees a
    large block freed, which raises that threshold. Without one, each page cost an
    mmap, ~25 page faults and a munmap: 3.5x the page faults and +0.1 s of system
    time per 2,000 pages of 80 KB. Freeing one 4 MiB block raises the threshold; with
    other allocators this is only a short-lived allocation.
    """
    block = bytearray(4 << 20)
    del block
