"""The crawl loop: a frontier of requests, a pool of workers, and per-host limits.

``Crawler.run()`` queues the spider's start URLs, then ``concurrency`` workers
each take the next request, check it against the host's robots.txt, wait for a
slot of its host (``per_host`` at once, ``delay`` or ``Crawl-delay`` apart,
slower after a 429/503), fetch it, extract it, write its records and queue the links it
follows that are new, allowed and within ``max_depth``/``max_pages``. A page
that fails is counted and logged; the crawl goes on. SIGINT/SIGTERM stop
taking new requests and give the ones in flight a few seconds to finish.
"""

from __future__ import annotations

import asyncio
import logging
import random
import signal
import time
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

import httpx
from w3lib.url import canonicalize_url

from scraper.callbacks import Callback
from scraper.errors import FetchError, OutputError
from scraper.export import RecordSink
from scraper.extract import ExtractTimeout, extract
from scraper.fetch import Fetcher, RobotsRules, make_client
from scraper.models import Request
from scraper.spec import SpiderSpec
from scraper.stats import CrawlStats

log = logging.getLogger("scraper")

STOP_GRACE = 3.0
"""Seconds that requests in flight get to finish after Ctrl-C or SIGTERM."""
THROTTLED_DELAY = 1.0
THROTTLE_PERIOD = 60.0
"""After a 429/503, requests to that host start at least 1 s apart for a minute."""


class Crawler:
    """Runs one spider to the end, writing its records to ``writer`` as pages come in."""

    def __init__(
        self,
        spider: SpiderSpec,
        writer: RecordSink,
        *,
        callbacks: Mapping[str, Callback] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        on_progress: Callable[[CrawlStats], None] | None = None,
    ) -> None:
        self.spider = spider
        self.settings = spider.settings
        self.writer = writer
        self.callbacks = callbacks or {}
        self.transport = transport
        self.on_progress = on_progress
        self.stats = CrawlStats()
        self.stopped_by: signal.Signals | None = None
        self._seen: set[str] = set()
        self._queued = 0
        self._hosts: dict[str, _HostSlots] = {}
        self._allowed = self.settings.allowed_domains or tuple(
            dict.fromkeys(urlsplit(s.url).hostname or "" for s in spider.start)
        )
        self._stop = asyncio.Event()
        self._fatal: Exception | None = None
        self._robots: RobotsRules | None = None

    async def run(self) -> CrawlStats:
        """Crawl until no request is left (or a stop signal); return the stats."""
        self._stop = asyncio.Event()
        self.stats = CrawlStats()
        queue: asyncio.Queue[Request] = asyncio.Queue()
        for start in self.spider.start:
            self._schedule(queue, Request(start.url, start.page or self.spider.first_page))
        client = make_client(self.settings, self.transport)
        fetcher = Fetcher(client, self.settings, self.allows, self._throttle)
        self._robots = RobotsRules(fetcher) if self.settings.robots else None
        workers = [
            asyncio.create_task(self._work(queue, fetcher))
            for _ in range(self.settings.concurrency)
        ]
        watchers = [asyncio.create_task(self._report_progress())] if self.on_progress else []
        self._install_signal_handlers()
        try:
            joined = asyncio.create_task(queue.join())
            stopping = asyncio.create_task(self._stop.wait())
            await asyncio.wait({joined, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not joined.done() and self._fatal is None:
                log.warning("stopping: finishing the pages in flight (up to %.0fs)", STOP_GRACE)
                await asyncio.wait({joined}, timeout=STOP_GRACE)
            for task in (joined, stopping, *workers, *watchers):
                task.cancel()
            await asyncio.gather(joined, stopping, *workers, *watchers, return_exceptions=True)
        finally:
            self._remove_signal_handlers()
            await client.aclose()
            self.stats.finished = time.monotonic()
        if self._fatal is not None:
            raise self._fatal
        return self.stats

    def stop(self, signum: signal.Signals = signal.SIGINT) -> None:
        """Stop taking new requests; what is in flight gets ``STOP_GRACE`` seconds."""
        self.stopped_by = self.stopped_by or signum
        self._stop.set()

    def allows(self, url: str) -> bool:
        """Whether ``url`` is http(s) on an allowed domain (or a subdomain of one)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            return False
        host = (parts.hostname or "").lower()
        return any(host == d or host.endswith("." + d) for d in self._allowed)

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

    def _schedule(self, queue: asyncio.Queue[Request], request: Request) -> None:
        max_pages = self.settings.max_pages
        if max_pages is not None and self._queued >= max_pages:
            self.stats.skipped["max_pages"] += 1
            return
        key = canonicalize_url(request.url)
        if key in self._seen:
            return
        self._seen.add(key)
        self._queued += 1
        queue.put_nowait(request)

    def _follow(self, queue: asyncio.Queue[Request], request: Request) -> None:
        if not self.allows(request.url):
            self.stats.skipped["offsite"] += 1
            log.debug("not following %s: outside allowed_domains", request.url)
            return
        max_depth = self.settings.max_depth
        if max_depth is not None and request.depth > max_depth:
            self.stats.skipped["max_depth"] += 1
            return
        only, skip = self.settings.only, self.settings.skip
        if only and not any(pattern.search(request.url) for pattern in only):
            self.stats.skipped["not in only"] += 1
            return
        if any(pattern.search(request.url) for pattern in skip):
            self.stats.skipped["skip"] += 1
            return
        self._schedule(queue, request)

    async def _work(self, queue: asyncio.Queue[Request], fetcher: Fetcher) -> None:
        while True:
            request = await queue.get()
            try:
                if not self._stop.is_set():
                    await self._process(queue, fetcher, request)
            except (OSError, OutputError) as exc:  # the output is gone: stop, report it
                self._fatal = self._fatal or exc
                self._stop.set()
            finally:
                queue.task_done()

    async def _process(
        self, queue: asyncio.Queue[Request], fetcher: Fetcher, request: Request
    ) -> None:
        host = self._host(request.host)
        if self._robots is not None:
            if not await self._robots.allows(request.url):
                self.stats.skipped["robots.txt"] += 1
                log.info("not fetching %s: disallowed by robots.txt", request.url)
                return
            host.delay = max(self.settings.delay, await self._robots.crawl_delay(request.url))
        async with host:
            try:
                page = await fetcher.fetch(request)
            except FetchError as failure:
                self.stats.failed[failure.reason] += 1
                log.warning("failed %s: %s", request.url, failure.detail)
                return
        kind = request.page or self.spider.first_page
        page_spec = self.spider.pages[kind]
        try:
            result = extract(page, page_spec, self.spider, self.callbacks.get(kind))
        except ExtractTimeout as timeout:
            self.stats.failed["extract timeout"] += 1
            log.warning(
                "failed %s: the patterns took over %ss (extract_timeout); slowest was %r",
                page.url,
                self.settings.extract_timeout,
                timeout.args[0],
            )
            return
        except Exception as exc:  # a user's callback may fail in any way; one page is lost
            self.stats.failed["callback error"] += 1
            log.warning(
                "failed %s: callback %s raised %s: %s",
                page.url,
                page_spec.callback,
                type(exc).__name__,
                exc,
            )
            return
        self.stats.pages += 1
        self.writer.write(result.records)
        self.stats.records += len(result.records)
        self.stats.dropped.update(result.dropped)
        if page_spec.pattern is not None and not result.records and not result.dropped:
            self.stats.page_without_match(kind, page.url)
            log.info("no match on %s (page kind %r)", page.url, kind)
        for follow in result.requests:
            self._follow(queue, follow)

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
        self._next_start = max(self._next_start, now + seconds)
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
    stats = asyncio.run(crawler.run())
    return stats, crawler.stopped_by
