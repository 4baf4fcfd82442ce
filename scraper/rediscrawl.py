"""A crawl kept in Redis, as any process sees it: its keys, its record stream, its counts.

``RedisCrawl`` is what every command working on a shared crawl has in common: the
connection (``connect``: ``RedisTrouble`` when Redis does not answer), the crawl's keys
(``scraper:{CRAWL}:NAME``, one Redis Cluster hash slot per crawl), every call retried
with back-off while Redis is away (logged once an outage), the records committed so far
(``read_records``), whether the crawl has finished, its ``status()`` and its ``reset()``.
``scraper.redisfrontier.RedisFrontier`` adds the work on the crawl: claims, commits,
seeding and politeness.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from scraper.errors import ScraperError
from scraper.models import Record
from scraper.redisurl import shown

log = logging.getLogger("scraper")

RECENT_PROCESS_MS = 10_000
"""A process seen within this long counts in ``status()``'s ``processes``."""
RETRY_FIRST, RETRY_MAX = 0.1, 5.0
OUTAGE_QUIET = 10.0
"""Seconds after Redis is back in which a failing call is the same outage (not logged again)."""
_LOST = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)
T = TypeVar("T")

Entry = tuple[str, bytes, int]
"""A record stream entry: its id, its records as JSON Lines text (each line ending in a
newline, as stored) and how many records that is."""


class RedisTrouble(ScraperError):
    """Redis cannot be reached (at start: exit code 2)."""


class RedisCrawl:
    """One crawl's keys in the Redis behind ``client`` (see the module docstring)."""

    def __init__(self, client: aioredis.Redis, crawl: str, *, url: str = "") -> None:
        self.client = client
        self.crawl = crawl
        self.url = shown(url) if url else _describe(client)
        self.prefix = f"scraper:{{{crawl}}}:"
        self._lost = False  # the last call failed: Redis is away
        self._warned = False  # "lost Redis" was logged, "back" not yet
        self._quiet_until = 0.0  # a failure before this is the end of the last outage

    @staticmethod
    async def open_client(url: str) -> aioredis.Redis:
        """A client of the Redis at ``url`` that has answered a PING; ``RedisTrouble``
        when it does not."""
        try:
            client = aioredis.Redis.from_url(url, socket_timeout=15.0, socket_connect_timeout=5.0)
        except ValueError as exc:
            raise RedisTrouble(f"cannot reach Redis at {shown(url)}: {exc}") from None
        try:
            await client.ping()
        except (RedisError, OSError) as exc:
            await client.aclose()
            raise RedisTrouble(f"cannot reach Redis at {shown(url)}: {exc}") from None
        return client

    def key(self, name: str) -> str:
        """The Redis key ``name`` of this crawl."""
        return self.prefix + name

    async def read_entries(self, after: str, count: int, block_seconds: float) -> list[Entry]:
        """Up to ``count`` entries of the record stream after id ``after`` ("0": from the
        start), in commit order, blocking up to ``block_seconds`` while there are none."""
        block = max(1, int(block_seconds * 1000)) if block_seconds > 0 else None
        reply: Any = await self._retry(
            lambda: self.client.xread({self.key("records"): after}, count=count, block=block)
        )
        entries: list[Entry] = []
        for _stream, items in reply or ():
            for entry_id, fields in items:
                text = fields.get(b"r")  # one record: what crawls of an earlier version wrote
                if text is not None:
                    entries.append((_text(entry_id), text + b"\n", 1))
                    continue
                page = fields.get(b"p")
                if page:  # a page's records, one line each
                    entries.append((_text(entry_id), page + b"\n", page.count(b"\n") + 1))
                else:
                    entries.append((_text(entry_id), b"", 0))
        return entries

    async def read_records(
        self, after: str, count: int, block_seconds: float
    ) -> list[tuple[str, Record]]:
        """The records of ``read_entries``, decoded, each with its entry id."""
        entries = await self.read_entries(after, count, block_seconds)
        return [(name, json.loads(line)) for name, text, _ in entries for line in text.splitlines()]

    async def finished(self) -> bool:
        """Whether nothing is queued, nothing is leased and seeding is done."""
        queued, leased, seeded = await self._retry(self._finish_state)
        return queued == 0 and leased == 0 and seeded

    async def status(self) -> dict[str, Any]:
        """The crawl as a whole: queued, in_flight, done, failed (by reason), dead,
        records, dropped (by reason, e.g. ``duplicate``), hosts_waiting, processes,
        dedup (``set`` or ``bloom``), already_seen (links and start URLs dropped as seen),
        dedup_bytes_per_url, finished."""
        return await self._retry(self._status)

    async def reset(self) -> int:
        """Delete every key of the crawl; how many there were."""

        async def delete_all() -> int:
            deleted = 0
            batch: list[bytes] = []
            async for key in self.client.scan_iter(match=_escape(self.prefix) + "*", count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    deleted += await self.client.delete(*batch)
                    batch.clear()
            if batch:
                deleted += await self.client.delete(*batch)
            return deleted

        return await self._retry(delete_all)

    async def close(self) -> None:
        """Let go of the connections."""
        await self.client.aclose()

    async def _finish_state(self) -> tuple[int, int, bool]:
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.get(self.key("queued"))
            pipe.zcard(self.key("leases"))
            pipe.exists(self.key("seeded"))
            queued, leased, seeded = await pipe.execute()
        return int(queued or 0), int(leased), bool(seeded)

    async def _status(self) -> dict[str, Any]:
        client = self.client
        queued, leased, seeded = await self._finish_state()
        now_s, now_us = await client.time()
        now = int(now_s) * 1000 + int(now_us) // 1000
        async with client.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.key("stats"))
            pipe.scard(self.key("hosts"))
            pipe.zcount(self.key("ready"), "-inf", now)
            pipe.zcount(self.key("procs"), now - RECENT_PROCESS_MS, "+inf")
            pipe.get(self.key("admitted"))
            stats_raw, hosts, ready, processes, admitted = await pipe.execute()
        stats = {_text(k): int(v) for k, v in stats_raw.items()}
        dedup = _text(await client.get(self.key("dedup")) or b"set")
        kept = "bloom:*" if dedup == "bloom" else "seen:*"
        buckets = [
            key async for key in client.scan_iter(match=_escape(self.prefix) + kept, count=1000)
        ]
        used = 0
        for start in range(0, len(buckets), 1000):
            async with client.pipeline(transaction=False) as pipe:
                for key in buckets[start : start + 1000]:
                    pipe.memory_usage(key)
                used += sum(int(size or 0) for size in await pipe.execute())
        urls = int(admitted or 0)
        return {
            "queued": queued,
            "in_flight": leased,
            "done": stats.get("done", 0),
            "failed": {k[7:]: v for k, v in stats.items() if k.startswith("failed:") and v},
            "dead": stats.get("dead", 0),
            "records": stats.get("records", 0),
            "dropped": {k[8:]: v for k, v in stats.items() if k.startswith("dropped:") and v},
            "hosts_waiting": max(0, int(hosts) - int(ready)),
            "processes": int(processes),
            "dedup": dedup,
            "already_seen": stats.get("skipped:already seen", 0),
            "dedup_bytes_per_url": round(used / urls, 2) if urls else 0.0,
            "finished": queued == 0 and leased == 0 and seeded,
        }

    async def _retry(self, call: Callable[[], Awaitable[T]]) -> T:
        """``call()``, again and again with back-off while Redis cannot be reached."""
        pause = RETRY_FIRST
        while True:
            try:
                result = await call()
            except _LOST as exc:
                self._lost = True
                # Once an outage: a pooled connection made before Redis came back fails on
                # its first use after, which is the end of the same outage, not a new one.
                if not self._warned and time.monotonic() >= self._quiet_until:
                    self._warned = True
                    log.warning("lost Redis at %s; retrying (%s)", self.url, exc)
                await asyncio.sleep(pause)
                pause = min(RETRY_MAX, pause * 2)
                continue
            if self._lost:
                self._lost = False
                self._quiet_until = time.monotonic() + OUTAGE_QUIET
                if self._warned:
                    self._warned = False
                    log.info("Redis at %s is back", self.url)
                # The idle connections were made before the outage: make them anew.
                with contextlib.suppress(RedisError, OSError):  # dropped all the same
                    await self.client.connection_pool.disconnect(inuse_connections=False)
            return result


def _text(value: str | bytes) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value


def _escape(pattern: str) -> str:
    """``pattern`` with the glob characters of SCAN MATCH escaped."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in pattern)


def _describe(client: aioredis.Redis) -> str:
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"unix://{kwargs['path']}"
    host, port = kwargs.get("host", "localhost"), kwargs.get("port", 6379)
    return f"redis://{host}:{port}/{kwargs.get('db', 0)}"
