"""The Redis commands on their event loop: ``run --redis``, ``export``, ``status``, ``reset``.

``scraper.commands`` checks the options and calls these; each connects to the
crawl (``RedisFrontier.connect``: ``RedisTrouble``, exit 2, when Redis cannot be
reached), does its work and closes the connection. ``run --redis`` crawls with a
``SharedCrawler`` and, given ``-o``, exports the whole crawl's records beside it
on the same loop (``scraper.redisexport``).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from scraper.errors import ScraperError
from scraper.output import row_counts
from scraper.redisdedup import BLOOM_ERROR
from scraper.redisexport import RecordExporter
from scraper.redisurl import shown
from scraper.stopping import add_stop_handlers, remove_stop_handlers

if TYPE_CHECKING:
    import httpx

    from scraper.callbacks import Callback
    from scraper.output import OutputOptions
    from scraper.redisfrontier import RedisFrontier
    from scraper.spec import SpiderSpec
    from scraper.stats import CrawlStats

EXPORT_GRACE = 3.0
"""Seconds the exporter of a stopped ``run --redis -o`` gets to write what was committed."""
_CRAWL_ID = re.compile(r"[\w.:-]{1,200}")
SCHEMES = ("redis", "rediss", "unix")


def redis_url(given: str | None, environment: Mapping[str, str]) -> str:
    """The URL of ``--redis URL``, or of ``REDIS_URL`` for a bare ``--redis``; checked."""
    url = given or environment.get("REDIS_URL", "")
    if not url:
        raise ScraperError(
            "--redis without a URL reads the REDIS_URL environment variable, which is not set: "
            "give the URL, e.g. --redis redis://localhost:6379/0."
        )
    scheme = url.partition("://")[0].lower()
    if "://" not in url or scheme not in SCHEMES:
        raise ScraperError(
            f"--redis takes a redis://, rediss:// or unix:// URL, not {shown(url)!r} "
            "(e.g. redis://:PASSWORD@HOST:6379/0)."
        )
    return url


def crawl_id(given: str | None, spider_name: str) -> str:
    """The crawl's name: ``--crawl ID``, else the spider's name; one Redis hash tag can hold it."""
    crawl = given if given is not None else spider_name
    if _CRAWL_ID.fullmatch(crawl):
        return crawl
    if given is not None:
        raise ScraperError(
            f"--crawl {crawl!r} cannot name a crawl: use letters, digits and - _ . : (200 at most)."
        )
    raise ScraperError(
        f"the spider name {crawl!r} cannot name a crawl in Redis: give one with --crawl ID "
        "(letters, digits and - _ . :)."
    )


async def connect(url: str, crawl: str, spider: SpiderSpec, **options: Any) -> RedisFrontier:
    from scraper.redisfrontier import RedisFrontier

    return await RedisFrontier.connect(url, crawl, spider, **options)


async def crawl_and_export(
    spider: SpiderSpec,
    url: str,
    crawl: str,
    *,
    output: str | None,
    callbacks: Mapping[str, Callback],
    transport: httpx.AsyncBaseTransport | None,
    on_progress: Callable[[CrawlStats], None] | None,
    lease_seconds: float = 30.0,
    options: OutputOptions | None = None,
    dedup: str | None = None,
) -> tuple[CrawlStats, signal.Signals | None]:
    """``run --redis``: join the crawl and work on it until it is finished (or a stop
    signal); with ``output``, write every record of the crawl there meanwhile (in the
    format ``options`` choose). ``dedup``: ``--dedup``, checked before anything is written."""
    from scraper.sharedcrawl import SharedCrawler

    frontier = await connect(url, crawl, spider, lease_seconds=lease_seconds, dedup=dedup)
    try:
        await frontier.choose_dedup()
        exporter = (
            RecordExporter(frontier, crawl, output, spider, options=options) if output else None
        )
        crawler = SharedCrawler(
            spider, frontier, callbacks=callbacks, transport=transport, on_progress=on_progress
        )
        crawling = asyncio.create_task(crawler.run())
        if exporter is None:
            stats = await crawling
            return stats, crawler.stopped_by
        stop = asyncio.Event()
        exporting = asyncio.create_task(exporter.run(stop=stop))
        try:
            await asyncio.wait({crawling, exporting}, return_when=asyncio.FIRST_COMPLETED)
            if exporting.done() and exporting.exception() is not None:
                crawler.stop()  # the output cannot be written: no point in going on
                await asyncio.wait({crawling})
                exporting.result()  # raises it
            stats = await crawling
            stop.set()
            if crawler.stopped_by is None:
                await exporting  # the crawl is finished: write all of it
            else:
                await asyncio.wait({exporting}, timeout=EXPORT_GRACE)
            stats.rows = row_counts(exporter.writer)
            return stats, crawler.stopped_by
        finally:
            for task in (crawling, exporting):
                task.cancel()
            await asyncio.gather(crawling, exporting, return_exceptions=True)
            exporter.close()
    finally:
        await frontier.close()


async def export_only(
    spider: SpiderSpec,
    url: str,
    crawl: str,
    output: str | None,
    *,
    until_now: bool,
    options: OutputOptions | None = None,
) -> tuple[RecordExporter, signal.Signals | None]:
    """``scraper export``: write the crawl's records; the exporter (closed: its counts) and
    the stop signal."""
    frontier = await connect(url, crawl, spider)
    try:
        exporter = RecordExporter(frontier, crawl, output, spider, options=options)
        exporting = asyncio.create_task(exporter.run(until_now=until_now))
        stopped_by: list[signal.Signals] = []

        def stop(signum: signal.Signals) -> None:
            stopped_by.append(signum)
            exporting.cancel()  # between batches: what is written, its offset covers

        installed = add_stop_handlers(stop)
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await exporting
        finally:
            remove_stop_handlers(installed)
            exporter.close()
        return exporter, (stopped_by[0] if stopped_by else None)
    finally:
        await frontier.close()


async def crawl_status(spider: SpiderSpec, url: str, crawl: str) -> dict[str, Any]:
    """``scraper status``: the crawl's counts (``RedisFrontier.status``)."""
    frontier = await connect(url, crawl, spider)
    try:
        return await frontier.status()
    finally:
        await frontier.close()


BLOOM_NOTE = (
    f" (--dedup bloom: a URL never seen is taken for seen with a chance under "
    f"1 in {round(1 / BLOOM_ERROR):,})"
)


def status_lines(url: str, crawl: str, status: Mapping[str, Any]) -> list[str]:
    """What ``scraper status`` prints: one fact a line, as the run summary does."""
    failed, dropped = (_by_reason(status.get(name)) for name in ("failed", "dropped"))
    per_url = status.get("dedup_bytes_per_url")
    return [
        f"crawl:           {crawl} at {shown(url)}",
        f"finished:        {'yes' if status.get('finished') else 'no'}",
        f"queued:          {status.get('queued', 0)}",
        f"in flight:       {status.get('in_flight', 0)}",
        f"done:            {status.get('done', 0)}",
        f"failed:          {failed}",
        f"dead:            {status.get('dead', 0)}",
        f"records:         {status.get('records', 0)}",
        f"dropped:         {dropped}",
        f"hosts waiting:   {status.get('hosts_waiting', 0)}",
        f"processes:       {status.get('processes', 0)} (seen in the last 10 s)",
        f"already seen:    {status.get('already_seen', 0)} (links and start URLs not queued)",
        "dedup memory:    "
        + (f"{per_url:.1f} bytes per URL" if isinstance(per_url, (int, float)) else "-")
        + (BLOOM_NOTE if status.get("dedup") == "bloom" else ""),
    ]


def _by_reason(counts: Mapping[str, int] | int | None) -> str:
    """``3 (http 404: 2, timeout: 1)``: a count and its reasons, most frequent first."""
    if not isinstance(counts, Mapping):
        return str(counts or 0)
    reasons = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    by = " (" + ", ".join(f"{reason}: {n}" for reason, n in reasons) + ")" if counts else ""
    return f"{sum(counts.values())}{by}"


async def count_keys(spider: SpiderSpec, url: str, crawl: str) -> int:
    """How many keys crawl ``crawl`` has (what ``reset`` would delete)."""
    frontier = await connect(url, crawl, spider)
    try:
        # A crawl ID holds no glob character (see crawl_id): the prefix matches as written.
        keys = frontier.client.scan_iter(match=frontier.key("*"), count=1000)
        return sum([1 async for _ in keys])
    finally:
        await frontier.close()


async def reset_crawl(spider: SpiderSpec, url: str, crawl: str) -> int:
    """``scraper reset``: delete every key of the crawl; how many there were."""
    frontier = await connect(url, crawl, spider)
    try:
        return await frontier.reset()
    finally:
        await frontier.close()
