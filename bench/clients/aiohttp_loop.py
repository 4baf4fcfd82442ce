"""The floor: a bare aiohttp loop. N workers share one URL iterator and one session;
each fetches a page, runs the pattern, and appends the page's records as JSON Lines."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import TextIO

import aiohttp

from clients import Job, parse_job


async def crawl(job: Job) -> None:
    """Fetch every URL of ``job``, ``job.concurrency`` at once, writing records as they come."""
    connector = aiohttp.TCPConnector(limit=job.concurrency)
    urls = iter(job.urls)
    async with aiohttp.ClientSession(connector=connector) as session:
        with open(job.output, "w", encoding="utf-8") as out:
            workers = [_work(session, urls, job, out) for _ in range(job.concurrency)]
            await asyncio.gather(*workers)


async def _work(session: aiohttp.ClientSession, urls: Iterator[str], job: Job, out: TextIO) -> None:
    for url in urls:  # one iterator shared by all workers: each URL is taken once
        async with session.get(url) as response:
            response.raise_for_status()
            text = await response.text()
        job.write_records(text, out)


if __name__ == "__main__":
    asyncio.run(crawl(parse_job(__doc__ or "")))
