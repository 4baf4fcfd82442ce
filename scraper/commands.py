"""What each ``scraper`` command does: ``list``, ``check``, ``run``, ``try``, ``learn`` and
``test`` (those on a crawl shared through Redis are in ``scraper.rediscommands``).

Each handler takes the parsed arguments and returns the exit code; the errors it
raises are turned into messages and exit codes by ``scraper.cli.main``. The
modules a command needs are imported when it runs, to keep ``scraper --help`` fast.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from scraper.console import (
    EXIT_BY_SIGNAL,
    EXIT_FAILURES,
    EXIT_OK,
    Progress,
    tell,
)
from scraper.errors import CassetteError, ScraperError

if TYPE_CHECKING:
    import httpx

    from scraper.callbacks import Callback
    from scraper.output import Output, OutputOptions
    from scraper.spec import SpiderSpec
    from scraper.state import CrawlState
    from scraper.stats import CrawlStats

    Callbacks = Mapping[str, Callback]

log = logging.getLogger("scraper")


def list_command(args: argparse.Namespace) -> int:
    """``scraper list``: the spiders of the file, one a line, with their descriptions."""
    from scraper.spec import load_spiders

    spiders = load_spiders(args.file).spiders
    width = max((len(name) for name in spiders), default=0)
    for name, spider in spiders.items():
        print(f"{name:<{width}}  {spider.description}".rstrip())
    return EXIT_OK


def check_command(args: argparse.Namespace) -> int:
    """``scraper check``: load and validate the spiders; warn about risky patterns."""
    from scraper.callbacks import resolve_callbacks
    from scraper.lint import pattern_warnings
    from scraper.spec import load_spiders

    spider_file = load_spiders(args.file)
    names = args.names or list(spider_file.spiders)
    for name in names:
        spider = spider_file.get(name)
        resolve_callbacks(spider, Path(args.file).parent)
        for warning in pattern_warnings(spider):
            print(f"scraper: warning: {warning}", file=sys.stderr)
        pages = len(spider.pages)
        print(
            f"ok  {name}: {len(spider.start)} start URL(s), {pages} page kind(s)",
            file=sys.stderr,
        )
    return EXIT_OK


def run_command(args: argparse.Namespace) -> int:
    """``scraper run``: crawl one spider, records out as JSON Lines (or -o's format)."""
    from scraper.callbacks import resolve_callbacks
    from scraper.crawler import run_spider
    from scraper.output import row_counts
    from scraper.spec import load_spiders
    from scraper.stateoutput import check_paths

    options = output_options(args)
    spider_path = Path(args.file)
    spider = load_spiders(spider_path).get(args.name)
    callbacks = resolve_callbacks(spider, spider_path.parent)
    if args.cassette and not (args.offline or args.record):
        raise ScraperError("--cassette goes with --offline or --record.")
    if (args.resume or args.state) and not args.output and not args.incremental:
        raise ScraperError("--resume needs an output file: add -o PATH.")
    if args.state and not (args.resume or args.incremental):
        raise ScraperError("--state goes with --resume or --incremental.")
    if args.since is not None and not args.incremental:
        raise ScraperError("--since goes with --incremental.")
    if args.crawl is not None and args.redis is None:
        raise ScraperError("--crawl goes with --redis.")
    if args.dedup is not None and args.redis is None and args.workers == 1:
        raise ScraperError(
            "--dedup goes with --redis or --workers: a single process keeps the URLs it "
            "has seen in memory (or in its --resume state)."
        )
    if args.incremental and (args.redis is not None or args.workers != 1):
        raise ScraperError(
            "--incremental is for single-process runs: it does not go with --redis or "
            "--workers (what it keeps between runs is one process's SQLite file; a shared "
            "crawl keeps its state in Redis)."
        )
    if args.redis is not None:
        from scraper.rediscommands import run_redis

        return run_redis(args, spider, callbacks)  # records go to -o or nowhere
    if args.output is None and sys.stdout is None:
        raise ScraperError(
            "stdout is closed, so the records have nowhere to go: "
            "give them a file with -o PATH (or run without closing stdout)."
        )
    if args.workers != 1:
        from scraper.rediscommands import run_workers_command

        return run_workers_command(args, spider)
    with ExitStack() as stack:
        transport = cassette_for(stack, args, spider)
        kept = args.resume or args.incremental
        if args.output:
            state_path = Path(args.state or f"{args.output}.state")
            check_paths(state_path, Path(args.output))
            claim_path(stack, args.output, "-o PATH")
            if kept:
                claim_path(stack, state_path, "--state PATH")
        elif args.state:
            claim_path(stack, args.state, "--state PATH")
        writer, state = open_output(
            stack,
            args.output,
            spider,
            options=options,
            state_path=args.state,
            resume=args.resume,
            incremental=args.incremental,
            since=args.since,
        )
        progress = Progress() if not args.quiet and sys.stderr.isatty() else None
        stats, stopped_by = run_spider(
            spider,
            writer,
            callbacks=callbacks,
            transport=transport,
            on_progress=progress.show if progress else None,
            state=state,
        )
        if progress:
            progress.clear()
        stats.rows = row_counts(writer)
    return ended(args, stats, stopped_by)


def open_output(
    stack: ExitStack,
    output: str | Path | None,
    spider: SpiderSpec,
    *,
    options: OutputOptions,
    state_path: str | Path | None = None,
    resume: bool = False,
    incremental: bool = False,
    since: float | None = None,
) -> tuple[Output, CrawlState | None]:
    """A crawl's output and its crawl state, as ``scraper run`` and ``scraper.run()`` open
    them (closed with ``stack``): a re-crawl's state is kept across runs."""
    from scraper.incremental import open_recrawl
    from scraper.output import open_for_crawl

    if incremental:
        return open_recrawl(
            stack,
            output,
            spider,
            options=options,
            state_path=state_path,
            resume=resume,
            since=since,
        )
    return open_for_crawl(
        stack, output, spider, options=options, state_path=state_path, resume=resume
    )


def output_options(args: argparse.Namespace) -> OutputOptions:
    """The output options of ``run`` and ``export``."""
    from scraper.output import OutputOptions

    key = None
    if args.key is not None:
        key = tuple(name.strip() for name in args.key.split(","))
    return OutputOptions(format=args.format, bom=args.bom, table=args.table, key=key)


def ended(args: argparse.Namespace, stats: CrawlStats, stopped_by: signal.Signals | None) -> int:
    """Report a run's stats (to its parent with --stats-to) and give its exit code."""
    if args.stats_to:
        args.stats_to.write_text(stats.to_json(), encoding="utf-8")
    elif not args.quiet:
        tell(stats.summary())
    if stopped_by is not None:
        return EXIT_BY_SIGNAL.get(stopped_by, EXIT_FAILURES)
    return EXIT_FAILURES if stats.failures else EXIT_OK


def cassette_for(
    stack: ExitStack, args: argparse.Namespace, spider: SpiderSpec
) -> httpx.AsyncBaseTransport | None:
    """The replaying (or recording) transport of --offline (--record), entered on ``stack``."""
    if not (args.offline or args.record):
        return None
    from scraper.cassette import cassette_transport, default_cassette

    path = Path(args.cassette or default_cassette(Path(args.file), args.name))
    return stack.enter_context(cassette_transport(path, record=args.record, spider=spider.name))


def claim_path(stack: ExitStack, path: str | Path, option: str) -> None:
    """Hold ``path`` for this run (see ``RunLock``), released when ``stack`` closes."""
    from scraper.output.lock import RunLock

    lock = RunLock.claim(path, option)
    if lock is not None:
        stack.callback(lock.release)


def try_command(args: argparse.Namespace) -> int:
    """``scraper try``: a pattern (or a page kind of a spider) on one page, reported."""
    from scraper.cassette import cassette_transport, default_cassette
    from scraper.spec import CrawlSettings, load_spiders
    from scraper.trial import adhoc_page_spec, adhoc_spider, load_page, run_trial
    from scraper.yamlnodes import did_you_mean

    with ExitStack() as stack:
        if args.pattern is not None:
            fields = [f.strip() for f in args.fields.split(",")] if args.fields else []
            page_spec = adhoc_page_spec(args.pattern, args.flags, fields)
            spider = adhoc_spider(page_spec)
            page = load_page(args.target, CrawlSettings())
        else:
            spider_path = Path(args.file)
            spider = load_spiders(spider_path).get(args.target)
            kind = args.page or spider.first_page
            if kind not in spider.pages:
                raise ScraperError(
                    f"spider {spider.name!r} has no page kind {kind!r} "
                    f"(pages: {', '.join(spider.pages)}){did_you_mean(kind, spider.pages)}."
                )
            page_spec = spider.pages[kind]
            source = args.url or next(
                (s.url for s in spider.start if (s.page or spider.first_page) == kind), None
            )
            if source is None:
                raise ScraperError(
                    f"no start URL of {spider.name!r} goes to page kind {kind!r}; "
                    "say which page to try with --url URL_OR_FILE."
                )
            transport = None
            if args.offline:
                path = Path(args.cassette or default_cassette(spider_path, spider.name))
                transport = stack.enter_context(
                    cassette_transport(path, record=False, spider=spider.name)
                )
            page = load_page(source, spider.settings, transport)
        trial = run_trial(page, page_spec, spider)
    print(trial.report(args.rows, args.width, args.long))
    return EXIT_OK if trial.extraction.records else EXIT_FAILURES


def learn_command(args: argparse.Namespace) -> int:
    """``scraper learn``: a pattern proposed from one record's values on a page."""
    from scraper.cassette import cassette_transport, default_cassette
    from scraper.learn import LearnPage, examples_from, learn
    from scraper.learnshow import proposal_json, report
    from scraper.spec import CrawlSettings, load_spiders
    from scraper.trial import load_page

    examples = [examples_from(args.example, "--example")]
    if args.example2:
        examples.append(examples_from(args.example2, "--example2"))
    with ExitStack() as stack:
        settings, transport, source = CrawlSettings(), None, args.target
        name = args.name
        if not Path(args.target).exists() and not args.target.startswith(("http://", "https://")):
            spider_path = Path(args.file)
            spider = load_spiders(spider_path).get(args.target)
            kind = args.page or spider.first_page
            starts = [s.url for s in spider.start if (s.page or spider.first_page) == kind]
            source = args.url or next(iter(starts), None)
            if source is None:
                raise ScraperError(
                    f"no start URL of {spider.name!r} goes to page kind {kind!r}; "
                    "say which page to learn from with --url URL_OR_FILE."
                )
            settings, name = spider.settings, name or spider.name
            if args.offline:
                path = Path(args.cassette or default_cassette(spider_path, spider.name))
                transport = stack.enter_context(
                    cassette_transport(path, record=False, spider=spider.name)
                )
        pages = [load_page(s, settings, transport) for s in [source, *args.also]]
    proposal = learn([LearnPage(p.url, p.text) for p in pages], examples)
    url = source if source.startswith(("http://", "https://")) else "https://example.com/"
    if args.json:
        print(proposal_json(proposal, name or "learned", url))
    else:
        print(report(proposal, [p.url for p in pages], name, url))
    if proposal.pattern is None and proposal.json_page is None:
        tell("scraper: no pattern could be proposed (see the warnings above)")
        return EXIT_FAILURES
    return EXIT_OK


def test_command(args: argparse.Namespace) -> int:
    """``scraper test``: replay the cassettes and check each spider's ``expect:``."""
    from scraper.callbacks import resolve_callbacks
    from scraper.cassette import cassette_transport, default_cassette
    from scraper.crawler import run_spider
    from scraper.expect import ExpectationCheck
    from scraper.spec import load_spiders

    spider_path = Path(args.file)
    spider_file = load_spiders(spider_path)
    names = args.names or list(spider_file.spiders)
    if args.cassette and len(names) != 1:
        raise ScraperError("--cassette goes with exactly one spider NAME.")
    logger = logging.getLogger("scraper")
    level = logger.level
    logger.setLevel(logging.ERROR)  # the table says what failed; replay warnings would bury it
    results: list[tuple[str, str, str, list[str]]] = []
    try:
        for name in names:
            spider = spider_file.get(name)
            path = Path(args.cassette or default_cassette(spider_path, name))
            if args.cassette and not path.is_file():
                raise CassetteError(f"no cassette at {path}: check the path given to --cassette.")
            if not path.is_file():
                results.append((name, "skip", "-", [f"no cassette at {path}"]))
                continue
            callbacks = resolve_callbacks(spider, spider_path.parent)
            check = ExpectationCheck(spider.expect)
            with cassette_transport(path, record=False, spider=name) as transport:
                stats, _ = run_spider(spider, check, callbacks=callbacks, transport=transport)
            problems = check.problems(stats)
            counts = f"{check.count} records, {stats.pages} pages"
            results.append((name, "FAIL" if problems else "pass", counts, problems))
    finally:
        logger.setLevel(level)  # main() may run again in this process (tests do)
    width = max((len(name) for name, *_ in results), default=0)
    for name, verdict, counts, problems in results:
        print(f"{verdict:<4}  {name:<{width}}  {counts}")
        for problem in problems:
            print(f"      {' ' * width}  - {problem}")
    failed = sum(1 for _, verdict, _, _ in results if verdict == "FAIL")
    passed = sum(1 for _, verdict, _, _ in results if verdict == "pass")
    skipped = len(results) - failed - passed
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return EXIT_FAILURES if failed else EXIT_OK
