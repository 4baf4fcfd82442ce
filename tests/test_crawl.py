"""The crawl loop against a real local HTTP server: limits, dedup, follows, failures, stop.

Spiders are written as YAML, as a user would; ``SITE`` in the YAML stands for the test
server's base URL. Limits are checked where they matter: at the server.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import textwrap
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from scraper.callbacks import Callback
from scraper.crawler import Crawler, run_spider
from scraper.models import Page, Request
from scraper.output.jsonl import JsonLinesWriter
from scraper.spec import SpiderSpec, parse_spiders
from scraper.stats import CrawlStats
from tests.server import FixtureSite, LoggedRequest


@pytest.fixture(params=["aiohttp", "httpx"])
def transport(request: pytest.FixtureRequest) -> httpx.AsyncBaseTransport | None:
    """The default (aiohttp) transport, then httpx's own: key behaviour must not depend on it."""
    return None if request.param == "aiohttp" else httpx.AsyncHTTPTransport()


def make_spider(site: FixtureSite, yaml_text: str) -> SpiderSpec:
    """The spider ``test`` from ``yaml_text`` (indented as it likes), SITE -> the server."""
    text = textwrap.dedent(yaml_text).replace("SITE", site.base)
    return parse_spiders(text, "test.yaml").get("test")


def read_records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def crawl(
    spider: SpiderSpec,
    tmp_path: Path,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    callbacks: Mapping[str, Callback] | None = None,
) -> tuple[CrawlStats, list[dict[str, Any]]]:
    """Run ``spider`` to the end; return its stats and the records written."""
    out = tmp_path / "out.jsonl"
    writer = JsonLinesWriter(out)
    try:
        crawler = Crawler(spider, writer, callbacks=callbacks, transport=transport)
        stats = asyncio.run(crawler.run())
    finally:
        writer.close()
    records = read_records(out)
    assert stats.records == len(records)
    return stats, records


def page_requests(site: FixtureSite) -> list[LoggedRequest]:
    """What the server was asked for, robots.txt left out."""
    return [r for r in site.requests if r.path != "/robots.txt"]


def numbered_pages(site: FixtureSite, count: int, prefix: str = "/p/") -> None:
    for n in range(count):
        site.add(f"{prefix}{n}", f"<html><body><h1>Page {n}</h1></body></html>")


# -- concurrency limits, measured at the server --------------------------------------------------


def test_concurrency_limit_is_respected(
    site: FixtureSite, tmp_path: Path, transport: httpx.AsyncBaseTransport
) -> None:
    numbered_pages(site, 40)
    site.hold = 0.1
    spider = make_spider(
        site,
        """
        spiders:
          test:
            start: 'SITE/p/{n}'
            vars: {n: {range: [0, 40]}}
            concurrency: 4
            pattern: '<h1>(?P<title>[^<]+)</h1>'
        """,
    )
    stats, records = crawl(spider, tmp_path, transport=transport)
    assert site.max_in_flight == 4
    assert (stats.pages, stats.failures) == (40, 0)
    assert sorted(r["title"] for r in records) == sorted(f"Page {n}" for n in range(40))
    assert len(page_requests(site)) == 40


def test_per_host_limit_with_two_hosts(site: FixtureSite, tmp_path: Path) -> None:
    numbered_pages(site, 20)
    site.hold = 0.1
    spider = make_spider(
        site,
        f"""
        spiders:
          test:
            start:
              - 'http://127.0.0.1:{site.port}/p/{{n}}'
              - 'http://localhost:{site.port}/p/{{n}}'
            vars: {{n: {{range: [0, 20]}}}}
            concurrency: 8
            per_host: 2
            pattern: '<h1>(?P<title>[^<]+)</h1>'
        """,
    )
    stats, records = crawl(spider, tmp_path)
    assert (stats.pages, len(records)) == (40, 40)
    assert site.max_in_flight_by_host == {
        f"127.0.0.1:{site.port}": 2,
        f"localhost:{site.port}": 2,
    }
    assert site.max_in_flight > 2  # the two hosts are crawled side by side


def test_delay_spaces_requests_to_a_host(site: FixtureSite, tmp_path: Path) -> None:
    numbered_pages(site, 5)
    spider = make_spider(
        site,
        """
        spiders:
          test:
            start: 'SITE/p/{n}'
            vars: {n: {range: [0, 5]}}
            concurrency: 4
            delay: 0.25
            pattern: '<h1>(?P<title>[^<]+)</h1>'
        """,
    )
    stats, _ = crawl(spider, tmp_path)
    assert stats.pages == 5
    starts = [r.started for r in page_requests(site)]
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert len(gaps) == 4
    assert min(gaps) >= 0.22, gaps


# -- dedup ---------------------------------------------------------------------------------------


def test_duplicates_are_fetched_once(site: FixtureSite, tmp_path: Path) -> None:
    site.add(
        "/list",
        """<a href="/item?a=1&amp;b=2">one</a> <a href="/item?b=2&a=1">same</a>
        <a href="item?a=1&b=2#reviews">same</a> <a href="/list#top">back</a>""",
    )
    site.add("/item", "<h2>The item</h2>")
    spider = make_spider(
        site,
        """
        spiders:
          test:
            start: ['SITE/list', 'SITE/list', 'SITE/list#top']
            pages:
              list:
                follow:
                  - {pattern: 'href="(?P<url>[^"]*item[^"]*)"', to: item}
                  - {pattern: 'href="(?P<url>/list[^"]*)"', to: list}
              item:
                pattern: '<h2>(?P<name>[^<]+)</h2>'
        """,
    )
    stats, records = crawl(spider, tmp_path)
    assert site.count("/list") == 1
    assert site.count("/item") == 1
    assert records == [{"name": "The item"}]
    assert stats.pages == 2
    assert stats.skipped == {"already seen": 2 + 2 + 1}  # start URLs, item links, back link


def test_a_url_is_fetched_once_per_page_kind(site: FixtureSite, tmp_path: Path) -> None:
    site.add("/list", '<a href="/list?page=1">list as an item</a> <h2>A list</h2>')
    spider = make_spider(
        site,
        """
        spiders:
          test:
            start: ['SITE/list', {url: 'SITE/list', page: item}, {url: 'SITE/list', page: list}]
            pages:
              list:
                follow:
                  - {pattern: 'href="(?P<url>[^"]+)"', to: item}
              item:
                pattern: '<h2>(?P<name>[^<]+)</h2>'
                follow:
                  - {pattern: 'href="(?P<url>[^"]+)"', to: list}
        """,
    )
    stats, records = crawl(spider, tmp_path)
    assert site.count("/list") == 4  # /list and /list?page=1, each as a list and an item
    assert records == [{"name": "A list"}, {"name": "A list"}]
    assert stats.skipped == {"already seen": 1 + 2}  # a start URL; /list?page=1's own links


# -- following links -----------------------------------------------------------------------------

LIST_PAGE = """<ul>
{items}
</ul>
{next}"""


def catalogue(site: FixtureSite, pages: int = 3, per_page: int = 3) -> None:
    """List pages /list/1..N, each linking to its details and to the next list page."""
    for page in range(1, pages + 1):
        items = []
        for i in range(per_page):
            n = (page - 1) * per_page + i
            items.append(f'<li><a href="../detail/{n}">Book {n}</a> <em>c{n % 2}</em></li>')
            site.add(f"/detail/{n}", f'<p class="price">£{n}.50</p>')
        link = f'<a class="next" href="/list/{page + 1}">next</a>' if page < pages else ""
        site.add(f"/list/{page}", LIST_PAGE.format(items="\n".join(items), next=link))


CATALOGUE_SPIDER = """
spiders:
  test:
    start: 'SITE/list/1'
    concurrency: 3
    pages:
      list:
        follow:
          - pattern: '<a href="(?P<url>[^"]+)">(?P<title>[^<]+)</a> <em>(?P<category>\\w+)</em>'
            to: detail
          - {pattern: '<a class="next" href="([^"]+)">', to: list}
      detail:
        pattern: '<p class="price">£(?P<price>[\\d.]+)</p>'
        clean: {price: float}
"""


def test_follow_list_to_detail_carries_fields_and_paginates(
    site: FixtureSite, tmp_path: Path, transport: httpx.AsyncBaseTransport
) -> None:
    catalogue(site, pages=4, per_page=3)
    stats, records = crawl(make_spider(site, CATALOGUE_SPIDER), tmp_path, transport=transport)
    expected = [
        {"title": f"Book {n}", "category": f"c{n % 2}", "price": n + 0.5} for n in range(12)
    ]
    assert sorted(records, key=lambda r: r["price"]) == expected
    assert (stats.pages, stats.records, stats.failures) == (16, 12, 0)
    for page in range(1, 5):
        assert site.count(f"/list/{page}") == 1
    assert site.count("/list/5") == 0  # the last page has no next link


def chain(site: FixtureSite, length: int) -> None:
    for n in range(length):
        site.add(f"/chain/{n}", f'<h1>Link {n}</h1> <a href="/chain/{n + 1}">on</a>')


CHAIN_SPIDER = """
spiders:
  test:
    start: 'SITE/chain/0'
    {limit}
    pattern: '<h1>(?P<title>[^<]+)</h1>'
    follow: {{pattern: 'href="([^"]+)"', to: main}}
"""


def test_max_depth(site: FixtureSite, tmp_path: Path) -> None:
    chain(site, 10)
    stats, records = crawl(make_spider(site, CHAIN_SPIDER.format(limit="max_depth: 2")), tmp_path)
    assert [r["title"] for r in records] == ["Link 0", "Link 1", "Link 2"]
    assert [r.path for r in page_requests(site)] == ["/chain/0", "/chain/1", "/chain/2"]
    assert stats.skipped["max_depth"] == 1


def test_max_pages_on_follows(site: FixtureSite, tmp_path: Path) -> None:
    chain(site, 10)
    stats, records = crawl(make_spider(site, CHAIN_SPIDER.format(limit="max_pages: 4")), tmp_path)
    assert len(records) == 4
    assert len(page_requests(site)) == 4
    assert stats.skipped["max_pages"] == 1


def test_max_pages_on_start_urls(site: FixtureSite, tmp_path: Path) -> None:
    numbered_pages(site, 40)
    spider = make_spider(
        site,
        """
        spiders:
          test:
            start: 'SITE/p/{n}'
            vars: {n: {range: [0, 40]}}
            max_pages: 5
            pattern: '<h1>(?P<title>[^<]+)</h1>'
        """,
    )
    stats, records = crawl(spider, tmp_path)
    assert (stats.pages, len(records), len(page_requests(site))) == (5, 5, 5)
    assert stats.skipped["max_pages"] == 35


def test_offsite_links_are_never_requested(site: FixtureSite, tmp_path: Path) -> None:
    site.add(
        "/home",
        f"""<a href="http://localhost:{site.port}/elsewhere">other host</a>
        <a href="//localhost:{site.port}/also-elsewhere">other host</a>
        <a href="mailto:someone@example.com">mail</a>
        <a href="/inside">same host</a>""",
    )
    site.add("/inside", "<h1>Inside</h1>")
    site.add("/elsewhere", "<h1>Elsewhere</h1>")
    spider = make_spider(
        site,
        """
        spiders:
          test:
            start: 'SITE/home'
            pattern: '<h1>(?P<title>[^<]+)</h1>'
            follow: {pattern: 'href="([^"]+)"', to: main}
        """,
    )
    stats, records = crawl(spider, tmp_path)
    assert records == [{"title": "Inside"}]
    assert {r.host for r in site.requests} == {f"127.0.0.1:{site.port}"}
    assert site.count("/elsewhere") == site.count("/also-elsewhere") == 0
    assert stats.skipped["offsite"] == 3


def test_only_and_skip_filter_links_and_a_filter_cannot_hang_on_a_long_url(
    site: FixtureSite, tmp_path: Path
) -> None:
    long_path = "/x" + "x" * 5_000  # a link a stranger's page may hold
    site.add(
        "/home",
        f"""<a href="/keep/1">k</a> <a href="/drop/2">d</a> <a href="/other/3">o</a>
        <a href="{long_path}">x</a>""",
    )
    for path in ("/keep/1", "/drop/2", "/other/3", long_path):
        site.add(path, f"<h1>{path[:8]}</h1>")
    spider = make_spider(
        site,
        """
        spiders:
          test:
            start: 'SITE/home'
            extract_timeout: 0.3
            only: ['/(keep|drop|x)']
            skip: ['/drop', '(x+x+)+y']
            pattern: '<h1>(?P<title>[^<]+)</h1>'
            follow: {pattern: 'href="([^"]+)"', to: main}
        """,
    )
    started = time.monotonic()
    stats, records = crawl(spider, tmp_path)
    assert time.monotonic() - started < 5
    assert records == [{"title": "/keep/1"}]
    assert [r.path for r in page_requests(site)] == ["/home", "/keep/1"]
    assert stats.skipped == {"skip": 1, "not in only": 1, "filter timeout": 1}


# -- failures ------------------------------------------------------------------------------------


def test_failed_pages_are_counted_and_the_rest_written(site: FixtureSite, tmp_path: Path) -> None:
    for n in range(1, 4):
        site.add(f"/ok/{n}", f'<h1>Fine {n}</h1><span class="n">{n * 10}</span>')
    site.add_fault("/boom", "status", status=500)
    spider = make_spider(
        site,
        """
        spiders:
          test:
            start: ['SITE/ok/1', 'SITE/missing', 'SITE/ok/2', 'SITE/boom', 'SITE/ok/3']
            retries: 1
            pattern: '<h1>(?P<title>[^<]+)</h1><span class="n">(?P<n>\\d+)</span>'
            clean: {n: int}
        """,
    )
    stats, records = crawl(spider, tmp_path)
    assert sorted(records, key=lambda r: r["n"]) == [
        {"title": "Fine 1", "n": 10},
        {"title": "Fine 2", "n": 20},
        {"title": "Fine 3", "n": 30},
    ]
    assert stats.failed == {"http 404": 1, "http 500": 1}
    assert (stats.pages, stats.records, stats.failures) == (3, 3, 2)
    assert site.count("/missing") == 1
    assert site.count("/boom") == 2


# -- stopping ------------------------------------------------------------------------------------


def test_stop_ends_the_crawl_early_keeping_what_was_written(
    site: FixtureSite, tmp_path: Path
) -> None:
    numbered_pages(site, 40)
    site.hold = 0.1
    spider = make_spider(
        site,
        """
        spiders:
          test:
            start: 'SITE/p/{n}'
            vars: {n: {range: [0, 40]}}
            concurrency: 2
            pattern: '<h1>(?P<title>[^<]+)</h1>'
        """,
    )
    out = tmp_path / "out.jsonl"
    writer = JsonLinesWriter(out)
    crawler = Crawler(spider, writer)

    async def stop_after_four_records() -> float:
        while writer.count < 4:
            await asyncio.sleep(0.01)
        crawler.stop()
        return time.monotonic()

    async def main() -> tuple[CrawlStats, float]:
        stopper = asyncio.create_task(stop_after_four_records())
        stats = await crawler.run()
        return stats, time.monotonic() - await stopper

    try:
        stats, after_stop = asyncio.run(main())
    finally:
        writer.close()
    records = read_records(out)
    assert 4 <= len(records) == stats.records == stats.pages < 40
    assert len(page_requests(site)) < 10
    assert after_stop < 1.0  # the pages in flight finish; nothing new starts
    assert crawler.stopped_by == signal.SIGINT
    assert all(r["title"].startswith("Page ") for r in records)


# -- callbacks -----------------------------------------------------------------------------------


def shout(page: Page) -> Iterator[dict[str, Any] | Request]:
    """A callback: upper-cases what the pattern found and adds a link of its own."""
    for record in page.records:
        yield {"title": record["title"].upper(), "from": page.url}
    yield Request(page.urljoin("detail/7"), "detail", page.request.depth + 1, {"via": "shout"})


def test_callback_yields_records_and_requests(site: FixtureSite, tmp_path: Path) -> None:
    site.add("/shop/", "<li>tea</li><li>cake</li>")
    site.add("/shop/detail/7", '<p class="price">£3.20</p>')
    spider = make_spider(
        site,
        """
        spiders:
          test:
            start: 'SITE/shop/'
            pages:
              list:
                pattern: '<li>(?P<title>[^<]+)</li>'
                callback: 'spiders.test:shout'
              detail:
                pattern: '<p class="price">£(?P<price>[\\d.]+)</p>'
        """,
    )
    stats, records = crawl(spider, tmp_path, callbacks={"list": shout})
    shop = site.url("/shop/")
    assert sorted(records, key=str) == sorted(
        [
            {"title": "TEA", "from": shop},
            {"title": "CAKE", "from": shop},
            {"via": "shout", "price": "3.20"},
        ],
        key=str,
    )
    assert site.count("/shop/detail/7") == 1
    assert stats.pages == 2


def broken(page: Page) -> Iterator[dict[str, Any]]:
    if page.url.endswith("/2"):
        raise ValueError("no good")
    yield {"url": page.url}


def test_callback_error_loses_only_its_page(site: FixtureSite, tmp_path: Path) -> None:
    numbered_pages(site, 4)
    spider = make_spider(
        site,
        """
        spiders:
          test:
            start: 'SITE/p/{n}'
            vars: {n: {range: [0, 4]}}
            callback: 'spiders.test:broken'
        """,
    )
    stats, records = crawl(spider, tmp_path, callbacks={"main": broken})
    assert sorted(r["url"] for r in records) == [site.url(f"/p/{n}") for n in (0, 1, 3)]
    assert stats.failed == {"callback error": 1}


def test_run_spider_runs_to_the_end(site: FixtureSite, tmp_path: Path) -> None:
    numbered_pages(site, 3)
    spider = make_spider(
        site,
        """
        spiders:
          test:
            start: 'SITE/p/{n}'
            vars: {n: {range: [0, 3]}}
            pattern: '<h1>(?P<title>[^<]+)</h1>'
        """,
    )
    writer = JsonLinesWriter(tmp_path / "out.jsonl")
    try:
        stats, stopped_by = run_spider(spider, writer)
    finally:
        writer.close()
    assert (stats.pages, stats.records, stopped_by) == (3, 3, None)
    assert len(read_records(tmp_path / "out.jsonl")) == 3


def test_cookies_are_kept_for_the_crawl(
    site: FixtureSite, tmp_path: Path, transport: httpx.AsyncBaseTransport | None
) -> None:
    site.add(
        "/login",
        '<a href="/inside">in</a>',
        headers={"Set-Cookie": "session=abc123; Path=/"},
    )
    site.add("/inside", "<h1>inside</h1>")
    spider = make_spider(
        site,
        """
        spiders:
          test:
            start: SITE/login
            robots: false
            pages:
              login:
                follow: [{pattern: 'href="(?P<url>[^"]+)"', to: inside}]
              inside:
                pattern: '<h1>(?P<title>[^<]+)</h1>'
        """,
    )
    _, records = crawl(spider, tmp_path, transport=transport)
    assert records == [{"title": "inside"}]
    inside = next(r for r in site.requests if r.path == "/inside")
    assert inside.headers.get("Cookie") == "session=abc123"


def test_a_proxy_setting_sends_every_request_through_the_proxy(
    site: FixtureSite, tmp_path: Path, transport: httpx.AsyncBaseTransport | None
) -> None:
    # The FixtureSite plays a plain HTTP forward proxy: requests reach it with the
    # absolute URL in the request line, for a host that does not exist.
    site.add("/list", "<h1>through the proxy</h1>", host="films.invalid")
    spider = make_spider(
        site,
        """
        spiders:
          test:
            start: http://films.invalid/list
            robots: false
            proxy: SITE
            pattern: '<h1>(?P<title>[^<]+)</h1>'
        """,
    )
    if transport is not None:
        transport = httpx.AsyncHTTPTransport(proxy=site.base)  # httpx: proxy is the transport's
    _, records = crawl(spider, tmp_path, transport=transport)
    assert records == [{"title": "through the proxy"}]
    assert [(r.host, r.path) for r in site.requests] == [("films.invalid", "/list")]
