"""``HttpxWire``: the wire over an ``httpx.AsyncClient`` and any httpx transport.

Used when a transport is given: vcrpy cassettes (which patch httpx's transports),
tests that route hosts to a local server, custom transports.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import httpx

from scraper.spec import CrawlSettings
from scraper.wire import NotInCassette, WireError, WireResponse, detail

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

    @classmethod
    def over(
        cls, transport: httpx.AsyncBaseTransport, settings: CrawlSettings, headers: dict[str, str]
    ) -> HttpxWire:
        """The wire over ``transport``, sending ``headers`` with the timeout of ``settings``."""
        client = httpx.AsyncClient(
            transport=transport,
            headers=headers,
            timeout=httpx.Timeout(settings.timeout),
            follow_redirects=False,
            event_hooks={"response": [_keep_location]},
        )
        return cls(client)

    async def get(self, url: str, headers: Mapping[str, str] | None = None) -> WireResponse:
        request = self.client.build_request("GET", url, headers=headers)
        try:
            response = await self.client.send(request, stream=True)
        except NotInCassette as exc:
            raise WireError("not in cassette", str(exc), retry=False) from None
        except httpx.TimeoutException as exc:
            raise WireError("timeout", detail(exc)) from None
        except httpx.UnsupportedProtocol as exc:
            raise WireError("bad url", detail(exc), retry=False) from None
        except httpx.LocalProtocolError as exc:  # what we would send is not valid HTTP
            raise WireError("bad request", f"{url}: {detail(exc)}", retry=False) from None
        except (httpx.ConnectError, httpx.ProxyError) as exc:
            raise WireError("connect error", detail(exc)) from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            location = request.extensions.get(_LOCATION)
            if location is not None:  # the answer came; httpx could not read its Location
                raise WireError(
                    "bad redirect", f"{url} redirects to {location!r}: {detail(exc)}", retry=False
                ) from None
            raise WireError("connection error", detail(exc)) from None

        async def body() -> AsyncIterator[bytes]:
            try:
                async for chunk in response.aiter_raw():
                    yield chunk
            except httpx.TimeoutException as exc:
                raise WireError("timeout", detail(exc)) from None
            except httpx.HTTPError as exc:
                raise WireError("broken body", detail(exc)) from None

        async def read() -> bytes:
            return b"".join([chunk async for chunk in body()])

        headers = response.headers
        return WireResponse(response.status_code, headers, headers.raw, body, read, response.aclose)

    async def aclose(self) -> None:
        await self.client.aclose()
