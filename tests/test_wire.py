"""The wire seam (scraper/wire/): what every wire does the same, over a real local server.

Each test runs on the three wires: aiohttp, curl (pycurl's multi interface in a thread)
and httpx (over its own transport, as cassettes use it).
"""

from __future__ import annotations

import asyncio
import http.server
import shutil
import ssl
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from scraper.errors import FetchError, ScraperError, SpecError
from scraper.fetch import Fetcher
from scraper.models import Request
from scraper.spec import CrawlSettings, parse_spiders
from scraper.wire import Wire, WireError, WireResponse, open_wire, wire_name
from tests.server import FixtureSite

WIRES = ["aiohttp", "curl", "httpx"]
MiB = 1 << 20


@pytest.fixture(autouse=True)
def no_wire_override(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test names its wire: SCRAPER_WIRE (a whole suite on one wire) is not for these."""
    monkeypatch.delenv("SCRAPER_WIRE", raising=False)


def make_wire(kind: str, settings: CrawlSettings | None = None) -> Wire:
    settings = settings or CrawlSettings()
    if kind == "httpx":
        return open_wire(settings, httpx.AsyncHTTPTransport())
    return open_wire(CrawlSettings(**{**vars(settings), "wire": kind}))


async def read_all(response: WireResponse) -> bytes:
    try:
        return b"".join([chunk async for chunk in response.body()])
    finally:
        await response.close()


def curl_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "curl wire"]


@pytest.fixture(params=WIRES)
def kind(request: pytest.FixtureRequest) -> Iterator[str]:
    yield request.param
    if request.param == "curl":  # every test leaves no curl thread behind
        deadline = time.monotonic() + 3
        while curl_threads() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not curl_threads()


def test_status_headers_and_the_raw_body_as_sent(site: FixtureSite, kind: str) -> None:
    page = "<p>gzipped: 中文</p>".encode()
    site.add_fault("/gz", "gzip", body=page)
    site.add("/missing", "<p>no</p>", status=404, headers={"X-Why": "gone"})

    async def fetch() -> tuple[WireResponse, bytes, WireResponse]:
        wire = make_wire(kind)
        try:
            gz = await wire.get(site.url("/gz"))
            body = await read_all(gz)
            missing = await wire.get(site.url("/missing"))
            await read_all(missing)
            return gz, body, missing
        finally:
            await wire.aclose()

    gz, body, missing = asyncio.run(fetch())
    assert gz.status == 200
    assert gz.headers["content-encoding"] == gz.headers["Content-Encoding"] == "gzip"
    assert zlib.decompress(body, wbits=31) == page  # not inflated by the wire
    assert (b"Content-Encoding", b"gzip") in [(k, v) for k, v in gz.raw_headers]
    assert missing.status == 404 and missing.headers["x-why"] == "gone"
    sent = site.requests[0].headers
    assert sent["Accept-Encoding"] == "gzip, deflate"


def test_headers_given_to_get_are_sent_with_the_wires_own(site: FixtureSite, kind: str) -> None:
    site.add("/page", "<p>hello</p>")
    settings = CrawlSettings(headers={"User-Agent": "scraper-test/1"})

    async def fetch() -> int:
        wire = make_wire(kind, settings)
        try:
            response = await wire.get(site.url("/page"), {"If-None-Match": '"v1"'})
            await response.read()
            await response.close()
            plain = await wire.get(site.url("/page"))
            await plain.read()
            await plain.close()
            return response.status
        finally:
            await wire.aclose()

    assert asyncio.run(fetch()) == 200
    first, second = [r.headers for r in site.requests if r.path == "/page"]
    assert first["If-None-Match"] == '"v1"' and first["User-Agent"] == "scraper-test/1"
    assert "If-None-Match" not in second and second["User-Agent"] == "scraper-test/1"


def test_cookies_a_server_sets_are_sent_back(site: FixtureSite, kind: str) -> None:
    site.add("/login", "<p>in</p>", headers={"Set-Cookie": "session=abc123; Path=/"})
    site.add("/account", "<p>account</p>")

    async def fetch() -> None:
        wire = make_wire(kind)
        try:
            for path in ("/login", "/account"):
                await read_all(await wire.get(site.url(path)))
        finally:
            await wire.aclose()

    asyncio.run(fetch())
    login, account = site.requests
    assert "Cookie" not in login.headers
    assert account.headers["Cookie"] == "session=abc123"


def test_a_redirect_is_not_followed(site: FixtureSite, kind: str) -> None:
    site.add_fault("/old", "redirect", location="/new", status=301)
    site.add("/new", "<p>new</p>")

    async def fetch() -> WireResponse:
        wire = make_wire(kind)
        try:
            response = await wire.get(site.url("/old"))
            await read_all(response)
            return response
        finally:
            await wire.aclose()

    response = asyncio.run(fetch())
    assert response.status == 301 and response.headers["location"] == "/new"
    assert site.paths() == ["/old"]


def test_nothing_listening_is_a_connect_error(kind: str) -> None:
    with FixtureSite() as gone:
        url = gone.url("/x")

    async def fetch() -> None:
        wire = make_wire(kind)
        try:
            await wire.get(url)
        finally:
            await wire.aclose()

    with pytest.raises(WireError) as failure:
        asyncio.run(fetch())
    assert failure.value.reason == "connect error" and failure.value.retry


def test_a_get_cancelled_by_a_deadline_leaves_the_wire_working(
    site: FixtureSite, kind: str
) -> None:
    site.add_fault("/hang", "hang")
    site.add("/page", "<p>fine</p>")

    async def fetch() -> bytes:
        wire = make_wire(kind)
        try:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.3):
                    await wire.get(site.url("/hang"))
            return await read_all(await wire.get(site.url("/page")))
        finally:
            await wire.aclose()

    started = time.monotonic()
    assert asyncio.run(fetch()) == b"<p>fine</p>"
    assert time.monotonic() - started < 2


def test_a_body_over_max_bytes_is_refused_early(site: FixtureSite, kind: str) -> None:
    site.add_fault("/stream", "chunked", size=50_000_000)
    settings = CrawlSettings(max_bytes=MiB, retries=0, timeout=5)

    async def fetch() -> None:
        wire = make_wire(kind, settings)
        try:
            await Fetcher(wire, settings).fetch(Request(site.url("/stream")))
        finally:
            await wire.aclose()

    started = time.monotonic()
    with pytest.raises(FetchError) as failure:
        asyncio.run(fetch())
    assert failure.value.reason == "too large"
    assert "over max_bytes (1048576 bytes)" in failure.value.detail
    assert time.monotonic() - started < 2


def test_a_chunked_body_comes_whole(site: FixtureSite, kind: str) -> None:
    site.add_fault("/stream", "chunked", size=200_000, chunk=5000)

    async def fetch() -> bytes:
        wire = make_wire(kind)
        try:
            response = await wire.get(site.url("/stream"))
            assert "content-length" not in response.headers
            return await read_all(response)
        finally:
            await wire.aclose()

    body = asyncio.run(fetch())
    assert len(body) == 200_000 and body.endswith(b"</body></html>\n")


def test_requests_one_after_another_share_one_connection(site: FixtureSite, kind: str) -> None:
    for n in range(10):
        site.add(f"/p/{n}", f"<p>{n}</p>")

    async def fetch() -> list[bytes]:
        wire = make_wire(kind)
        try:
            return [await read_all(await wire.get(site.url(f"/p/{n}"))) for n in range(10)]
        finally:
            await wire.aclose()

    assert asyncio.run(fetch()) == [f"<p>{n}</p>".encode() for n in range(10)]
    assert site.connections_opened == 1


def test_concurrent_requests_each_get_their_own_answer(site: FixtureSite, kind: str) -> None:
    for n in range(60):
        site.add(f"/p/{n}", f"<p>{n}</p>" * (n * 50 + 1))

    async def fetch() -> list[bytes]:
        wire = make_wire(kind, CrawlSettings(concurrency=16))
        try:
            gets = [wire.get(site.url(f"/p/{n}")) for n in range(60)]
            return [await read_all(r) for r in await asyncio.gather(*gets)]
        finally:
            await wire.aclose()

    assert asyncio.run(fetch()) == [(f"<p>{n}</p>" * (n * 50 + 1)).encode() for n in range(60)]
    assert site.max_in_flight > 1


# -- the curl wire's own -----------------------------------------------------------------------


def test_a_closed_loop_ends_the_curl_thread_without_aclose(site: FixtureSite) -> None:
    site.add_fault("/hang", "hang")

    async def leave() -> None:
        wire = make_wire("curl")
        task = asyncio.ensure_future(wire.get(site.url("/hang")))
        await asyncio.sleep(0.2)
        task.cancel()  # and the loop closes with the wire still open

    asyncio.run(leave())
    deadline = time.monotonic() + 3
    while curl_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not curl_threads()


def test_scraper_wire_overrides_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = CrawlSettings(wire="aiohttp")
    assert wire_name(settings) == "aiohttp"
    monkeypatch.setenv("SCRAPER_WIRE", "curl")
    assert wire_name(settings) == "curl"
    monkeypatch.setenv("SCRAPER_WIRE", "urllib")
    with pytest.raises(ScraperError) as failure:
        wire_name(settings)
    assert str(failure.value) == (
        "SCRAPER_WIRE='urllib' names no wire; set it to one of aiohttp, curl, or unset it "
        "to use the spider's 'wire' setting (aiohttp)."
    )


def test_the_wire_setting_is_read_and_checked() -> None:
    spiders = parse_spiders(
        "defaults: {wire: curl}\n"
        "spiders:\n"
        "  a: {start: 'http://a.test/', pattern: x}\n"
        "  b: {start: 'http://b.test/', pattern: x, wire: aiohttp}\n"
    )
    assert spiders.get("a").settings.wire == "curl"
    assert spiders.get("b").settings.wire == "aiohttp"
    with pytest.raises(SpecError) as failure:
        parse_spiders("spiders:\n  a: {start: 'http://a.test/', pattern: x, wire: requests}\n")
    assert str(failure.value) == (
        "spiders.yaml:2:50: spider 'a': wire must be one of aiohttp, curl, not 'requests'; "
        "curl is the default."
    )


def test_without_pycurl_the_curl_wire_says_what_to_do(tmp_path: Path) -> None:
    script = (
        "import sys; sys.modules['pycurl'] = None\n"
        "from scraper.spec import CrawlSettings\n"
        "from scraper.wire import open_wire\n"
        "open_wire(CrawlSettings(wire='curl'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    assert result.returncode == 1
    assert (
        "scraper.errors.ScraperError: wire: curl needs pycurl, which cannot be imported here "
        "(import of pycurl halted; None in sys.modules); install it (pip install pycurl: it "
        "needs libcurl's headers where no wheel is published), or set 'wire: aiohttp' in the "
        "spider file (or SCRAPER_WIRE=aiohttp) to fetch with aiohttp."
    ) in result.stderr


@pytest.fixture
def https_site(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTPS server on 127.0.0.1 with a self-signed certificate, and that certificate."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    command = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    command += ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
    subprocess.run(
        [*command, "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "11")
            self.end_headers()
            self.wfile.write(b"<p>tls</p>\n")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/", cert
    finally:
        server.shutdown()
        server.server_close()


async def fetch_once(kind: str, url: str) -> bytes:
    wire = make_wire(kind)
    try:
        return await read_all(await wire.get(url))
    finally:
        await wire.aclose()


@pytest.mark.parametrize("kind", ["aiohttp", "curl"])
def test_an_unknown_certificate_is_a_connect_error(https_site: tuple[str, Path], kind: str) -> None:
    with pytest.raises(WireError) as failure:
        asyncio.run(fetch_once(kind, https_site[0]))
    assert failure.value.reason == "connect error"


def test_the_curl_wire_trusts_the_certificates_pythons_ssl_finds(
    https_site: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, cert = https_site
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # as a company's own CA would be added
    assert asyncio.run(fetch_once("curl", url)) == b"<p>tls</p>\n"


@pytest.mark.parametrize("kind", ["aiohttp", "curl"])
def test_requests_go_through_the_proxy(site: FixtureSite, kind: str) -> None:
    # The fixture site answers a proxy's request line (GET http://host/path) by its Host.
    site.add("/page", "<p>via the proxy</p>", host="shop.test")
    settings = CrawlSettings(proxy=site.url("/").rstrip("/"))

    async def fetch() -> bytes:
        wire = make_wire(kind, settings)
        try:
            return await read_all(await wire.get("http://shop.test/page"))
        finally:
            await wire.aclose()

    assert asyncio.run(fetch()) == b"<p>via the proxy</p>"
    assert site.requests[0].host == "shop.test"
