"""Scrapy doing the same work: every URL queued at start, the same pattern (``re``), records
out through Scrapy's JSON Lines feed export; settings as a tuned-for-speed project would
have them (16 requests at once, per domain too; no AutoThrottle, no robots.txt)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import scrapy
from scrapy.crawler import CrawlerProcess
from scrapy.http import TextResponse

from clients import Job, parse_job


class PagesSpider(scrapy.Spider):
    """Fetches the job's URLs and yields one item per match of its pattern."""

    name = "pages"

    def __init__(self, job: Job, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job = job

    async def start(self) -> AsyncIterator[scrapy.Request]:
        for url in self.job.urls:
            yield scrapy.Request(url)

    def parse(self, response: TextResponse, **kwargs: Any) -> Iterator[dict[str, Any]]:
        for match in self.job.pattern.finditer(response.text):
            yield self.job.record(match)


def main() -> None:
    job = parse_job(__doc__ or "")
    process = CrawlerProcess(
        settings={
            "CONCURRENT_REQUESTS": job.concurrency,
            "CONCURRENT_REQUESTS_PER_DOMAIN": job.concurrency,
            "LOG_LEVEL": "WARNING",
            "AUTOTHROTTLE_ENABLED": False,
            "ROBOTSTXT_OBEY": False,
            "FEEDS": {str(job.output): {"format": "jsonlines", "encoding": "utf8"}},
        }
    )
    process.crawl(PagesSpider, job=job)
    process.start()


if __name__ == "__main__":
    main()
