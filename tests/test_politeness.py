"""Politeness, measured at the server: robots.txt, Crawl-delay, delay, 429/503 slow-downs."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from pathlib import Path

import pytest

from scraper.fetch import MAX_BACKOFF, Fetcher
from scraper.hosts import THROTTLED_DELAY
from scraper.robots import RobotsRules
from scraper.spec import CrawlSettings
from scraper.wire import open_wire
from tests.server import FixtureSite
from tests.test_crawl import crawl, make_spider, page_requests
from tests.test_fetch import timed

ROBOTS = """User-agent: *
Disallow: /private/
Disallow: /*.pdf$

User-agent: otherbot
Disallow: /
"""


def serve_links(site: FixtureSite, paths: list[str]) -> None:
    links = "".join(f'<a href="{path}">x</a>' for path in paths)
    site.add("/", f"<html>{links}</html>")
    for path in paths:
        site.add(path, f"<html><h1>{path}</h1></html>")


SPIDER = """
    spiders:
      test:
        start: SITE/
        {extra}
        pages:
          home:
            follow: [{{pattern: '<a href="(?P<url>[^"]+)"', to: page}}]
          page:
            pattern: '<h1>(?P<path>[^<]+)</h1>'
"""


def spider_yaml(*settings: str) -> str:
    """The spider above with these setting lines."""
    return SPIDER.format(extra="\n        ".join(settings))


def test_disallowed_paths_are_never_requested(site: FixtureSite, tmp_path: Path) -> None:
    site.add("/robots.txt", ROBOTS, content_type="text/plain")
    serve_links(site, ["/public/a", "/private/b", "/files/c.pdf", "/files/c.pdf.html"])
    stats, records = crawl(make_spider(site, spider_yaml()), tmp_path)
    requested = {r.path for r in page_requests(site)}
    assert requested == {"/", "/public/a", "/files/c.pdf.html"}
    assert sorted(r["path"] for r in records) == ["/files/c.pdf.html", "/public/a"]
    assert stats.skipped["robots.txt"] == 2
    assert site.count("/robots.txt") == 1  # read once per host


def test_robots_false_ignores_robots_txt(site: FixtureSite, tmp_path: Path) -> None:
    site.add("/robots.txt", "User-agent: *\nDisallow: /\n", content_type="text/plain")
    serve_links(site, ["/private/b"])
    _, records = crawl(make_spider(site, spider_yaml("robots: false")), tmp_path)
    assert records == [{"path": "/private/b"}]
    assert site.count("/robots.txt") == 0


def test_rules_for_our_user_agent_apply(site: FixtureSite, tmp_path: Path) -> None:
    site.add("/robots.txt", ROBOTS, content_type="text/plain")
    serve_links(site, ["/public/a"])
    spider = make_spider(site, spider_yaml("headers: {User-Agent: otherbot/2.0}"))
    stats, records = crawl(spider, tmp_path)
    assert records == []
    assert page_requests(site) == []
    assert stats.skipped["robots.txt"] == 1


def test_crawl_delay_spaces_requests_to_the_host(site: FixtureSite, tmp_path: Path) -> None:
    site.add("/robots.txt", "User-agent: *\nCrawl-delay: 0.3\n", content_type="text/plain")
    serve_links(site, ["/a", "/b", "/c"])
    crawl(make_spider(site, spider_yaml("concurrency: 4")), tmp_path)
    starts = [r.started for r in page_requests(site)]
    assert len(starts) == 4
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert min(gaps) >= 0.27, gaps


def test_jitter_adds_up_to_its_seconds_to_the_delay(site: FixtureSite, tmp_path: Path) -> None:
    serve_links(site, [f"/p{n}" for n in range(6)])
    spider = make_spider(site, spider_yaml("delay: 0.1", "jitter: 0.2", "robots: false"))
    crawl(spider, tmp_path)
    starts = [r.started for r in page_requests(site)]
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert min(gaps) >= 0.09, gaps
    assert max(gaps) <= 0.4, gaps
    assert len({round(gap, 2) for gap in gaps}) > 1  # not a fixed delay


def test_a_429_pauses_the_host_and_keeps_it_slow(site: FixtureSite, tmp_path: Path) -> None:
    paths = [f"/p{n}" for n in range(4)]
    serve_links(site, paths)
    site.add_fault(
        "/p0",
        "sequence",
        responses=[(429, {"Retry-After": "1"}, b"slow down"), (200, {}, b"<h1>/p0</h1>")],
    )
    spider = make_spider(site, spider_yaml("concurrency: 1", "robots: false"))
    started = time.monotonic()
    stats, records = crawl(spider, tmp_path)
    assert len(records) == 4
    assert stats.failures == 0
    log = page_requests(site)
    first_429 = next(r.started for r in log if r.path == "/p0")
    after = [r.started for r in log if r.started > first_429]
    assert after[0] - first_429 >= 0.95  # Retry-After honoured
    gaps = [later - earlier for earlier, later in itertools.pairwise(after)]
    assert all(gap >= THROTTLED_DELAY * 0.95 for gap in gaps), gaps  # and then kept slow
    assert time.monotonic() - started < 10


def test_a_503_without_retry_after_is_retried_later(site: FixtureSite, tmp_path: Path) -> None:
    serve_links(site, ["/a"])
    site.add_fault(
        "/a",
        "sequence",
        responses=[(503, {"Retry-After": "0.2"}, b"busy"), (200, {}, b"<h1>/a</h1>")],
    )
    _, records = crawl(make_spider(site, spider_yaml("robots: false")), tmp_path)
    assert records == [{"path": "/a"}]
    assert site.count("/a") == 2


# -- a robots.txt that cannot be read allows everything; a huge one is cut ---------------------


def robots_answer(site: FixtureSite, kind: str) -> None:
    """A robots.txt answer that once raised out of the robots check (0 records, exit 0)."""
    if kind == "gzip label on plain text":
        site.add("/robots.txt", ROBOTS, content_type="text/plain", headers=GZIP)
    elif kind == "charset=undefined":
        site.add("/robots.txt", ROBOTS, content_type="text/plain; charset=undefined")
    elif kind == "Location: http://[oops/":
        site.add_fault("/robots.txt", "raw", status=301, headers=[("Location", "http://[oops/")])
    elif kind == "Retry-After: ²":
        site.add_fault("/robots.txt", "raw", status=429, headers=[("Retry-After", "²")])
    elif kind == "Retry-After: a date in -0000":
        value = "Wed, 21 Oct 2015 07:28:00 -0000"
        site.add_fault("/robots.txt", "raw", status=503, headers=[("Retry-After", value)])
    else:
        raise AssertionError(kind)


GZIP = {"Content-Encoding": "gzip"}
UNREADABLE_ROBOTS = [
    "Location: http://[oops/",
    "Retry-After: ²",
    "Retry-After: a date in -0000",
]


@pytest.mark.parametrize("kind", UNREADABLE_ROBOTS)
def test_a_robots_txt_that_cannot_be_read_allows_everything(
    kind: str, site: FixtureSite, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    robots_answer(site, kind)
    paths = [f"/private/{n}" for n in range(20)]
    serve_links(site, paths)
    caplog.set_level(logging.INFO, "scraper")

    stats, records = crawl(make_spider(site, spider_yaml("retries: 0")), tmp_path)

    assert sorted(r["path"] for r in records) == sorted(paths)
    assert (stats.failures, dict(stats.skipped)) == (0, {})
    assert f"no robots.txt rules from {site.url('/robots.txt')} (" in caplog.text


@pytest.mark.parametrize("kind", ["gzip label on plain text", "charset=undefined"])
def test_a_mislabelled_robots_txt_is_obeyed(kind: str, site: FixtureSite, tmp_path: Path) -> None:
    robots_answer(site, kind)
    serve_links(site, ["/public/a", "/private/b"])

    stats, records = crawl(make_spider(site, spider_yaml()), tmp_path)

    assert [r["path"] for r in records] == ["/public/a"]
    assert dict(stats.skipped) == {"robots.txt": 1}


def huge_robots(rules: int, last: str) -> str:
    """``rules`` wildcard rules (the slow kind for Protego), then the rule ``last``."""
    lines = ["User-agent: *", "Disallow: /early/"]
    lines += [f"Disallow: /*d{n}*x$" for n in range(rules)]
    return "\n".join([*lines, last, ""])


def test_only_the_first_500_kib_of_robots_txt_are_read(site: FixtureSite, tmp_path: Path) -> None:
    body = huge_robots(369_549, "Disallow: /late/")
    assert len(body) > 7 * 1024 * 1024
    site.add("/robots.txt", body, content_type="text/plain")
    serve_links(site, ["/early/a", "/late/b", "/page/c"])

    (stats, records), seconds = timed(lambda: crawl(make_spider(site, spider_yaml()), tmp_path))

    # /late/ is past the cap, so it is not a rule; /early/ is one.
    assert sorted(r["path"] for r in records) == ["/late/b", "/page/c"]
    assert dict(stats.skipped) == {"robots.txt": 1}
    assert seconds < 10


def test_checks_against_a_large_robots_txt_do_not_hold_the_event_loop(site: FixtureSite) -> None:
    site.add("/robots.txt", huge_robots(30_000, ""), content_type="text/plain")
    settings = CrawlSettings(retries=0, timeout=10.0)

    async def longest_stall() -> tuple[float, list[bool]]:
        """The longest the loop went without running a 1 ms ticker, while checking URLs."""
        wire = open_wire(settings)
        robots = RobotsRules(Fetcher(wire, settings))
        stalls = [0.0]
        running = True

        async def ticker() -> None:
            last = time.perf_counter()
            while running:
                await asyncio.sleep(0.001)
                now = time.perf_counter()
                stalls.append(now - last)
                last = now

        ticking = asyncio.create_task(ticker())
        try:
            checks = [robots.check(site.url(f"/page/{n}")) for n in range(20)]
            results = [allowed for allowed, _ in await asyncio.gather(*checks)]
        finally:
            running = False
            await ticking
            await wire.aclose()
        return max(stalls), results

    stall, allowed = asyncio.run(longest_stall())

    assert allowed == [True] * 20
    # Parsed on the loop, these rules held it for over a second; now the longest stall
    # is a pass of the garbage collector over the parsed rules (~0.15 s).
    assert stall < 0.5, f"the event loop stalled for {stall * 1000:.0f} ms"


def test_a_huge_crawl_delay_is_capped_and_said_once(
    site: FixtureSite, caplog: pytest.LogCaptureFixture
) -> None:
    site.add("/robots.txt", "User-agent: *\nCrawl-delay: 999999\n", content_type="text/plain")
    settings = CrawlSettings(retries=0, timeout=5.0)

    async def check_twice() -> list[tuple[bool, float]]:
        wire = open_wire(settings)
        try:
            robots = RobotsRules(Fetcher(wire, settings))
            return [await robots.check(site.url("/a")), await robots.check(site.url("/b"))]
        finally:
            await wire.aclose()

    assert asyncio.run(check_twice()) == [(True, MAX_BACKOFF), (True, MAX_BACKOFF)]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"{site.url('/robots.txt')} asks for Crawl-delay: 999999; "
        "waiting 30 s between its pages instead"
    ]
