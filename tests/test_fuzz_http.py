"""Fuzzing the fetch path: 10,000 made-up HTTP answers, and no crawl may lose its way.

``tests/fuzzserver.py`` answers every request from a seed, the round and the path. Each
round is one crawl of 20 start pages on the round's own port: every 4th a good page,
every 4th from the second an odd but valid one, the other half wild (see the server's
docstring); links lead to at most ten more wild pages. 500 rounds make 10,000 start
answers, with robots.txt (fuzzed too) obeyed in a third of them. What must hold:

- the crawl ends, within ``ROUND_LIMIT`` seconds, and no exception escapes it;
- every good and odd page's records are written exactly once, and the odd pages'
  values that are not finite are dropped as ``v: not finite``;
- every page asked for is either fetched or counted in ``stats.failed`` by a named
  reason (not ``internal error``);
- the output is UTF-8 JSON Lines that a strict parser reads: no ``NaN``, no lone
  surrogate;
- through the command line (20 more rounds): no traceback, exit 0 or 1 as the README
  says (1 when a page failed).

``SCRAPER_FUZZ_SEED`` picks another seed. A failure names the seed, the round and the
paths whose answers break a crawl on their own; ``python -m tests.fuzzserver SEED ROUND
PATH`` prints such an answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from scraper.crawler import Crawler
from scraper.output.jsonl import JsonLinesWriter
from scraper.spec import parse_spiders
from scraper.stats import CrawlStats
from tests.fuzzserver import FuzzServer

SEED = os.environ.get("SCRAPER_FUZZ_SEED", "10")
ROUNDS = int(os.environ.get("SCRAPER_FUZZ_ROUNDS", "500"))
PAGES = 20
CLI_ROUNDS = 20
ROUNDS_AT_ONCE = 4
"""Crawls run together in one event loop: more only make each page wait longer for it."""
CLI_AT_ONCE = 4
TIMEOUT = float(os.environ.get("SCRAPER_FUZZ_TIMEOUT", "1.0"))
"""The spider's timeout: short, as answers that never end are common here, and long
enough that a good page never misses it on a loaded machine."""
CLI_TIMEOUT = 2.0
"""A run's first requests wait for aiohttp to be imported, which takes most of a
second when four runs start at once on two cores."""
ROUND_LIMIT = 20.0
"""Seconds one round may take: 0.5 s timeouts, a few waves of pages, a loaded machine."""
ISOLATED_ROUNDS = 4
"""Failing rounds whose pages are crawled one at a time to name the answer at fault."""
ROOT = Path(__file__).resolve().parents[1]
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
}

SPIDER = """
spiders:
  fuzz:
    start:
{start}
    robots: {robots}
    retries: 0
    timeout: {timeout}
    max_bytes: 1048576
    max_depth: 1
    max_pages: 400
    extract_timeout: 0.5
    concurrency: 8
    url_field: url
    pattern: '<li data-k="(?P<k>[^"<>]*)"><b>(?P<name>[^<]*)</b><i>(?P<v>[^<]*)</i>'
    clean:
      v: float
    follow:
      - {{pattern: '<a href="(?P<url>[^"]*)"', to: main}}
"""


def start_paths() -> list[str]:
    kinds = ["g", "o", "f", "f"]
    return [f"/{kinds[i % 4]}/{i}" for i in range(PAGES)]


def robots_on(round_: int) -> bool:
    return round_ % 3 == 1


def spider_yaml(server: FuzzServer, round_: int, paths: list[str], timeout: float = TIMEOUT) -> str:
    start = "\n".join(f"      - '{server.url(round_, path)}'" for path in paths)
    robots = "true" if robots_on(round_) else "false"
    return textwrap.dedent(SPIDER).format(start=start, robots=robots, timeout=timeout)


@pytest.fixture(autouse=True)
def quiet_log() -> Iterator[None]:
    """Thousands of failed pages each log a warning; the report says what matters."""
    logger = logging.getLogger("scraper")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


@pytest.fixture(scope="module")
def server() -> Iterator[FuzzServer]:
    with FuzzServer(SEED, ROUNDS + CLI_ROUNDS) as fuzz:
        yield fuzz


# -- checking one round -------------------------------------------------------------------------


@dataclass
class Round:
    """What one crawl of a round left: its stats (None: it did not end), output, problems."""

    number: int
    paths: list[str]
    stats: CrawlStats | None = None
    problems: list[str] = field(default_factory=list)


def _lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return any("\ud800" <= c <= "\udfff" for c in value)
    if isinstance(value, dict):
        return any(_lone_surrogate(k) or _lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_lone_surrogate(v) for v in value)
    return False


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def read_output(path: Path, problems: list[str]) -> list[dict[str, Any]]:
    """The records of a JSON Lines file, read strictly; what is wrong goes to ``problems``."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        problems.append(f"the output is not UTF-8: {exc}")
        return []
    except FileNotFoundError:
        return []
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            record = json.loads(line, parse_constant=_not_json)
        except ValueError as exc:
            problems.append(f"output line {number} is not JSON ({exc}): {line[:200]!r}")
            continue
        if _lone_surrogate(record):
            problems.append(f"output line {number} holds a lone surrogate: {line[:200]!r}")
        records.append(record)
    return records


def check_round(
    server: FuzzServer, result: Round, records: list[dict[str, Any]], *, exact: bool = True
) -> None:
    """Hold ``result`` against the oracle: good and odd pages' records, named failures, and
    every page asked for accounted for. ``exact``: the crawl had all of the round's pages."""
    round_, problems, stats = result.number, result.problems, result.stats
    by_page: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        key = str(record.get("k", ""))
        if key[:2] in ("g-", "o-") and key.count("-") == 3:
            by_page.setdefault(key.rsplit("-", 1)[0], []).append(record)
    nonfinite = 0
    for path in result.paths:
        kind, n = path.split("/")[1:]
        if kind not in ("g", "o"):
            continue
        answer = server.answer(round_, path)
        assert answer.records is not None
        nonfinite += answer.nonfinite
        url = server.url(round_, path)
        want = sorted(json.dumps({**r, "url": url}, sort_keys=True) for r in answer.records)
        got = by_page.pop(f"{kind}-{round_}-{n}", [])
        got_lines = sorted(json.dumps(r, sort_keys=True) for r in got)
        if got_lines != want:
            problems.append(
                f"{path}: expected its {len(want)} records, got {len(got)}: {got_lines[:4]}"
                f" ({'; '.join(answer.notes)[:400]})"
            )
    if stats is None:
        return
    if stats.records != len(records):
        problems.append(f"stats.records is {stats.records} but the output has {len(records)}")
    for reason, count in stats.failed.items():
        if not reason.strip() or reason.startswith("internal error"):
            problems.append(f"{count} pages failed without a named reason: {reason!r}")
    if stats.dropped["v: not finite"] < nonfinite:
        problems.append(
            f"{nonfinite} values not finite on odd pages, but dropped: {dict(stats.dropped)}"
        )
    requested = server.requests(round_)
    missing = sorted(set(result.paths) - set(requested))
    if missing:
        problems.append(f"start pages never asked for: {missing} (skipped: {dict(stats.skipped)})")
    if exact:
        starts = set(result.paths) & set(requested)
        # A redirect from /l/N to itself with a query asks for /l/N again: one link.
        links = {path.split("?")[0] for path in requested if path.startswith("/l/")}
        accounted = stats.pages + sum(stats.failed.values())
        if accounted < len(starts) + len(links):
            problems.append(
                f"{len(starts)} start pages and {len(links)} links were asked for, but "
                f"only {stats.pages} pages fetched and {sum(stats.failed.values())} failed "
                f"({dict(stats.failed)}): the crawl stopped without saying why"
            )


async def crawl_round(server: FuzzServer, round_: int, paths: list[str], tmp: Path) -> Round:
    result = Round(round_, paths)
    spider = parse_spiders(spider_yaml(server, round_, paths), f"round{round_}.yaml").get("fuzz")
    out = tmp / f"round{round_}-{len(paths)}-{abs(hash(tuple(paths)))}.jsonl"
    writer = JsonLinesWriter(out)
    try:
        result.stats = await asyncio.wait_for(Crawler(spider, writer).run(), ROUND_LIMIT)
    except TimeoutError:
        result.problems.append(f"the crawl did not end within {ROUND_LIMIT}s")
    except Exception as exc:
        result.problems.append(f"{type(exc).__name__} escaped the crawl: {exc}"[:500])
    finally:
        writer.close()
    records = read_output(out, result.problems)
    check_round(server, result, records, exact=len(paths) == PAGES)
    if result.problems and result.stats is not None:
        result.problems.append(f"failed: {dict(result.stats.failed)}")
    return result


async def isolate(server: FuzzServer, failed: Round, tmp: Path) -> list[str]:
    """Crawl each start page of a failed round on its own; name those that fail so."""
    alone = await asyncio.gather(
        *(crawl_round(server, failed.number, [path], tmp) for path in failed.paths)
    )
    named = []
    for result in alone:
        if result.problems:
            path = result.paths[0]
            named.append(
                f"  {path} alone: {'; '.join(result.problems)[:600]}\n"
                f"    answer: {'; '.join(server.answer(failed.number, path).notes)[:600]}\n"
                f"    see it: python -m tests.fuzzserver {SEED} {failed.number} {path}"
            )
    return named


def report(server: FuzzServer, failed: list[Round], isolated: dict[int, list[str]]) -> str:
    lines = [f"{len(failed)} rounds failed (seed {SEED}):"]
    for result in failed[:12]:
        robots = ", robots on" if robots_on(result.number) else ""
        lines.append(f"round {result.number}{robots}: {'; '.join(result.problems)[:800]}")
        lines += isolated.get(result.number, [])
    reasons: Counter[str] = Counter()
    for result in failed:
        reasons.update(re.sub(r"\d+", "N", p)[:100] for p in result.problems)
    lines.append("problems by kind: " + json.dumps(reasons.most_common(20), ensure_ascii=False))
    return "\n".join(lines)


# -- the tests ----------------------------------------------------------------------------------


def test_ten_thousand_fuzzed_answers_cannot_break_a_crawl(
    server: FuzzServer, tmp_path: Path
) -> None:
    async def run_all() -> tuple[list[Round], dict[int, list[str]]]:
        slots = asyncio.Semaphore(ROUNDS_AT_ONCE)

        async def one(round_: int) -> Round:
            async with slots:
                return await crawl_round(server, round_, start_paths(), tmp_path)

        results = await asyncio.gather(*(one(r) for r in range(ROUNDS)))
        failed = [r for r in results if r.problems]
        isolated = {}
        for result in failed[:ISOLATED_ROUNDS]:
            isolated[result.number] = await isolate(server, result, tmp_path)
        return failed, isolated

    started = time.monotonic()
    failed, isolated = asyncio.run(run_all())
    elapsed = time.monotonic() - started
    answers = sum(len(server.requests(r)) for r in range(ROUNDS))
    print(f"\n{answers} fuzzed answers in {ROUNDS} rounds, {elapsed:.1f}s (seed {SEED})")
    assert not failed, report(server, failed, isolated)
    assert answers >= ROUNDS * PAGES


def test_fuzzed_answers_through_the_command_line(server: FuzzServer, tmp_path: Path) -> None:
    async def run_one(round_: int, slots: asyncio.Semaphore) -> Round:
        paths = start_paths()
        result = Round(round_, paths)
        spiders = tmp_path / f"round{round_}.yaml"
        spiders.write_text(spider_yaml(server, round_, paths, CLI_TIMEOUT), encoding="utf-8")
        out = tmp_path / f"round{round_}.jsonl"
        command = [sys.executable, "-m", "scraper", "run", "fuzz", "-f", str(spiders)]
        async with slots:
            process = await asyncio.create_subprocess_exec(
                *command, "-o", str(out), env=ENV, stderr=asyncio.subprocess.PIPE
            )
            try:
                _, err = await asyncio.wait_for(process.communicate(), 60)
            except TimeoutError:
                process.kill()
                await process.wait()
                result.problems.append("scraper run did not end within 60s")
                return result
        stderr = err.decode("utf-8", "replace")
        if "Traceback" in stderr:
            result.problems.append(f"a traceback on stderr: {stderr[-1500:]}")
        failed = re.search(r"^pages failed:\s+(\d+)", stderr, re.M)
        if failed is None:
            result.problems.append(f"no summary on stderr (exit {process.returncode})")
        elif process.returncode != (1 if int(failed[1]) else 0):
            result.problems.append(
                f"exit {process.returncode} with {failed[1]} pages failed: {stderr[-800:]}"
            )
        check_round(server, result, read_output(out, result.problems))
        return result

    async def run_all() -> list[Round]:
        slots = asyncio.Semaphore(CLI_AT_ONCE)
        rounds = range(ROUNDS, ROUNDS + CLI_ROUNDS)
        return await asyncio.gather(*(run_one(r, slots) for r in rounds))

    results = asyncio.run(run_all())
    failed = [r for r in results if r.problems]
    assert not failed, report(server, failed, {})
