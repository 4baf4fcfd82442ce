"""The fetcher against a real local HTTP server: charsets, size caps, retries, redirects.

Every test fetches from a ``FixtureSite`` on 127.0.0.1 and checks what the fetcher
returned (or the ``FetchError`` reason it raised) and what the server saw.
"""

from __future__ import annotations

import asyncio
import codecs
import random
import time
import tracemalloc
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from scraper import charset
from scraper.charset import LABELS
from scraper.errors import FetchError
from scraper.fetch import Fetcher, _retry_after, decode
from scraper.models import Page, Request
from scraper.spec import DEFAULT_USER_AGENT, CrawlSettings
from scraper.wire import open_wire
from tests.server import FixtureSite, gzip_bomb
from tests.sites.make_sites import gbk_records

GBK_DIR = Path(__file__).parent / "sites" / "gbk"
GB2312_PAGE = (GBK_DIR / "list_gb2312.html").read_bytes()
MISLABELLED_PAGE = (GBK_DIR / "mislabelled_gbk.html").read_bytes()
GB2312_TITLES = [r["title"] for r in gbk_records()]
MISLABELLED_TITLES = [r["title"] for r in gbk_records(mislabelled=True)]
MiB = 1 << 20


@pytest.fixture(params=["aiohttp", "httpx"])
def transport(request: pytest.FixtureRequest) -> httpx.AsyncBaseTransport | None:
    """The default (aiohttp) transport, then httpx's own: key behaviour must not depend on it."""
    return None if request.param == "aiohttp" else httpx.AsyncHTTPTransport()


async def _fetch(
    url: str,
    settings: CrawlSettings,
    transport: httpx.AsyncBaseTransport | None,
    allow_url: Callable[[str], bool],
) -> Page:
    wire = open_wire(settings, transport)
    try:
        return await Fetcher(wire, settings, allow_url).fetch(Request(url))
    finally:
        await wire.aclose()


def fetch(
    url: str,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    allow_url: Callable[[str], bool] = lambda url: True,
    **settings: Any,
) -> Page:
    """Fetch ``url`` once with test settings (no retries, 5 s timeout unless given)."""
    options = {"retries": 0, "timeout": 5.0, **settings}
    return asyncio.run(_fetch(url, CrawlSettings(**options), transport, allow_url))


def fetch_failure(url: str, **options: Any) -> FetchError:
    """The ``FetchError`` that fetching ``url`` raises."""
    with pytest.raises(FetchError) as failure:
        fetch(url, **options)
    return failure.value


def timed(function: Callable[[], Any]) -> tuple[Any, float]:
    start = time.monotonic()
    return function(), time.monotonic() - start


# -- charset -----------------------------------------------------------------------------------


def test_header_charset_decides(site: FixtureSite) -> None:
    site.add("/ru", "<p>Привет, мир</p>".encode("cp1251"), content_type="text/html; charset=cp1251")
    page = fetch(site.url("/ru"))
    assert page.text == "<p>Привет, мир</p>"
    assert page.encoding == "cp1251"
    assert page.status == 200


def test_meta_charset_when_the_header_has_none(site: FixtureSite) -> None:
    site.add("/gb", GB2312_PAGE, content_type="text/html")
    page = fetch(site.url("/gb"))
    assert page.encoding == "gb18030"  # the WHATWG reading of a gb2312 label
    for title in GB2312_TITLES:
        assert title in page.text
    assert GB2312_TITLES[0] == "2019年奇幻动画《海湖秋影》BD中英双字幕"
    assert GB2312_TITLES[-1] == "2018年科幻动作《河关守望》BD中英双字幕"
    assert "\r\n" in page.text  # CRLF kept as served
    assert "\ufffd" not in page.text


def test_meta_http_equiv_charset(site: FixtureSite) -> None:
    body = (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=gb2312">'
        "</head><body><h1>最新电影下载</h1></body></html>"
    )
    site.add("/equiv", body.encode("gb2312"), content_type="text/html")
    page = fetch(site.url("/equiv"))
    assert "<h1>最新电影下载</h1>" in page.text
    assert page.encoding == "gb18030"


def test_mislabelled_gbk_is_detected(site: FixtureSite) -> None:
    # <meta charset="utf-8"> over GBK bytes, with 喆 and · that GB2312 does not have.
    site.add("/mis", MISLABELLED_PAGE, content_type="text/html")
    page = fetch(site.url("/mis"))
    for title in MISLABELLED_TITLES:
        assert title in page.text
    assert "喆·" in MISLABELLED_TITLES[2]
    assert page.encoding in ("gb18030", "gbk")
    assert "\ufffd" not in page.text


def test_header_says_utf8_but_bytes_are_gbk(site: FixtureSite) -> None:
    site.add("/liar", GB2312_PAGE, content_type="text/html; charset=utf-8")
    page = fetch(site.url("/liar"))
    for title in GB2312_TITLES:
        assert title in page.text
    assert page.encoding != "utf-8"


def test_latin1_label_reads_as_windows_1252(site: FixtureSite) -> None:
    # 0x80 is € in windows-1252 and a control character in ISO-8859-1; browsers show €.
    body = "<p>café crème – 5 €</p>".encode("cp1252")
    site.add("/latin", body, content_type="text/html; charset=ISO-8859-1")
    page = fetch(site.url("/latin"))
    assert page.text == "<p>café crème – 5 €</p>"
    assert page.encoding == "cp1252"


@pytest.mark.parametrize(
    ("bom", "codec", "encoding"),
    [(codecs.BOM_UTF8, "utf-8", "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16-le", "utf-16")],
)
def test_bom_wins_over_the_header(site: FixtureSite, bom: bytes, codec: str, encoding: str) -> None:
    site.add(
        "/bom", bom + "<p>中文 ok</p>".encode(codec), content_type="text/html; charset=latin-1"
    )
    page = fetch(site.url("/bom"))
    assert page.text == "<p>中文 ok</p>"  # the BOM itself is not part of the text
    assert page.encoding == encoding


def test_decode_without_any_label_prefers_utf8() -> None:
    assert decode("<p>naïve 中文</p>".encode(), None) == ("<p>naïve 中文</p>", "utf-8")
    assert decode(b"", None) == ("", "utf-8")


def test_decode_unknown_label_falls_back() -> None:
    text, encoding = decode("<p>中文</p>".encode(), "x-no-such-charset")
    assert (text, encoding) == ("<p>中文</p>", "utf-8")


# -- size cap ----------------------------------------------------------------------------------


def test_declared_content_length_over_cap_is_refused_unread(site: FixtureSite) -> None:
    site.add_fault("/huge", "huge", size=50_000_000)
    failure, elapsed = timed(lambda: fetch_failure(site.url("/huge"), max_bytes=MiB))
    assert failure.reason == "too large"
    assert "declares 50000000 bytes (max_bytes: 1048576)" in failure.detail
    assert elapsed < 2.0


def test_streamed_body_without_length_over_cap_is_refused(site: FixtureSite) -> None:
    site.add_fault("/stream", "chunked", size=50_000_000)
    failure, elapsed = timed(lambda: fetch_failure(site.url("/stream"), max_bytes=MiB))
    assert failure.reason == "too large"
    assert "over max_bytes (1048576 bytes)" in failure.detail
    assert elapsed < 2.0
    assert site.requests[0].path == "/stream"


def test_streamed_body_under_cap_is_read(site: FixtureSite) -> None:
    site.add_fault("/stream", "chunked", size=200_000)
    page = fetch(site.url("/stream"), max_bytes=MiB)
    assert len(page.content) == 200_000
    assert page.text.endswith("</body></html>\n")


def test_gzip_page_is_decoded(site: FixtureSite, transport: httpx.AsyncBaseTransport) -> None:
    site.add_fault("/gz", "gzip", body="<p>gzipped: 中文</p>")
    page = fetch(site.url("/gz"), transport=transport)
    assert page.text == "<p>gzipped: 中文</p>"
    assert page.content == "<p>gzipped: 中文</p>".encode()


def test_gzip_bomb_is_refused_with_little_memory(
    site: FixtureSite, transport: httpx.AsyncBaseTransport
) -> None:
    bomb_size = 64 * MiB  # about 64 KiB on the wire
    gzip_bomb(bomb_size)  # built (and cached) before measuring
    site.add_fault("/bomb", "gzip", bomb_size=bomb_size)
    tracemalloc.start()
    try:
        failure = fetch_failure(site.url("/bomb"), max_bytes=MiB, transport=transport)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert failure.reason == "too large"
    # The cap is 1 MiB: the fetcher may hold a few MiB, never tens of decompressed MiB.
    assert peak < 16 * MiB, f"peak {peak / MiB:.0f} MiB to refuse a {bomb_size // MiB} MiB bomb"


# -- retries -----------------------------------------------------------------------------------


def test_503_then_200_is_retried(site: FixtureSite, transport: httpx.AsyncBaseTransport) -> None:
    site.add_fault(
        "/flaky",
        "sequence",
        responses=[(503, {"Retry-After": "1"}, "down"), (200, None, "<p>back</p>")],
    )
    page = fetch(site.url("/flaky"), retries=2, transport=transport)
    assert page.text == "<p>back</p>"
    assert site.count("/flaky") == 2


def test_500_forever_fails_after_all_attempts(site: FixtureSite) -> None:
    site.add_fault("/down", "status", status=500)
    failure = fetch_failure(site.url("/down"), retries=2)
    assert failure.reason == "http 500"
    assert site.count("/down") == 3
    first, second, third = (r.started for r in site.requests)
    assert third - second > second - first  # exponential backoff


def test_404_is_not_retried(site: FixtureSite) -> None:
    site.add_fault("/gone", "status", status=404)
    failure = fetch_failure(site.url("/gone"), retries=3)
    assert failure.reason == "http 404"
    assert site.count("/gone") == 1


def test_429_waits_for_retry_after(site: FixtureSite) -> None:
    site.add_fault(
        "/busy",
        "sequence",
        responses=[(429, {"Retry-After": "1"}, "slow down"), (200, None, "<p>ok</p>")],
    )
    assert fetch(site.url("/busy"), retries=1).text == "<p>ok</p>"
    first, second = (r.started for r in site.requests)
    assert 0.95 <= second - first < 1.6


def test_retry_after_zero_retries_at_once(site: FixtureSite) -> None:
    site.add_fault(
        "/now",
        "sequence",
        responses=[(503, {"Retry-After": "0"}, "again"), (200, None, "<p>ok</p>")],
    )
    assert fetch(site.url("/now"), retries=1).text == "<p>ok</p>"
    first, second = (r.started for r in site.requests)
    assert second - first < 1.0


@pytest.mark.parametrize("mode", ["reset", "truncated"])
def test_broken_bodies_are_retried_then_fail(
    site: FixtureSite, transport: httpx.AsyncBaseTransport, mode: str
) -> None:
    site.add_fault("/broken", mode)
    failure = fetch_failure(site.url("/broken"), retries=1, transport=transport)
    assert failure.reason == "broken body"
    assert site.count("/broken") == 2


def test_connection_refused_is_a_connect_error(transport: httpx.AsyncBaseTransport) -> None:
    with FixtureSite() as gone:
        url = gone.url("/x")  # nothing listens there once it has stopped
    failure, elapsed = timed(lambda: fetch_failure(url, retries=1, transport=transport))
    assert failure.reason == "connect error"
    assert elapsed < 2.0


def test_hanging_server_times_out_and_is_retried(site: FixtureSite) -> None:
    site.add_fault("/hang", "hang")
    failure, elapsed = timed(lambda: fetch_failure(site.url("/hang"), timeout=0.5, retries=1))
    assert failure.reason == "timeout"
    assert site.count("/hang") == 2
    assert elapsed < 2.5  # two 0.5 s attempts and one short backoff


def test_drip_fed_body_hits_the_total_deadline(
    site: FixtureSite, transport: httpx.AsyncBaseTransport
) -> None:
    # A byte every 0.2 s never trips a per-read timeout of 0.5 s; 100 bytes take 20 s.
    site.add_fault("/drip", "drip", interval=0.2, count=100)
    failure, elapsed = timed(
        lambda: fetch_failure(site.url("/drip"), timeout=0.5, transport=transport)
    )
    assert failure.reason == "timeout"
    assert elapsed < 1.5


# -- redirects ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_relative_redirect_is_followed(site: FixtureSite, status: int) -> None:
    site.add_fault("/old/start", "redirect", location="../new/page?x=1", status=status)
    site.add("/new/page", "<p>moved here</p>")
    page = fetch(site.url("/old/start"))
    assert page.url == site.url("/new/page?x=1")
    assert page.text == "<p>moved here</p>"
    assert page.request.url == site.url("/old/start")
    assert site.paths() == ["/old/start", "/new/page?x=1"]


def test_redirect_chain_up_to_max_redirects(site: FixtureSite) -> None:
    for n in range(3):
        site.add_fault(f"/r{n}", "redirect", location=f"/r{n + 1}")
    site.add("/r3", "<p>end</p>")
    assert fetch(site.url("/r0"), max_redirects=3).url == site.url("/r3")


def test_too_many_redirects(site: FixtureSite) -> None:
    for n in range(5):
        site.add_fault(f"/r{n}", "redirect", location=f"/r{n + 1}")
    site.add("/r5", "<p>end</p>")
    failure = fetch_failure(site.url("/r0"), max_redirects=3)
    assert failure.reason == "too many redirects"
    assert site.paths() == ["/r0", "/r1", "/r2", "/r3"]


def test_redirect_loop(site: FixtureSite) -> None:
    site.add_fault("/a", "redirect", location="/b")
    site.add_fault("/b", "redirect", location="/a")
    failure = fetch_failure(site.url("/a"), retries=2)
    assert failure.reason == "redirect loop"
    assert site.paths() == ["/a", "/b"]  # not retried either


def test_redirect_to_a_file_url_is_refused(site: FixtureSite) -> None:
    site.add_fault("/sneaky", "redirect", location="file:///etc/passwd")
    failure = fetch_failure(site.url("/sneaky"))
    assert failure.reason == "redirect not http"
    assert "file:///etc/passwd" in failure.detail


@pytest.mark.parametrize("location", ["http://localhost:{port}/elsewhere", "//localhost:{port}/x"])
def test_redirect_offsite_is_refused(site: FixtureSite, location: str) -> None:
    site.add_fault("/out", "redirect", location=location.format(port=site.port))
    failure = fetch_failure(
        site.url("/out"), allow_url=lambda url: urlsplit(url).hostname == "127.0.0.1"
    )
    assert failure.reason == "redirect offsite"
    assert site.paths() == ["/out"]


# -- content -----------------------------------------------------------------------------------


def test_image_is_not_text(site: FixtureSite) -> None:
    site.add("/logo.png", b"\x89PNG\r\n\x1a\n" + bytes(64), content_type="image/png")
    failure = fetch_failure(site.url("/logo.png"))
    assert failure.reason == "not text"
    assert "image/png" in failure.detail


def test_empty_body_is_an_empty_page(site: FixtureSite) -> None:
    site.add_fault("/empty", "empty")
    page = fetch(site.url("/empty"))
    assert (page.status, page.text, page.content) == (200, "", b"")


def test_user_agent_is_sent(site: FixtureSite) -> None:
    site.add("/ua", "<p>hi</p>")
    fetch(site.url("/ua"))
    headers = {name.lower(): value for name, value in site.requests[0].headers.items()}
    assert headers["user-agent"] == DEFAULT_USER_AGENT


# -- only the charsets a browser would use; never a lone surrogate -------------------------------


@pytest.mark.parametrize(
    ("label", "encoding"),
    [
        ("latin1", "cp1252"),
        ("US-ASCII", "cp1252"),
        ("GBK", "gb18030"),
        ("Shift_JIS", "cp932"),
        ("utf-16", "utf-16-le"),
        ("undefined", "utf-8"),  # a Python codec that raises UnicodeError, not a web one
        ("punycode", "utf-8"),
        ("utf-7", "utf-8"),
        ("unicode_escape", "utf-8"),
        ("raw_unicode_escape", "utf-8"),
        ("cp037", "utf-8"),  # EBCDIC
        ("iso-2022-kr", "utf-8"),  # the WHATWG "replacement" encoding: read as unknown
    ],
)
def test_decode_trusts_only_whatwg_labels(label: str, encoding: str) -> None:
    content = "<p>ok +2D0- \\ud800</p>".encode("utf-16-le" if encoding == "utf-16-le" else "ascii")
    text, used = decode(content, label)
    assert (text, used) == ("<p>ok +2D0- \\ud800</p>", encoding)


def test_decode_a_meta_charset_outside_whatwg_is_not_trusted() -> None:
    page = b'<html><head><meta charset="cp037"></head><body><h1>Title</h1></body></html>'
    assert decode(page, None) == (page.decode("ascii"), "utf-8")
    utf16_meta = b'<meta charset="utf-16"><p>caf\xc3\xa9</p>'  # ASCII-readable: not UTF-16
    assert decode(utf16_meta, None) == ('<meta charset="utf-16"><p>café</p>', "utf-8")


def test_decode_x_user_defined_maps_high_bytes_to_private_use() -> None:
    assert decode(b"a\x80\xff", "x-user-defined") == ("a\uf780\uf7ff", "x-user-defined")


def test_detection_is_held_to_the_same_labels() -> None:
    # charset_normalizer's first guess for this is cp037 (EBCDIC): not a web encoding.
    ebcdic = "Hello world, this is a test of EBCDIC text with some words.".encode("cp037")
    text, encoding = decode(ebcdic, None)
    assert encoding != "cp037"
    assert not any("\ud800" <= c <= "\udfff" for c in text)


def test_decode_never_returns_a_lone_surrogate() -> None:
    unpaired = "<p>x</p>".encode("utf-16-le") + b"\x00\xd8"  # a high surrogate, alone
    text, _ = decode(unpaired, "utf-16le")
    assert not any("\ud800" <= c <= "\udfff" for c in text)


# -- Retry-After: numbers in ASCII digits, dates in UTC when they do not say ---------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("²", None),  # str.isdigit() is true of it; float() is not
        ("٣", None),
        ("soon", None),
        ("", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
        ("Wed, 21 Oct 2015 07:28:00 -0000", 0.0),  # a naive datetime from the parser
        ("9" * 400, float("inf")),  # capped by the backoff
    ],
)
def test_retry_after_values(value: str, seconds: float | None) -> None:
    assert _retry_after(value) == seconds


def test_retry_after_a_future_date_without_zone_is_utc() -> None:
    when = datetime.now(timezone.utc) + timedelta(seconds=100)
    value = when.strftime("%a, %d %b %Y %H:%M:%S -0000")
    wait = _retry_after(value)
    assert wait is not None and 95 < wait <= 100


# -- a request the HTTP library refuses is a failed page -----------------------------------------


def test_a_header_value_with_a_newline_is_a_bad_request(
    site: FixtureSite, transport: httpx.AsyncBaseTransport
) -> None:
    site.add("/", "<p>x</p>")
    failure = fetch_failure(
        site.url("/"), transport=transport, headers={"User-Agent": "bot\nX-Injected: 1"}
    )
    assert failure.reason == "bad request"
    assert failure.detail.startswith(site.url("/") + ": ")


@pytest.mark.parametrize("codec", sorted(set(LABELS.values()) - {"replacement"}))
def test_no_codec_a_label_names_yields_a_lone_surrogate(codec: str) -> None:
    """Why decode() does not scan its text for one: random bytes in every allowed codec."""
    noise = random.Random(codec).randbytes(20_000)
    for errors in ("replace", "strict"):
        try:
            text = charset._decode(noise, codec, errors)
        except UnicodeDecodeError:
            continue
        assert not any("\ud800" <= c <= "\udfff" for c in text)
