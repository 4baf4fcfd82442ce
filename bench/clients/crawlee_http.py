"""Crawlee for Python doing the same work: its ``HttpCrawler`` (with its default HTTP
client, impit) given every URL at start, the same pattern in the request handler, records
appended as JSON Lines by the handler. Concurrency fixed at N (min = desired = max, so its
autoscaling has nothing to scale), retries as ours and Scrapy's (2), no robots.txt,
logging at WARNING. Its request queue is kept in memory (``MemoryStorageClient``), as ours
and Scrapy keep theirs; its default, ``FileSystemStorageClient``, writes each request to a
file and makes the crawl ~3x slower. Its storage folder is a temp folder of its own all the
same, so that nothing is left between runs whatever Crawlee writes."""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Awaitable, Callable
from typing import TextIO

from crawlee import ConcurrencySettings, service_locator
from crawlee.configuration import Configuration
from crawlee.crawlers import HttpCrawler, ParsedHttpCrawlingContext
from crawlee.storage_clients import MemoryStorageClient

from clients import Job, parse_job

RETRIES = 2
"""As ours (the spider file's ``retries: 2``) and Scrapy's default ``RETRY_TIMES``."""


async def crawl(job: Job) -> None:
    """Fetch every URL of ``job``, ``job.concurrency`` at once, writing records as they come."""
    with tempfile.TemporaryDirectory(prefix="crawlee-") as storage:
        # Set before the crawler exists, as Crawlee asks (else it warns and makes its own).
        service_locator.set_configuration(Configuration(storage_dir=storage))
        service_locator.set_storage_client(MemoryStorageClient())
        with open(job.output, "w", encoding="utf-8") as out:
            crawler = HttpCrawler(
                concurrency_settings=ConcurrencySettings(
                    min_concurrency=job.concurrency,
                    desired_concurrency=job.concurrency,
                    max_concurrency=job.concurrency,
                ),
                max_request_retries=RETRIES,
                respect_robots_txt_file=False,
                configure_logging=False,
                request_handler=_handler(job, out),
            )
            statistics = await crawler.run(job.urls)
    if statistics.requests_failed:
        raise SystemExit(f"{statistics.requests_failed} requests failed")


Context = ParsedHttpCrawlingContext[bytes]


def _handler(job: Job, out: TextIO) -> Callable[[Context], Awaitable[None]]:
    async def handle(context: Context) -> None:
        text = (await context.http_response.read()).decode("utf-8")  # the site is utf-8
        job.write_records(text, out)

    return handle


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(crawl(parse_job(__doc__ or "")))
