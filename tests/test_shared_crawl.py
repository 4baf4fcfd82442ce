"""SharedCrawler in this process, against a real redis-server and a real local site.

One or two crawlers (each with its own Redis connection, as two processes would
have) work on one crawl; what they committed is read back from the crawl's record
stream. Multi-process cases (kills, freezes, Redis restarts) are in test_redis_crawl.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator, Mapping
from typing import Any

from scraper.callbacks import Callback
from scraper.models import Page, Request
from scraper.redisfrontier import RedisFrontier
from scraper.redisrun import status_lines
from scraper.sharedcrawl import STOP_GRACE, SharedCrawler
from scraper.spec import SpiderSpec
from scraper.stats import CrawlStats
from tests.redis_server import RedisServer
from tests.server import FixtureSite
from tests.test_crawl import CATALOGUE_SPIDER as CRAWL_CATALOGUE
from tests.test_crawl import catalogue, make_spider, page_requests

Record = dict[str, Any]

CATALOGUE_SPIDER = CRAWL_CATALOGUE.replace("concurrency: 3", "concurrency: 4\n    robots: false")


async def crawl_shared(
    spider: SpiderSpec,
    redis_url: str,
    *,
    processes: int = 1,
    callbacks: Mapping[str, Callback] | None = None,
) -> tuple[list[CrawlStats], list[Record], dict[str, Any]]:
    """Run ``processes`` crawlers on one crawl to its end: their stats, the crawl's
    records in commit order, and the crawl's status."""
    frontiers = [await RedisFrontier.connect(redis_url, "t", spider) for _ in range(processes)]
    try:
        crawlers = [SharedCrawler(spider, f, callbacks=callbacks) for f in frontiers]
        stats = await asyncio.wait_for(asyncio.gather(*(c.run() for c in crawlers)), 60)
        return stats, await committed(frontiers[0]), await frontiers[0].status()
    finally:
        for frontier in frontiers:
            await frontier.close()


async def committed(frontier: RedisFrontier) -> list[Record]:
    return [record for _, record in await frontier.read_records("0", 100_000, 0)]


def by_price(records: list[Record]) -> list[Record]:
    return sorted(records, key=lambda r: r["price"])


def test_two_crawlers_share_a_list_to_detail_crawl_each_page_once(
    site: FixtureSite, redis_server: RedisServer
) -> None:
    catalogue(site, pages=10, per_page=10)
    site.hold = 0.01  # pages take a moment, so that both crawlers get some
    spider = make_spider(site, CATALOGUE_SPIDER)
    stats, records, status = asyncio.run(crawl_shared(spider, redis_server.url, processes=2))
    expected = [
        {"title": f"Book {n}", "category": f"c{n % 2}", "price": n + 0.5} for n in range(100)
    ]
    assert by_price(records) == expected  # every record once, carried fields included
    paths = [r.path for r in page_requests(site)]
    assert len(paths) == len(set(paths)) == 110  # no page fetched twice
    assert sum(s.pages for s in stats) == 110
    assert sum(s.records for s in stats) == 100
    assert all(s.pages > 0 for s in stats)  # both worked
    assert status["finished"] and status["records"] == 100
    assert (status["queued"], status["in_flight"], status["dead"]) == (0, 0, 0)


def test_a_failing_page_is_counted_by_reason_once(
    site: FixtureSite, redis_server: RedisServer
) -> None:
    catalogue(site, pages=2, per_page=5)
    site.add_fault("/detail/3", "status", status=404)
    spider = make_spider(site, CATALOGUE_SPIDER)
    stats, records, status = asyncio.run(crawl_shared(spider, redis_server.url, processes=2))
    assert sorted(r["price"] for r in records) == [n + 0.5 for n in range(10) if n != 3]
    assert sum((s.failed for s in stats), start=CrawlStats().failed) == {"http 404": 1}
    assert status["failed"] == {"http 404": 1}
    assert status["dead"] == 0
    assert site.count("/detail/3") == 1  # a 404 is not retried by another process


def test_a_429_pauses_its_host_for_every_crawler(
    site: FixtureSite, redis_server: RedisServer
) -> None:
    for n in range(4):
        site.add(f"/p{n}", f"<h1>page {n}</h1>")
    site.add_fault(
        "/p0",
        "sequence",
        responses=[(429, {"Retry-After": "1"}, b"slow down"), (200, {}, b"<h1>page 0</h1>")],
    )
    spider = make_spider(
        site,
        """
        spiders:
          test:
            start: 'SITE/p{n}'
            vars: {n: {range: [0, 4]}}
            concurrency: 2
            per_host: 1
            robots: false
            pattern: '<h1>(?P<title>[^<]+)</h1>'
        """,
    )
    stats, records, status = asyncio.run(crawl_shared(spider, redis_server.url, processes=2))
    assert sorted(r["title"] for r in records) == [f"page {n}" for n in range(4)]
    assert sum(s.failures for s in stats) == 0 and status["dead"] == 0
    log = page_requests(site)
    first_429 = next(r.started for r in log if r.path == "/p0")
    after = [r.started for r in log if r.started > first_429]
    assert after, "nothing was fetched after the 429"
    assert after[0] - first_429 >= 0.95  # Retry-After held the host back for both crawlers
    assert site.count("/p0") == 2


def test_robots_txt_is_fetched_once_for_the_crawl_and_obeyed(
    site: FixtureSite, redis_server: RedisServer
) -> None:
    site.add("/robots.txt", "User-agent: *\nDisallow: /private\n", content_type="text/plain")
    site.add("/", '<h1>home</h1><a href="/private/1">p</a><a href="/open/1">o</a>')
    site.add("/private/1", "<h1>secret</h1>")
    site.add("/open/1", "<h1>open</h1>")
    spider = make_spider(
        site,
        """
        spiders:
          test:
            start: 'SITE/'
            pattern: '<h1>(?P<title>[^<]+)</h1>'
            follow: {pattern: 'href="([^"]+)"', to: main}
        """,
    )
    stats, records, _ = asyncio.run(crawl_shared(spider, redis_server.url, processes=2))
    assert sorted(r["title"] for r in records) == ["home", "open"]
    assert site.count("/robots.txt") == 1
    assert site.count("/private/1") == 0
    assert sum(s.skipped["robots.txt"] for s in stats) == 1


def shout(page: Page) -> Iterator[Record | Request]:
    """A callback: upper-cases what the pattern found and adds a link of its own."""
    for record in page.records:
        yield {"title": record["title"].upper()}
    yield Request(page.urljoin("detail/7"), "detail", page.request.depth + 1, {"via": "shout"})


def test_callbacks_run_and_their_records_and_links_are_committed(
    site: FixtureSite, redis_server: RedisServer
) -> None:
    site.add("/shop/", "<li>tea</li><li>cake</li>")
    site.add("/shop/detail/7", '<p class="price">£3.20</p>')
    spider = make_spider(
        site,
        """
        spiders:
          test:
            start: 'SITE/shop/'
            robots: false
            pages:
              list:
                pattern: '<li>(?P<title>[^<]+)</li>'
                callback: 'spiders.test:shout'
              detail:
                pattern: '<p class="price">£(?P<price>[\\d.]+)</p>'
        """,
    )
    stats, records, _ = asyncio.run(
        crawl_shared(spider, redis_server.url, callbacks={"list": shout})
    )
    assert records[:2] == [{"title": "TEA"}, {"title": "CAKE"}]
    assert records[2:] == [{"via": "shout", "price": "3.20"}]
    assert stats[0].pages == 2


def test_a_stopped_crawler_ends_its_pages_and_another_finishes_the_crawl(
    site: FixtureSite, redis_server: RedisServer
) -> None:
    catalogue(site, pages=4, per_page=10)
    site.hold = 0.2
    spider = make_spider(site, CATALOGUE_SPIDER)

    async def stop_then_finish() -> tuple[float, CrawlStats, CrawlStats, list[Record], bool]:
        # Leases of 2 s: those a stopped claim was granted but never received expire soon.
        first = await RedisFrontier.connect(redis_server.url, "t", spider, lease_seconds=2.0)
        second = await RedisFrontier.connect(redis_server.url, "t", spider, lease_seconds=2.0)
        try:
            crawler = SharedCrawler(spider, first)
            running = asyncio.create_task(crawler.run())
            while crawler.stats.pages < 3:
                await asyncio.sleep(0.02)
            asked = time.monotonic()
            crawler.stop()
            stopped = await asyncio.wait_for(running, STOP_GRACE + 5)
            took = time.monotonic() - asked
            assert crawler.stopped_by is not None
            unfinished = not await first.finished()
            rest = await asyncio.wait_for(SharedCrawler(spider, second).run(), 60)
            return took, stopped, rest, await committed(first), unfinished
        finally:
            await first.close()
            await second.close()

    took, stopped, rest, records, unfinished = asyncio.run(stop_then_finish())
    assert took < STOP_GRACE + 1, took
    assert unfinished  # the stop left work for others
    assert stopped.pages + rest.pages == 44, (stopped.summary(), rest.summary())
    assert by_price(records) == [
        {"title": f"Book {n}", "category": f"c{n % 2}", "price": n + 0.5} for n in range(40)
    ]


def test_a_page_slower_than_its_lease_keeps_it_by_renewal(
    site: FixtureSite, redis_server: RedisServer
) -> None:
    site.add("/", "<h1>slow</h1>")
    site.add_fault("/", "slow", delay=2.5, body="<h1>slow</h1>")
    spider = make_spider(
        site,
        """
        spiders:
          test:
            start: 'SITE/'
            robots: false
            timeout: 10
            pattern: '<h1>(?P<title>[^<]+)</h1>'
        """,
    )

    async def run() -> tuple[list[CrawlStats], list[Record]]:
        frontiers = [
            await RedisFrontier.connect(redis_server.url, "t", spider, lease_seconds=1.0)
            for _ in range(2)
        ]
        try:
            crawlers = [SharedCrawler(spider, f) for f in frontiers]
            stats = await asyncio.wait_for(asyncio.gather(*(c.run() for c in crawlers)), 30)
            return stats, await committed(frontiers[0])
        finally:
            for frontier in frontiers:
                await frontier.close()

    stats, records = asyncio.run(run())
    assert records == [{"title": "slow"}]
    assert site.count("/") == 1  # renewed: the other crawler never got it
    assert sum(s.pages for s in stats) == 1


def test_a_crawl_delay_holds_across_crawlers_once_robots_txt_is_read(
    site: FixtureSite, redis_server: RedisServer
) -> None:
    # per_host 1: the leases a claim hands out before any process has read robots.txt
    # are not spaced by its Crawl-delay (a known gap: the claim would have to wait for it).
    site.add("/robots.txt", "User-agent: *\nCrawl-delay: 0.3\n", content_type="text/plain")
    for n in range(6):
        site.add(f"/p{n}", f"<h1>page {n}</h1>")
    spider = make_spider(
        site,
        """
        spiders:
          test:
            start: 'SITE/p{n}'
            vars: {n: {range: [0, 6]}}
            concurrency: 4
            per_host: 1
            pattern: '<h1>(?P<title>[^<]+)</h1>'
        """,
    )
    _, records, _ = asyncio.run(crawl_shared(spider, redis_server.url, processes=2))
    assert len(records) == 6
    starts = sorted(r.started for r in page_requests(site))
    # The first page may start before robots.txt is read; from the second on, 0.3 s apart.
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts[1:])]
    assert min(gaps) >= 0.29, gaps


# A meeting calendar over several pages: meeting k is on pages k-2..k (and twice on page 0);
# the archive pages list meetings 0 and 1 again, under a page kind with ``unique: []``.
ROW = "<tr><td>2024-03-{day:02d}</td><td>Meeting {n}</td><td>{room}</td></tr>"
UNIQUE_SPIDER = """
spiders:
  test:
    start: 'SITE/index'
    concurrency: 4
    robots: false
    unique: [date, title]
    pages:
      index:
        follow:
          - {pattern: '<a class="cal" href="([^"]+)">', to: calendar}
          - {pattern: '<a class="arc" href="([^"]+)">', to: archive}
      calendar:
        pattern: '<tr><td>(?P<date>[^<]+)</td><td>(?P<title>[^<]+)</td><td>(?P<room>[^<]+)</td>'
      archive:
        pattern: '<tr><td>(?P<date>[^<]+)</td><td>(?P<title>[^<]+)</td><td>(?P<room>[^<]+)</td>'
        unique: []
"""


def calendar_site(site: FixtureSite) -> None:
    links = []
    for page in range(6):
        meetings = [page, page, page + 1, page + 2] if page == 0 else [page, page + 1, page + 2]
        rows = [ROW.format(day=n + 1, n=n, room="cal") for n in meetings]
        site.add(f"/cal/{page}", "<table>" + "\n".join(rows) + "</table>")
        links.append(f'<a class="cal" href="/cal/{page}">')
    for page in range(2):
        rows = [ROW.format(day=n + 1, n=n, room="arc") for n in (0, 1)]
        site.add(f"/arc/{page}", "<table>" + "\n".join(rows) + "</table>")
        links.append(f'<a class="arc" href="/arc/{page}">')
    site.add("/index", "\n".join(links))


def test_unique_holds_for_the_whole_shared_crawl_and_is_off_where_a_page_kind_says(
    site: FixtureSite, redis_server: RedisServer
) -> None:
    calendar_site(site)
    spider = make_spider(site, UNIQUE_SPIDER)
    stats, records, status = asyncio.run(crawl_shared(spider, redis_server.url, processes=2))
    calendar = [r for r in records if r["room"] == "cal"]
    keys = [(r["date"], r["title"]) for r in calendar]
    # 19 calendar rows of 8 meetings, on 6 pages fetched by two processes: each once.
    assert sorted(keys) == [(f"2024-03-{n + 1:02d}", f"Meeting {n}") for n in range(8)]
    # unique: [] for the archive: its 4 rows are all written, repeats and all.
    assert sorted((r["date"], r["title"]) for r in records if r["room"] == "arc") == [
        ("2024-03-01", "Meeting 0"),
        ("2024-03-01", "Meeting 0"),
        ("2024-03-02", "Meeting 1"),
        ("2024-03-02", "Meeting 1"),
    ]
    assert status["finished"] and status["records"] == 12
    assert status["dropped"] == {"duplicate": 11}
    assert "dropped:         11 (duplicate: 11)" in status_lines("redis://r", "x", status)
    assert sum(s.dropped["duplicate"] for s in stats) == 11
    assert sum(s.records for s in stats) == 12
    assert sum(s.pages for s in stats) == 9


def test_a_late_commit_of_a_lost_lease_keeps_no_unique_key(
    site: FixtureSite, redis_server: RedisServer
) -> None:
    """A process killed mid-page: its late commit writes nothing, the key included, so the
    process that does the page again writes the record (once: a repeat is dropped)."""
    spider = make_spider(site, UNIQUE_SPIDER.replace("SITE/index", "http://a.test/cal/0"))
    record = {"date": "2024-03-01", "title": "Meeting 0", "room": "cal"}

    async def run() -> tuple[list[Record], dict[str, Any]]:
        first = await RedisFrontier.connect(redis_server.url, "t", spider, lease_seconds=0.3)
        second = await RedisFrontier.connect(redis_server.url, "t", spider, lease_seconds=0.3)
        try:
            await first.join()
            lost = await first.claim(1)  # never renewed: it expires
            again = await second.claim(1)
            assert lost is not None and again is not None
            assert not await first.commit(lost[0], [record], [], {"records": 1})
            assert await second.commit(again[0], [record, dict(record)], [], {"records": 2})
            return await committed(first), await first.status()
        finally:
            await first.close()
            await second.close()

    records, status = asyncio.run(run())
    assert records == [record]
    assert status["dropped"] == {"duplicate": 1} and status["finished"]


def test_a_stop_ends_a_wait_for_a_wake_at_once_whenever_it_comes(
    site: FixtureSite, redis_server: RedisServer
) -> None:
    """A crawler with nothing to claim blocks on its wake list; a stop coming just as
    that read is being sent (when redis-py can hold a cancelled read to its timeout)
    must end the wait at once too."""
    spider = make_spider(site, CATALOGUE_SPIDER)

    async def stop_delays() -> list[float]:
        frontier = await RedisFrontier.connect(redis_server.url, "t", spider)
        try:
            crawler = SharedCrawler(spider, frontier)
            delays = []
            for turns in range(6):  # the stop after 0, 1, ... 5 turns of the event loop
                crawler._kick.clear()
                waiting = asyncio.create_task(crawler._wait_for_wake(3.0))
                for _ in range(turns):
                    await asyncio.sleep(0)
                asked = time.monotonic()
                crawler.stop()
                await asyncio.wait_for(waiting, 5)
                delays.append(round(time.monotonic() - asked, 3))
            return delays
        finally:
            await frontier.close()

    delays = asyncio.run(stop_delays())
    assert max(delays) < 0.5, delays
