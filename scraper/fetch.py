"""The one place that talks HTTP: client, redirects, retries, size cap, charset.

``Fetcher`` is given its ``Wire`` (``scraper.wire``: libcurl by default, aiohttp, or
httpx over a given transport for cassettes and tests); it follows redirects, retries,
caps and inflates bodies, and decodes them (``scraper.charset``).

A fetch either returns a decoded ``Page`` or raises ``FetchError`` with a short
reason (``timeout``, ``http 404``, ``too large``, ``bad redirect``, ...) that the
crawl counts; whatever a server answers, nothing else comes out of ``fetch``. A
conditional request (``headers`` with ``If-None-Match`` / ``If-Modified-Since``,
from ``--incremental``) answered 304 is a ``Page`` of status 304 and no body; a
304 to any other request is read as a page like a 200, as it always was.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import zlib
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit

from scraper.charset import decode, header_charset
from scraper.errors import FetchError, describe
from scraper.models import Page, Request
from scraper.spec import CrawlSettings
from scraper.wire import ACCEPT_ENCODINGS, Wire, WireError, WireResponse

log = logging.getLogger("scraper")

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
THROTTLE_STATUSES = frozenset({429, 503})
MAX_BACKOFF = 30.0
"""The longest wait a server can ask for (Retry-After, Crawl-delay), in seconds."""
DEFAULT_THROTTLE = 5.0
"""Seconds a host is paused after a 429/503 that gives no Retry-After."""

__all__ = ["MAX_BACKOFF", "Fetcher", "decode"]

_GZIP_MAGIC = b"\x1f\x8b"
_CONTROL_BYTES = re.compile(rb"[\x00-\x08\x0e-\x1a\x1c-\x1f]")
_PLAIN = 0
"""In ``_BodyReader``'s ways of reading a body: as it is, not inflated."""


class Fetcher:
    """Fetches one ``Request`` into a ``Page``, following redirects and retrying."""

    def __init__(
        self,
        wire: Wire,
        settings: CrawlSettings,
        allow_url: Callable[[str], bool] = lambda url: True,
        on_throttle: Callable[[str, float], None] = lambda host, seconds: None,
    ) -> None:
        self.wire = wire
        self.settings = settings
        self.allow_url = allow_url
        self.on_throttle = on_throttle

    async def fetch(
        self,
        request: Request,
        *,
        truncate_at: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Page:
        """Fetch ``request``, retrying transient failures; raise ``FetchError`` if it fails.

        Connection errors, timeouts, 408, 429 and 5xx are retried up to ``retries``
        times with exponential backoff and jitter; a 429 or 503 waits what its
        Retry-After says and reports the host to ``on_throttle`` (which slows it).
        With ``truncate_at``, a body is cut at that many bytes instead of failing
        past ``max_bytes``. ``headers`` are sent with this request (and its redirects)
        on top of the settings' own.
        """
        attempt = 0
        while True:
            try:
                async with asyncio.timeout(self.settings.timeout):
                    return await self._follow_redirects(request, truncate_at, headers)
            except TimeoutError:
                failure = _Retryable("timeout", f"no complete answer in {self.settings.timeout}s")
            except _Retryable as retryable:
                failure = retryable
            if attempt >= self.settings.retries:
                raise FetchError(failure.reason, failure.detail)
            wait = _backoff(attempt, failure.retry_after)
            if failure.throttle:
                self.on_throttle(request.host, wait)
            await asyncio.sleep(wait)
            attempt += 1

    async def _follow_redirects(
        self, request: Request, truncate_at: int | None, headers: Mapping[str, str] | None
    ) -> Page:
        url = request.url
        seen = {url}
        for _ in range(self.settings.max_redirects + 1):
            response = await self._get(url, headers)
            try:
                if response.status == 304 and headers:
                    # Not modified since the answer the headers name: nothing to read.
                    return Page(url, 304, response.raw_headers, b"", "", "utf-8", request)
                if response.status in REDIRECT_STATUSES:
                    location = response.headers.get("location")
                    if location is None:
                        raise FetchError(
                            "redirect without location",
                            f"{url} answered {response.status} without a Location header",
                        )
                    url = self._redirect_target(url, location, seen)
                    continue
                return await self._read(request, url, response, truncate_at)
            finally:
                await response.close()
        raise FetchError(
            "too many redirects", f"more than {self.settings.max_redirects} from {request.url}"
        )

    async def _get(self, url: str, headers: Mapping[str, str] | None = None) -> WireResponse:
        try:
            return await self.wire.get(url, headers)
        except WireError as failure:
            raise _from_wire(failure) from None
        except Exception as exc:
            # The HTTP library refusing what it was given (a header value with a
            # newline, a URL it cannot send): this request can never be sent.
            raise FetchError("bad request", f"{url}: {describe(exc)}") from None

    def _redirect_target(self, url: str, location: str, seen: set[str]) -> str:
        allowed = False
        try:
            target = urljoin(url, location.strip())
            scheme = urlsplit(target).scheme
            if scheme in ("http", "https") and target not in seen:
                allowed = self.allow_url(target)
        except ValueError as exc:
            raise FetchError("bad redirect", f"{url} redirects to {location!r}: {exc}") from None
        if scheme not in ("http", "https"):
            raise FetchError("redirect not http", f"{url} redirects to {target}")
        if target in seen:
            raise FetchError("redirect loop", f"{url} redirects back to {target}")
        if not allowed:
            raise FetchError("redirect offsite", f"{url} redirects to {target}")
        seen.add(target)
        return target

    async def _read(
        self, request: Request, url: str, response: WireResponse, truncate_at: int | None
    ) -> Page:
        status = response.status
        if status < 200:
            raise FetchError(f"http {status}", f"answered {status}, which is not a final answer")
        if status >= 400:
            reason = f"http {status}"
            if status in THROTTLE_STATUSES:
                retry_after = _retry_after(response.headers.get("retry-after"))
                raise _Retryable(
                    reason,
                    f"answered {status}",
                    DEFAULT_THROTTLE if retry_after is None else retry_after,
                    True,
                )
            if status >= 500 or status == 408:
                raise _Retryable(reason, f"answered {status}")
            raise FetchError(reason, f"answered {status}")
        content_type = response.headers.get("content-type", "").lower()
        accepted = self.settings.content_types
        if content_type and "*" not in accepted and not any(t in content_type for t in accepted):
            raise FetchError("not text", f"it is {content_type} (accepted: {', '.join(accepted)})")
        limit = truncate_at or self.settings.max_bytes
        length = _content_length(response.headers)
        if length is not None and length > limit and truncate_at is None:
            raise FetchError("too large", f"it declares {length} bytes (max_bytes: {limit})")
        compression = response.headers.get("content-encoding", "")
        try:
            if length is not None and length <= limit and not compression:
                content = await _read_all(response)  # known to fit: in one go
            else:
                body = _BodyReader(compression, limit, truncate=truncate_at is not None)
                async for chunk in _body(response):
                    body.feed(chunk)
                    if body.full:
                        break
                content = body.finish()
        except WireError as failure:
            raise _from_wire(failure) from None
        text, encoding = decode(content, header_charset(content_type))
        return Page(
            url=url,
            status=status,
            raw_headers=response.raw_headers,
            content=content,
            text=text,
            encoding=encoding,
            request=request,
        )


class _BodyReader:
    """Decompresses a body as it arrives, never past ``limit`` bytes of output.

    httpx would inflate each compressed chunk whole before we could count it, so
    a gzip bomb's chunk of 64 KiB could cost hundreds of MiB; here no more than
    ``limit`` + 1 bytes are ever inflated. A body sent as gzip or deflate is read
    as a zlib or gzip stream, else as a bare deflate stream (as some servers
    send), else, if it does not look compressed, as it is: a plain page sent as
    gzip is a common server misconfiguration. With ``truncate`` the first
    ``limit`` bytes are kept and ``full`` says to stop reading.
    """

    def __init__(self, content_encoding: str, limit: int, *, truncate: bool = False) -> None:
        self.limit = limit
        self.truncate = truncate
        self.full = False
        self.size = 0
        self._chunks: list[bytes] = []
        self._inflate: zlib._Decompress | None = None
        self._unread: list[bytes] = []
        """The body as sent, kept until something comes out: another way reads it again."""
        self._unread_size = 0
        self._ways: list[int] = []
        encodings = [e.strip() for e in content_encoding.lower().split(",") if e.strip()]
        encodings = [e for e in encodings if e != "identity"]
        if len(encodings) > 1 or (encodings and encodings[0] not in ACCEPT_ENCODINGS):
            raise FetchError(
                "bad encoding", f"Content-Encoding {content_encoding} is not supported"
            )
        self._encoding = encodings[0] if encodings else ""
        if encodings:
            # 47: a zlib or gzip header, detected; -15: bare deflate; then as it is
            self._inflate = zlib.decompressobj(47)
            self._ways = [-15, _PLAIN]

    def feed(self, chunk: bytes) -> None:
        """Take the next chunk of the body as sent."""
        if self.full:
            return
        if self._inflate is None:
            self._take(chunk)
            return
        if self.size == 0:
            self._unread.append(chunk)
            self._unread_size += len(chunk)
            if self._unread_size > self.limit:
                raise FetchError(
                    "too large", f"the body is over max_bytes ({self.limit} bytes) compressed"
                )
        try:
            self._inflate_into(self._inflate, chunk)
        except zlib.error as exc:
            self._fall_back(str(exc), at_end=False)
        if self.size:
            self._unread = []

    def finish(self) -> bytes:
        """The whole body, inflated."""
        inflate = self._inflate
        if inflate is not None and not self.full:
            try:
                self._take(inflate.flush())
            except zlib.error as exc:
                self._fall_back(str(exc), at_end=True)
            else:
                if self.size == 0 and self._unread_size and not inflate.eof:
                    self._fall_back("it ends before anything could be inflated", at_end=True)
        return b"".join(self._chunks)

    def _fall_back(self, error: str, *, at_end: bool) -> None:
        """Nothing came out of the body the current way: read it from its start the next."""
        if self.size:  # some of it inflated: a broken stream, not a mislabelled one
            raise FetchError("bad encoding", f"the compressed body is broken: {error}")
        body = b"".join(self._unread)
        while self._ways:
            way = self._ways.pop(0)
            if way == _PLAIN:
                if _looks_compressed(body):
                    break
                self._inflate = None
                self._take(body)
                return
            self._inflate = inflate = zlib.decompressobj(way)
            try:
                self._inflate_into(inflate, body)
                if at_end and not self.full:
                    self._take(inflate.flush())
            except zlib.error as exc:
                if self.size:
                    raise FetchError(
                        "bad encoding", f"the compressed body is broken: {exc}"
                    ) from None
                error = str(exc)
                continue
            if self.size or inflate.eof or not at_end:
                return
        raise FetchError(
            "bad encoding",
            f"the body is sent as {self._encoding} but is neither that nor plain text: {error}",
        )

    def _inflate_into(self, inflate: zlib._Decompress, data: bytes) -> None:
        self._take(inflate.decompress(data, self.limit - self.size + 1))
        while inflate.unconsumed_tail and not self.full:
            self._take(inflate.decompress(inflate.unconsumed_tail, self.limit - self.size + 1))

    def _take(self, data: bytes) -> None:
        if self.size + len(data) > self.limit:
            if not self.truncate:
                raise FetchError("too large", f"the body is over max_bytes ({self.limit} bytes)")
            data = data[: self.limit - self.size]
            self.full = True
        self.size += len(data)
        if data:
            self._chunks.append(data)


def _looks_compressed(body: bytes) -> bool:
    """Whether ``body`` looks like compressed data rather than text: plain pages have
    no control characters but whitespace (and ESC, in ISO-2022) near their start."""
    head = body[:1024]
    return head.startswith(_GZIP_MAGIC) or _CONTROL_BYTES.search(head) is not None


async def _body(response: WireResponse) -> AsyncIterator[bytes]:
    """The raw body's chunks; what the wire's library raises is a ``WireError``."""
    try:
        async for chunk in response.body():
            yield chunk
    except (WireError, FetchError):
        raise
    except Exception as exc:
        raise WireError("broken body", describe(exc), retry=False) from None


async def _read_all(response: WireResponse) -> bytes:
    try:
        return await response.read()
    except WireError:
        raise
    except Exception as exc:
        raise WireError("broken body", describe(exc), retry=False) from None


class _Retryable(Exception):
    """A failure worth another attempt (after ``retry_after`` seconds when the server said)."""

    def __init__(
        self, reason: str, detail: str, retry_after: float | None = None, throttle: bool = False
    ) -> None:
        self.reason = reason
        self.detail = detail
        self.retry_after = retry_after
        self.throttle = throttle


def _from_wire(failure: WireError) -> FetchError | _Retryable:
    """A wire's failure as the fetch layer raises it: worth another attempt, or final."""
    if failure.retry:
        return _Retryable(failure.reason, failure.detail)
    return FetchError(failure.reason, failure.detail)


def _backoff(attempt: int, retry_after: float | None) -> float:
    if retry_after is not None:
        return min(retry_after, MAX_BACKOFF)
    base = min(0.5 * 2**attempt, MAX_BACKOFF)
    return base / 2 + random.uniform(0, base / 2)


def _ascii_digits(value: str) -> bool:
    # str.isdigit() is also true of "²" and "٣", which int() and float() refuse or misread
    return value.isascii() and value.isdigit()


def _content_length(headers: Mapping[str, str]) -> int | None:
    """The declared Content-Length, or None when there is none that can be believed."""
    declared = headers.get("content-length", "").strip()
    return int(declared) if _ascii_digits(declared) and len(declared) <= 18 else None


def _retry_after(value: str | None) -> float | None:
    """Seconds a Retry-After value asks to wait (a number, or an HTTP date); None when
    there is no value that can be read."""
    value = (value or "").strip()
    if not value:
        return None
    if _ascii_digits(value):
        return float(value)  # inf for an absurd length: the wait is capped anyway
    try:
        when = parsedate_to_datetime(value)
        if when.tzinfo is None:  # "-0000": a time in UTC, from a source that does not say
            when = when.replace(tzinfo=timezone.utc)
        return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
