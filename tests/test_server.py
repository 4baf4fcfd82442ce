"""Checks that the local test server, its fault modes and the routing transport behave."""

from __future__ import annotations

import asyncio
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.server import FixtureSite, LocalRouteSyncTransport, LocalRouteTransport


def get(url: str, timeout: float = 5.0, **kwargs: object) -> httpx.Response:
    return httpx.get(url, timeout=timeout, **kwargs)  # type: ignore[arg-type]


def test_page_404_and_log(site: FixtureSite) -> None:
    site.add("/a", "<p>é</p>")
    site.add("/robots.txt", "User-agent: *\nDisallow: /private\n", content_type="text/plain")
    r = get(site.url("/a"))
    assert r.status_code == 200
    assert r.content == "<p>é</p>".encode()
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert get(site.url("robots.txt")).text.startswith("User-agent")
    missing = get(site.url("/nope?x=1"))
    assert missing.status_code == 404
    assert b"404" in missing.content
    assert site.paths() == ["/a", "/robots.txt", "/nope?x=1"]
    assert site.count("/nope") == 1
    assert site.count("/nope?x=2") == 0
    first = site.requests[0]
    assert (first.method, first.path, first.host) == ("GET", "/a", f"127.0.0.1:{site.port}")
    assert first.headers["Host"] == first.host


def test_query_exact_then_path_and_host_routing(site: FixtureSite) -> None:
    site.add("/top250", "plain")
    site.add("/top250?start=25&filter=", "page2")
    site.add("/top250", "douban", host="movie.douban.com")
    assert get(site.url("/top250?start=25&filter=")).text == "page2"
    assert get(site.url("/top250?start=50")).text == "plain"
    r = get(site.url("/top250?start=50"), headers={"Host": "movie.douban.com"})
    assert r.text == "douban"
    # Host-less routes are the fallback for a host with no route of its own.
    r = get(site.url("/top250?start=25&filter="), headers={"Host": "movie.douban.com"})
    assert r.text == "douban"
    assert get(site.url("/top250"), headers={"Host": "other.example"}).text == "plain"


def test_keep_alive_reuses_connection(site: FixtureSite) -> None:
    site.add("/k", "k")
    with httpx.Client(timeout=5) as client:
        for _ in range(5):
            assert client.get(site.url("/k")).http_version == "HTTP/1.1"
    assert site.connections_opened == 1


def test_slow(site: FixtureSite) -> None:
    site.add_fault("/slow", "slow", delay=1.0)
    site.add_fault("/quick", "slow", delay=0.05, body="done")
    with pytest.raises(httpx.ReadTimeout):
        get(site.url("/slow"), timeout=0.2)
    assert get(site.url("/quick")).text == "done"


def test_reset_is_transport_error(site: FixtureSite) -> None:
    site.add_fault("/reset", "reset")
    with pytest.raises(httpx.TransportError):
        get(site.url("/reset"))


def test_status_and_sequence(site: FixtureSite) -> None:
    site.add_fault("/boom", "status", status=503, body="down")
    r = get(site.url("/boom"))
    assert (r.status_code, r.text) == (503, "down")
    site.add_fault("/flaky", "sequence", responses=[(503, None, "busy"), (200, None, "ok")])
    site.add_fault(
        "/limited",
        "sequence",
        responses=[(429, {"Retry-After": "1"}, b"slow down"), (200, {}, b"fine")],
    )
    with httpx.Client(timeout=5) as client:
        assert [client.get(site.url("/flaky")).status_code for _ in range(3)] == [503, 200, 200]
        first = client.get(site.url("/limited"))
        assert (first.status_code, first.headers["retry-after"]) == (429, "1")
        assert client.get(site.url("/limited")).text == "fine"
        assert client.get(site.url("/limited")).text == "fine"


@pytest.mark.parametrize(
    ("status", "location"),
    [
        (301, "/target?x=1"),
        (302, "next.html"),
        (302, "https://other.example/page"),
        (301, "file:///etc/passwd"),
    ],
)
def test_redirect(site: FixtureSite, status: int, location: str) -> None:
    site.add_fault("/r", "redirect", location=location, status=status)
    r = get(site.url("/r"))
    assert (r.status_code, r.headers["location"]) == (status, location)


def test_redirect_followed(site: FixtureSite) -> None:
    site.add_fault("/old", "redirect", location="/new")
    site.add("/new", "arrived")
    r = get(site.url("/old"), follow_redirects=True)
    assert (r.text, str(r.url)) == ("arrived", site.url("/new"))


def test_truncated_is_protocol_error(site: FixtureSite) -> None:
    site.add_fault("/cut", "truncated")
    with pytest.raises(httpx.RemoteProtocolError):
        get(site.url("/cut"))


def test_charset_mismatch(site: FixtureSite) -> None:
    body = "<meta charset='utf-8'><p>霸王别姬</p>".encode("gbk")
    site.add_fault("/gbk", "charset", body_bytes=body, content_type="text/html; charset=utf-8")
    r = get(site.url("/gbk"))
    assert r.content == body
    assert r.headers["content-type"] == "text/html; charset=utf-8"


def test_huge_is_streamed(site: FixtureSite) -> None:
    size = 5_000_003
    site.add_fault("/huge", "huge", size=size)
    with httpx.Client(timeout=5) as client, client.stream("GET", site.url("/huge")) as r:
        assert int(r.headers["content-length"]) == size
        chunks = list(r.iter_bytes())
    assert sum(map(len, chunks)) == size
    assert chunks[0].startswith(b"<html>")
    assert b"".join(chunks[-3:]).endswith(b"</html>\n")


def test_gzip_and_bomb(site: FixtureSite) -> None:
    site.add_fault("/gz", "gzip", body="<p>squeezed</p>")
    r = get(site.url("/gz"))
    assert (r.headers["content-encoding"], r.text) == ("gzip", "<p>squeezed</p>")

    bomb = 100 * 2**20
    site.add_fault("/bomb", "gzip", bomb_size=bomb)
    with httpx.Client(timeout=10) as client, client.stream("GET", site.url("/bomb")) as r:
        wire = b"".join(r.iter_raw())
    assert r.headers["content-encoding"] == "gzip"
    assert len(wire) == int(r.headers["content-length"]) < bomb // 500
    head = zlib.decompressobj(31).decompress(wire, 1 << 16)
    assert head == bytes(1 << 16)


def test_hang_times_out_and_stop_is_prompt(site: FixtureSite) -> None:
    site.add_fault("/hang", "hang")
    with pytest.raises(httpx.ReadTimeout):
        get(site.url("/hang"), timeout=0.2)

    errors: list[Exception] = []

    def waiter() -> None:
        try:
            get(site.url("/hang"), timeout=30)
        except httpx.HTTPError as exc:
            errors.append(exc)

    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(0.1)
    started = time.monotonic()
    site.stop()
    thread.join(5)
    assert time.monotonic() - started < 2
    assert not thread.is_alive()
    assert errors


def test_drip(site: FixtureSite) -> None:
    site.add_fault("/drip", "drip", interval=1.0, count=50)
    with pytest.raises(httpx.ReadTimeout):
        get(site.url("/drip"), timeout=0.2)
    site.add_fault("/trickle", "drip", interval=0.01, count=5)
    assert get(site.url("/trickle")).content == b"<xxxx"


def test_empty_and_binary(site: FixtureSite) -> None:
    site.add_fault("/empty", "empty")
    site.add_fault("/bin", "binary")
    r = get(site.url("/empty"))
    assert (r.status_code, r.content, r.headers["content-length"]) == (200, b"", "0")
    r = get(site.url("/bin"))
    assert r.headers["content-type"].startswith("text/html")
    assert b"\x00" in r.content


def test_in_flight_with_hold(site: FixtureSite) -> None:
    site.add("/p", "p")
    site.hold = 0.3
    hosts = ["a.test", "b.test"] * 4
    with (
        httpx.Client(timeout=5) as client,
        ThreadPoolExecutor(len(hosts)) as pool,
    ):
        codes = list(
            pool.map(lambda h: client.get(site.url("/p"), headers={"Host": h}).status_code, hosts)
        )
    assert codes == [200] * len(hosts)
    assert site.max_in_flight == len(hosts)
    assert site.max_in_flight_by_host == {"a.test": 4, "b.test": 4}

    site.hold = 0
    site.reset_stats()
    get(site.url("/p"))
    assert site.max_in_flight == 1
    assert site.paths() == ["/p"]


def test_local_route_transport(site: FixtureSite) -> None:
    site.add("/board/4?offset=0", "board", host="maoyan.com")
    site.add("/board/4?offset=0", "no host")
    original = "https://maoyan.com/board/4?offset=0"

    async def run() -> httpx.Response:
        transport = LocalRouteTransport({"maoyan.com": site.base})
        async with httpx.AsyncClient(transport=transport, timeout=5) as client:
            response = await client.get(original)
            with pytest.raises(httpx.ConnectError, match=r"not mapped.*example\.org"):
                await client.get("https://example.org/")
            return response

    r = asyncio.run(run())
    assert (r.text, str(r.url), str(r.request.url)) == ("board", original, original)
    assert [(q.host, q.full_path) for q in site.requests] == [("maoyan.com", "/board/4?offset=0")]


def test_local_route_sync_transport_follows_redirect(site: FixtureSite) -> None:
    site.add_fault("/films", "redirect", location="/films?showType=3", host="maoyan.com")
    site.add("/films?showType=3", "classic", host="maoyan.com")
    transport = LocalRouteSyncTransport({"maoyan.com": site.base})
    with httpx.Client(transport=transport, timeout=5, follow_redirects=True) as client:
        r = client.get("https://maoyan.com/films")
    assert (r.text, str(r.url)) == ("classic", "https://maoyan.com/films?showType=3")
    assert site.paths() == ["/films", "/films?showType=3"]


def test_corpus_site(
    corpus_dir: Path, corpus_site: FixtureSite, corpus_transport: LocalRouteTransport
) -> None:
    urls = {
        "https://maoyan.com/board/4?offset=0": "maoyan/board4_offset0_2025.html",
        "https://movie.douban.com/top250?start=25&filter=": "douban/top250_start25.html",
    }

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=corpus_transport, timeout=5) as client:
            return [await client.get(url) for url in urls]

    for r, (url, file) in zip(asyncio.run(run()), urls.items(), strict=True):
        assert r.status_code == 200
        assert str(r.url) == url
        assert r.content == (corpus_dir / file).read_bytes()
        assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert corpus_site.count("/top250?start=25&filter=") == 1
