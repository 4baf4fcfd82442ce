"""The crawl loop: workers taking requests from the frontier, within per-host limits.

``Crawler.run()`` starts ``concurrency`` workers. Each takes the next request
from the ``Frontier``, checks it against the host's robots.txt, waits for a
slot of its host (``per_host`` at once, ``delay`` or ``Crawl-delay`` apart,
slower after a 429/503), fetches it, extracts it, writes its records and gives
the links it found back to the frontier. A page that fails is counted and
logged; the crawl goes on. The crawl ends when the frontier is empty and no
page is in flight. SIGINT/SIGTERM stop taking new requests and give the ones
in flight ``STOP_GRACE`` seconds to finish.
"""

from __future__ import annotations

import asyncio
import logging
import random
import signal
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from scraper.callbacks import Callback
from scraper.errors import FetchError, OutputError
from scraper.export import RecordSink
from scraper.extract import Extraction, ExtractTimeout, extract
from scraper.fetch import Fetcher, RobotsRules
from scraper.frontier import Frontier
from scraper.models import Page, Request
from scraper.spec import SpiderSpec
from scraper.stats import CrawlStats
from scraper.wire import open_wire

if TYPE_CHECKING:
    import httpx

    from scraper.state import CrawlState

log = logging.getLogger("scraper")

STOP_GRACE = 3.0
"""Seconds that requests in flight get to finish after Ctrl-C or SIGTERM."""
INLINE_EXTRACT_BUDGET = 0.05
"""Seconds a page's patterns may run on the event loop; slower pages go to a thread."""
EXTRACT_THREADS = 2
THROTTLED_DELAY = 1.0
THROTTLE_PERIOD = 60.0
"""After a 429/503, requests to that host start at least 1 s apart for a minute."""


class Crawler:
    """Runs one spider to the end, writing its records to ``writer`` as pages come in.

    With ``state``, what is admitted and done is kept in SQLite (see
    ``scraper.state``), and the crawl continues from what the state holds.
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
    ) -> None:
        self.spider = spider
        self.settings = spider.settings
        self.writer = writer
        self.callbacks = callbacks or {}
        self.transport = transport
        self.on_progress = on_progress
        self.state = state
        self.shard = shard
        self.stats = CrawlStats()
        self.stopped_by: signal.Signals | None = None
        self._hosts: dict[str, _HostSlots] = {}
        self._stop = asyncio.Event()
        self._changed = asyncio.Event()
        self._in_flight = 0
        self._fatal: Exception | None = None
        self._robots: RobotsRules | None = None

    async def run(self) -> CrawlStats:
        """Crawl until no request is left (or a stop signal); return the stats."""
        self.stats = CrawlStats()
        self.frontier = Frontier(self.spider, self.stats, self.state, self.shard)
        self._stop = asyncio.Event()
        self._changed = asyncio.Event()
        wire = open_wire(self.settings, self.transport)
        fetcher = Fetcher(wire, self.settings, self.frontier.allows, self._throttle)
        self._robots = RobotsRules(fetcher) if self.settings.robots else None
        self._extractors = ThreadPoolExecutor(EXTRACT_THREADS, thread_name_prefix="extract")
        workers = asyncio.gather(*(self._work(fetcher) for _ in range(self.settings.concurrency)))
        stopping = asyncio.create_task(self._stop.wait())
        progress = asyncio.create_task(self._report_progress()) if self.on_progress else None
        self._install_signal_handlers()
        try:
            waiting: set[asyncio.Future[Any]] = {workers, stopping}
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if not workers.done():
                if self._fatal is None:
                    log.warning("stopping: finishing the pages in flight (up to %.0fs)", STOP_GRACE)
                self._notify()
                await asyncio.wait({workers}, timeout=STOP_GRACE)
            tasks: list[asyncio.Future[Any]] = [workers, stopping]
            tasks += [progress] if progress else []
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            self._remove_signal_handlers()
            self._extractors.shutdown(wait=False, cancel_futures=True)
            await wire.aclose()
            self.stats.finished = time.monotonic()
        if self._fatal is not None:
            raise self._fatal
        return self.stats

    def stop(self, signum: signal.Signals = signal.SIGINT) -> None:
        """Stop taking new requests; what is in flight gets ``STOP_GRACE`` seconds."""
        self.stopped_by = self.stopped_by or signum
        self._stop.set()

    async def _work(self, fetcher: Fetcher) -> None:
        while not self._stop.is_set():
            request = self.frontier.next()
            if request is None:
                if self._in_flight == 0:
                    self._notify()  # the crawl is over: wake the others so they end too
                    return
                await self._changed.wait()
                continue
            self._in_flight += 1
            try:
                await self._process(fetcher, request)
            except (OSError, OutputError) as exc:  # the output is gone: stop, report it
                self._fatal = self._fatal or exc
                self._stop.set()
            finally:
                self._in_flight -= 1
                self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _process(self, fetcher: Fetcher, request: Request) -> None:
        host = self._host(request.host)
        if self._robots is not None:
            allowed, crawl_delay = await self._robots.check(request.url)
            if not allowed:
                self.stats.skipped["robots.txt"] += 1
                log.info("not fetching %s: disallowed by robots.txt", request.url)
                self._finish(request)
                return
            host.delay = max(host.delay, crawl_delay)
        async with host:
            try:
                page = await fetcher.fetch(request)
            except FetchError as failure:
                self.stats.failed[failure.reason] += 1
                log.warning("failed %s: %s", request.url, failure.detail)
                self._finish(request, failed=True)
                return
        kind = request.page or self.spider.first_page
        result = self._extract(page, kind, INLINE_EXTRACT_BUDGET)
        if result is None:
            # A page whose patterns need longer goes to a thread, so that it holds up
            # neither the event loop nor the fetches in flight while it runs.
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(self._extractors, self._extract, page, kind)
        if result is None or isinstance(result, str):
            self.stats.failed[result or "extract timeout"] += 1
            self._finish(request, failed=True)
            return
        self.writer.write(result.records)
        self.stats.pages += 1
        self.stats.records += len(result.records)
        self.stats.dropped.update(result.dropped)
        if self.spider.pages[kind].pattern is not None and not (result.records or result.dropped):
            self.stats.page_without_match(kind, page.url)
            log.info("no match on %s (page kind %r)", page.url, kind)
        for link in result.requests:
            self.frontier.follow(link)
        self._finish(request)

    def _extract(
        self, page: Page, kind: str, budget: float | None = None
    ) -> Extraction | str | None:
        """Extract ``page``; a failure is its reason, logged. With ``budget`` (inline, on
        the event loop), a page that needs longer than that gives ``None``."""
        page_spec = self.spider.pages[kind]
        callback = self.callbacks.get(kind)
        inline = budget is not None and budget < self.settings.extract_timeout
        try:
            if inline:
                return extract(page, page_spec, self.spider, callback, timeout=budget)
            return extract(page, page_spec, self.spider, callback, concurrent=budget is None)
        except ExtractTimeout as timeout:
            if inline:
                return None
            log.warning(
                "failed %s: the patterns took over %ss (extract_timeout); stopped in %r",
                page.url,
                self.settings.extract_timeout,
                timeout.args[0],
            )
            return "extract timeout"
        except Exception as exc:  # a user's callback may fail in any way; one page is lost
            log.warning(
                "failed %s: callback %s raised %s: %s",
                page.url,
                page_spec.callback,
                type(exc).__name__,
                exc,
            )
            return "callback error"

    def _finish(self, request: Request, *, failed: bool = False) -> None:
        if self.state is not None:
            self.frontier.finish(request, failed=failed)
            self.state.commit(self.writer.size)

    def _throttle(self, host: str, seconds: float) -> None:
        log.warning("%s asks us to slow down: pausing it for %.1fs", host, seconds)
        self._host(host).pause(seconds)

    def _host(self, host: str) -> _HostSlots:
        slots = self._hosts.get(host)
        if slots is None:
            settings = self.settings
            slots = _HostSlots(settings.per_host, settings.delay, settings.jitter)
            self._hosts[host] = slots
        return slots

    async def _report_progress(self) -> None:
        assert self.on_progress is not None
        while True:
            await asyncio.sleep(0.25)
            self.on_progress(self.stats)

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(signum, self.stop, signum)
            except (ValueError, RuntimeError, NotImplementedError):
                return  # not the main thread: the caller stops us with stop()

    def _remove_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.remove_signal_handler(signum)
            except (ValueError, RuntimeError, NotImplementedError):
                return


class _HostSlots:
    """At most ``limit`` requests in flight to one host, started ``delay`` (+ jitter) apart.

    ``pause()`` (after a 429 or 503) holds back every new request to the host for
    a while, then keeps them at least ``THROTTLED_DELAY`` apart for a minute.
    """

    def __init__(self, limit: int, delay: float, jitter: float) -> None:
        self.delay = delay
        self.jitter = jitter
        self._semaphore = asyncio.Semaphore(limit)
        self._next_start = 0.0
        self._throttled_until = 0.0

    def pause(self, seconds: float) -> None:
        now = time.monotonic()
        # The retry that asked for the pause goes first when it ends; the next one waits.
        self._next_start = max(self._next_start, now + seconds) + THROTTLED_DELAY
        self._throttled_until = now + seconds + THROTTLE_PERIOD

    async def __aenter__(self) -> None:
        await self._semaphore.acquire()
        now = time.monotonic()
        delay = self.delay
        if now < self._throttled_until:
            delay = max(delay, THROTTLED_DELAY)
        if self.jitter:
            delay += random.uniform(0, self.jitter)
        start = max(now, self._next_start)
        self._next_start = start + delay
        if start > now:
            await asyncio.sleep(start - now)

    async def __aexit__(self, *exc: object) -> None:
        self._semaphore.release()


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

    asyncio reads every response into a new 256 KiB buffer. glibc maps blocks over
    128 KiB straight from the kernel and unmaps them when freed, until it sees a
    large block freed, which raises that threshold. Without one, each page cost an
    mmap, ~25 page faults and a munmap: 3.5x the page faults and +0.1 s of system
    time per 2,000 pages of 80 KB. Freeing one 4 MiB block raises the threshold; with
    other allocators this is only a short-lived allocation.
    """
    block = bytearray(4 << 20)
    del block
