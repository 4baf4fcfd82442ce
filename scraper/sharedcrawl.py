"""The crawl loop of one process among many working on one crawl through Redis.

``SharedCrawler.run()`` joins the crawl (``RedisFrontier.join``: the first
process seeds the start URLs), then keeps up to ``concurrency`` pages in flight.
One pump talks to Redis for the pages: each ``RedisFrontier.step`` (one script
call) commits the pages finished since the last call and claims leases for the
slots free after them, so a slot freed by a commit gets its next lease from that
same round trip, and the pages that finish while a step is under way go together
in the next (a group commit: one call a page when the crawl is slow, fewer when
it is busy; when pages finish fast, a step waits a few milliseconds for a few more,
``GATHER_PAGES``). A page's task ends when it hands its page to the pump; the
page keeps its slot until its step, which counts it. The claim hands out only
requests whose host allows a start now across all processes (``per_host``,
``delay``/``jitter``, ``Crawl-delay``, a pause after 429/503), so this loop
keeps no per-host slots of its own; when other processes wait for leases, a
commit does not keep the slots it frees but wakes them and claims only its share
of the slots it freed, and claims again when one of its pages ends. With nothing
to claim, the pump waits for a page of its own to finish, or, holding none, on
its wake list.

Each lease is worked as in ``scraper.crawler``: robots.txt (fetched once per
crawl, shared through Redis; the crawl hands out one lease of a host until the
process holding it has read robots.txt and called ``host_known``, which spaces
the host's next start ``delay``/``Crawl-delay`` after that page's, so the limits
hold at the server from the first request), the fetch, the extraction
(``scraper.pagework``), then the commit of the page's records, links and counts.
A renewer pushes the leases held here forward every third of the lease, so a
slow page keeps its lease while a process killed or frozen loses it.

What happens to a page:

- committed: its records and new links are in Redis, counted here;
- failed (``FetchError``, after the fetcher's own retries; an extraction or a
  callback that failed; ``internal error`` for an exception nobody foresaw):
  ``fail(retry=False)``, counted by reason;
- throttled (a 429 or 503): the fetch stops at once and the request goes back to
  its host's queue with the host paused (``Retry-After``) for every process; the
  crawl counts it only when its attempts run out;
- lost (the lease expired and another process holds the page now): the commit
  writes nothing and nothing is counted here.

Links are filtered here as the single-process frontier filters them
(``offsite``, ``bad url``, ``max_depth``), so that this process's summary shows
them; the commit deduplicates them for the whole crawl, and leaves out (counted
in the crawl's stats) a record JSON cannot hold. ``unique:`` holds for the whole
crawl: each record goes to the commit with its key (as ``UniqueRecords`` makes
it), and the commit writes it only when no record of that key was written before
(in the same atomic step), else counts it dropped as ``duplicate``.

The crawl ends when a step finds it finished (nothing queued, nothing leased,
seeding done) and nothing is in flight here. SIGINT, SIGTERM and SIGHUP (or
``stop()``) stop the claiming; the pages in flight get ``STOP_GRACE`` seconds
to be committed, and the leases of those still unfinished then simply expire
for other processes.
``run()`` returns the stats of this process; ``scraper status`` shows the crawl's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from scraper.callbacks import Callback
from scraper.errors import FetchError
from scraper.fetch import Fetcher
from scraper.frontier import DUPLICATE, Frontier
from scraper.models import Record, Request
from scraper.pagework import Failure, PageWork, internal_error
from scraper.robots import RobotsRules
from scraper.spec import SpiderSpec
from scraper.stats import CrawlStats
from scraper.stopping import (
    STOP_GRACE,
    add_stop_handlers,
    remove_stop_handlers,
    report_progress,
)
from scraper.wire import open_wire

if TYPE_CHECKING:
    import httpx

    from scraper.redisfrontier import Lease, RedisFrontier, Step

log = logging.getLogger("scraper")

GATHER_PAGES = 6
"""Finished pages a step waits for (at most a third of the slots) when pages finish fast:
one script call costs this process and Redis about what committing ten pages does."""
GATHER_SECONDS = 0.005
"""The longest a step waits for them, and what "fast" means: pages finish at least
``GATHER_PAGES`` in this long (on average), with at least half the slots fetching."""
WAKE_GRACE = 0.05
"""Seconds a cancelled wait for a wake gets to end before it is woken through Redis."""
THROTTLED = "throttled"
"""The reason a page is counted under when its host answered 429/503 at each attempt."""


class _Throttled(Exception):
    """The host answered 429 or 503: it wants a pause of ``seconds``."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"throttled for {seconds:.1f}s")
        self.seconds = seconds


def _throttled(host: str, seconds: float) -> NoReturn:
    # The Fetcher would wait and retry holding the lease; instead the request goes
    # back to the crawl with its host paused for every process.
    raise _Throttled(seconds)


class SharedCrawler:
    """Works on the crawl behind ``frontier`` with this process, until the crawl is finished."""

    def __init__(
        self,
        spider: SpiderSpec,
        frontier: RedisFrontier,
        *,
        callbacks: Mapping[str, Callback] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        on_progress: Callable[[CrawlStats], None] | None = None,
    ) -> None:
        self.spider = spider
        self.settings = spider.settings
        self.frontier = frontier
        self.callbacks = callbacks or {}
        self.transport = transport
        self.on_progress = on_progress
        self.stats = CrawlStats()
        self.stopped_by: signal.Signals | None = None
        # The single-process frontier's rules for links (allowed domains, depth), not its queue.
        self._links = Frontier(spider, CrawlStats())
        self._stop = asyncio.Event()
        self._kick = asyncio.Event()
        self._held: dict[asyncio.Task[None], Lease] = {}  # pages fetching or extracting
        # Pages to commit (their tasks have ended; each holds its slot until committed):
        # the step's arguments, the lease, and what to do with the outcome.
        self._to_commit: list[_Page] = []
        self._committing: list[_Page] = []  # the pages of the step under way
        self._known: set[str] = set()
        self._robots: RobotsRules | None = None
        self._signals: list[signal.Signals] = []
        self._gather_until: float | None = None
        self._finished_at = 0.0  # when the last page went to commit
        self._pace = 1.0  # average seconds between two pages going to commit

    def stop(self, signum: signal.Signals = signal.SIGINT) -> None:
        """Stop claiming; the pages in flight get ``STOP_GRACE`` seconds."""
        self.stopped_by = self.stopped_by or signum
        self._stop.set()
        self._kick.set()

    async def run(self) -> CrawlStats:
        """Join the crawl and work on it until it is finished (or a stop); this process's stats."""
        self.stats = CrawlStats()
        self._stop = asyncio.Event()
        self._signals = add_stop_handlers(self.stop)
        wire = open_wire(self.settings, self.transport)
        tasks: list[asyncio.Task[Any]] = []
        try:
            fetcher = Fetcher(wire, self.settings, self._links.allows, _throttled)
            if self.settings.robots:
                # robots.txt itself is fetched as in a single process: a 429 waits and retries.
                robots_fetcher = Fetcher(wire, self.settings, self._links.allows)
                self._robots = RobotsRules(robots_fetcher, self.frontier.robots_txt)
            self._pages = PageWork(self.spider, self.callbacks)
            stopping = asyncio.create_task(self._stop.wait())
            joining = asyncio.create_task(self.frontier.join())
            tasks += [stopping, joining]
            await asyncio.wait({joining, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if self._stop.is_set():
                return self.stats
            joining.result()
            self._finished_at = asyncio.get_running_loop().time()
            claimer = asyncio.create_task(self._pump(fetcher))
            tasks += [claimer, asyncio.create_task(self._renew())]
            if self.on_progress:
                tasks.append(
                    asyncio.create_task(report_progress(lambda: self.stats, self.on_progress))
                )
            await asyncio.wait({claimer, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if claimer.done():
                claimer.result()  # an error of the frontier is raised from run()
            elif self._held or self._to_commit:  # the pump commits them, and claims no more
                log.warning("stopping: finishing the pages in flight (up to %.0fs)", STOP_GRACE)
                await asyncio.wait({claimer}, timeout=STOP_GRACE)
        finally:
            # Pages still in flight are abandoned: their leases expire for another process.
            tasks += self._held
            self._to_commit.clear()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            remove_stop_handlers(self._signals)
            await wire.aclose()
            self.stats.finished = time.monotonic()
        return self.stats

    async def _pump(self, fetcher: Fetcher) -> None:
        """Commit the pages done and fill the free slots, in one ``step`` (one script call)
        at a time: the pages finished while a step is under way go together in the next,
        and a slot freed by a commit gets its next lease from that same call. Returns
        when the crawl is finished (or after a stop) and no page is held here."""
        concurrency = self.settings.concurrency
        frontier = self.frontier
        while True:
            self._kick.clear()
            if self._gathering(concurrency):
                await self._kick.wait()
                continue
            stopping = self._stop.is_set()
            # The pages committed now free their slots for this step's claim.
            free = 0 if stopping else concurrency - len(self._held)
            if not self._to_commit and free <= 0:
                if stopping and not self._held:
                    return
                await self._kick.wait()
                continue
            step = await self._step(free)
            if self._stop.is_set() and step.leases:  # claimed as the stop came: back
                for lease in step.leases:
                    await frontier.fail(lease, "stopped", retry=True)
                continue
            for lease in step.leases:
                task = asyncio.create_task(self._work(fetcher, lease))
                self._held[task] = lease
                task.add_done_callback(self._release)
            if step.shared and self._held:  # the others take the rest of the slots
                await self._kick.wait()  # claim again when a page of ours ends
                continue
            if step.leases or free <= 0 or self._to_commit:
                continue
            if step.finished:
                break
            timeout = await frontier.idle_timeout(step)
            if timeout <= 0:
                continue
            # Nothing to claim now. With pages in flight here, the next of them to
            # finish claims again (or a host's next start comes); with none, wait for
            # a wake from another process (new links, a lease back, the end).
            if self._held:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._kick.wait(), timeout)
                continue
            await self._wait_for_wake(timeout)
        # Leases of ours that expired while their pages ran on: commit what they make.
        while self._held or self._to_commit:
            if self._to_commit:
                await self._step(0)
                continue
            await self._kick.wait()
            self._kick.clear()

    async def _step(self, free: int) -> Step:
        """Commit the pages waiting (each told its outcome) and claim up to ``free`` leases."""
        pages = self._committing = self._to_commit
        self._to_commit = []
        step = await self.frontier.step([page.args for page in pages], free)
        self._committing = []
        _settle(pages, step)
        return step

    async def _wait_for_wake(self, timeout: float) -> None:
        """Wait up to ``timeout`` for a wake from another process (new links, a lease
        back, the end) or a kick here (a stop). A kick ends the blocked read by pushing
        a wake to it rather than by cancelling it only: redis-py can take the read's
        whole timeout to give up one cancelled just as it was being sent."""
        waking = asyncio.create_task(self.frontier.wait(timeout))
        kicked = asyncio.create_task(self._kick.wait())
        try:
            await asyncio.wait({waking, kicked}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            kicked.cancel()
            if not waking.done():
                waking.cancel()
                done, _ = await asyncio.wait({waking}, timeout=WAKE_GRACE)
                if not done:  # pushed to Redis: wake it (with Redis away, it is not)
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(self.frontier.wake_up(), 1.0)
            await asyncio.gather(waking, kicked, return_exceptions=True)

    def _gathering(self, concurrency: int) -> bool:
        """Whether the next step should wait for more finished pages (``GATHER_PAGES``):
        when pages finish fast, waiting costs no slot much time, and fewer steps cost
        less CPU here and in Redis; when they finish slowly, a step never waits."""
        waiting = len(self._to_commit)
        if (
            not waiting
            or waiting >= min(GATHER_PAGES, concurrency // 3)
            or len(self._held) < concurrency // 2
            or self._pace * GATHER_PAGES > GATHER_SECONDS
            or self._stop.is_set()
        ):
            self._gather_until = None
            return False
        loop = asyncio.get_running_loop()
        if self._gather_until is None:
            self._gather_until = loop.time() + GATHER_SECONDS
            loop.call_at(self._gather_until, self._kick.set)
        elif loop.time() >= self._gather_until:
            self._gather_until = None
            return False
        return True

    def _commit(
        self,
        lease: Lease,
        records: list[Record],
        links: list[Request],
        counts: Mapping[str, int],
        then: Callable[[int | None], None],
    ) -> None:
        """Commit a page through the pump's next step, which calls ``then`` with ``None``
        when its lease was no longer held (nothing written), else with how many of its
        records were dropped as duplicates (``unique:``). The page's task may end now:
        its slot stays taken until the step."""
        now = asyncio.get_running_loop().time()
        self._pace += (now - self._finished_at - self._pace) / 8
        self._finished_at = now
        task = asyncio.current_task()
        if task is not None:  # its slot is the page's now, until the step
            self._held.pop(task, None)
        self._to_commit.append(
            _Page(self.frontier.page_args(lease, records, links, counts), lease, then)
        )
        self._kick.set()

    def _release(self, task: asyncio.Task[None]) -> None:
        self._held.pop(task, None)
        self._kick.set()

    async def _renew(self) -> None:
        every = self.frontier.lease_seconds / 3
        while True:
            await asyncio.sleep(every)
            leases = [*self._held.values()]
            leases += [page.lease for page in (*self._committing, *self._to_commit)]
            if leases:
                await self.frontier.renew(leases)

    async def _work(self, fetcher: Fetcher, lease: Lease) -> None:
        try:
            try:
                await self._process(fetcher, lease)
            except Exception as exc:  # a bug, or an input nobody foresaw: this page only
                log.info("the internal error on %s:", lease.request.url, exc_info=exc)
                await self._fail(lease, internal_error(exc))
        except Exception as exc:  # the frontier itself failed: the lease expires for another
            log.warning(
                "cannot report %s to the crawl (%s: %s); its lease will expire",
                lease.request.url,
                type(exc).__name__,
                exc,
            )

    async def _process(self, fetcher: Fetcher, lease: Lease) -> None:
        request = lease.request
        if self._robots is not None:
            allowed, crawl_delay = await self._robots.check(request.url)
            if lease.host not in self._known:
                # The crawl gave no other lease of this host until its robots.txt is
                # read: from now on it may, the next start spaced from this one's.
                await self.frontier.host_known(lease.host, crawl_delay)
                self._known.add(lease.host)
            if not allowed:

                def disallowed(duplicates: int | None) -> None:
                    if duplicates is not None:
                        self.stats.skipped["robots.txt"] += 1
                        log.info("not fetching %s: disallowed by robots.txt", request.url)

                self._commit(lease, [], [], {"skipped:robots.txt": 1}, disallowed)
                return
        try:
            page = await fetcher.fetch(request)
        except _Throttled as throttled:
            log.warning(
                "%s asks us to slow down: pausing it for %.1fs", lease.host, throttled.seconds
            )
            failure = Failure(THROTTLED, f"{lease.host} answered 429/503 at each attempt")
            await self._fail(lease, failure, retry=True, pause=throttled.seconds)
            return
        except FetchError as failure:
            await self._fail(lease, Failure(failure.reason, failure.detail))
            return
        kind = request.page or self.spider.first_page
        result = await self._pages.extract(page, kind)
        if isinstance(result, Failure):
            await self._fail(lease, result)
            return
        links, skipped = self._follow(result.requests)
        records, dropped = result.records, result.dropped
        skipped.update(result.skipped)
        empty = self.spider.pages[kind].makes_records and not (result.records or result.dropped)
        counts = _counts(records, dropped, skipped, kind if empty else None)
        made, url = len(records), page.url  # what counting needs: the page is let go

        def committed(duplicates: int | None) -> None:
            stats = self.stats
            if duplicates is None:
                log.info(
                    "%s was done by another process meanwhile (its lease ran out)", request.url
                )
                return
            stats.pages += 1
            stats.records += made - duplicates
            stats.dropped.update(dropped)
            if duplicates:
                stats.dropped[DUPLICATE] += duplicates
            stats.skipped.update(skipped)
            if empty:
                stats.page_without_match(kind, url)
                log.info("no match on %s (page kind %r)", url, kind)

        self._commit(lease, records, links, counts, committed)

    def _follow(self, requests: list[Request]) -> tuple[list[Request], Counter[str]]:
        """The links to give the crawl, and those skipped here by reason."""
        links: list[Request] = []
        skipped: Counter[str] = Counter()
        for link in requests:
            reason = self._links.skip_reason(link)
            if reason is None:
                links.append(link)
            else:
                skipped[reason] += 1
        return links, skipped

    async def _fail(
        self, lease: Lease, failure: Failure, *, retry: bool = False, pause: float = 0.0
    ) -> None:
        counted = await self.frontier.fail(lease, failure.reason, retry=retry, pause=pause)
        if counted and not retry:
            self.stats.failed[failure.reason] += 1
            log.warning("failed %s: %s", lease.request.url, failure.detail)


@dataclass(frozen=True)
class _Page:
    """A page waiting for the pump's next step to commit it."""

    args: list[Any]  # RedisFrontier.page_args
    lease: Lease
    then: Callable[[int | None], None]  # its outcome: None when lost, else duplicates


def _settle(pages: list[_Page], step: Step) -> None:
    """Give each page committed in ``step`` its outcome: ``None`` when lost, else its
    duplicates dropped."""
    for page, committed, dups in zip(pages, step.committed, step.duplicates, strict=True):
        try:
            page.then(dups if committed else None)
        except Exception as exc:  # counting one page must not stop the crawl
            log.info("the internal error on %s:", page.lease.request.url, exc_info=exc)


def _counts(
    records: list[Record], dropped: Counter[str], skipped: Counter[str], empty_kind: str | None
) -> dict[str, int]:
    """What one page adds to the crawl's counts in Redis (``RedisFrontier.commit``)."""
    counts = {"pages": 1}  # the commit counts the records it writes
    counts.update((f"dropped:{reason}", n) for reason, n in dropped.items())
    counts.update((f"skipped:{reason}", n) for reason, n in skipped.items())
    if empty_kind is not None:
        counts[f"no match:{empty_kind}"] = 1
    return counts
