"""A slow web server for the latency scenario: files under ``--root`` (and a tiny page for any
``/tiny/...`` path, as nginx serves in the scale scenario), each ``--delay`` seconds late.

Runs in the bench virtualenv (aiohttp), as its own process. ``GET /__stats`` tells how
many responses it has served since ``GET /__reset`` and the seconds from the first of
those requests arriving to the last response going out, so the driver can rate a
crawl by what the server saw, without the client's start-up and shutdown.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
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

    def arrived(self) -> float:
        now = time.monotonic()
        if self.first is None:
            self.first = now
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        return now

    def answered(self, arrived: float) -> None:
        self.last = time.monotonic()
        self.responses += 1
        self.in_flight -= 1
        self.busy += self.last - arrived


def make_app(root: Path, delay: float) -> web.Application:
    """The application: pages under ``root`` answered ``delay`` seconds after they are asked."""
    root = root.resolve()
    served = Served()

    async def page(request: web.Request) -> web.StreamResponse:
        arrived = served.arrived()
        try:
            await asyncio.sleep(delay)
            path = (root / request.match_info["path"]).resolve()
            if not path.is_relative_to(root) or not path.is_file():
                raise web.HTTPNotFound()
            return web.Response(body=path.read_bytes(), content_type="text/html", charset="utf-8")
        finally:
            served.answered(arrived)

    async def tiny(request: web.Request) -> web.StreamResponse:
        arrived = served.arrived()
        try:
            await asyncio.sleep(delay)
            body = TINY_BODY.replace("$uri", request.path)
            return web.Response(text=body, content_type="text/html", charset="utf-8")
        finally:
            served.answered(arrived)

    async def stats(request: web.Request) -> web.StreamResponse:
        span = served.last - served.first if served.first is not None else 0.0
        return web.json_response(
            {
                "responses": served.responses,
                "span": span,
                "max_in_flight": served.max_in_flight,
                "mean_in_flight": served.busy / span if span else 0.0,
            }
        )

    async def reset(request: web.Request) -> web.StreamResponse:
        nonlocal served
        served = Served()
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/__stats", stats)
    app.router.add_get("/__reset", reset)
    app.router.add_get("/tiny/{n}", tiny)
    app.router.add_get("/{path:.+}", page)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.1)
    args = parser.parse_args()
    app = make_app(args.root, args.delay)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
