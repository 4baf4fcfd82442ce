"""``CurlWire``: the wire over libcurl's multi interface (pycurl), driven by a thread.

One thread of the wire's own runs libcurl: ``perform()``, then ``select()`` on
libcurl's sockets and a socketpair that ``get()`` writes to when it hands a new
request over (through a deque). pycurl releases the GIL while libcurl works, so
what Python pays a page is a little setup, the callbacks libcurl makes for header
lines and body chunks (one a 256 KiB read), and one hand-off: the transfers that
finished go to the crawl's event loop together, with one ``call_soon_threadsafe``
until the loop has taken them. Bodies are held whole (never past ``max_bytes``)
before ``get()`` returns, so a response's body is already read.

What it shares with the other wires: no redirects followed and no decoding
(fetch.py does both, within ``max_bytes``); the wire's headers plus the
request's; cookies kept across requests (libcurl's cookie engine, one store
shared by every handle); ``proxy``; ``timeout`` as the connect timeout, the whole
request's deadline being the fetch layer's. A ``get`` cancelled by that deadline
takes its transfer out of libcurl (the connection is closed), in the curl thread.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import select
import socket
import ssl
import threading
from collections.abc import Mapping
from typing import Any

from scraper.errors import ScraperError
from scraper.spec import CrawlSettings
from scraper.wire import WireError, WireResponse

try:
    import pycurl
except ImportError as exc:  # no wheel for this platform, or not installed
    raise ScraperError(
        f"wire: curl needs pycurl, which cannot be imported here ({exc}); install it "
        "(pip install pycurl: it needs libcurl's headers where no wheel is published), or "
        "set 'wire: aiohttp' in the spider file (or SCRAPER_WIRE=aiohttp) to fetch "
        "with aiohttp."
    ) from None

# After pycurl, whose missing wheel the error above explains.
from scraper.wire.curlanswer import Transfer, encode_headers, response, went_bad_in_the_pool

MIN_BODY_CAP = 1 << 20
"""Bytes a body is always read up to, whatever ``max_bytes`` says: robots.txt is cut
(not refused) at 500 KiB."""
RECEIVE_BUFFER = 256 * 1024
"""Bytes libcurl reads from a socket at once (its default is 16 KiB): each read it hands
to Python is a callback that takes the GIL, so an 84 KiB page costs one or two, not six.
libcurl keeps one such buffer for all transfers of the wire."""
IDLE_WAIT = 1.0
"""Seconds the curl thread sleeps with nothing to do before looking for a closed loop."""


class CurlWire:
    """A ``Wire`` over a ``pycurl.CurlMulti`` run by a thread of its own (started on first use)."""

    def __init__(self, settings: CrawlSettings, headers: dict[str, str]) -> None:
        self.settings = settings
        self.headers = headers
        self.cap = max(settings.max_bytes, MIN_BODY_CAP) + 1
        self.ca_file = _ca_file()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._new: collections.deque[tuple[str, Any, Any]] = collections.deque()
        self._wake_out, self._wake_in = socket.socketpair()
        self._wake_out.setblocking(False)
        self._wake_in.setblocking(False)
        self._closing = False
        self._wake_due = False
        self._done: collections.deque[tuple[Transfer, int, str]] = collections.deque()
        self._settle_due = False
        self._lines: list[bytes] | None = None
        """The wire's own header lines, made once; None if one cannot be sent."""
        with contextlib.suppress(WireError):  # then each get() says so, naming its URL
            self._lines = encode_headers("", headers)

    async def get(self, url: str, headers: Mapping[str, str] | None = None) -> WireResponse:
        if self._closing:
            raise WireError("connection error", "the wire is closed", retry=False)
        if self._thread is None:
            self._loop = asyncio.get_running_loop()
            self._thread = threading.Thread(target=self._run, name="curl wire", daemon=True)
            self._thread.start()
        assert self._loop is not None
        lines = self._lines
        if headers or lines is None:
            lines = encode_headers(url, {**self.headers, **(headers or {})})
        transfer = await self._transfer(url, lines, fresh=False)
        if went_bad_in_the_pool(transfer):
            # A kept-alive connection can go bad while it waits in the pool (closed, or
            # holding bytes an earlier answer sent past its end), and then the request
            # may never have reached the server: once more, on a new connection, as
            # browsers (and the aiohttp wire) do.
            transfer = await self._transfer(url, lines, fresh=True)
        return response(url, transfer, self.settings.max_bytes)

    async def _transfer(self, url: str, lines: list[bytes], *, fresh: bool) -> Transfer:
        """Hand one GET to the curl thread and wait for it to end."""
        assert self._loop is not None
        transfer = Transfer(self._loop.create_future(), fresh)
        self._send("get", url, (transfer, lines))
        try:
            await transfer.future
        except asyncio.CancelledError:
            self._send("cancel", url, transfer)
            raise
        return transfer

    async def aclose(self) -> None:
        self._closing = True
        thread = self._thread
        if thread is not None:
            self._new.append(("stop", "", None))
            self._wake()
            thread.join()  # at once: the thread only waits in select(), which this wakes
        self._wake_in.close()
        self._wake_out.close()

    def _send(self, what: str, url: str, item: Any) -> None:
        """Hand ``item`` to the curl thread, which is woken once the loop's round ends:
        the requests a round of the crawl sends share one wake-up (a system call, and the
        GIL handed to the curl thread and back)."""
        self._new.append((what, url, item))
        if not self._wake_due:
            self._wake_due = True
            assert self._loop is not None
            self._loop.call_soon(self._wake)

    def _wake(self) -> None:
        self._wake_due = False
        try:  # noqa: SIM105 (a with statement costs more)
            self._wake_in.send(b"\0")
        except OSError:  # full of wake-ups (the thread will wake anyway), or closed
            pass

    # -- the curl thread -----------------------------------------------------------------

    def _run(self) -> None:
        """The curl thread: add new transfers, perform, hand finished ones back, wait."""
        multi = pycurl.CurlMulti()
        share = pycurl.CurlShare()
        share.setopt(pycurl.SH_SHARE, pycurl.LOCK_DATA_COOKIE)
        share.setopt(pycurl.SH_SHARE, pycurl.LOCK_DATA_DNS)
        share.setopt(pycurl.SH_SHARE, pycurl.LOCK_DATA_SSL_SESSION)
        idle: list[Any] = []
        running: dict[Any, Transfer] = {}
        wake = self._wake_out.fileno()
        try:
            while True:
                if not self._take_new(multi, share, idle, running):
                    return
                while multi.perform()[0] == pycurl.E_CALL_MULTI_PERFORM:
                    pass
                done = self._finished(multi, idle, running)
                if done and not self._hand_back(done):
                    return
                if self._loop is not None and self._loop.is_closed():
                    return  # nobody is left to hand an answer to
                reads, writes, errors = multi.fdset()
                timeout = multi.timeout() if running else -1
                wait = IDLE_WAIT if timeout < 0 else min(timeout / 1000, IDLE_WAIT)
                if wait > 0:
                    select.select([*reads, wake], writes, errors, wait)
                try:  # noqa: SIM105 (a with statement costs more, once a round)
                    self._wake_out.recv(4096)
                except BlockingIOError:
                    pass
        finally:
            for handle in running:
                multi.remove_handle(handle)
                handle.close()
            for handle in idle:
                handle.close()
            multi.close()
            share.close()
            self._fail_all([t for t, _ in self._drain()] + list(running.values()))

    def _drain(self) -> list[tuple[Transfer, str]]:
        gets = []
        while self._new:
            what, url, item = self._new.popleft()
            if what == "get":
                gets.append((item[0], url))
        return gets

    def _take_new(
        self, multi: Any, share: Any, idle: list[Any], running: dict[Any, Transfer]
    ) -> bool:
        """Start the transfers handed over, drop the cancelled; False on ``stop``."""
        while self._new:
            what, url, item = self._new.popleft()
            if what == "get":
                transfer, lines = item
                handle = idle.pop() if idle else self._new_handle(share)
                try:
                    _prepare(handle, url, transfer, lines)
                except (pycurl.error, UnicodeError, TypeError, ValueError) as exc:
                    idle.append(handle)  # libcurl refused what it was given: this GET fails
                    if not self._hand_back([(transfer, pycurl.E_BAD_FUNCTION_ARGUMENT, str(exc))]):
                        return False
                    continue
                running[handle] = transfer
                multi.add_handle(handle)
            elif what == "cancel":
                handle = item.handle
                if handle is not None and running.get(handle) is item:
                    del running[handle]
                    multi.remove_handle(handle)  # closes its connection: it was mid-answer
                    idle.append(handle)
            else:
                return False
        return True

    def _new_handle(self, share: Any) -> Any:
        handle = pycurl.Curl()
        settings = self.settings
        handle.setopt(pycurl.SHARE, share)
        handle.setopt(pycurl.COOKIEFILE, "")  # the cookie engine on, in memory
        handle.setopt(pycurl.NOSIGNAL, 1)
        handle.setopt(pycurl.FOLLOWLOCATION, 0)
        # HTTP/1.1 as the aiohttp wire speaks it; libcurl would offer HTTP/2 over TLS,
        # which nothing here has measured or tested yet.
        handle.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_1_1)
        handle.setopt(pycurl.HTTP_CONTENT_DECODING, 0)  # fetch.py inflates within max_bytes
        handle.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
        handle.setopt(pycurl.CONNECTTIMEOUT_MS, max(1, int(settings.timeout * 1000)))
        handle.setopt(pycurl.MAXFILESIZE_LARGE, self.cap)
        handle.setopt(pycurl.PROXY, settings.proxy or "")
        handle.setopt(pycurl.CAINFO, self.ca_file)
        handle.setopt(pycurl.BUFFERSIZE, RECEIVE_BUFFER)
        return handle

    def _finished(
        self, multi: Any, idle: list[Any], running: dict[Any, Transfer]
    ) -> list[tuple[Transfer, int, str]]:
        done = []
        while True:
            queued, ok, failed = multi.info_read()
            for handle in ok:
                done.append((running.pop(handle), 0, ""))
            for handle, code, message in failed:
                transfer = running.pop(handle)
                transfer.reused = handle.getinfo(pycurl.NUM_CONNECTS) == 0
                done.append((transfer, code, message))
            for handle in [*ok, *(f[0] for f in failed)]:
                multi.remove_handle(handle)
                idle.append(handle)
            if not queued:
                return done

    def _hand_back(self, done: list[tuple[Transfer, int, str]]) -> bool:
        """Give finished transfers to the event loop; False if it is closed. Until the
        loop has taken what was handed back before, more go with it: no new wake-up (a
        system call, and a thread switch when the loop sleeps)."""
        assert self._loop is not None
        self._done.extend(done)
        if self._settle_due:
            return not self._loop.is_closed()
        self._settle_due = True
        try:
            self._loop.call_soon_threadsafe(self._settle)
        except RuntimeError:  # the loop is closed: nobody waits for these any more
            return False
        return True

    def _settle(self) -> None:
        """In the event loop: each transfer handed back gets its result."""
        # The flag first: a transfer the curl thread adds after it schedules another call.
        self._settle_due = False
        done = self._done
        while done:
            transfer, code, message = done.popleft()
            if not transfer.future.done():
                transfer.code, transfer.message = code, message
                transfer.future.set_result(None)

    def _fail_all(self, transfers: list[Transfer]) -> None:
        if not transfers or self._loop is None:
            return
        self._done.extend((t, -1, "the wire was closed") for t in transfers)
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._settle)


def _ca_file() -> str:
    """The certificates HTTPS answers are checked against: the system's, as Python's ssl
    (and so aiohttp) finds them (``SSL_CERT_FILE`` included), else certifi's (as httpx).
    The wheel's libcurl was built elsewhere: its own default path may not exist here."""
    cafile = ssl.get_default_verify_paths().cafile
    if cafile:
        return cafile
    import certifi

    return certifi.where()


def _prepare(handle: Any, url: str, transfer: Transfer, lines: list[bytes]) -> None:
    transfer.handle = handle
    handle.setopt(pycurl.URL, url)
    handle.setopt(pycurl.FRESH_CONNECT, transfer.fresh)
    handle.setopt(pycurl.HTTPHEADER, lines)
    handle.setopt(pycurl.HEADERFUNCTION, transfer.header_lines.append)
    handle.setopt(pycurl.WRITEFUNCTION, transfer.body.append)
