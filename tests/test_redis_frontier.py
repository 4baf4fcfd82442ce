"""The Redis frontier against a real redis-server: two RedisFrontier objects on one crawl
stand for two processes. Seeding once, leases and fencing, politeness across processes,
dedup, the end of a crawl, robots.txt once, the record stream, status and reset, Redis
going away and coming back, and the memory a seen URL costs."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
import redis

from scraper import redisdedup
from scraper.errors import ScraperError
from scraper.models import Request
from scraper.rediscrawl import RedisTrouble
from scraper.redisdedup import DEDUP_BUCKETS, dedup_member
from scraper.redisfrontier import Lease, RedisFrontier
from scraper.spec import SpiderSpec, parse_spiders
from tests.redis_server import RedisServer, free_port

T = TypeVar("T")


def spider(settings: str = "", start: str = "[http://a.test/1]") -> SpiderSpec:
    # robots.txt is a crawler's business (SharedCrawler); these tests drive the frontier alone
    robots = "" if "robots:" in settings else "    robots: false\n"
    text = f"""
spiders:
  s:
    start: {start}
    allowed_domains: [a.test, b.test]
    pattern: x
{robots}{settings}"""
    return parse_spiders(text, "test.yaml").get("s")


def run(
    server: RedisServer,
    spec: SpiderSpec,
    body: Callable[..., Awaitable[T]],
    processes: int = 2,
    **options: Any,
) -> T:
    """``body(*frontiers)`` with ``processes`` frontiers joined to one crawl, then closed."""

    async def main() -> T:
        frontiers = [
            await RedisFrontier.connect(server.url, "c", spec, **options) for _ in range(processes)
        ]
        try:
            for frontier in frontiers:
                await frontier.join()
            return await body(*frontiers)
        finally:
            for frontier in frontiers:
                await frontier.close()

    return asyncio.run(main())


async def drain(frontier: RedisFrontier) -> list[Lease]:
    """Claim and commit (no records, no links) until the crawl is finished."""
    done: list[Lease] = []
    while (leases := await frontier.claim(50)) is not None:
        for lease in leases:
            assert await frontier.commit(lease, [], [], {"pages": 1})
        done.extend(leases)
    return done


def starts(count: int, hosts: str = "ab") -> str:
    urls = [f"http://{hosts[i % len(hosts)]}.test/{i}" for i in range(count)]
    return "[" + ", ".join(urls) + "]"


# -- seeding ------------------------------------------------------------------------------------


def test_start_urls_are_seeded_once_whoever_joins(redis_server: RedisServer) -> None:
    spec = spider(start=starts(1_200))

    async def body(*frontiers: RedisFrontier) -> None:
        await asyncio.gather(*(f.join() for f in frontiers))  # joining again seeds nothing
        status = await frontiers[0].status()
        assert status["queued"] == 1_200
        claimed = await asyncio.gather(*(drain(f) for f in frontiers))
        urls = [lease.request.url for leases in claimed for lease in leases]
        assert sorted(urls) == sorted(f"http://{'ab'[i % 2]}.test/{i}" for i in range(1_200))
        assert (await frontiers[1].status())["finished"]

    run(redis_server, spec, body, processes=3)


def test_a_seeder_that_died_is_taken_over_from_its_cursor(redis_server: RedisServer) -> None:
    spec = spider(start=starts(1_200))
    client = redis.Redis.from_url(redis_server.url)
    # A seeder that queued the first 500 start URLs and died: its lock runs out.
    client.set("scraper:{c}:seed:lock", "dead", px=300)
    client.set("scraper:{c}:seed:cursor", 500)

    async def body(frontier: RedisFrontier) -> None:
        leases = await drain(frontier)
        assert [lease.request.url for lease in leases if lease.request.url.endswith("/500")]
        assert len(leases) == 700

    run(redis_server, spec, body, processes=1)
    assert client.get("scraper:{c}:seeded") == b"1"


# -- politeness across processes ----------------------------------------------------------------


def test_per_host_holds_across_processes(redis_server: RedisServer) -> None:
    spec = spider("    per_host: 2", start=starts(5, "a"))

    async def body(first: RedisFrontier, second: RedisFrontier) -> None:
        leases = await first.claim(10)
        assert leases is not None and len(leases) == 2
        waiting = asyncio.create_task(second.claim(10))
        await asyncio.sleep(0.5)
        assert not waiting.done()  # two in flight on a.test: the second process waits
        started = time.monotonic()
        await first.commit(leases[0], [], [], {})
        more = await asyncio.wait_for(waiting, 2)
        assert time.monotonic() - started < 1.0  # woken by the commit, not by a timer
        assert more is not None and len(more) == 1

    run(redis_server, spec, body)


def test_delay_holds_across_processes(redis_server: RedisServer) -> None:
    spec = spider("    delay: 0.4\n    per_host: 8", start=starts(3, "a"))

    async def body(first: RedisFrontier, second: RedisFrontier) -> None:
        times = []
        for frontier in (first, second, first):
            leases = await frontier.claim(10)
            times.append(time.monotonic())
            assert leases is not None and len(leases) == 1
        assert times[1] - times[0] >= 0.38
        assert times[2] - times[1] >= 0.38

    run(redis_server, spec, body)


def test_a_pause_holds_the_host_back_for_every_process(redis_server: RedisServer) -> None:
    spec = spider(start="[http://a.test/1, http://a.test/2, http://b.test/1]")

    async def body(first: RedisFrontier, second: RedisFrontier) -> None:
        leases = await first.claim(1)
        assert leases is not None and leases[0].host == "a.test"
        started = time.monotonic()
        # A 429 with Retry-After: 0.5 on a.test: back to the queue, a.test paused for all.
        assert await first.fail(leases[0], "HTTP 429", retry=True, pause=0.5)
        other = await second.claim(10)
        assert other is not None and [lease.host for lease in other] == ["b.test"]
        again = await second.claim(10)
        waited = time.monotonic() - started
        assert again is not None and {lease.host for lease in again} == {"a.test"}
        assert waited >= 0.5
        # The request that was paused goes first when the pause ends.
        assert again[0].request.url == "http://a.test/1"

    run(redis_server, spec, body)


# -- leases, fencing, attempts ------------------------------------------------------------------


def test_an_expired_lease_comes_back_and_goes_dead_past_max_attempts(
    redis_server: RedisServer,
) -> None:
    spec = spider()

    async def body(first: RedisFrontier, second: RedisFrontier) -> None:
        lost = await first.claim(1)  # its process "dies": the lease is never renewed
        assert lost is not None
        again = await second.claim(1)  # waits for the expiry, no longer
        assert again is not None and again[0].request == lost[0].request
        assert again[0].token != lost[0].token
        # The late commit of the process that lost the lease writes nothing.
        assert not await first.commit(lost[0], [{"x": 1}], [Request("http://a.test/new")], {})
        assert await second.read_records("0", 10, 0) == []
        assert (await second.status())["queued"] == 0
        assert await second.claim(1) is None  # expired again: attempts ran out
        status = await second.status()
        assert status["dead"] == 1 and status["finished"] and status["done"] == 0

    run(redis_server, spec, body, lease_seconds=0.3, max_attempts=2)


def test_a_renewed_lease_does_not_expire(redis_server: RedisServer) -> None:
    spec = spider(start="[http://a.test/1, http://a.test/2]")

    async def body(first: RedisFrontier, second: RedisFrontier) -> None:
        held = await first.claim(1)
        assert held is not None
        for _ in range(4):
            await asyncio.sleep(0.2)
            await first.renew(held)
        other = await second.claim(10)
        assert other is not None and [lease.request.url for lease in other] == ["http://a.test/2"]
        assert await first.commit(held[0], [], [], {})

    run(redis_server, spec, body, lease_seconds=0.5)


def test_fail_with_and_without_retry(redis_server: RedisServer) -> None:
    spec = spider(start="[http://a.test/1, http://b.test/1]")

    async def body(frontier: RedisFrontier) -> None:
        leases = await frontier.claim(2)
        assert leases is not None
        by_host = {lease.host: lease for lease in leases}
        assert await frontier.fail(by_host["a.test"], "HTTP 500", retry=False)
        assert not await frontier.fail(by_host["a.test"], "HTTP 500", retry=False)  # stale
        assert await frontier.fail(by_host["b.test"], "timeout", retry=True)
        retried = await frontier.claim(2)
        assert retried is not None and [lease.host for lease in retried] == ["b.test"]
        assert await frontier.fail(retried[0], "timeout", retry=True)  # attempts ran out
        assert await frontier.claim(2) is None
        status = await frontier.status()
        assert status["failed"] == {"HTTP 500": 1}
        assert status["dead"] == 1

    run(redis_server, spec, body, processes=1, max_attempts=2)


# -- commit: records and links ------------------------------------------------------------------


@pytest.mark.parametrize("dedup", ["set", "bloom"])
def test_a_commit_adds_each_new_link_once(redis_server: RedisServer, dedup: str) -> None:
    spec = spider("    max_depth: 2")

    async def body(first: RedisFrontier, second: RedisFrontier) -> None:
        leases = await first.claim(1)
        assert leases is not None
        links = [
            Request("http://a.test/p?b=2&a=1", "main", 1),
            Request("http://a.test/p?a=1&b=2#top", "main", 1),  # the same page
            Request("http://A.TEST/p?a=1&b=2", "main", 1),  # the same page
            Request("http://a.test/1", "main", 1),  # the start URL
            Request("http://b.test/q", "main", 1, {"from": "list"}),
            Request("http://elsewhere.test/", "main", 1),
            Request("http://a.test/deep", "main", 3),
            Request("http://[oops/", "main", 1),
        ]
        assert await first.commit(leases[0], [{"n": 1}, {"n": 2}], links, {"pages": 1})
        claimed = await second.claim(10)
        assert claimed is not None
        assert sorted((lease.request.url, dict(lease.request.carry)) for lease in claimed) == [
            ("http://a.test/p?b=2&a=1", {}),
            ("http://b.test/q", {"from": "list"}),
        ]
        for lease in claimed:  # found again on the next pages: queued no more
            assert await second.commit(lease, [], links[:2], {"pages": 1})
        assert await second.claim(10) is None
        status = await second.status()
        assert status["records"] == 2 and status["done"] == 3
        stats = await second.client.hgetall(second.key("stats"))
        assert {k.decode(): int(v) for k, v in stats.items()} == {
            "done": 3,
            "pages": 3,
            "records": 2,
            "skipped:already seen": 7,
            "skipped:offsite": 1,
            "skipped:max_depth": 1,
            "skipped:bad url": 1,
        }

    run(redis_server, spec, body, dedup=dedup)


@pytest.mark.parametrize("dedup", ["set", "bloom"])
def test_max_pages_holds_for_the_whole_crawl(redis_server: RedisServer, dedup: str) -> None:
    spec = spider("    max_pages: 3", start=starts(2))

    async def body(first: RedisFrontier, second: RedisFrontier) -> None:
        leases = await first.claim(10)
        assert leases is not None and len(leases) == 2
        links = [Request(f"http://a.test/l{i}", "main", 1) for i in range(3)]
        assert await first.commit(leases[0], [], links, {})
        assert await first.commit(leases[1], [], [], {})
        assert len(await drain(second)) == 1
        stats = await second.client.hget(second.key("stats"), "skipped:max_pages")
        assert stats == b"2"

    run(redis_server, spec, body, dedup=dedup)


def test_records_are_read_in_commit_order_and_the_reader_blocks(
    redis_server: RedisServer,
) -> None:
    spec = spider(start=starts(3))

    async def body(first: RedisFrontier, reader: RedisFrontier) -> None:
        started = time.monotonic()
        assert await reader.read_records("0", 10, 0.3) == []
        assert time.monotonic() - started >= 0.25
        waiting = asyncio.create_task(reader.read_records("0", 10, 5))
        leases = await first.claim(3)
        assert leases is not None
        await first.commit(leases[0], [{"n": 1, "text": "é"}, {"n": 2}], [], {})
        got = await asyncio.wait_for(waiting, 2)
        assert [record for _, record in got] == [{"n": 1, "text": "é"}, {"n": 2}]
        await first.commit(leases[1], [{"n": 3}], [], {})
        await first.commit(leases[2], [{"n": 4}, {"n": float("nan")}, {"n": "\udc80"}], [], {})
        rest = await reader.read_records(got[-1][0], 10, 0)
        assert [record for _, record in rest] == [{"n": 3}, {"n": 4}]  # NaN: left out, counted
        dropped = (await reader.status())["dropped"]
        assert dropped == {"n: not finite": 1, "n: lone surrogate": 1}
        assert [record for _, record in await reader.read_records(rest[0][0], 1, 0)] == [{"n": 4}]

    run(redis_server, spec, body)


# -- the end of a crawl -------------------------------------------------------------------------


def test_a_waiting_process_sees_the_end_within_a_second(redis_server: RedisServer) -> None:
    spec = spider()

    async def body(first: RedisFrontier, second: RedisFrontier) -> None:
        leases = await first.claim(1)
        assert leases is not None
        waiting = asyncio.create_task(second.claim(1))
        await asyncio.sleep(0.3)
        assert not waiting.done() and not await second.finished()
        committed = time.monotonic()
        await first.commit(leases[0], [{"n": 1}], [], {"pages": 1})
        assert await asyncio.wait_for(waiting, 3) is None
        assert time.monotonic() - committed < 1.0
        assert await first.claim(1) is None and await first.finished()

    run(redis_server, spec, body)


# -- robots.txt ---------------------------------------------------------------------------------


def test_robots_txt_is_fetched_once_per_crawl(redis_server: RedisServer) -> None:
    fetched: list[str] = []

    def fetcher(text: str | None) -> Callable[[], Awaitable[str | None]]:
        async def fetch() -> str | None:
            fetched.append("x")
            await asyncio.sleep(0.2)
            return text

        return fetch

    async def body(*frontiers: RedisFrontier) -> None:
        texts = await asyncio.gather(
            *(
                f.robots_txt("http://a.test", fetcher("User-agent: *\nDisallow: /p"))
                for f in frontiers
            )
        )
        assert texts == ["User-agent: *\nDisallow: /p"] * 3 and len(fetched) == 1
        nones = await asyncio.gather(
            *(f.robots_txt("http://b.test", fetcher(None)) for f in frontiers)
        )
        assert nones == [None] * 3 and len(fetched) == 2

    run(redis_server, spider(), body, processes=3)


def test_a_host_gets_one_lease_until_its_robots_txt_is_known(redis_server: RedisServer) -> None:
    spec = spider("    robots: true\n    per_host: 4\n    delay: 0.3", start=starts(4, "a"))

    async def body(first: RedisFrontier, second: RedisFrontier) -> None:
        leases = await first.claim(10)
        assert leases is not None and len(leases) == 1  # its process reads robots.txt
        waiting = asyncio.create_task(second.claim(10))
        await asyncio.sleep(0.5)  # past delay: only the unread robots.txt holds the host back
        assert not waiting.done()
        known = time.monotonic()
        assert await first.host_known("a.test", 0.0)
        # the next start is a delay after the first page's, which starts only now
        more = await asyncio.wait_for(waiting, 2)
        assert 0.28 <= time.monotonic() - known < 1.0
        assert more is not None and len(more) == 1
        assert not await second.host_known("a.test", 0.0)  # known once

    run(redis_server, spec, body)


# -- status and reset ---------------------------------------------------------------------------


def test_status_and_reset(redis_server: RedisServer) -> None:
    spec = spider("    per_host: 1", start=starts(4))

    async def body(first: RedisFrontier, second: RedisFrontier) -> None:
        leases = await first.claim(10)
        assert leases is not None and len(leases) == 2
        await first.commit(leases[0], [{"n": 1}], [], {"pages": 1})
        await first.fail(leases[1], "HTTP 404", retry=False)
        held = await second.claim(1)
        assert held is not None
        status = await first.status()
        assert status == {
            "queued": 1,
            "in_flight": 1,
            "done": 1,
            "failed": {"HTTP 404": 1},
            "dead": 0,
            "records": 1,
            "dropped": {},
            "hosts_waiting": 0,  # the host of the one queued has none in flight
            "processes": 2,
            "dedup": "set",
            "already_seen": 0,
            "dedup_bytes_per_url": status["dedup_bytes_per_url"],
            "finished": False,
        }
        assert status["dedup_bytes_per_url"] > 0
        deleted = await second.reset()
        assert deleted > 10
        assert await first.client.keys("scraper:{c}:*") == []
        assert not await first.commit(held[0], [{"n": 2}], [], {})  # nothing left to commit to

    run(redis_server, spec, body)


# -- Redis trouble ------------------------------------------------------------------------------


def test_unreachable_redis_is_a_clear_error() -> None:
    port = free_port()
    with pytest.raises(RedisTrouble) as caught:
        asyncio.run(RedisFrontier.connect(f"redis://127.0.0.1:{port}/0", "c", spider()))
    assert str(caught.value).startswith(f"cannot reach Redis at redis://127.0.0.1:{port}/0: ")
    assert caught.value.exit_code == 2


def test_calls_wait_for_redis_to_come_back(caplog: pytest.LogCaptureFixture) -> None:
    spec = spider(start=starts(2))
    caplog.set_level(logging.INFO, logger="scraper")

    async def body(frontier: RedisFrontier) -> None:
        leases = await frontier.claim(1)
        assert leases is not None
        server.stop()
        committing = asyncio.create_task(frontier.commit(leases[0], [{"n": 1}], [], {}))
        await asyncio.sleep(1.0)
        assert not committing.done()
        server.start()
        assert await asyncio.wait_for(committing, 10)
        assert len(await drain(frontier)) == 1
        assert len(await frontier.read_records("0", 10, 0)) == 1

    with RedisServer(appendonly=True) as server:
        run(server, spec, body, processes=1)
    messages = [r.getMessage() for r in caplog.records]
    lost = [m for m in messages if m.startswith(f"lost Redis at {server.url}; retrying")]
    assert len(lost) == 1
    assert messages.count(f"Redis at {server.url} is back") == 1


def test_redis_killed_and_restarted_keeps_what_was_committed() -> None:
    spec = spider(start=starts(40))

    async def body(first: RedisFrontier, second: RedisFrontier) -> None:
        records = 0
        for round_ in range(4):
            for frontier in (first, second):
                leases = await frontier.claim(5)
                assert leases is not None
                for lease in leases:
                    assert await frontier.commit(lease, [{"url": lease.request.url}], [], {})
                    records += 1
            server.kill()  # SIGKILL: only the append-only file is left
            if round_ % 2:
                await asyncio.sleep(0.3)
            server.start()
        rest = await asyncio.gather(drain(first), drain(second))
        assert records + sum(map(len, rest)) == 40
        assert (await first.status())["records"] == records
        urls = [r["url"] for _, r in await first.read_records("0", 100, 0)]
        assert len(urls) == len(set(urls)) == records

    with RedisServer(appendonly=True) as server:
        run(server, spec, body)


# -- dedup memory -------------------------------------------------------------------------------


def test_a_million_seen_urls_cost_at_most_12_bytes_each(redis_server: RedisServer) -> None:
    import random

    client = redis.Redis.from_url(redis_server.url)
    generator = random.Random(12)
    count = 1_000_000
    buckets: dict[str, list[str]] = {}
    for _ in range(count):  # through the frontier's bucketing, a bucket per SADD
        bucket, member = dedup_member(generator.getrandbits(64) - (1 << 63))
        buckets.setdefault(bucket, []).append(member)
    pipe = client.pipeline(transaction=False)
    for index, (bucket, members) in enumerate(buckets.items()):
        pipe.sadd(f"scraper:{{c}}:seen:{bucket}", *members)
        if index % 1_000 == 999:
            pipe.execute()
    pipe.execute()
    keys = client.keys("scraper:{c}:seen:*")
    assert len(keys) == DEDUP_BUCKETS
    for key in keys:
        pipe.memory_usage(key, samples=0)
    used = sum(pipe.execute())
    for key in keys[:: DEDUP_BUCKETS // 64]:
        assert client.object("encoding", key) == b"intset"
    per_url = used / count
    print(f"dedup: {per_url:.2f} bytes of Redis memory per URL at {count:,} URLs")
    assert per_url <= 12


BLOOM_CHECK = (
    "local P = ARGV[1]\n"
    + redisdedup.LUA
    + """
-- ARGV: P, MARK (0/1), (A, B)...: how many of the URLs were seen (and, with MARK, are now).
local mark, hits = ARGV[2] == '1', 0
for j = 3, #ARGV, 2 do
  if seen(ARGV[j], ARGV[j + 1], mark) then hits = hits + 1 end
end
seen_saved()
return hits
"""
)


def test_a_million_urls_in_the_bloom_filter_cost_2_bytes_each_and_few_new_ones_are_taken(
    redis_server: RedisServer,
) -> None:
    import random

    client = redis.Redis.from_url(redis_server.url)
    prefix = "scraper:{c}:"
    assert client.register_script(redisdedup.CHOOSE)(keys=[prefix], args=[prefix, "bloom"])
    check = client.register_script(BLOOM_CHECK)
    generator = random.Random(12)

    def urls(count: int) -> list[int]:
        return [generator.getrandbits(64) - (1 << 63) for _ in range(count)]

    def seen(values: list[int], mark: bool) -> int:
        hits = 0
        for start in range(0, len(values), 5_000):
            args = [prefix, "1" if mark else "0"]
            for value in values[start : start + 5_000]:
                args.extend(redisdedup.queue_args(value, "bloom"))
            hits += check(keys=[prefix], args=args)
        return hits

    def used() -> int:
        keys = client.keys(prefix + "bloom:*")
        return sum(client.memory_usage(key, samples=0) for key in keys)

    added = urls(1_000_000)
    taken = seen(added, mark=True)  # a new URL taken for one added before it
    assert taken < 1_000_000 * redisdedup.BLOOM_ERROR
    per_url = used() / len(added)
    print(f"bloom: {per_url:.2f} bytes of Redis memory per URL at {len(added):,} URLs")
    assert per_url <= 2.2
    assert client.hget(prefix + "bloom", "n") == b"1"

    more = urls(100_000)  # past the first filter's 1,048,576: a second one, twice as large
    seen(more, mark=True)
    assert client.hget(prefix + "bloom", "n") == b"2"
    assert seen(added[::20] + more[::2], mark=False) == 50_000 + 50_000  # no URL is forgotten
    never = urls(100_000)
    rate = seen(never, mark=False) / len(never)
    print(f"bloom: {rate:.3%} of URLs never seen taken for seen")
    assert rate < redisdedup.BLOOM_ERROR


def test_the_first_process_chooses_how_seen_urls_are_kept(redis_server: RedisServer) -> None:
    spec = spider(start=starts(3))

    async def main() -> None:
        first = await RedisFrontier.connect(redis_server.url, "c", spec, dedup="bloom")
        follower = await RedisFrontier.connect(redis_server.url, "c", spec)
        other = await RedisFrontier.connect(redis_server.url, "c", spec, dedup="set")
        try:
            await first.join()
            await follower.join()
            assert follower.dedup == "bloom"
            with pytest.raises(ScraperError) as refused:
                await other.join()
            assert str(refused.value).startswith(
                "the crawl 'c' in Redis keeps its seen URLs with --dedup bloom, chosen by the "
                "process that started it, not --dedup set: "
            )
            assert len(await drain(follower)) == 3
            assert (await first.status())["dedup"] == "bloom"
        finally:
            for frontier in (first, follower, other):
                await frontier.close()

    asyncio.run(main())
