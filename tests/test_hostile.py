"""Pages that cannot break a crawl: one spider over good pages and every hostile page we know.

A crawl meets resets, lies about lengths, servers that never answer or drip a byte at a
time, broken and mixed charsets, binaries, huge bodies, gzip bombs, link floods, redirects
out of bounds, empty bodies and patterns that backtrack without end. Each must cost one
page (counted by its reason in ``stats.failed``) or nothing at all: never an exception out
of ``Crawler.run()``, never a good record lost, never unbounded time.

``HOSTILE`` is the one table of cases: the whole-site crawl serves them all at once, and
each case is also crawled on its own (beside one good page) so that a failure names it.
"""

from __future__ import annotations

import asyncio
import json
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from scraper.crawler import Crawler
from scraper.output.jsonl import JsonLinesWriter
from scraper.spec import SpiderSpec, parse_spiders
from scraper.stats import CrawlStats
from tests.server import FixtureSite, gzip_bomb

MiB = 1 << 20
GOOD_PAGES = 10
RECORDS_PER_PAGE = 5
LINKS = 10_000
LEAVES_ADMITTED = 20
"""Links from the link flood that max_pages lets in; the rest are skipped."""
OFFSITE_LINKS = 100
BOMB_SIZE = 64 * MiB

SPIDER = """
spiders:
  hostile:
    start:
{start}
    timeout: 1.5
    retries: {retries}
    max_bytes: 2097152
    extract_timeout: {extract_timeout}
    max_pages: {max_pages}
    concurrency: 16
    per_host: 16
    url_field: url
    pages:
      good:
        pattern: '<li data-n="(?P<n>\\d+)"><b>(?P<name>[^<]+)</b><i>(?P<price>[\\d.]+)</i>'
        clean: {{n: int, price: float}}
      links:
        follow:
          - {{pattern: '<a href="(?P<url>[^"]+)">', to: good}}
      evil:
        pattern: '(x+x+)+y'
        fields: [run]
"""


@pytest.fixture(params=["aiohttp", "httpx"])
def transport(request: pytest.FixtureRequest) -> httpx.AsyncBaseTransport | None:
    """The default (aiohttp) transport, then httpx's own: neither may let a page break a crawl."""
    return None if request.param == "aiohttp" else httpx.AsyncHTTPTransport()


@pytest.fixture
def other_host() -> Iterator[FixtureSite]:
    """A second server, reached as ``localhost``: a host outside the spider's allowed_domains."""
    with FixtureSite() as other:
        yield other


# -- the pages ----------------------------------------------------------------------------------


def record_html(n: int, name: str, price: float) -> str:
    return f'<li data-n="{n}"><b>{name}</b><i>{price}</i></li>'


def record(site: FixtureSite, path: str, n: int, name: str, price: float) -> dict[str, Any]:
    """The record the spider must write for ``record_html(n, name, price)`` on ``path``."""
    return {"n": n, "name": name, "price": price, "url": site.url(path)}


def good_rows(page: int) -> list[tuple[int, str, float]]:
    return [(page * 10 + i, f"goods {page}-{i} é中", page + i / 4) for i in range(RECORDS_PER_PAGE)]


def good_html(page: int) -> str:
    items = "\n".join(record_html(*row) for row in good_rows(page))
    return f'<html><head><meta charset="utf-8"></head><body><ul>\n{items}\n</ul></body>'


def good_page(site: FixtureSite, page: int, path: str | None = None) -> list[dict[str, Any]]:
    """Serve /good/PAGE (or ``path``) with five records; return the records it must give."""
    path = path or f"/good/{page}"
    site.add(path, good_html(page))
    return [record(site, path, *row) for row in good_rows(page)]


@dataclass(frozen=True)
class Outcome:
    """What one hostile page must come to: a failure reason, a page without match, or records."""

    failed: str | None = None
    empty: bool = False
    records: list[dict[str, Any]] = field(default_factory=list)


Serve = Callable[[FixtureSite, FixtureSite, str], Outcome]
"""Puts a hostile page at a path of the site (the other host to hand); says what must happen."""


def reset(site: FixtureSite, other: FixtureSite, path: str) -> Outcome:
    site.add_fault(path, "reset", body=b"<html>" + b"x" * 20_000)
    return Outcome(failed="broken body")


def truncated(site: FixtureSite, other: FixtureSite, path: str) -> Outcome:
    # Content-Length says 5000, the server sends 12 bytes and closes.
    site.add_fault(path, "truncated", body=b"<p>cut short", length=5000)
    return Outcome(failed="broken body")


def hang(site: FixtureSite, other: FixtureSite, path: str) -> Outcome:
    site.add_fault(path, "hang")
    return Outcome(failed="timeout")


def slowloris(site: FixtureSite, other: FixtureSite, path: str) -> Outcome:
    # A byte every 0.25 s never leaves a read idle for long; 400 bytes would take 100 s.
    site.add_fault(path, "drip", interval=0.25, count=400)
    return Outcome(failed="timeout")


def ascii_records(site: FixtureSite, path: str, first: int) -> tuple[bytes, list[dict[str, Any]]]:
    rows = [(first + i, f"ascii {first + i}", 1.5 + i) for i in range(2)]
    html = "\n".join(record_html(*row) for row in rows).encode("ascii")
    return html, [record(site, path, *row) for row in rows]


def invalid_utf8(site: FixtureSite, other: FixtureSite, path: str) -> Outcome:
    html, records = ascii_records(site, path, 100)
    body = b"<html><body>\xff\xfe\x80 stray \xc3\x28 bytes\n" + html + b"\n\xed\xa0\x80</body>"
    site.add(path, body, content_type="text/html; charset=utf-8")
    return Outcome(records=records)


def mixed_utf8_gbk(site: FixtureSite, other: FixtureSite, path: str) -> Outcome:
    html, records = ascii_records(site, path, 110)
    body = (
        b"<html><body><p>" + "中文标题 utf-8".encode() + b"</p>\n"
        b"<p>" + "中文标题 gbk".encode("gbk") + b"</p>\n" + html + b"\n</body></html>"
    )
    site.add(path, body, content_type="text/html")
    return Outcome(records=records)


def unknown_charset(site: FixtureSite, other: FixtureSite, path: str) -> Outcome:
    html, records = ascii_records(site, path, 120)
    body = b"<html><body>" + "caf\xe9 ".encode("latin-1") + html + b"</body></html>"
    site.add(path, body, content_type="text/html; charset=x-no-such-charset")
    return Outcome(records=records)


def binary(site: FixtureSite, other: FixtureSite, path: str) -> Outcome:
    site.add_fault(path, "binary")  # NUL-laden bytes served as text/html
    return Outcome(empty=True)


def huge(site: FixtureSite, other: FixtureSite, path: str) -> Outcome:
    site.add_fault(path, "huge", size=50_000_000)  # declares its 50 MB
    return Outcome(failed="too large")


def huge_chunked(site: FixtureSite, other: FixtureSite, path: str) -> Outcome:
    site.add_fault(path, "chunked", size=50_000_000)  # 50 MB with no Content-Length
    return Outcome(failed="too large")


def gzip_bomb_page(site: FixtureSite, other: FixtureSite, path: str) -> Outcome:
    site.add_fault(path, "gzip", bomb_size=BOMB_SIZE)  # 64 KiB on the wire, 64 MiB inflated
    return Outcome(failed="too large")


def redirect_to_file(site: FixtureSite, other: FixtureSite, path: str) -> Outcome:
    site.add_fault(path, "redirect", location="file:///etc/passwd")
    return Outcome(failed="redirect not http")


def redirect_offsite(site: FixtureSite, other: FixtureSite, path: str) -> Outcome:
    other.add("/stolen", record_html(999, "stolen", 9.99))
    site.add_fault(path, "redirect", location=f"http://localhost:{other.port}/stolen")
    return Outcome(failed="redirect offsite")


def empty(site: FixtureSite, other: FixtureSite, path: str) -> Outcome:
    site.add_fault(path, "empty")  # 200, Content-Length: 0
    return Outcome(empty=True)


def backtracking(site: FixtureSite, other: FixtureSite, path: str) -> Outcome:
    site.add(path, "<html><body>" + "x" * 20_000 + "</body></html>")
    return Outcome(failed="extract timeout")


HOSTILE: dict[str, tuple[Serve, str]] = {
    "reset": (reset, "good"),
    "truncated": (truncated, "good"),
    "hang": (hang, "good"),
    "slowloris": (slowloris, "good"),
    "invalid-utf8": (invalid_utf8, "good"),
    "mixed-utf8-gbk": (mixed_utf8_gbk, "good"),
    "unknown-charset": (unknown_charset, "good"),
    "binary": (binary, "good"),
    "huge": (huge, "good"),
    "huge-chunked": (huge_chunked, "good"),
    "gzip-bomb": (gzip_bomb_page, "good"),
    "redirect-file": (redirect_to_file, "good"),
    "redirect-offsite": (redirect_offsite, "good"),
    "empty": (empty, "good"),
    "backtracking": (backtracking, "evil"),
}
"""Case name -> (what serves it, the page kind its URL is sent to)."""


def link_flood(site: FixtureSite, other: FixtureSite) -> str:
    """Serve /links: 10,000 links, each same-host page twice (spelt two ways), and 100 offsite.

    Returns its path. The leaves /leaf/K hold one record each.
    """
    distinct = (LINKS - OFFSITE_LINKS) // 2
    hrefs = []
    for k in range(distinct):
        hrefs += [f"/leaf/{k}?a=1&amp;b=2", f"leaf/{k}?b=2&a=1#again"]
        if k < LEAVES_ADMITTED:
            site.add(f"/leaf/{k}", record_html(1000 + k, f"leaf {k}", 0.5))
    hrefs += [f"http://localhost:{other.port}/leaf/{k}" for k in range(OFFSITE_LINKS)]
    assert len(hrefs) == LINKS
    site.add("/links", "\n".join(f'<a href="{href}">link</a>' for href in hrefs))
    return "/links"


def leaf_records(site: FixtureSite) -> list[dict[str, Any]]:
    return [
        record(site, f"/leaf/{k}?a=1&b=2", 1000 + k, f"leaf {k}", 0.5)
        for k in range(LEAVES_ADMITTED)
    ]


# -- running ------------------------------------------------------------------------------------


def make_spider(
    site: FixtureSite,
    start: list[tuple[str, str]],
    *,
    retries: int,
    max_pages: int,
    extract_timeout: float = 0.5,
) -> SpiderSpec:
    entries = "\n".join(
        f"      - {{url: '{site.url(path)}', page: {kind}}}" for path, kind in start
    )
    text = textwrap.dedent(SPIDER).format(
        start=entries, retries=retries, max_pages=max_pages, extract_timeout=extract_timeout
    )
    return parse_spiders(text, "hostile.yaml").get("hostile")


def crawl(
    spider: SpiderSpec, tmp_path: Path, transport: httpx.AsyncBaseTransport | None = None
) -> tuple[CrawlStats, list[dict[str, Any]], float]:
    """Run ``spider`` to the end; return its stats, the records written and the seconds taken."""
    out = tmp_path / "out.jsonl"
    writer = JsonLinesWriter(out)
    started = time.monotonic()
    try:
        stats = asyncio.run(Crawler(spider, writer, transport=transport).run())
    finally:
        writer.close()
    elapsed = time.monotonic() - started
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert stats.records == len(records)
    return stats, records, elapsed


def by_n(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(records, key=lambda r: r["n"])


def page_paths(site: FixtureSite) -> Counter[str]:
    return Counter(r.path for r in site.requests if r.path != "/robots.txt")


# -- the whole site at once ---------------------------------------------------------------------


def test_hostile_pages_cannot_break_a_crawl(
    site: FixtureSite,
    other_host: FixtureSite,
    tmp_path: Path,
    transport: httpx.AsyncBaseTransport | None,
) -> None:
    gzip_bomb(BOMB_SIZE)  # built (and cached) before the clock starts
    good = [r for page in range(GOOD_PAGES) for r in good_page(site, page)]
    assert len(good) == 50
    start = [(f"/good/{page}", "good") for page in range(GOOD_PAGES)]
    outcomes = {}
    for name, (serve, kind) in HOSTILE.items():
        path = f"/hostile/{name}"
        outcomes[name] = serve(site, other_host, path)
        start.append((path, kind))
    start.append((link_flood(site, other_host), "links"))  # last: every other start is admitted
    spider = make_spider(site, start, retries=1, max_pages=len(start) + LEAVES_ADMITTED)

    stats, records, elapsed = crawl(spider, tmp_path, transport)

    assert elapsed < 12.0  # two 1.5 s attempts at the slowest page, and some slack
    extra = [r for outcome in outcomes.values() for r in outcome.records]
    assert by_n(records) == by_n(good + extra + leaf_records(site))
    assert stats.failed == Counter(o.failed for o in outcomes.values() if o.failed)
    assert stats.failed == {
        "broken body": 2,
        "timeout": 2,
        "too large": 3,
        "redirect not http": 1,
        "redirect offsite": 1,
        "extract timeout": 1,
    }
    assert stats.empty_pages == {"good": 2}
    assert sorted(stats.empty_urls["good"]) == sorted(
        [site.url("/hostile/binary"), site.url("/hostile/empty")]
    )
    # good pages, three odd charsets, binary, empty, the link flood and the leaves it let in
    assert stats.pages == GOOD_PAGES + 3 + 2 + 1 + LEAVES_ADMITTED
    # The link flood: each same-host page spelt two ways is admitted once; max_pages turns
    # away the rest (each spelling counted), offsite links are skipped without a request.
    assert stats.skipped == {
        "max_pages": LINKS - OFFSITE_LINKS - 2 * LEAVES_ADMITTED,
        "offsite": OFFSITE_LINKS,
        "already seen": LEAVES_ADMITTED,  # each admitted leaf is linked twice
    }
    leaves = {path for path in page_paths(site) if path.startswith("/leaf/")}
    assert leaves == {f"/leaf/{k}" for k in range(LEAVES_ADMITTED)}
    assert other_host.requests == []


# -- each case on its own -----------------------------------------------------------------------


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_page_costs_only_itself(
    site: FixtureSite, other_host: FixtureSite, tmp_path: Path, name: str
) -> None:
    serve, kind = HOSTILE[name]
    good = good_page(site, 0)
    outcome = serve(site, other_host, "/hostile")
    spider = make_spider(site, [("/hostile", kind), ("/good/0", "good")], retries=0, max_pages=2)

    stats, records, elapsed = crawl(spider, tmp_path)

    assert elapsed < 5.0
    assert by_n(records) == by_n(good + outcome.records)
    assert stats.failed == (Counter([outcome.failed]) if outcome.failed else Counter())
    assert stats.empty_pages == (Counter(good=1) if outcome.empty else Counter())
    assert other_host.requests == []


# The follow pattern itself finds the 10,000 links in a few milliseconds; 0.1 s is an
# extract_timeout any benign pattern should meet on this page.
@pytest.mark.parametrize("extract_timeout", [0.5, 0.1])
def test_link_flood_admits_each_page_once(
    site: FixtureSite, other_host: FixtureSite, tmp_path: Path, extract_timeout: float
) -> None:
    path = link_flood(site, other_host)
    spider = make_spider(
        site,
        [(path, "links")],
        retries=0,
        max_pages=1 + LEAVES_ADMITTED,
        extract_timeout=extract_timeout,
    )

    stats, records, elapsed = crawl(spider, tmp_path)

    assert elapsed < 5.0
    assert stats.failed == {}
    assert by_n(records) == leaf_records(site)
    assert stats.skipped == {
        "max_pages": LINKS - OFFSITE_LINKS - 2 * LEAVES_ADMITTED,
        "offsite": OFFSITE_LINKS,
        "already seen": LEAVES_ADMITTED,  # each admitted leaf is linked twice
    }
    assert (stats.pages, stats.failures) == (1 + LEAVES_ADMITTED, 0)
    expected_paths = {path: 1} | {f"/leaf/{k}": 1 for k in range(LEAVES_ADMITTED)}
    assert page_paths(site) == Counter(expected_paths)
    assert other_host.requests == []


def test_a_backtracking_page_does_not_stall_fetches_in_flight(
    site: FixtureSite, other_host: FixtureSite, tmp_path: Path
) -> None:
    # The hostile page spends its whole extract_timeout (2 s) in its pattern. Meanwhile a
    # good page, asked for first, answers in 0.6 s, well within its 1.5 s timeout: it must
    # not be failed because the crawler was busy with another page.
    site.add_fault("/slow", "slow", delay=0.6, body=good_html(0))
    backtracking(site, other_host, "/evil")
    start = [("/slow", "good"), ("/evil", "evil")]
    spider = make_spider(site, start, retries=0, max_pages=2, extract_timeout=2.0)

    stats, records, elapsed = crawl(spider, tmp_path)

    assert elapsed < 5.0
    assert stats.failed == {"extract timeout": 1}
    assert by_n(records) == [record(site, "/slow", *row) for row in good_rows(0)]


def test_a_sub_that_backtracks_on_a_field_fails_only_its_page(
    site: FixtureSite, tmp_path: Path
) -> None:
    # The page pattern is harmless; the field's sub: is not, on the field a stranger's page
    # gives it. It runs under the page's extract_timeout like the pattern does.
    site.add("/good", "<p>xxy</p>")
    site.add("/evil", "<p>" + "x" * 5_000 + "</p>")
    text = f"""
spiders:
  subs:
    start: ['{site.url("/good")}', '{site.url("/evil")}']
    robots: false
    retries: 0
    extract_timeout: 0.5
    pattern: '<p>(?P<body>x+y?)</p>'
    clean:
      body: {{sub: ['(x+x+)+y', 'Y']}}
"""
    spider = parse_spiders(text, "subs.yaml").get("subs")

    stats, records, elapsed = crawl(spider, tmp_path)

    assert elapsed < 5.0
    assert stats.failed == {"extract timeout": 1}
    assert records == [{"body": "Y"}]
