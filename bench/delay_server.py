"""A slow web server for the latency scenario: files under ``--root`` (and a tiny page for any
``/tiny/...`` path, as nginx serves in the scale scenario), each ``--delay`` seconds late.

It adds the delay and as little else as it can, so that what the latency scenario measures
is the client: plain asyncio with no web framework, HTTP/1.1 keep-alive, bodies read from
disk at start and kept in memory, and each answer written ``delay`` seconds after its request
arrived by a timer (``loop.call_at``), not by a handler coroutine. An earlier version on
aiohttp's web server spent ~0.4 ms of Python per answer; 64 timers firing together then
went out over ~25 ms, which the clients were charged for.

``GET /__stats`` tells how many responses it has served since ``GET /__reset`` and the
seconds from the first of those requests arriving to the last response going out, so the
driver can rate a crawl by what the server saw, without the client's start-up and shutdown.
Standard library only; runs as its own process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from workload import TINY_BODY


@dataclass
class Served:
    """What was served since the last reset: responses, when the first request came in and
    the last response went out, requests in flight (now and at most), and the seconds that
    requests spent in the server, summed (over the span: the mean number in flight)."""

    responses: int = 0
    first: float | None = None
    last: float = 0.0
    in_flight: int = 0
    max_in_flight: int = 0
    busy: float = 0.0
    last_at: float = 0.0
    first_at: float = 0.0
    """Wall-clock time (``time.time()``) of the first request: when a client got going."""

    def arrived(self, now: float) -> None:
        if self.first is None:
            self.first = now
            self.first_at = time.time()
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def answered(self, arrived: float) -> None:
        self.last = time.monotonic()
        self.last_at = time.time()
        self.responses += 1
        self.in_flight -= 1
        self.busy += self.last - arrived

    def report(self) -> dict[str, float]:
        span = self.last - self.first if self.first is not None else 0.0
        return {
            "responses": self.responses,
            "span": span,
            "max_in_flight": self.max_in_flight,
            "mean_in_flight": self.busy / span if span else 0.0,
            "first_at": self.first_at,
            "last_at": self.last_at,
        }


class Site:
    """The answers: whole HTTP responses as bytes, by path, made once."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.served = Served()
        self._cache: dict[str, bytes] = {}
        for file in sorted(self.root.rglob("*")):  # read now, not while a client is measured
            if file.is_file():
                path = "/" + file.relative_to(self.root).as_posix()
                self._cache[path] = self._make(path)

    def answer(self, target: str) -> bytes | None:
        """The response for ``target``; ``None`` for the control paths, which answer now."""
        path = unquote(urlsplit(target).path)
        if path == "/__stats":
            return None
        if path == "/__reset":
            self.served = Served()
            return None
        known = self._cache.get(path)
        if known is None:
            known = self._cache[path] = self._make(path)
        return known

    def control(self, target: str) -> bytes:
        body = json.dumps(self.served.report() if "__stats" in target else {}).encode()
        return _response(200, body, "application/json")

    def _make(self, path: str) -> bytes:
        if path.startswith("/tiny/"):
            return _response(200, TINY_BODY.replace("$uri", path).encode(), "text/html")
        file = (self.root / path.lstrip("/")).resolve()
        if not file.is_relative_to(self.root) or not file.is_file():
            return _response(404, b"not found", "text/plain")
        return _response(200, file.read_bytes(), "text/html")


def _response(status: int, body: bytes, content_type: str) -> bytes:
    reason = {200: "OK", 404: "Not Found", 400: "Bad Request"}[status]
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


class Connection(asyncio.Protocol):
    """One client connection: each request's answer is written ``delay`` s after it came."""

    def __init__(self, site: Site, delay: float) -> None:
        self.site = site
        self.delay = delay
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
            parts = head.split(b"\r\n", 1)[0].split()
            if len(parts) != 3 or parts[0] != b"GET":
                self._write(_response(400, b"GET only", "text/plain"))
                continue
            target = parts[1].decode("latin-1")
            answer = self.site.answer(target)
            if answer is None:
                self._write(self.site.control(target))
                continue
            now = time.monotonic()
            served = self.site.served
            served.arrived(now)
            self.loop.call_at(now + self.delay, self._answer, answer, served, now)

    def _answer(self, answer: bytes, served: Served, arrived: float) -> None:
        self._write(answer)
        served.answered(arrived)

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)


async def serve(root: Path, port: int, delay: float) -> None:
    """Serve ``root`` on 127.0.0.1:``port`` until killed."""
    site = Site(root)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: Connection(site, delay), "127.0.0.1", port, backlog=1024
    )
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.1)
    args = parser.parse_args()
    asyncio.run(serve(args.root, args.port, args.delay))


if __name__ == "__main__":
    main()
