"""The wire: sending one GET and streaming its raw body back. The fetch layer's one seam.

Three implementations of one small interface (``Wire``), one module each:

- ``CurlWire`` (``curlwire``), the default: libcurl's multi interface (pycurl)
  driven by a thread of its own, which hands finished answers to the crawl's
  event loop in batches, so Python is not called for every socket event and the
  HTTP work runs beside the crawl's (~1.15x the pages/s of aiohttp on the bench).
- ``AiohttpWire`` (``aiohttpwire``), chosen by ``wire: aiohttp``: an aiohttp
  session used directly, a fraction of httpx's CPU per request.
- ``HttpxWire`` (``httpxwire``): an ``httpx.AsyncClient`` over any httpx
  transport. Used when a transport is given: vcrpy cassettes (which patch httpx's
  transports), tests that route hosts to a local server, custom transports.

The ``SCRAPER_WIRE`` environment variable overrides the ``wire`` setting (to run
a whole test suite on one wire). What the rest of scraper sees is the same
whichever wire runs: ``Page.headers`` is an ``httpx.Headers``, settings speak of
timeouts and proxies as httpx does, and errors come out as ``WireError`` with the
short reason the crawl counts.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from scraper.errors import ScraperError
from scraper.spec import WIRES, CrawlSettings

if TYPE_CHECKING:
    import httpx

__all__ = [
    "ACCEPT_ENCODINGS",
    "WIRES",
    "NotInCassette",
    "Wire",
    "WireError",
    "WireResponse",
    "open_wire",
]

ACCEPT_ENCODINGS = ("gzip", "deflate")
"""Compressions the fetch layer inflates itself, within ``max_bytes``."""
WIRE_VARIABLE = "SCRAPER_WIRE"
"""The environment variable that overrides the ``wire`` setting."""


class NotInCassette(Exception):
    """A request that the cassette being replayed does not hold (raised by its transport)."""


class WireError(Exception):
    """A request that got no usable answer; ``retry`` says whether another try may help."""

    def __init__(self, reason: str, detail: str, *, retry: bool = True) -> None:
        self.reason = reason
        self.detail = detail
        self.retry = retry
        super().__init__(f"{reason}: {detail}")


@dataclass
class WireResponse:
    """Status and headers of an answer, with its raw (still compressed) body to stream.

    ``headers`` is the wire's own case-insensitive mapping, for look-ups;
    ``raw_headers`` are the header lines as sent, which ``Page.headers`` turns
    into ``httpx.Headers`` when a callback asks.
    """

    status: int
    headers: Mapping[str, str]
    raw_headers: Sequence[tuple[bytes, bytes]]
    body: Callable[[], AsyncIterator[bytes]]
    read: Callable[[], Awaitable[bytes]]
    """The whole raw body at once: only for a Content-Length already checked."""
    close: Callable[[], Awaitable[None]]


class Wire(Protocol):
    """Sends GET requests; ``aclose()`` ends its connections."""

    async def get(self, url: str, headers: Mapping[str, str] | None = None) -> WireResponse:
        """Send a GET for ``url`` (no redirects followed), with ``headers`` on top of the
        wire's own (conditional requests: ``If-None-Match``); raise ``WireError`` on failure."""
        ...

    async def aclose(self) -> None:
        """Close every connection."""
        ...


def wire_name(settings: CrawlSettings) -> str:
    """The wire a crawl runs on: ``SCRAPER_WIRE`` if set, else the ``wire`` setting."""
    name = os.environ.get(WIRE_VARIABLE, "").strip().lower() or settings.wire
    if name not in WIRES:
        raise ScraperError(
            f"{WIRE_VARIABLE}={name!r} names no wire; set it to one of {', '.join(WIRES)}, "
            f"or unset it to use the spider's 'wire' setting ({settings.wire})."
        )
    return name


def open_wire(settings: CrawlSettings, transport: httpx.AsyncBaseTransport | None = None) -> Wire:
    """The wire for ``settings`` (``wire_name``), or httpx over ``transport`` if given."""
    headers = {"Accept-Encoding": ", ".join(ACCEPT_ENCODINGS), **settings.headers}
    if transport is not None:
        from scraper.wire.httpxwire import HttpxWire

        return HttpxWire.over(transport, settings, headers)
    if wire_name(settings) == "curl":
        from scraper.wire.curlwire import CurlWire

        return CurlWire(settings, headers)
    from scraper.wire.aiohttpwire import AiohttpWire

    return AiohttpWire(settings, headers)


def detail(exc: BaseException) -> str:
    """An exception's message, or its type's name when it has none."""
    return str(exc) or type(exc).__name__
