"""The wire: sending one GET and streaming its raw body back. The fetch layer's one seam.

Two implementations of one small interface (``Wire``):

- ``AiohttpWire``, the default: an aiohttp session used directly. It costs a
  fraction of the CPU per request that httpx's own pool does (and half of what
  httpx costs over aiohttp's transport), which is what bounds a crawl against a
  fast site.
- ``HttpxWire``: an ``httpx.AsyncClient`` over any httpx transport. Used when a
  transport is given: vcrpy cassettes (which patch httpx's transports), tests
  that route hosts to a local server, custom transports.

Either way what the rest of scraper sees is httpx's vocabulary: ``Page.headers``
is an ``httpx.Headers``, and settings speak of timeouts and proxies as httpx does.
Errors come out as ``WireError`` with the short reason the crawl counts.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from scraper.spec import CrawlSettings

if TYPE_CHECKING:
    import httpx

ACCEPT_ENCODINGS = ("gzip", "deflate")
"""Compressions the fetch layer inflates itself, within ``max_bytes``."""


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


def open_wire(settings: CrawlSettings, transport: httpx.AsyncBaseTransport | None = None) -> Wire:
    """The wire for ``settings``: aiohttp directly, or httpx over ``transport`` if given."""
    headers = {"Accept-Encoding": ", ".join(ACCEPT_ENCODINGS), **settings.headers}
    if transport is None:
        return AiohttpWire(settings, headers)
    import httpx

    client = httpx.AsyncClient(
        transport=transport,
        headers=headers,
        timeout=httpx.Timeout(settings.timeout),
        follow_redirects=False,
        event_hooks={"response": [_keep_location]},
    )
    return HttpxWire(client)


_LOCATION = "scraper.location"


async def _keep_location(response: httpx.Response) -> None:
    # httpx parses a redirect's Location even when not following it, and its error
    # does not say the value: keep it on the request for the message.
    if response.has_redirect_location:
        response.request.extensions[_LOCATION] = response.headers["location"]


class HttpxWire:
    """A ``Wire`` over an ``httpx.AsyncClient``."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def get(self, url: str, headers: Mapping[str, str] | None = None) -> WireResponse:
        import httpx

        request = self.client.build_request("GET", url, headers=headers)
        try:
            response = await self.client.send(request, stream=True)
        except NotInCassette as exc:
            raise WireError("not in cassette", str(exc), retry=False) from None
        except httpx.TimeoutException as exc:
            raise WireError("timeout", _detail(exc)) from None
        except httpx.UnsupportedProtocol as exc:
            raise WireError("bad url", _detail(exc), retry=False) from None
        except httpx.LocalProtocolError as exc:  # what we would send is not valid HTTP
            raise WireError("bad request", f"{url}: {_detail(exc)}", retry=False) from None
        except (httpx.ConnectError, httpx.ProxyError) as exc:
            raise WireError("connect error", _detail(exc)) from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            location = request.extensions.get(_LOCATION)
            if location is not None:  # the answer came; httpx could not read its Location
                raise WireError(
                    "bad redirect", f"{url} redirects to {location!r}: {_detail(exc)}", retry=False
                ) from None
            raise WireError("connection error", _detail(exc)) from None

        async def body() -> AsyncIterator[bytes]:
            try:
                async for chunk in response.aiter_raw():
                    yield chunk
            except httpx.TimeoutException as exc:
                raise WireError("timeout", _detail(exc)) from None
            except httpx.HTTPError as exc:
                raise WireError("broken body", _detail(exc)) from None

        async def read() -> bytes:
            return b"".join([chunk async for chunk in body()])

        headers = response.headers
        return WireResponse(response.status_code, headers, headers.raw, body, read, response.aclose)

    async def aclose(self) -> None:
        await self.client.aclose()


class AiohttpWire:
    """A ``Wire`` over an aiohttp session, made on first use (it needs the running loop)."""

    def __init__(self, settings: CrawlSettings, headers: dict[str, str]) -> None:
        # Imported here, before the crawl starts: imported in get(), its ~0.3 s would
        # count against the first requests' timeout.
        import aiohttp  # noqa: F401

        self.settings = settings
        self.headers = headers
        self._session: Any = None

    async def get(self, url: str, headers: Mapping[str, str] | None = None) -> WireResponse:
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers=self.headers,
                connector=aiohttp.TCPConnector(
                    limit=self.settings.concurrency, limit_per_host=0, ttl_dns_cache=300
                ),
                # The whole request's deadline is the fetch layer's (asyncio.timeout);
                # a timer per socket read would only cost CPU.
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.settings.timeout),
                auto_decompress=False,
                cookie_jar=aiohttp.CookieJar(unsafe=True),  # cookies of 127.0.0.1 too
            )
        try:
            try:
                response = await self._session.get(
                    url, allow_redirects=False, proxy=self.settings.proxy, headers=headers
                )
            except (
                aiohttp.ServerDisconnectedError,  # closed as we sent on it
                aiohttp.ClientResponseError,  # bytes an earlier answer sent past its end
                aiohttp.ClientOSError,  # reset
            ) as exc:
                # A kept-alive connection can go bad while it waits in the pool, and then
                # the request may never have reached the server: once more, on another
                # connection (the bad one is closed by now), as browsers do.
                if isinstance(exc, aiohttp.ClientConnectorError):
                    raise  # no connection was made: nothing went bad in the pool
                response = await self._session.get(
                    url, allow_redirects=False, proxy=self.settings.proxy, headers=headers
                )
        except aiohttp.InvalidURL as exc:
            raise WireError("bad url", f"{url}: {exc}", retry=False) from None
        except (aiohttp.ClientProxyConnectionError, aiohttp.ClientConnectorError) as exc:
            raise WireError("connect error", str(exc)) from None
        except (asyncio.TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise WireError("timeout", str(exc) or "no answer in time") from None
        except aiohttp.ClientError as exc:
            raise WireError("connection error", str(exc) or type(exc).__name__) from None

        async def body() -> AsyncIterator[bytes]:
            try:
                async for chunk in response.content.iter_any():
                    yield chunk
            except (asyncio.TimeoutError, aiohttp.ServerTimeoutError) as exc:
                raise WireError("timeout", str(exc) or "the body stopped coming") from None
            except aiohttp.ClientError as exc:
                raise WireError("broken body", str(exc) or type(exc).__name__) from None

        async def read() -> bytes:
            try:
                return await response.read()  # type: ignore[no-any-return]
            except (asyncio.TimeoutError, aiohttp.ServerTimeoutError) as exc:
                raise WireError("timeout", str(exc) or "the body stopped coming") from None
            except aiohttp.ClientError as exc:
                raise WireError("broken body", str(exc) or type(exc).__name__) from None

        async def close() -> None:
            response.release()

        return WireResponse(
            response.status, response.headers, response.raw_headers, body, read, close
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def _detail(exc: Exception) -> str:
    return str(exc) or type(exc).__name__
