"""libcurl driven from asyncio: curl_cffi's ``AsyncSession`` (libcurl's multi interface with
its sockets watched by the event loop, Python called per socket event). N workers share one
URL iterator and one session, as the aiohttp loop does; the same pattern and JSON Lines."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import TextIO

from curl_cffi.requests import AsyncSession

from clients import Job, parse_job


async def crawl(job: Job) -> None:
    """Fetch every URL of ``job``, ``job.concurrency`` at once, writing records as they come."""
    urls = iter(job.urls)
    async with AsyncSession(max_clients=job.concurrency) as session:
        with open(job.output, "w", encoding="utf-8") as out:
            workers = [_work(session, urls, job, out) for _ in range(job.concurrency)]
            await asyncio.gather(*workers)


async def _work(session: AsyncSession, urls: Iterator[str], job: Job, out: TextIO) -> None:
    for url in urls:  # one iterator shared by all workers: each URL is taken once
        response = await session.get(url)
        if response.status_code != 200:
            raise SystemExit(f"{url}: HTTP {response.status_code}")
        text = response.content.decode("utf-8")  # nginx serves the site as utf-8
        job.write_records(text, out)


if __name__ == "__main__":
    asyncio.run(crawl(parse_job(__doc__ or "")))
