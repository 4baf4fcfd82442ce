"""The shipped spiders against real saved pages, served from 127.0.0.1.

The pages are in ../shared/corpus (see its README for the ground truth); every
test here is skipped when that folder is absent.
"""

from __future__ import annotations

import asyncio
import csv
import json
import re
from pathlib import Path

import pytest

from scraper.crawler import Crawler
from scraper.models import Record
from scraper.output.jsonl import JsonLinesWriter
from scraper.spec import load_spiders
from scraper.stats import CrawlStats
from tests.server import LocalRouteTransport

SPIDERS = Path(__file__).resolve().parents[1] / "spiders.yaml"


def crawl(
    name: str, transport: LocalRouteTransport, out: Path, **changes: object
) -> tuple[list[Record], CrawlStats]:
    spider = load_spiders(SPIDERS).get(name)
    writer = JsonLinesWriter(out)
    stats = asyncio.run(Crawler(spider, writer, transport=transport).run())
    writer.close()
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()], stats


def test_maoyan_board_gives_the_ten_films_of_each_saved_page(
    corpus_transport: LocalRouteTransport, tmp_path: Path
) -> None:
    records, stats = crawl("maoyan", corpus_transport, tmp_path / "maoyan.jsonl")
    # Only offsets 0 and 90 were saved; the other eight are real 404s here.
    assert stats.failed == {"http 404": 8}
    by_index = {r["index"]: r for r in records}
    assert sorted(by_index) == list(range(1, 11)) + list(range(91, 101))
    assert by_index[1]["title"] == "我不是药神"
    assert by_index[10]["title"] == "泰坦尼克号"
    assert by_index[91]["title"] == "素媛"
    assert by_index[100]["title"] == "模仿游戏"
    assert by_index[1]["actor"] == "徐峥,王传君,周一围"
    assert by_index[1]["time"] == "2018-07-05"
    assert by_index[1]["score"] == 9.6
    assert all(isinstance(r["score"], float) for r in records)


def test_douban_follows_its_pagination_to_250_films(
    corpus_transport: LocalRouteTransport, tmp_path: Path
) -> None:
    records, stats = crawl("douban", corpus_transport, tmp_path / "douban.jsonl")
    assert stats.failures == 0
    assert stats.pages == 10
    assert sorted(r["rank"] for r in records) == list(range(1, 251))
    first = min(records, key=lambda r: r["rank"])
    assert first["title"] == "肖申克的救赎"
    assert first["score"] == 9.7
    assert first["link"] == "https://movie.douban.com/subject/1292052/"


def test_books_crawls_49_listing_pages_and_stops_at_the_missing_50th(
    corpus_transport: LocalRouteTransport, corpus_dir: Path, tmp_path: Path
) -> None:
    records, stats = crawl("books", corpus_transport, tmp_path / "books.jsonl")
    assert len(records) == 980
    assert stats.pages == 49
    assert stats.failed == {"http 404": 1}
    truth = (corpus_dir / "books" / "books.csv").read_text(encoding="utf-8")
    # The saver's URLs are sometimes glued to the listing page's; the book's slug is exact.
    by_slug = {_slug(row["URL"]): row for row in csv.DictReader(truth.splitlines())}
    assert len({r["url"] for r in records}) == 980
    for record in records:
        assert record["url"].startswith("https://books.toscrape.com/catalogue/")
        row = by_slug[_slug(record["url"])]
        assert record["title"] == row["Title"]
        assert record["price"] == pytest.approx(float(row["Price"].lstrip("£")))


def _slug(url: str) -> str:
    found = re.search(r"(?:/|\.html)([\w-]+_\d+)/index\.html$", url)
    assert found, url
    return found.group(1)
