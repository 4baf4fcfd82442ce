"""A real HTTP/1.1 test server on 127.0.0.1 with static pages, fault modes and a request log.

A page added with an ``ETag`` or ``Last-Modified`` header answers a conditional GET
that finds it unchanged (``If-None-Match``, ``If-Modified-Since``) with a 304.

Also provides ``LocalRouteTransport``: an httpx transport that sends requests for chosen
hostnames to the local server while callers keep seeing the original URLs.
"""

from __future__ import annotations

import contextlib
import functools
import json
import socket
import struct
import threading
import time
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from socketserver import TCPServer
from typing import Any
from urllib.parse import urlsplit

import httpx

HTML = "text/html; charset=utf-8"
NOT_FOUND = b"<html><head><title>404</title></head><body><h1>404 Not Found</h1></body></html>"
BINARY = b"<html>\x00\x00\x01\x02\xff\xfe\x00<body>\x00bin\x00</body></html>\x00" * 4
Body = bytes | str
Headers = Mapping[str, str] | None


@dataclass(frozen=True)
class LoggedRequest:
    """One request as the server saw it."""

    path: str
    full_path: str  # path plus "?query" when there is one
    method: str
    headers: dict[str, str]
    started: float  # time.monotonic() when the request line and headers had been read
    host: str  # raw Host header ("" when absent)


@dataclass
class _Route:
    mode: str  # "page" or one of FAULT_MODES
    options: dict[str, Any]
    calls: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _as_bytes(body: Body) -> bytes:
    return body.encode("utf-8") if isinstance(body, str) else body


def _bare_host(host: str) -> str:
    """Lower-case host without its port, for routing."""
    host = host.strip().lower()
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if ":" in host else host


def filler(size: int, chunk: int = 1 << 16) -> Iterator[bytes]:
    """Yield exactly ``size`` bytes of HTML-ish filler in chunks of at most ``chunk`` bytes."""
    head, tail = b"<html><body>\n", b"</body></html>\n"
    if size < len(head) + len(tail):
        yield b" " * size
        return
    line = b"<p class='filler'>lorem ipsum dolor sit amet</p>\n"
    block = line * (chunk // len(line) + 1)
    yield head
    left = size - len(head) - len(tail)
    while left:
        n = min(left, chunk)
        yield block[:n]
        left -= n
    yield tail


@functools.lru_cache(maxsize=4)
def gzip_bomb(size: int) -> bytes:
    """A gzip stream of ``size`` zero bytes; streamed through zlib so the zeros never sit in RAM."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = memoryview(bytes(1 << 20))
    parts, left = [], size
    while left:
        n = min(left, len(zeros))
        parts.append(comp.compress(zeros[:n]))
        left -= n
    parts.append(comp.flush())
    return b"".join(parts)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, site: FixtureSite, address: str) -> None:
        self.site = site
        super().__init__((address, 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that hang up (resets, timeouts) are part of the tests

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls getfqdn(), a reverse DNS lookup we do not want.
        TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go in separate writes
    timeout = 30  # idle keep-alive connections give up eventually
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.server.site._opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.site._closed(self.connection)

    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_OPTIONS = do_GET

    # -- plumbing ---------------------------------------------------------------------------

    def _handle(self) -> None:
        site = self.server.site
        url = urlsplit(self.path)
        path = url.path or "/"
        full = f"{path}?{url.query}" if url.query else path
        host = self.headers.get("Host", "")
        site._begin(
            LoggedRequest(path, full, self.command, dict(self.headers), time.monotonic(), host)
        )
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            route = site._lookup(host, full, path)
            if route is None:
                self._send(404, NOT_FOUND)
            elif route.mode == "page":
                site._stopping.wait(site.hold)
                if _unchanged(self.headers, route.options["headers"]):
                    self._not_modified(route.options["headers"])
                else:
                    self._send(**route.options)
            else:
                getattr(self, f"_fault_{route.mode}")(route, **route.options)
        except OSError:  # client went away, or we cut the connection on purpose
            self.close_connection = True
        finally:
            site._end(host)

    def _head(
        self, status: int, length: int, content_type: str = HTML, headers: Headers = None
    ) -> None:
        self.send_response(status)
        extra = dict(headers or {})
        if content_type and not any(k.lower() == "content-type" for k in extra):
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()

    def _send(
        self, status: int, body: Body, content_type: str = HTML, headers: Headers = None
    ) -> None:
        data = _as_bytes(body)
        self._head(status, len(data), content_type, headers)
        if self.command != "HEAD":
            self.wfile.write(data)

    def _not_modified(self, headers: Mapping[str, str]) -> None:
        """A 304: the validators of the page, no body."""
        self.send_response(304)
        for name, value in headers.items():
            if name.lower() in ("etag", "last-modified"):
                self.send_header(name, value)
        self.end_headers()

    def _stream(self, chunks: Iterator[bytes], interval: float = 0.0) -> None:
        """Write chunks, ``interval`` seconds apart; give up as soon as the site stops."""
        for chunk in chunks:
            if self.server.site._stopping.wait(interval):
                self.close_connection = True
                return
            self.wfile.write(chunk)

    # -- fault modes (options come from add_fault) ------------------------------------------

    def _fault_slow(self, route: _Route, delay: float = 1.0, body: Body = b"<p>slow</p>") -> None:
        if not self.server.site._stopping.wait(delay):
            self._send(200, body)

    def _fault_status(self, route: _Route, status: int = 500, body: Body = b"<p>error</p>") -> None:
        self._send(status, body)

    def _fault_charset(self, route: _Route, body_bytes: bytes, content_type: str) -> None:
        self._send(200, body_bytes, content_type)

    def _fault_empty(self, route: _Route) -> None:
        self._send(200, b"")

    def _fault_binary(self, route: _Route, body: bytes = BINARY) -> None:
        self._send(200, body, "text/html")

    def _fault_redirect(self, route: _Route, location: str, status: int = 302) -> None:
        self._send(status, f'<a href="{location}">moved</a>', headers={"Location": location})

    def _fault_sequence(self, route: _Route, responses: list[tuple[int, Any, Any]]) -> None:
        with route.lock:
            index = min(route.calls, len(responses) - 1)
            route.calls += 1
        status, headers, body = responses[index]
        self._send(status, body, headers=headers)

    def _fault_reset(self, route: _Route, body: Body = b"<html>" + b"x" * 8000) -> None:
        data = _as_bytes(body)
        self._head(200, len(data))
        self.wfile.write(data[: len(data) // 2])
        # Linger 0 makes close() send RST instead of FIN: the client sees a connection reset.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()  # drop the makefile reference so close() really closes the fd
        self.connection.close()
        self.close_connection = True

    def _fault_truncated(self, route: _Route, body: Body = b"<p>cut", length: int = 0) -> None:
        data = _as_bytes(body)
        self._head(200, length or len(data) + 1000)
        self.wfile.write(data)
        self.close_connection = True

    def _fault_huge(self, route: _Route, size: int = 50_000_000, chunk: int = 1 << 16) -> None:
        self._head(200, size)
        if self.command != "HEAD":
            self._stream(filler(size, chunk))

    def _fault_chunked(self, route: _Route, size: int = 50_000_000, chunk: int = 1 << 16) -> None:
        """``size`` bytes of filler with Transfer-Encoding: chunked, so no Content-Length."""
        self.send_response(200)
        self.send_header("Content-Type", HTML)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._stream(b"%x\r\n%s\r\n" % (len(part), part) for part in filler(size, chunk))
        if not self.close_connection:
            self.wfile.write(b"0\r\n\r\n")

    def _fault_gzip(self, route: _Route, body: Body = b"<p>gz</p>", bomb_size: int = 0) -> None:
        data = gzip_bomb(bomb_size) if bomb_size else zlib.compress(_as_bytes(body), wbits=31)
        self._send(200, data, headers={"Content-Encoding": "gzip"})

    def _fault_hang(self, route: _Route) -> None:
        self.server.site._stopping.wait()
        self.close_connection = True

    def _fault_drip(self, route: _Route, interval: float = 0.5, count: int = 100) -> None:
        self._head(200, count)
        self.wfile.flush()
        self._stream((b"<" if i == 0 else b"x" for i in range(count)), interval)

    def _fault_raw(
        self,
        route: _Route,
        status: int = 200,
        headers: list[tuple[str, str]] | None = None,
        body: Body = b"",
        trailing: bytes = b"",
    ) -> None:
        """An answer written byte for byte: header values in UTF-8, which http.server's
        latin-1 ``send_header`` refuses; Content-Length added, then ``trailing`` bytes
        past the body, the connection closed."""
        data = _as_bytes(body)
        lines = [f"HTTP/1.1 {status} Whatever", *(f"{k}: {v}" for k, v in headers or [])]
        lines.append(f"Content-Length: {len(data)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
        self.wfile.write(head + data + trailing)
        self.close_connection = True


def _unchanged(request: Any, page_headers: Mapping[str, str]) -> bool:
    """Whether a conditional GET finds the page unchanged: its ETag among If-None-Match's
    (weak or strong), else (no If-None-Match) its Last-Modified not after If-Modified-Since."""
    page = {name.lower(): value for name, value in page_headers.items()}
    tags = request.get("If-None-Match")
    if tags is not None:
        etag = page.get("etag")
        if etag is None:
            return False
        wanted = {tag.strip().removeprefix("W/") for tag in tags.split(",")}
        return "*" in wanted or etag.removeprefix("W/") in wanted
    since, modified = request.get("If-Modified-Since"), page.get("last-modified")
    if since is None or modified is None:
        return False
    try:
        return parsedate_to_datetime(modified) <= parsedate_to_datetime(since)
    except (TypeError, ValueError):
        return False


FAULT_MODES = frozenset(n.removeprefix("_fault_") for n in dir(_Handler) if n.startswith("_fault_"))


class FixtureSite:
    """A live HTTP/1.1 server on 127.0.0.1 with a routing table, fault modes and a request log.

    ``host`` binds another loopback address instead (``"127.0.0.2"``...): to a crawler each
    address is another host. Serving starts on construction; call ``stop()`` (or use it as a
    context manager).
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.hold = 0.0  # seconds every "page" response waits, so concurrency can be observed
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._routes: dict[tuple[str | None, str], _Route] = {}
        self._conns: dict[socket.socket, threading.Thread] = {}
        self._in_flight = 0
        self._in_flight_by_host: dict[str, int] = {}
        self.reset_stats()
        self._server = _Server(self, host)
        self.port: int = self._server.server_address[1]
        self.base = f"http://{host}:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def __enter__(self) -> FixtureSite:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def url(self, path: str = "/") -> str:
        """Absolute URL on this server for ``path`` (which may carry a query)."""
        return self.base + (path if path.startswith("/") else "/" + path)

    # -- routes -----------------------------------------------------------------------------

    def add(
        self,
        path: str,
        body: Body,
        *,
        status: int = 200,
        content_type: str = HTML,
        headers: Headers = None,
        host: str | None = None,
    ) -> None:
        """Serve ``body`` at ``path`` (exact path+query first, then path alone), optionally
        only for requests whose Host header is ``host``."""
        options = {"status": status, "body": _as_bytes(body), "content_type": content_type}
        self._route(path, host, _Route("page", {**options, "headers": dict(headers or {})}))

    def add_fault(self, path: str, mode: str, *, host: str | None = None, **options: Any) -> None:
        """Answer ``path`` with a fault mode (see FAULT_MODES); ``options`` go to that mode."""
        if mode not in FAULT_MODES:
            raise ValueError(f"unknown fault mode {mode!r}")
        self._route(path, host, _Route(mode, options))

    def _route(self, path: str, host: str | None, route: _Route) -> None:
        with self._lock:
            self._routes[(_bare_host(host) if host else None, path)] = route

    def _lookup(self, host: str, full: str, path: str) -> _Route | None:
        bare = _bare_host(host)
        with self._lock:
            for key in ((bare, full), (bare, path), (None, full), (None, path)):
                if key in self._routes:
                    return self._routes[key]
        return None

    # -- request log and concurrency stats --------------------------------------------------

    def reset_stats(self) -> None:
        """Forget logged requests and in-flight maxima (routes are kept)."""
        with self._lock:
            self._requests: list[LoggedRequest] = []
            self.max_in_flight = 0
            self.max_in_flight_by_host: dict[str, int] = {}
            self.connections_opened = 0

    @property
    def requests(self) -> list[LoggedRequest]:
        """Snapshot of every request so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def paths(self) -> list[str]:
        """Path+query of every request, in arrival order."""
        return [r.full_path for r in self.requests]

    def count(self, path: str) -> int:
        """Requests for ``path``: matched on path+query if it has a "?", else on path alone."""
        attr = "full_path" if "?" in path else "path"
        return sum(1 for r in self.requests if getattr(r, attr) == path)

    def _begin(self, request: LoggedRequest) -> None:
        with self._lock:
            self._requests.append(request)
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            now = self._in_flight_by_host.get(request.host, 0) + 1
            self._in_flight_by_host[request.host] = now
            best = self.max_in_flight_by_host.get(request.host, 0)
            self.max_in_flight_by_host[request.host] = max(best, now)

    def _end(self, host: str) -> None:
        with self._lock:
            self._in_flight -= 1
            self._in_flight_by_host[host] = self._in_flight_by_host.get(host, 1) - 1

    def _opened(self, conn: socket.socket) -> None:
        with self._lock:
            self._conns[conn] = threading.current_thread()
            self.connections_opened += 1

    def _closed(self, conn: socket.socket) -> None:
        with self._lock:
            self._conns.pop(conn, None)

    # -- shutdown ---------------------------------------------------------------------------

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, wake hanging/dripping handlers and close open connections."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._server.shutdown()
        with self._lock:
            conns = dict(self._conns)
        for conn in conns:
            # Wakes handlers blocked reading the next keep-alive request.
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for thread in conns.values():
            thread.join(max(0.0, deadline - time.monotonic()))
        self._server.server_close()
        self._thread.join(timeout)


def serve_corpus(site: FixtureSite, corpus_dir: Path) -> dict[str, str]:
    """Add every entry of ``corpus_dir/routes.json`` to ``site``, routed by host + path + query.

    Returns a {hostname: site.base} mapping suitable for LocalRouteTransport.
    """
    routes = json.loads((corpus_dir / "routes.json").read_text(encoding="utf-8"))
    hosts: dict[str, str] = {}
    for original, entry in routes.items():
        url = urlsplit(original)
        file = corpus_dir / entry["file"]
        if not file.is_file():
            continue
        full = (url.path or "/") + (f"?{url.query}" if url.query else "")
        site.add(full, file.read_bytes(), content_type=entry["content_type"], host=url.hostname)
        hosts[url.hostname or ""] = site.base
    return hosts


def _local_request(routes: Mapping[str, httpx.URL], request: httpx.Request) -> httpx.Request:
    """The same request aimed at the local server; refuses unmapped hosts without any I/O."""
    target = routes.get(request.url.host.lower())
    if target is None:
        raise httpx.ConnectError(
            f"host not mapped to the local test server: {request.url.host}", request=request
        )
    url = request.url.copy_with(scheme="http", host=target.host, port=target.port)
    # Headers are copied as-is, so the original Host header reaches the server.
    return httpx.Request(
        request.method,
        url,
        headers=request.headers,
        stream=request.stream,
        extensions=request.extensions,
    )


def _parse_routes(routes: Mapping[str, str]) -> dict[str, httpx.URL]:
    return {host.lower(): httpx.URL(base) for host, base in routes.items()}


class LocalRouteTransport(httpx.AsyncBaseTransport):
    """Async transport sending requests for mapped hostnames to a local server.

    ``routes`` maps hostname -> local base URL (e.g. ``{"maoyan.com": site.base}``); any other
    host raises ``httpx.ConnectError`` without touching the network.
    """

    def __init__(
        self, routes: Mapping[str, str], inner: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._routes = _parse_routes(routes)
        self._inner = inner or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(_local_request(self._routes, request))
        response.request = request
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


class LocalRouteSyncTransport(httpx.BaseTransport):
    """Sync twin of LocalRouteTransport."""

    def __init__(self, routes: Mapping[str, str], inner: httpx.BaseTransport | None = None) -> None:
        self._routes = _parse_routes(routes)
        self._inner = inner or httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(_local_request(self._routes, request))
        response.request = request
        return response

    def close(self) -> None:
        self._inner.close()
