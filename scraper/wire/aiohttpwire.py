"""``AiohttpWire``: the wire over an aiohttp session (``wire: aiohttp``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

from scraper.spec import CrawlSettings
from scraper.wire import WireError, WireResponse, detail


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
            raise WireError("connection error", detail(exc)) from None

        async def body() -> AsyncIterator[bytes]:
            try:
                async for chunk in response.content.iter_any():
                    yield chunk
            except (asyncio.TimeoutError, aiohttp.ServerTimeoutError) as exc:
                raise WireError("timeout", str(exc) or "the body stopped coming") from None
            except aiohttp.ClientError as exc:
                raise WireError("broken body", detail(exc)) from None

        async def read() -> bytes:
            try:
                return await response.read()  # type: ignore[no-any-return]
            except (asyncio.TimeoutError, aiohttp.ServerTimeoutError) as exc:
                raise WireError("timeout", str(exc) or "the body stopped coming") from None
            except aiohttp.ClientError as exc:
                raise WireError("broken body", detail(exc)) from None

        async def close() -> None:
            response.release()

        return WireResponse(
            response.status, response.headers, response.raw_headers, body, read, close
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
