"""The commands on a crawl shared through Redis: ``run --redis``, ``run --workers N``,
``export``, ``status`` and ``reset``.

As in ``scraper.commands``: each takes the parsed arguments and returns the exit code, and
imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from scraper.commands import cassette_for, claim_path, ended, output_options
from scraper.console import EXIT_BY_SIGNAL, EXIT_FAILURES, EXIT_OK, EXIT_USAGE, Progress, tell
from scraper.errors import ScraperError

if TYPE_CHECKING:
    from scraper.commands import Callbacks
    from scraper.spec import SpiderSpec

log = logging.getLogger("scraper")


def run_redis(args: argparse.Namespace, spider: SpiderSpec, callbacks: Callbacks) -> int:
    """``scraper run --redis``: work on the shared crawl; with -o, export all of it."""
    from scraper.redisrun import crawl_and_export, crawl_id, redis_url

    url = redis_url(args.redis, os.environ)
    crawl = crawl_id(args.crawl, spider.name)
    if args.resume or args.state:
        raise ScraperError("--resume does not go with --redis: the crawl's state is in Redis.")
    if args.record:
        raise ScraperError("--record does not go with --redis: record with one process.")
    if args.workers != 1:
        raise ScraperError(
            "--workers does not go with --redis: start more processes with the same --redis."
        )
    with ExitStack() as stack:
        transport = cassette_for(stack, args, spider)
        if args.output:
            claim_path(stack, args.output, "-o PATH")
        progress = Progress() if not args.quiet and sys.stderr.isatty() else None
        stats, stopped_by = asyncio.run(
            crawl_and_export(
                spider,
                url,
                crawl,
                output=args.output,
                callbacks=callbacks,
                transport=transport,
                on_progress=progress.show if progress else None,
                lease_seconds=args.lease,
                options=output_options(args),
                dedup=args.dedup,
            )
        )
        if progress:
            progress.clear()
    return ended(args, stats, stopped_by)


def run_workers_command(args: argparse.Namespace, spider: SpiderSpec) -> int:
    from scraper.workers import run_workers

    if args.workers < 1:
        raise ScraperError("--workers must be at least 1.")
    if not args.output:
        raise ScraperError("--workers needs an output file: add -o PATH.")
    if args.resume or args.record:
        raise ScraperError("--workers does not go with --resume or --record.")
    argv = [args.name, "-f", args.file, "-q"]
    argv += ["--offline"] if args.offline else []
    argv += ["--cassette", args.cassette] if args.cassette else []
    argv += ["-v"] if args.verbose else []
    argv += ["--dedup", args.dedup] if args.dedup else []
    started = time.monotonic()
    with ExitStack() as stack:
        claim_path(stack, args.output, "-o PATH")
        stats, codes = run_workers(
            args.workers, argv, spider, Path(args.output), output_options(args)
        )
    stats.started = started
    stats.finished = time.monotonic()
    if not args.quiet:
        tell(stats.summary())
    for code in (EXIT_USAGE, *EXIT_BY_SIGNAL.values()):
        if code in codes:
            return code
    return max(codes)


def _redis_target(args: argparse.Namespace) -> tuple[SpiderSpec, str, str]:
    """The spider, Redis URL and crawl ID of ``export``, ``status`` and ``reset``."""
    from scraper.redisrun import crawl_id, redis_url
    from scraper.spec import load_spiders

    spider = load_spiders(Path(args.file)).get(args.name)
    if args.redis is None and not os.environ.get("REDIS_URL"):
        raise ScraperError(
            f"scraper {args.command} needs the crawl's Redis: add --redis URL (or set REDIS_URL)."
        )
    return spider, redis_url(args.redis, os.environ), crawl_id(args.crawl, spider.name)


def export_command(args: argparse.Namespace) -> int:
    """``scraper export``: a Redis crawl's records, each once, without crawling."""
    from scraper.output import row_counts
    from scraper.redisrun import export_only

    options = output_options(args)
    spider, url, crawl = _redis_target(args)
    if args.output is None and sys.stdout is None:
        raise ScraperError("stdout is closed, so the records have nowhere to go: add -o PATH.")
    with ExitStack() as stack:
        if args.output:
            claim_path(stack, args.output, "-o PATH")
        exporter, stopped_by = asyncio.run(
            export_only(spider, url, crawl, args.output, until_now=args.now, options=options)
        )
    rows = row_counts(exporter.writer)
    log.info(
        "exported %d records of crawl %r%s",
        exporter.written,
        crawl,
        f" ({rows['new']} new rows, {rows['updated']} updated)" if rows is not None else "",
    )
    if stopped_by is not None:
        return EXIT_BY_SIGNAL.get(stopped_by, EXIT_FAILURES)
    return EXIT_OK


def status_command(args: argparse.Namespace) -> int:
    """``scraper status``: how a Redis crawl stands, one count a line."""
    from scraper.redisrun import crawl_status, status_lines

    spider, url, crawl = _redis_target(args)
    status = asyncio.run(crawl_status(spider, url, crawl))
    print("\n".join(status_lines(url, crawl, status)))
    return EXIT_OK


def reset_command(args: argparse.Namespace) -> int:
    """``scraper reset``: delete a Redis crawl's keys, after asking unless --yes."""
    from scraper.redisrun import count_keys, reset_crawl
    from scraper.redisurl import shown

    spider, url, crawl = _redis_target(args)
    if not args.yes:
        count = asyncio.run(count_keys(spider, url, crawl))
        try:
            sys.stderr.write(f"delete {count} keys of crawl {crawl} at {shown(url)}? [y/N] ")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        answer = sys.stdin.readline() if sys.stdin is not None else ""
        if answer.strip().lower() not in ("y", "yes"):
            tell("nothing deleted.")
            return EXIT_OK
    deleted = asyncio.run(reset_crawl(spider, url, crawl))
    tell(f"deleted {deleted} keys of crawl {crawl} at {shown(url)}.")
    return EXIT_OK
