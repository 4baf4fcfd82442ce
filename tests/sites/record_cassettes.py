"""Record the shipped spiders' cassettes from the demo sites in this folder.

    python tests/sites/record_cassettes.py

Runs each shipped spider with recording on, through an ``httpx.MockTransport``
that answers the real sites' URLs with the hand-written pages here (and 404 for
anything else), so ``spiders/cassettes/NAME.yaml`` holds the traffic of a real
crawl without any of the real sites' pages. Rerun it after changing a page.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx

from scraper.cassette import cassette_transport, default_cassette
from scraper.crawler import Crawler
from scraper.output.jsonl import JsonLinesWriter
from scraper.spec import load_spiders

SITES = Path(__file__).resolve().parent
ROOT = SITES.parents[1]
ROUTES: list[tuple[str, str, str]] = [
    ("maoyan.com", r"/board/4\?offset=(\d+)", "maoyan/board4_offset{0}.html"),
    ("movie.douban.com", r"/top250", "douban/top250_start0.html"),
    ("movie.douban.com", r"/top250\?start=(\d+)&filter=", "douban/top250_start{0}.html"),
    ("books.toscrape.com", r"/", "books/index.html"),
    ("books.toscrape.com", r"/catalogue/(page-\d+\.html)", "books/catalogue/{0}"),
]


def demo_page(request: httpx.Request) -> httpx.Response:
    """The demo page for a real site's URL, or a 404."""
    target = request.url.raw_path.decode("ascii")
    for host, pattern, file in ROUTES:
        found = re.fullmatch(pattern, target)
        if request.url.host == host and found:
            path = SITES / file.format(*found.groups())
            if path.is_file():
                return httpx.Response(
                    200,
                    content=path.read_bytes(),
                    headers={"Content-Type": "text/html; charset=utf-8"},
                )
    return httpx.Response(404, content=b"<html><body>not found</body></html>")


async def record(name: str) -> int:
    """Record spider ``name``'s cassette; return the number of records it gave."""
    spider_file = ROOT / "spiders.yaml"
    spider = load_spiders(spider_file).get(name)
    path = default_cassette(spider_file, name)
    writer = JsonLinesWriter("/dev/null")
    mock = httpx.MockTransport(demo_page)
    with cassette_transport(path, record=True, inner=mock) as transport:
        stats = await Crawler(spider, writer, transport=transport).run()
    writer.close()
    return stats.records


if __name__ == "__main__":
    for spider_name in ("maoyan", "douban", "books"):
        print(spider_name, asyncio.run(record(spider_name)), "records")
