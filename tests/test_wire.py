"""The wire seam (scraper/wire.py): what every wire does the same, over a real local server."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from scraper.spec import CrawlSettings
from scraper.wire import Wire, open_wire
from tests.server import FixtureSite


def wires() -> list[str]:
    return ["aiohttp", "httpx"]


def make_wire(kind: str, settings: CrawlSettings) -> Wire:
    transport = httpx.AsyncHTTPTransport() if kind == "httpx" else None
    return open_wire(settings, transport)


@pytest.mark.parametrize("kind", wires())
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
