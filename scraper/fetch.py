"""The one place that talks HTTP: client, redirects, retries, size cap, charset.

``Fetcher`` is given its ``Wire`` (``scraper.wire``: aiohttp by default, httpx
over a given transport for cassettes and tests); it follows redirects, retries,
caps and inflates bodies, and decodes them.

A fetch either returns a decoded ``Page`` or raises ``FetchError`` with a short
reason (``timeout``, ``http 404``, ``too large``, ...) that the crawl counts.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import random
import re
import zlib
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

from scraper.errors import FetchError
from scraper.models import Page, Request
from scraper.spec import CrawlSettings
from scraper.wire import ACCEPT_ENCODINGS, Wire, WireError, WireResponse

if TYPE_CHECKING:
    from protego import Protego

log = logging.getLogger("scraper")

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
THROTTLE_STATUSES = frozenset({429, 503})
MAX_BACKOFF = 30.0
DEFAULT_THROTTLE = 5.0
"""Seconds a host is paused after a 429/503 that gives no Retry-After."""

_HEADER_CHARSET = re.compile(r"""charset\s*=\s*["']?([A-Za-z0-9_.:-]+)""", re.I)
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
# Browsers read these labels as a wider encoding (WHATWG Encoding Standard); so do we.
_WIDER = {"gb2312": "gb18030", "gbk": "gb18030", "iso8859-1": "cp1252"}


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

    async def fetch(self, request: Request) -> Page:
        """Fetch ``request``, retrying transient failures; raise ``FetchError`` if it fails.

        Connection errors, timeouts, 408, 429 and 5xx are retried up to ``retries``
        times with exponential backoff and jitter; a 429 or 503 waits what its
        Retry-After says and reports the host to ``on_throttle`` (which slows it).
        """
        attempt = 0
        while True:
            try:
                async with asyncio.timeout(self.settings.timeout):
                    return await self._follow_redirects(request)
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

    async def _follow_redirects(self, request: Request) -> Page:
        url = request.url
        seen = {url}
        for _ in range(self.settings.max_redirects + 1):
            try:
                response = await self.wire.get(url)
            except WireError as failure:
                if not failure.retry:
                    raise FetchError(failure.reason, failure.detail) from None
                raise _Retryable(failure.reason, failure.detail) from None
            try:
                location = response.headers.get("location")
                if response.status in REDIRECT_STATUSES and location is not None:
                    url = self._redirect_target(url, location, seen)
                    continue
                return await self._read(request, url, response)
            finally:
                await response.close()
        raise FetchError(
            "too many redirects", f"more than {self.settings.max_redirects} from {request.url}"
        )

    def _redirect_target(self, url: str, location: str, seen: set[str]) -> str:
        target = urljoin(url, location.strip())
        if urlsplit(target).scheme not in ("http", "https"):
            raise FetchError("redirect not http", f"{url} redirects to {target}")
        if target in seen:
            raise FetchError("redirect loop", f"{url} redirects back to {target}")
        if not self.allow_url(target):
            raise FetchError("redirect offsite", f"{url} redirects to {target}")
        seen.add(target)
        return target

    async def _read(self, request: Request, url: str, response: WireResponse) -> Page:
        status = response.status
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
        limit = self.settings.max_bytes
        declared = response.headers.get("content-length", "")
        known_length = declared.isdigit()
        if known_length and int(declared) > limit:
            raise FetchError("too large", f"it declares {declared} bytes (max_bytes: {limit})")
        compression = response.headers.get("content-encoding", "")
        try:
            if known_length and not compression:
                content = await response.read()  # known to fit: in one go
            else:
                body = _BodyReader(compression, limit)
                async for chunk in response.body():
                    body.feed(chunk)
                content = body.finish()
        except WireError as failure:
            raise _Retryable(failure.reason, failure.detail) from None
        text, encoding = decode(content, _charset(content_type))
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
    ``limit`` + 1 bytes are ever inflated.
    """

    def __init__(self, content_encoding: str, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self._chunks: list[bytes] = []
        self._inflate: zlib._Decompress | None = None
        encodings = [e.strip() for e in content_encoding.lower().split(",") if e.strip()]
        encodings = [e for e in encodings if e != "identity"]
        if len(encodings) > 1 or (encodings and encodings[0] not in ACCEPT_ENCODINGS):
            raise FetchError(
                "bad encoding", f"Content-Encoding {content_encoding} is not supported"
            )
        if encodings:
            # 47: zlib or gzip header, detected; raw deflate is handled in feed()
            self._inflate = zlib.decompressobj(47)

    def feed(self, chunk: bytes) -> None:
        if self._inflate is None:
            self._take(chunk)
            return
        try:
            data = self._inflate.decompress(chunk, self.limit - self.size + 1)
            self._take(data)
            while self._inflate.unconsumed_tail:
                tail = self._inflate.unconsumed_tail
                self._take(self._inflate.decompress(tail, self.limit - self.size + 1))
        except zlib.error as exc:
            if self.size == 0:
                self._inflate = zlib.decompressobj(-15)  # a bare deflate stream, as some send
                self.feed(chunk)
                return
            raise FetchError("bad encoding", f"the compressed body is broken: {exc}") from None

    def finish(self) -> bytes:
        if self._inflate is not None:
            self._take(self._inflate.flush())
        return b"".join(self._chunks)

    def _take(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise FetchError("too large", f"the body is over max_bytes ({self.limit} bytes)")
        if data:
            self._chunks.append(data)


class RobotsRules:
    """robots.txt of each host, fetched once per crawl and read with Protego.

    A robots.txt that cannot be fetched (404, 5xx after retries, an error) allows
    everything, as most crawlers do; its failure is logged, not counted.
    """

    def __init__(self, fetcher: Fetcher) -> None:
        self._fetcher = fetcher
        self._user_agent = fetcher.settings.user_agent
        self._rules: dict[str, tuple[Protego | None, float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def check(self, url: str) -> tuple[bool, float]:
        """Whether robots.txt lets our user agent fetch ``url``, and the host's
        ``Crawl-delay`` for our user agent (0 when it sets none)."""
        rules, delay = await self._rules_for(url)
        return rules is None or rules.can_fetch(url, self._user_agent), delay

    async def _rules_for(self, url: str) -> tuple[Protego | None, float]:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin in self._rules:
            return self._rules[origin]
        lock = self._locks.setdefault(origin, asyncio.Lock())
        async with lock:
            if origin not in self._rules:
                self._rules[origin] = await self._fetch(origin + "/robots.txt")
        return self._rules[origin]

    async def _fetch(self, url: str) -> tuple[Protego | None, float]:
        try:
            page = await self._fetcher.fetch(Request(url))
        except FetchError as failure:
            log.info("no robots.txt rules from %s (%s): all allowed", url, failure.reason)
            return None, 0.0
        from protego import Protego

        rules = Protego.parse(page.text)
        return rules, float(rules.crawl_delay(self._user_agent) or 0.0)


def decode(content: bytes, declared: str | None) -> tuple[str, str]:
    """Decode a page: the declared charset (header, else ``<meta>``) if it fits, else detect.

    Returns the text and the name of the encoding used. A declared charset that
    does not decode the bytes (GBK under a utf-8 label, say) is not trusted.
    """
    for bom, name in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if content.startswith(bom):
            return content.decode(name, errors="replace"), name
    candidates = []
    label = declared or _meta_charset(content)
    if label:
        candidates.append(_codec_name(label))
    candidates.append("utf-8")
    for name in dict.fromkeys(c for c in candidates if c):
        try:
            return content.decode(name), name
        except (UnicodeDecodeError, LookupError):
            continue
    from charset_normalizer import from_bytes

    best = from_bytes(content[:200_000]).best()
    detected = _codec_name(best.encoding) if best else None
    name = detected or candidates[0] or "utf-8"
    return content.decode(name, errors="replace"), name


def _charset(content_type: str) -> str | None:
    found = _HEADER_CHARSET.search(content_type)
    return found.group(1) if found else None


def _meta_charset(content: bytes) -> str | None:
    found = _META_CHARSET.search(content, 0, 8192)
    return found.group(1).decode("ascii") if found else None


def _codec_name(label: str) -> str | None:
    try:
        name = codecs.lookup(label.strip().strip("\"'")).name
    except LookupError:
        return None
    return _WIDER.get(name, name)


class _Retryable(Exception):
    """A failure worth another attempt (after ``retry_after`` seconds when the server said)."""

    def __init__(
        self, reason: str, detail: str, retry_after: float | None = None, throttle: bool = False
    ) -> None:
        self.reason = reason
        self.detail = detail
        self.retry_after = retry_after
        self.throttle = throttle


def _backoff(attempt: int, retry_after: float | None) -> float:
    if retry_after is not None:
        return min(retry_after, MAX_BACKOFF)
    base = min(0.5 * 2**attempt, MAX_BACKOFF)
    return base / 2 + random.uniform(0, base / 2)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    from datetime import datetime, timezone

    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
