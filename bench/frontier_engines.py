"""The shared frontier's engine alone: SQLite in WAL mode against Redis, 1, 2 and 4 processes.

    .venv/bin/python bench/frontier_engines.py [--pages 20000]

Issue 12 asked to choose the engine of ``--workers N`` (many processes on one machine) by
measurement. Each process loops over one atomic step: commit the 8 pages it holds (10
records of JSON each, the end of their leases) and claim 8 more, until the queue is empty;
nothing is fetched. SQLite: a minimal lease queue in one WAL database (``BEGIN IMMEDIATE``,
an ``UPDATE ... RETURNING`` claim; no politeness, no link dedup, no wake-ups: a lower bound
of what the frontier would cost there). Redis: the real ``RedisFrontier.step`` (the Lua
script with per-host politeness, dedup and the record stream) on a redis-server of its own.
Prints pages/s (start-up included) and the processes' CPU per page; Redis's own CPU per
page as well. Run with the project's Python (it imports ``scraper``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import resource
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

from servers import RedisProbe, redis_server  # noqa: E402

BATCH = 8
RECORD = {"index": 1, "title": "某电影", "actor": "主演：某某", "time": "2019-01-01", "score": 9.5}
LINE = json.dumps(RECORD, ensure_ascii=False)


def sqlite_setup(path: str, pages: int) -> None:
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(
        "CREATE TABLE queue(id INTEGER PRIMARY KEY, url TEXT, state INT DEFAULT 0, lease REAL);"
        "CREATE TABLE seen(fp INTEGER PRIMARY KEY);"
        "CREATE TABLE records(id INTEGER PRIMARY KEY, page INT, body TEXT);"
        "CREATE INDEX queue_state ON queue(state, id);"
    )
    with db:
        urls = ((f"http://h/board/{n}.html",) for n in range(pages))
        db.executemany("INSERT INTO queue(url) VALUES (?)", urls)
        fingerprints = ((random.getrandbits(62),) for _ in range(pages))
        db.executemany("INSERT INTO seen VALUES (?)", fingerprints)
    db.close()


def sqlite_worker(path: str, pages: int, out: multiprocessing.Queue[int]) -> None:
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    db.execute("PRAGMA synchronous=NORMAL")
    held: list[int] = []
    done = 0
    while True:
        db.execute("BEGIN IMMEDIATE")
        for page in held:
            db.execute("UPDATE queue SET state=2 WHERE id=? AND state=1", (page,))
            db.executemany("INSERT INTO records(page, body) VALUES (?, ?)", [(page, LINE)] * 10)
        done += len(held)
        held = [
            row[0]
            for row in db.execute(
                "UPDATE queue SET state=1, lease=? WHERE id IN "
                "(SELECT id FROM queue WHERE state=0 ORDER BY id LIMIT ?) RETURNING id",
                (time.time() + 30, BATCH),
            )
        ]
        db.execute("COMMIT")
        if not held:
            break
    out.put(done)


def redis_worker(url: str, pages: int, out: multiprocessing.Queue[int]) -> None:
    from scraper.redisfrontier import RedisFrontier
    from scraper.spec import parse_spiders

    text = (
        "spiders:\n  b:\n    start: 'http://h/board/{n}.html'\n"
        f"    vars: {{n: {{range: [0, {pages}]}}}}\n    robots: false\n"
        f"    concurrency: {BATCH}\n    per_host: 1000\n    pattern: x\n"
    )
    spider = parse_spiders(text, "bench.yaml").get("b")

    async def work() -> int:
        frontier = await RedisFrontier.connect(url, "engines", spider)
        await frontier.join()
        done, held = 0, []
        while True:
            step = await frontier.step(held, BATCH)
            done += len(held)
            held = [
                frontier.page_args(lease, [dict(RECORD)] * 10, [], {"pages": 1})
                for lease in step.leases
            ]
            if not step.leases:
                if step.finished:
                    break
                await asyncio.sleep(0.001)
        await frontier.close()
        return done

    out.put(asyncio.run(work()))


def measure(engine: str, processes: int, pages: int, redis: RedisProbe) -> None:
    out: multiprocessing.Queue[int] = multiprocessing.Queue()
    if engine == "sqlite":
        path = os.path.join(tempfile.mkdtemp(), "frontier.db")
        sqlite_setup(path, pages)
        target, where = sqlite_worker, path
    else:
        redis.command("FLUSHALL")
        target, where = redis_worker, redis.url
    redis_before = redis.cpu_seconds()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    workers = [
        multiprocessing.Process(target=target, args=(where, pages, out)) for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    done = sum(out.get() for _ in workers)
    server = (redis.cpu_seconds() - redis_before) if engine == "redis" else 0.0
    print(
        f"{engine:6}  {processes} process{'es' if processes > 1 else '  '}  {done:>7,} pages  "
        f"{wall:5.2f} s  {done / wall:>8,.0f} pages/s  processes {cpu * 1000 / done:.3f} CPU "
        f"ms/page  Redis {server * 1000 / done:.3f} CPU ms/page"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=20_000)
    args = parser.parse_args()
    print(" ".join([Path(sys.executable).name, *sys.argv]))
    with (
        tempfile.TemporaryDirectory() as work,
        redis_server(Path(sys.executable), Path(work) / "redis") as redis,
    ):
        for engine in ("sqlite", "redis"):
            for processes in (1, 2, 4):
                measure(engine, processes, args.pages, redis)


if __name__ == "__main__":
    main()
