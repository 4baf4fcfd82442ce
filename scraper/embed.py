"""Running a crawl inside someone else's program: the machinery under ``scraper.api``.

A ``Job`` is one spider ready to crawl. ``records_in_thread`` crawls it on an
event loop of its own in a worker thread (so it works where a loop already
runs, as in Jupyter) and ``records_on_loop`` on the caller's loop; both hand the
records to the reader through a ``Handoff``, a page's at a time. ``run_in_thread``
crawls to the end into an output.

Closing the reader stops the crawl at once: its task is cancelled, which makes
``Crawler.run`` cancel its workers and close its connections, and the thread is
joined. No signal handler is set (``no_stop_handlers``): Ctrl-C is a
``KeyboardInterrupt`` in the reader's code, which closes the reader.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import Counter, deque
from collections.abc import AsyncGenerator, Callable, Coroutine, Generator, Iterable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from scraper.errors import ScraperError
from scraper.models import Record
from scraper.stopping import no_stop_handlers

if TYPE_CHECKING:
    from scraper.callbacks import Callback
    from scraper.output import RecordSink
    from scraper.spec import SpiderSpec
    from scraper.state import CrawlState
    from scraper.stats import CrawlStats

T = TypeVar("T")

WAITING_RECORDS = 1000
"""Records handed over but not yet read past which the crawl takes no new page."""

_REPLAYING = threading.Lock()
"""Held by the offline crawl running in this process, if any."""


@dataclass(frozen=True)
class Job:
    """One spider to crawl, its settings final and its callbacks imported."""

    spider: SpiderSpec
    callbacks: Mapping[str, Callback]
    cassette: Path | None = None
    """The cassette replayed instead of the network, for ``offline=True``."""

    async def crawl(
        self,
        sink: RecordSink,
        pause: Callable[[], Coroutine[Any, Any, None]] | None = None,
        state: CrawlState | None = None,
    ) -> CrawlStats:
        """Crawl to the end (or until cancelled), writing to ``sink``; the stats."""
        from scraper.crawler import Crawler

        with ExitStack() as stack:
            transport = None
            if self.cassette is not None:
                from scraper.cassette import cassette_transport

                # vcrpy replays by patching the HTTP libraries of the whole process,
                # so a second replay at once would answer from the wrong cassette.
                if not _REPLAYING.acquire(blocking=False):
                    raise ScraperError(
                        "another offline crawl is running in this process, and two cannot "
                        "run at once: a cassette is replayed by patching the HTTP libraries "
                        "of the whole process. Finish or close the first one, or run this "
                        "one online."
                    )
                stack.callback(_REPLAYING.release)
                transport = stack.enter_context(
                    cassette_transport(self.cassette, record=False, spider=self.spider.name)
                )
            crawler = Crawler(
                self.spider,
                sink,
                callbacks=self.callbacks,
                transport=transport,
                state=state,
                pause=pause,
            )
            with no_stop_handlers():
                return await crawler.run()


class Handoff:
    """The records of a crawl on their way to its reader, a page's at a time.

    The crawl writes them (it is the crawl's ``RecordSink``) on its event loop; the
    reader takes them from another thread (``take``) or from a task on the same
    loop (``atake``). While ``limit`` records or more wait, ``pause`` holds the
    crawl's workers before their next page: a slow reader slows the crawl, and what
    waits is at most ``limit`` records and the pages in flight.
    """

    size = 0
    """No file: nothing for ``--resume`` to keep."""

    def __init__(self, limit: int = WAITING_RECORDS) -> None:
        self._limit = limit
        self._batches: deque[list[Record]] = deque()
        self._waiting = 0
        self._ended = False
        self._error: BaseException | None = None
        self._changed = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._room = asyncio.Event()
        self._arrived = asyncio.Event()

    # -- the crawl's side, on its event loop --------------------------------------------

    def write(self, records: Iterable[Record], *, url: str | None = None) -> Counter[str]:
        """Hand one page's records over; none is left out."""
        batch = list(records)
        if batch:
            with self._changed:
                self._batches.append(batch)
                self._waiting += len(batch)
                self._changed.notify()
            self._arrived.set()
        return Counter()

    async def pause(self) -> None:
        """Return once fewer than ``limit`` records wait for the reader."""
        self._loop = asyncio.get_running_loop()
        while self._waiting >= self._limit:
            self._room.clear()
            await self._room.wait()

    def end(self, error: BaseException | None = None) -> None:
        """The crawl is over (by ``error``, if not ``None``): the reader ends after the
        records that wait."""
        with self._changed:
            self._ended = True
            self._error = error
            self._changed.notify_all()
        self._arrived.set()

    # -- the reader's side ----------------------------------------------------------------

    def take(self) -> list[Record] | None:
        """The next page's records, waiting for them; ``None`` once the crawl is over.

        For a reader in another thread than the crawl's.
        """
        with self._changed:
            while not self._batches and not self._ended:
                self._changed.wait()
            batch = self._next()
            loop = self._loop
        if batch and loop is not None:
            # RuntimeError: the crawl is over and its loop closed; nobody waits for room.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._room.set)
        return batch

    async def atake(self) -> list[Record] | None:
        """``take`` for a reader on the crawl's own event loop."""
        while True:
            self._arrived.clear()
            with self._changed:
                if self._batches or self._ended:
                    batch = self._next()
                    self._room.set()
                    return batch
            await self._arrived.wait()

    def _next(self) -> list[Record] | None:
        if self._batches:
            batch = self._batches.popleft()
            self._waiting -= len(batch)
            return batch
        if self._error is not None:
            raise self._error
        return None


class LoopThread(Generic[T]):
    """A coroutine run to its end on an event loop of its own, in a thread of its own.

    ``stop()`` cancels it and waits until the thread has ended: the coroutine's
    cleanup done, the loop's tasks, async generators and executor shut down by
    ``asyncio.run``. ``on_end`` is called in the thread at the very end, with the
    exception the coroutine ended by (``None`` when it returned).
    """

    def __init__(
        self,
        make: Callable[[], Coroutine[Any, Any, T]],
        on_end: Callable[[BaseException | None], None] | None = None,
    ) -> None:
        self._make = make
        self._on_end = on_end
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Future[Any] | None = None
        self._stopping = False
        self._over = False
        self.result: T | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="scraper-crawl", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self) -> None:
        """Wait for the thread to end (a KeyboardInterrupt may come meanwhile)."""
        self._thread.join()

    def stop(self) -> None:
        """Cancel the coroutine, unless it is over, and wait until the thread has ended."""
        with self._lock:
            self._stopping = True
            if self._loop is not None and self._task is not None and not self._over:
                self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join()

    def _run(self) -> None:
        try:
            self.result = asyncio.run(self._main())
        except BaseException as exc:  # handed to whoever waits for the thread
            self.error = exc
        finally:
            if self._on_end is not None:
                self._on_end(self.error)

    async def _main(self) -> T:
        with self._lock:
            if self._stopping:
                raise asyncio.CancelledError
            self._loop = asyncio.get_running_loop()
            self._task = asyncio.current_task()
        try:
            return await self._make()
        finally:
            with self._lock:
                self._over = True


def records_in_thread(job: Job) -> Generator[Record, None, None]:
    """The records of ``job``, crawled in a worker thread, as they come."""
    handoff = Handoff()
    thread = LoopThread(lambda: job.crawl(handoff, handoff.pause), handoff.end)
    thread.start()
    try:
        while (batch := handoff.take()) is not None:
            yield from batch
    finally:
        thread.stop()


async def records_on_loop(job: Job) -> AsyncGenerator[Record, None]:
    """The records of ``job``, crawled by a task on the running loop, as they come."""
    handoff = Handoff()

    async def crawl() -> None:
        try:
            await job.crawl(handoff, handoff.pause)
        except BaseException as exc:
            handoff.end(exc)
            raise
        handoff.end()

    task = asyncio.ensure_future(crawl())
    try:
        while (batch := await handoff.atake()) is not None:
            for record in batch:
                yield record
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def run_in_thread(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``make()`` to its end in a worker thread, on a loop of its own; its result.

    A KeyboardInterrupt while waiting cancels it, waits for its cleanup and goes on.
    """
    thread = LoopThread(make)
    thread.start()
    try:
        thread.join()
    finally:
        thread.stop()
    if thread.error is not None:
        raise thread.error
    assert thread.result is not None
    return thread.result
