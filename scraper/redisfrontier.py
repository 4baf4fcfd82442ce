"""The frontier of a crawl shared through Redis by any number of processes and machines.

Every process that runs the same spider on the same Redis URL and crawl name works on
one crawl. A process *claims* requests as leases (``claim``), fetches them, and either
*commits* each page (its records, its new links and the end of its lease, in one Lua
script: all of a page or none of it) or *fails* it. ``step`` does both in one script
call: it commits any number of pages (each page still all or nothing) and then claims
leases for the slots they free, which is how ``SharedCrawler`` talks to the crawl.
Nothing is popped for good: a lease that is not renewed (its process was killed,
frozen or cut off) expires and its request goes back to the queue with one more
attempt; past ``max_attempts`` it is set aside as dead and counted. Each lease
carries a fencing token, so a late commit from a process that lost its lease writes
nothing.

Politeness holds for the crawl as a whole: the claim step hands out a request only for a
host whose leases in flight are under ``per_host`` and whose next allowed start (``delay``
plus ``jitter`` after the previous start, robots.txt ``Crawl-delay``, a pause after a
429/503) has come, by Redis's clock. When the crawl obeys robots.txt, a host gets one lease
until its robots.txt is read (``host_known``). Seen URLs are 64-bit fingerprints of (page kind,
canonical URL), kept exactly in Redis sets (about 9 bytes a URL) or, with ``--dedup
bloom``, in a Bloom filter (``scraper.redisdedup``). The keys of the records written
under ``unique:`` (``record_key``, as ``UniqueRecords`` makes them) are kept in sets:
the commit writes a record only when its key is new to the crawl, so each is written
once for the whole crawl. The crawl is finished when nothing is queued, nothing is
leased and seeding is done; a process waiting in ``claim`` blocks on its own wake list
(no polling), and every step that may let it go on pushes to it.

Requests and records are stored as JSON, never pickled. Keys are ``scraper:{CRAWL}:...``
(listed in ``scraper.redislua``): one Redis Cluster hash slot per crawl. Records stay in
Redis until ``reset()`` (``scraper reset``) deletes the crawl. When Redis goes away
mid-crawl every call waits and retries with back-off, logging it once.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from scraper import redisdedup, redislua
from scraper.errors import ScraperError
from scraper.frontier import Frontier, record_key, unique_fields
from scraper.models import Record, Request
from scraper.output.file import encoded
from scraper.rediscrawl import RedisCrawl, _text
from scraper.redisdedup import DEDUP_BUCKETS, dedup_member, fingerprint, queue_args
from scraper.spec import SpiderSpec
from scraper.stats import CrawlStats

log = logging.getLogger("scraper")

SEED_CHUNK = 500
"""Start URLs queued by one seeding step (the cursor in Redis moves after each)."""
SEED_LOCK_MS = 10_000
"""A seeder that has not moved its cursor for this long is taken over."""
MAX_WAIT = 5.0
"""Longest a waiting claim blocks before it looks again (a wake usually comes first)."""
T = TypeVar("T")


@dataclass(frozen=True)
class Step:
    """What one ``RedisFrontier.step`` did: which pages it committed and the leases it got."""

    committed: list[bool]  # one per page given, False: its lease was no longer held
    duplicates: list[int]  # one per page given: its records dropped by ``unique:``
    leases: list[Lease]
    finished: bool  # nothing queued, nothing leased, seeding done
    shared: bool  # other processes were waiting: the claim was cut to this process's share
    wait_ms: int  # with no lease: until one may be had (-1: unknown)
    seeded: bool


@dataclass(frozen=True)
class Lease:
    """A request this process holds: fetch it, then commit or fail it with ``token``."""

    request: Request
    token: int  # fencing token: a commit or fail with a stale token writes nothing
    host: str  # Request.host


def request_json(request: Request) -> str:
    """``request`` as the JSON kept in Redis (never pickled)."""
    body: dict[str, Any] = {"url": request.url, "page": request.page, "depth": request.depth}
    if request.carry:
        body["carry"] = dict(request.carry)
    return _json(body)


def request_from_json(text: str | bytes) -> Request:
    """The request ``request_json`` wrote."""
    body = json.loads(text)
    return Request(body["url"], body.get("page"), body.get("depth", 0), body.get("carry", {}))


class RedisFrontier(RedisCrawl):
    """One process's handle on a crawl kept in Redis (see the module docstring)."""

    def __init__(
        self,
        client: aioredis.Redis,
        crawl: str,
        spider: SpiderSpec,
        *,
        lease_seconds: float = 30.0,
        max_attempts: int = 3,
        dedup_buckets: int = DEDUP_BUCKETS,
        dedup: str | None = None,
        url: str = "",
    ) -> None:
        super().__init__(client, crawl, url=url)
        self.spider = spider
        self.settings = spider.settings
        self.lease_seconds = lease_seconds
        self.max_attempts = max_attempts
        self.dedup_buckets = dedup_buckets
        self.dedup = dedup  # "set" or "bloom" (scraper.redisdedup); None: as the crawl has it
        self.process = uuid.uuid4().hex[:12]
        # Only for skip_reason(): the links given to commit() (offsite, bad url, max_depth).
        self._filter = Frontier(spider, CrawlStats())
        self._unique = unique_fields(spider)
        self._robots: dict[str, str | None] = {}
        self._step = client.register_script(redislua.STEP)
        self._host_known = client.register_script(redislua.HOST_KNOWN)
        self._fail = client.register_script(redislua.FAIL)
        self._pause = client.register_script(redislua.PAUSE)
        self._renew = client.register_script(redislua.RENEW)
        self._seed = client.register_script(redislua.SEED)
        self._choose_dedup = client.register_script(redisdedup.CHOOSE)
        self._dedup_chosen = False

    @classmethod
    async def connect(
        cls, url: str, crawl: str, spider: SpiderSpec, **options: Any
    ) -> RedisFrontier:
        """A frontier on the Redis at ``url``; ``RedisTrouble`` when it does not answer."""
        return cls(await cls.open_client(url), crawl, spider, url=url, **options)

    async def choose_dedup(self) -> str:
        """The crawl's way of keeping seen URLs (``--dedup``), set by the first process
        that joins it: ``ScraperError`` when this process asked for the other one."""
        if not self._dedup_chosen:
            asked = self.dedup or ""
            mode = _text(await self._run(self._choose_dedup, [self.prefix, asked]))
            if asked and mode != asked:
                raise ScraperError(
                    f"the crawl {self.crawl!r} in Redis keeps its seen URLs with --dedup "
                    f"{mode}, chosen by the process that started it, not --dedup {asked}: "
                    f"leave out --dedup to join it as it is, or delete the crawl with "
                    f"'scraper reset' to start it anew with --dedup {asked}."
                )
            self.dedup, self._dedup_chosen = mode, True
        return self.dedup or "set"

    async def join(self) -> None:
        """Note this process, and seed the start URLs unless someone has or is doing it."""
        await self.choose_dedup()
        if self.settings.robots:  # no host gets more than one lease before its robots.txt
            await self._retry(lambda: self.client.set(self.key("robots"), 1))
        await self.renew(())
        await self._seed_if_needed()

    async def claim(self, limit: int) -> list[Lease] | None:
        """Up to ``limit`` leases (at least one), waiting while none can be had; ``None``
        once the crawl is finished."""
        while True:
            step = await self.step((), max(1, limit))
            if step.leases:
                return step.leases
            if step.finished:
                return None
            timeout = await self.idle_timeout(step)
            if timeout > 0:
                await self.wait(timeout)

    async def step(self, pages: Sequence[Sequence[Any]], limit: int) -> Step:
        """One script call: commit ``pages`` (each from ``page_args``), then claim up to
        ``limit`` leases (none when ``limit`` is 0). Never waits for a lease."""
        settings = self.settings
        args: list[Any] = [
            self.prefix,
            self.process,
            max(0, limit),
            settings.per_host,
            int(settings.delay * 1000),
            int(settings.jitter * 1000),
            int(self.lease_seconds * 1000),
            self.max_attempts,
            random.getrandbits(31),
            _max_pages(settings.max_pages),
            len(pages),
        ]
        for page in pages:
            args.extend(page)
        reply = await self._run(self._step, args)
        count = int(reply[3])
        flags = [int(flag) for flag in reply[4 : 4 + count]]
        return Step(
            committed=[flag > 0 for flag in flags],
            duplicates=[max(0, flag - 1) for flag in flags],
            leases=[
                Lease(request_from_json(body), int(token), _text(host))
                for token, host, body in _triples(reply[4 + count :])
            ],
            finished=int(reply[0]) == 1,
            shared=int(reply[0]) == 2,
            wait_ms=int(reply[1]),
            seeded=bool(int(reply[2])),
        )

    async def idle_timeout(self, step: Step) -> float:
        """How long to wait (on ``wait``) after ``step`` claimed nothing: 0 when this
        process has just seeded some start URLs, at most ``MAX_WAIT``."""
        if not step.seeded and await self._seed_if_needed():
            return 0.0
        timeout = MAX_WAIT if step.wait_ms < 0 else min(MAX_WAIT, step.wait_ms / 1000)
        if not step.seeded:  # look again when the seeder's lock would run out
            lock_ms = await self._retry(lambda: self.client.pttl(self.key("seed:lock")))
            timeout = min(timeout, max(lock_ms, 10) / 1000)
        return timeout

    async def wait(self, timeout: float) -> None:
        """Block on this process's wake list for up to ``timeout`` seconds: a step that
        claimed nothing has put this process among those woken by the next page, lease or
        seed that may give it one."""
        wake = self.key(f"wake:{self.process}")
        await self._retry(lambda: self.client.blpop([wake], timeout=max(0.01, timeout)))

    async def wake_up(self) -> None:
        """End this process's ``wait`` now (one push to its wake list; not retried)."""
        wake = self.key(f"wake:{self.process}")
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.rpush(wake, 1)
            pipe.pexpire(wake, 60_000)
            await pipe.execute()

    async def renew(self, leases: Iterable[Lease]) -> None:
        """Push the expiry of ``leases`` to now + ``lease_seconds`` (those no longer held
        are left alone)."""
        tokens = [lease.token for lease in leases]
        await self._run(
            self._renew, [self.prefix, self.process, int(self.lease_seconds * 1000), *tokens]
        )

    async def commit(
        self,
        lease: Lease,
        records: list[Record],
        links: list[Request],
        counts: Mapping[str, int],
    ) -> bool:
        """Commit a page in one step: its records, its new links, the end of its lease and
        ``counts``; ``False`` (nothing written) when the lease is no longer held.

        Links off ``allowed_domains``, past ``max_depth`` or unparsable are counted as
        skipped here; ``max_pages`` and "already seen" are decided in Redis.
        """
        tally = dict(counts)
        kept: list[Request] = []
        for link in links:
            skipped = self._filter.skip_reason(link)
            if skipped is None:
                kept.append(link)
            else:
                tally[f"skipped:{skipped}"] = tally.get(f"skipped:{skipped}", 0) + 1
        step = await self.step([self.page_args(lease, records, kept, tally)], 0)
        return step.committed[0]

    def page_args(
        self,
        lease: Lease,
        records: list[Record],
        links: list[Request],
        counts: Mapping[str, int],
    ) -> list[Any]:
        """A page to commit, as ``step`` takes it (two arguments, see ``redislua.STEP``): its
        records as JSON lines, each with its ``unique:`` key (none when its page kind has
        no ``unique:``; a record JSON cannot hold is left out and counted), its links to
        queue and its counts. ``links`` are those to follow, the skipped ones already
        taken out and counted in ``counts`` (as ``commit`` and ``SharedCrawler`` do)."""
        tally: dict[str, int] = dict(counts)
        fields = self._unique.get(lease.request.page or self.spider.first_page)
        kept, rejected = encoded(records)  # as every output encodes, and leaves out
        for reason, count in rejected.items():
            tally[f"dropped:{reason}"] = tally.get(f"dropped:{reason}", 0) + count
        keys: list[tuple[str, str]] | int = 0
        if fields:  # each record with its key, to be written only when the key is new
            keys = [
                ("", "") if key is None else dedup_member(key, self.dedup_buckets)
                for key in (record_key(record, fields) for record, _ in kept)
            ]
        flat: list[Any] = []
        for name, count in tally.items():
            flat += (name, count)
        queued = [self._queue_args(link) for link in links]
        head = [str(lease.token), len(kept), keys, queued, flat]
        return [_json(head), b"\n".join(line for _, line in kept)]

    async def fail(self, lease: Lease, reason: str, *, retry: bool, pause: float = 0.0) -> bool:
        """The page failed with ``reason``: back to its host's queue when ``retry`` and
        attempts are left, else counted (``failed:REASON``, or ``dead``). ``pause`` > 0
        holds its host back for every process. ``False`` when the lease is not held."""
        args = [
            self.prefix,
            lease.token,
            self.settings.per_host,
            self.max_attempts,
            reason,
            1 if retry else 0,
            int(pause * 1000),
        ]
        reply = await self._run(self._fail, args)
        return bool(reply)

    async def pause(self, host: str, seconds: float) -> None:
        """Hold back every new request to ``host``, for every process (429/503)."""
        args = [self.prefix, host, int(seconds * 1000), self.settings.per_host]
        await self._run(self._pause, args)

    async def set_host_delay(self, host: str, seconds: float) -> None:
        """Start requests to ``host`` at least ``seconds`` apart (robots.txt Crawl-delay)."""
        millis = int(seconds * 1000)
        await self._retry(lambda: self.client.hset(self.key("crawldelay"), host, millis))

    async def host_known(self, host: str, crawl_delay: float) -> bool:
        """``host``'s robots.txt is read (``crawl_delay``: its Crawl-delay, 0 for none): the
        host's next start is put ``delay``/Crawl-delay from now, as the page of the lease
        held for it starts now, and other leases of it may be had from then on. Whether
        the host was not known before."""
        args = [
            self.prefix,
            host,
            int(crawl_delay * 1000),
            int(self.settings.delay * 1000),
            self.settings.per_host,
        ]
        return bool(await self._run(self._host_known, args))

    async def robots_txt(
        self, origin: str, fetch: Callable[[], Awaitable[str | None]]
    ) -> str | None:
        """The robots.txt of ``origin``, fetched once per crawl by one process (``None``:
        everything is allowed). Others wait for it; a fetcher that dies is replaced."""
        if origin in self._robots:
            return self._robots[origin]
        key, lock = self.key(f"robots:{origin}"), self.key(f"robots-lock:{origin}")
        while True:
            stored = await self._retry(lambda: self.client.get(key))
            if stored is not None:
                text = json.loads(stored)["text"]
                break
            if await self._retry(lambda: self.client.set(lock, self.process, nx=True, ex=60)):
                text = await fetch()
                body = json.dumps({"text": text}, ensure_ascii=False)
                await self._retry(functools.partial(self.client.set, key, body))
                await self._retry(lambda: self.client.delete(lock))
                break
            await asyncio.sleep(0.05)
        self._robots[origin] = text
        return text

    # -- inner workings

    def _queue_args(self, request: Request) -> tuple[str, str, str, str]:
        value = fingerprint(request, self.spider.first_page)
        a, b = queue_args(value, self.dedup or "set", self.dedup_buckets)
        return a, b, request.host, request_json(request)

    async def _seed_if_needed(self) -> bool:
        """Seed (or take over seeding) when nobody has finished or is doing it; whether
        this process did some."""
        seeded_key, lock = self.key("seeded"), self.key("seed:lock")
        if await self._retry(lambda: self.client.exists(seeded_key)):
            return False
        token = f"{self.process}:{uuid.uuid4().hex[:8]}"
        taken = await self._retry(lambda: self.client.set(lock, token, nx=True, px=SEED_LOCK_MS))
        if not taken:
            return False
        cursor = int(await self._retry(lambda: self.client.get(self.key("seed:cursor"))) or 0)
        total = len(self.spider.start)
        first = self.spider.first_page
        starts: Iterator[Request] = (
            Request(s.url, s.page or first)
            for s in itertools.islice(self.spider.start, cursor, None)
        )
        position = cursor
        while True:
            chunk = list(itertools.islice(starts, SEED_CHUNK))
            last = position + len(chunk) >= total or len(chunk) < SEED_CHUNK
            args: list[Any] = [
                self.prefix,
                token,
                position,
                total,
                self.settings.per_host,
                _max_pages(self.settings.max_pages),
                1 if last else 0,
                _json([self._queue_args(request) for request in chunk]),
            ]
            reply = await self._run(self._seed, args)
            if reply == -1:  # the lock was lost (this process stalled): another seeds now
                return True
            position += len(chunk)
            if reply == 0:
                return True

    async def _run(self, script: AsyncScript, args: Sequence[Any]) -> Any:
        """One call of a Lua script of ``scraper.redislua``, retried while Redis is away."""
        return await self._retry(lambda: script(keys=[self.key("leases")], args=list(args)))


_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
"""``json.dumps`` as Redis keeps JSON, without making an encoder each call."""


def _max_pages(value: int | None) -> int:
    return -1 if value is None else value


def _triples(items: list[Any]) -> Iterator[tuple[Any, Any, Any]]:
    it = iter(items)
    return zip(it, it, it, strict=True)
