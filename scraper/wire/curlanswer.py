"""What a finished libcurl transfer of the curl wire means: its status, headers and
body as a ``WireResponse``, or the ``WireError`` a libcurl error code stands for."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pycurl
from multidict import CIMultiDict

from scraper.wire import WireError, WireResponse

# libcurl's error codes, by what the crawl counts them as.
_BAD_URL = {pycurl.E_URL_MALFORMAT}
_CONNECT = {
    pycurl.E_COULDNT_RESOLVE_PROXY,
    pycurl.E_COULDNT_RESOLVE_HOST,
    pycurl.E_COULDNT_CONNECT,
    pycurl.E_SSL_CONNECT_ERROR,
    pycurl.E_PEER_FAILED_VERIFICATION,
}
_TOO_LARGE = pycurl.E_FILESIZE_EXCEEDED
_NOT_RESENT = {*_BAD_URL, *_CONNECT, pycurl.E_OPERATION_TIMEDOUT, pycurl.E_BAD_FUNCTION_ARGUMENT}


class Transfer:
    """One GET in flight: its future, its handle, and what came back so far."""

    __slots__ = ("body", "code", "fresh", "future", "handle", "header_lines", "message", "reused")

    def __init__(self, future: asyncio.Future[None], fresh: bool) -> None:
        self.future = future
        self.fresh = fresh
        """On a new connection, not one kept alive."""
        self.handle: Any = None
        self.header_lines: list[bytes] = []
        self.body: list[bytes] = []
        self.code = 0
        """libcurl's error code (0: none) and message, set when the transfer ends."""
        self.message = ""
        self.reused = False
        """Whether it ran on a connection kept alive from an earlier request."""


def went_bad_in_the_pool(transfer: Transfer) -> bool:
    """Whether ``transfer`` failed on a kept-alive connection before any answer came."""
    if not transfer.code or not transfer.reused or transfer.code in _NOT_RESENT:
        return False
    return not any(line.startswith(b"HTTP/") for line in transfer.header_lines)


def encode_headers(url: str, headers: Mapping[str, str]) -> list[bytes]:
    """``headers`` as libcurl takes them; a ``WireError`` for one that cannot be sent."""
    lines = []
    for name, value in headers.items():
        line = f"{name}: {value}".encode()
        if b"\r" in line or b"\n" in line or b"\0" in line:
            raise WireError(
                "bad request",
                f"{url}: the header {name} holds a line break or NUL, which cannot be sent",
                retry=False,
            )
        lines.append(line)
    return lines


def response(url: str, transfer: Transfer, max_bytes: int) -> WireResponse:
    """The ``WireResponse`` of a finished transfer, or the ``WireError`` it failed with."""
    status, raw_headers = _parse_head(transfer.header_lines)
    body = b"".join(transfer.body)
    failure: WireError | None = None
    if transfer.code:
        failure = _failure(url, transfer.code, transfer.message, status, max_bytes)
        if status is None or failure.reason not in ("broken body", "too large"):
            raise failure
    assert status is not None
    # As aiohttp reads them: UTF-8, any other byte kept as a lone surrogate.
    headers = CIMultiDict(
        (name.decode("utf-8", "surrogateescape"), value.decode("utf-8", "surrogateescape"))
        for name, value in raw_headers
    )

    async def stream() -> AsyncIterator[bytes]:
        if body:
            yield body
        if failure is not None:
            raise failure

    async def read() -> bytes:
        if failure is not None:
            raise failure
        return body

    return WireResponse(status, headers, raw_headers, stream, read, _nothing)


async def _nothing() -> None:
    pass


def _parse_head(lines: list[bytes]) -> tuple[int | None, list[tuple[bytes, bytes]]]:
    """Status and header lines of the last answer in ``lines`` (after any 1xx)."""
    start = None
    for index in range(len(lines) - 1, -1, -1):
        if lines[index].startswith(b"HTTP/"):
            start = index
            break
    if start is None:
        return None, []
    try:
        status = int(lines[start].split(None, 2)[1])
    except (IndexError, ValueError):
        return None, []
    raw: list[tuple[bytes, bytes]] = []
    for line in lines[start + 1 :]:
        if line[:1] in (b" ", b"\t") and raw:  # an obsolete folded line: part of the last
            name, value = raw[-1]
            raw[-1] = (name, value + b" " + line.strip())
            continue
        name, colon, value = line.partition(b":")
        if colon:
            raw.append((name.strip(), value.strip()))
    return status, raw


def _failure(url: str, code: int, message: str, status: int | None, max_bytes: int) -> WireError:
    detail = message or f"libcurl error {code}"
    if code == _TOO_LARGE:
        return WireError(
            "too large", f"the body is over max_bytes ({max_bytes} bytes)", retry=False
        )
    if code in _BAD_URL or (
        code == pycurl.E_UNSUPPORTED_PROTOCOL and not url.startswith(("http://", "https://"))
    ):
        return WireError("bad url", f"{url}: {detail}", retry=False)
    if code in _CONNECT:
        return WireError("connect error", detail)
    if code == pycurl.E_OPERATION_TIMEDOUT:
        return WireError("timeout", detail)
    if code == pycurl.E_BAD_FUNCTION_ARGUMENT:
        return WireError("bad request", f"{url}: {detail}", retry=False)
    if status is not None:  # the head came and the body did not come whole
        return WireError("broken body", detail)
    return WireError("connection error", detail)
