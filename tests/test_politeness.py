"""Politeness, measured at the server: robots.txt, Crawl-delay, delay, 429/503 slow-downs."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

from scraper.crawl import THROTTLED_DELAY
from tests.server import FixtureSite
from tests.test_crawl import crawl, make_spider, page_requests

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
