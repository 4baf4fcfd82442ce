"""One hostile answer in a 300-page crawl costs at most its own page, with a named reason.

Each case serves 300 good pages with one of them replaced by an answer that once broke
the fetch layer (a RecursionError, a UnicodeError, a ValueError escaping and ending the
crawl with exit 0). The crawl must write the other 299 records, count the hostile page
under its reason and exit 1, or write all 300 where the answer can be read, and exit 0.
The crawl runs through ``scraper run`` (aiohttp) for the exit status and the summary,
and through the ``Crawler`` over httpx for the other wire.
"""

from __future__ import annotations

import json
import socketserver
import textwrap
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from scraper.cli import main
from scraper.spec import parse_spiders
from tests.server import FixtureSite
from tests.test_crawl import crawl, make_spider

PAGES = 300
HTTPX_PAGES = 60
"""The same check over the other wire, on fewer pages."""
HOSTILE = 42
SPIDER = """
    spiders:
      test:
        start: SITE/p/{n}
        vars: {n: {range: [0, PAGES]}}
        retries: 0
        timeout: 5
        pattern: '<h1>Page (?P<n>\\d+)</h1>(?P<tail>[^<]*)'
        clean: {n: int}
"""


def page_html(n: int) -> str:
    return f"<html><body><h1>Page {n}</h1></body></html>"


@dataclass(frozen=True)
class Case:
    """A hostile answer for /p/HOSTILE and what must come of it (``None``: its record)."""

    serve: Callable[[FixtureSite, str], None]
    failed: str | None = None
    httpx_failed: str | None = None
    """The reason over httpx, where h11 refuses the answer before we see it."""


def gzip_lie(site: FixtureSite, path: str) -> None:
    site.add(path, page_html(HOSTILE), headers={"Content-Encoding": "gzip"})


def gzip_broken(site: FixtureSite, path: str) -> None:
    good = zlib.compress(page_html(HOSTILE).encode(), wbits=31)
    site.add(path, good[:12] + b"\x00\xff" * 20, headers={"Content-Encoding": "gzip"})


def deflate_bare(site: FixtureSite, path: str) -> None:
    body = zlib.compress(page_html(HOSTILE).encode(), wbits=-15)
    site.add(path, body, headers={"Content-Encoding": "deflate"})


def charset(label: str, body: str | None = None) -> Callable[[FixtureSite, str], None]:
    def serve(site: FixtureSite, path: str) -> None:
        site.add(path, body or page_html(HOSTILE), content_type=f"text/html; charset={label}")

    return serve


def meta_charset(label: str) -> Callable[[FixtureSite, str], None]:
    def serve(site: FixtureSite, path: str) -> None:
        html = f'<html><head><meta charset="{label}"></head><body><h1>Page {HOSTILE}</h1>'
        site.add(path, html, content_type="text/html")

    return serve


def location(value: str, status: int = 302) -> Callable[[FixtureSite, str], None]:
    def serve(site: FixtureSite, path: str) -> None:
        site.add_fault(path, "raw", status=status, headers=[("Location", value)])

    return serve


def status(code: int) -> Callable[[FixtureSite, str], None]:
    def serve(site: FixtureSite, path: str) -> None:
        site.add_fault(path, "raw", status=code, body=page_html(HOSTILE))

    return serve


def retry_after(value: str) -> Callable[[FixtureSite, str], None]:
    def serve(site: FixtureSite, path: str) -> None:
        site.add_fault(path, "raw", status=429, headers=[("Retry-After", value)], body="slow")

    return serve


# A lone surrogate in UTF-7 ("+2D0-") and in the escape codecs: never trusted, so the
# page is read as the UTF-8 it also is, and its record is written.
SURROGATE_PAGE = f"<html><body><h1>Page {HOSTILE}</h1> +2D0- \\ud800 </body></html>"

CASES = {
    "gzip label on a plain body": Case(gzip_lie),
    "gzip body broken after its header": Case(gzip_broken, "bad encoding"),
    "deflate without its zlib header": Case(deflate_bare),
    "charset=undefined": Case(charset("undefined")),
    "charset=punycode": Case(charset("punycode")),
    "charset=utf-7 with a lone surrogate": Case(charset("utf-7", SURROGATE_PAGE)),
    "charset=unicode_escape": Case(charset("unicode_escape", SURROGATE_PAGE)),
    "charset=raw_unicode_escape": Case(charset("raw_unicode_escape", SURROGATE_PAGE)),
    '<meta charset="undefined">': Case(meta_charset("undefined")),
    '<meta charset="cp037">': Case(meta_charset("cp037")),
    "Location: http://[oops/": Case(location("http://[oops/"), "bad redirect"),
    "Location: http://a＃b.example/": Case(location("http://a＃b.example/"), "bad redirect"),
    "302 without Location": Case(status(302), "redirect without location"),
    "101 as the final answer": Case(status(101), "http 101", "connection error"),
    "Retry-After: a date in -0000": Case(
        retry_after("Wed, 21 Oct 2015 07:28:00 -0000"), "http 429"
    ),
    "Retry-After: ²": Case(retry_after("²"), "http 429"),
}


def serve_site(site: FixtureSite, case: Case, pages: int = PAGES) -> None:
    for n in range(pages):
        if n != HOSTILE:
            site.add(f"/p/{n}", page_html(n))
    case.serve(site, f"/p/{HOSTILE}")


def spider_text(site: FixtureSite, pages: int = PAGES) -> str:
    return textwrap.dedent(SPIDER).replace("SITE", site.base).replace("PAGES", str(pages))


def expected_numbers(failed: str | None, pages: int = PAGES) -> list[int]:
    return [n for n in range(pages) if failed is None or n != HOSTILE]


@pytest.mark.parametrize("name", CASES)
def test_one_hostile_answer_in_a_crawl_costs_at_most_its_page(
    name: str,
    site: FixtureSite,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    case = CASES[name]
    serve_site(site, case)
    (tmp_path / "spiders.yaml").write_text(spider_text(site), encoding="utf-8")
    monkeypatch.chdir(tmp_path)

    status = main(["run", "test", "-o", "out.jsonl"])

    err = capsys.readouterr().err
    lines = (tmp_path / "out.jsonl").read_bytes().decode("utf-8").splitlines()  # strict UTF-8
    assert sorted(json.loads(line)["n"] for line in lines) == expected_numbers(case.failed)
    if case.failed is None:
        assert status == 0, err
        assert "pages failed:    0\n" in err
    else:
        assert status == 1, err
        assert f"pages failed:    1 ({case.failed}: 1)\n" in err
        assert f"scraper: WARNING: failed {site.url(f'/p/{HOSTILE}')}: " in err
    assert "Traceback" not in err


@pytest.mark.parametrize("name", CASES)
def test_one_hostile_answer_over_httpx_costs_at_most_its_page(
    name: str, site: FixtureSite, tmp_path: Path
) -> None:
    case = CASES[name]
    serve_site(site, case, HTTPX_PAGES)
    spider = make_spider(site, spider_text(site, HTTPX_PAGES))

    stats, records = crawl(spider, tmp_path, transport=httpx.AsyncHTTPTransport())

    failed = case.httpx_failed or case.failed
    assert sorted(r["n"] for r in records) == expected_numbers(failed, HTTPX_PAGES)
    assert dict(stats.failed) == ({failed: 1} if failed else {})


# -- scraper try on the same answers --------------------------------------------------------


@pytest.mark.parametrize(
    "serve", [gzip_lie, meta_charset("undefined"), charset("utf-7", SURROGATE_PAGE)]
)
def test_try_reads_a_mislabelled_page(
    serve: Callable[[FixtureSite, str], None],
    site: FixtureSite,
    capsys: pytest.CaptureFixture[str],
) -> None:
    serve(site, "/page")

    status = main(["try", site.url("/page"), "--pattern", r"<h1>Page (?P<n>\d+)</h1>"])

    out, err = capsys.readouterr()
    assert (status, err) == (0, "")
    assert out.startswith("1 matches (0 dropped) in ")
    assert out.splitlines()[2:] == ["n", "--", str(HOSTILE)]


def test_try_on_a_broken_gzip_page_says_why(
    site: FixtureSite, capsys: pytest.CaptureFixture[str]
) -> None:
    gzip_broken(site, "/page")

    status = main(["try", site.url("/page"), "--pattern", "x"])

    out, err = capsys.readouterr()
    assert (status, out) == (2, "")
    assert err.startswith(f"scraper: error: cannot fetch {site.url('/page')}: bad encoding: ")
    assert err.count("\n") == 1


def test_bytes_after_a_1xx_answer_never_reach_the_next_page(
    site: FixtureSite, tmp_path: Path
) -> None:
    """The connection a 101 came on is closed, not handed to the next request."""
    for n in range(10):
        site.add(f"/p/{n}", page_html(n))
    site.add_fault("/p/0", "raw", status=101, body=b"xxxxx", trailing=b"x" * (1 << 20))
    text = spider_text(site, 10).replace("retries: 0", "retries: 0\n    concurrency: 1")
    spider = make_spider(site, text)

    stats, records = crawl(spider, tmp_path)

    assert sorted(r["n"] for r in records) == list(range(1, 10))
    assert dict(stats.failed) == {"http 101": 1}


class _TrailingBytesHandler(socketserver.StreamRequestHandler):
    """Keep-alive answers; /p/3's is followed, a moment later, by bytes past its end."""

    def handle(self) -> None:
        while True:
            request = self.rfile.readline()
            if not request:
                return
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            path = request.split()[1].decode()
            self.server.paths.append(path)  # type: ignore[attr-defined]
            body = page_html(int(path.rsplit("/", 1)[1])).encode()
            head = f"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {len(body)}"
            self.wfile.write(head.encode() + b"\r\n\r\n" + body)
            self.wfile.flush()
            if path == "/p/3":
                time.sleep(0.05)  # the connection is back in the client's pool by now
                self.wfile.write(b"<p>bytes past Content-Length</p>\r\n\r\n")


def test_bytes_an_answer_sends_past_its_end_cost_no_other_page(tmp_path: Path) -> None:
    """The next request on that kept-alive connection reads them as its status line: it
    is sent again, on a connection of its own, and its page is not lost."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _TrailingBytesHandler)
    server.daemon_threads = True
    server.paths = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        text = SPIDER.replace("SITE", base).replace("PAGES", "10")
        text = text.replace(
            "retries: 0", "retries: 0\n        concurrency: 1\n        robots: false"
        )
        spider = parse_spiders(textwrap.dedent(text), "test.yaml").get("test")
        stats, records = crawl(spider, tmp_path)
    finally:
        server.shutdown()
        server.server_close()
    assert sorted(r["n"] for r in records) == list(range(10))
    assert dict(stats.failed) == {}
