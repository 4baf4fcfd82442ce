"""``scraper`` on the command line: parse arguments, run, turn errors into exit codes.

Exit codes: 0 success; 1 the crawl finished but some pages failed (or the output
could not be written); 2 a usage or spider-file error; 130 / 143 stopped by
Ctrl-C / SIGTERM. Records go to stdout (or ``-o``); logs, progress and the
stats summary go to stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from scraper.errors import ScraperError

if TYPE_CHECKING:
    from scraper.stats import CrawlStats

EXIT_OK, EXIT_FAILURES, EXIT_USAGE = 0, 1, 2
EXIT_BY_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}
DEFAULT_FILE = "spiders.yaml"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    _configure_logging(args)
    try:
        return int(args.handler(args))
    except ScraperError as exc:
        print(f"scraper: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        # The reader of stdout went away (`| head`): exit quietly, as other tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        print("scraper: interrupted", file=sys.stderr)
        return EXIT_BY_SIGNAL[signal.SIGINT]


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-f",
        "--file",
        default=DEFAULT_FILE,
        metavar="PATH",
        help=f"the spider file to read (default: ./{DEFAULT_FILE})",
    )
    common.add_argument("-v", "--verbose", action="store_true", help="log every page on stderr")
    parser = argparse.ArgumentParser(
        prog="scraper",
        description="Regex-driven web scraping: spiders in YAML, records out as JSON Lines.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    listing = commands.add_parser(
        "list",
        parents=[common],
        help="list the spiders in the spider file",
        description="List the spiders in the spider file, one a line, with their descriptions.",
    )
    listing.set_defaults(handler=_list)

    check = commands.add_parser(
        "check",
        parents=[common],
        help="load and validate every spider",
        description="Load every spider (or the named ones): YAML, keys, patterns, callbacks. "
        "Exit 0 when all are valid, 2 with an error naming file:line:col otherwise.",
    )
    check.add_argument("names", nargs="*", metavar="NAME", help="only these spiders")
    check.set_defaults(handler=_check)

    run = commands.add_parser(
        "run",
        parents=[common],
        help="run a spider, records out as JSON Lines",
        description="Run the spider NAME. Records go to stdout as JSON Lines, or to -o PATH; "
        "logs, progress and the stats summary go to stderr.",
    )
    run.add_argument("name", metavar="NAME", help="the spider to run")
    run.add_argument("-o", "--output", metavar="PATH", help="write records here (default: stdout)")
    replay = run.add_mutually_exclusive_group()
    replay.add_argument(
        "--offline",
        action="store_true",
        help="replay the spider's cassette instead of using the network",
    )
    replay.add_argument(
        "--record", action="store_true", help="save every response of this run into the cassette"
    )
    run.add_argument(
        "--cassette",
        metavar="PATH",
        help="the cassette for --offline/--record (default: spiders/cassettes/NAME.yaml)",
    )
    run.add_argument(
        "-q", "--quiet", action="store_true", help="no progress display and no stats summary"
    )
    run.set_defaults(handler=_run)
    return parser


def _configure_logging(args: argparse.Namespace) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("scraper: %(levelname)s: %(message)s"))
    logger = logging.getLogger("scraper")
    logger.handlers[:] = [handler]
    logger.propagate = False
    level = logging.INFO if args.verbose else logging.WARNING
    if getattr(args, "quiet", False):
        level = logging.ERROR
    logger.setLevel(level)


def _list(args: argparse.Namespace) -> int:
    from scraper.spec import load_spiders

    spiders = load_spiders(args.file).spiders
    width = max((len(name) for name in spiders), default=0)
    for name, spider in spiders.items():
        print(f"{name:<{width}}  {spider.description}".rstrip())
    return EXIT_OK


def _check(args: argparse.Namespace) -> int:
    from scraper.callbacks import resolve_callbacks
    from scraper.spec import load_spiders

    spider_file = load_spiders(args.file)
    names = args.names or list(spider_file.spiders)
    for name in names:
        spider = spider_file.get(name)
        resolve_callbacks(spider, Path(args.file).parent)
        pages = len(spider.pages)
        print(
            f"ok  {name}: {len(spider.start)} start URL(s), {pages} page kind(s)",
            file=sys.stderr,
        )
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    from scraper.callbacks import resolve_callbacks
    from scraper.cassette import cassette_transport, default_cassette
    from scraper.crawl import run_spider
    from scraper.export import JsonLinesWriter
    from scraper.spec import load_spiders

    spider_path = Path(args.file)
    spider = load_spiders(spider_path).get(args.name)
    callbacks = resolve_callbacks(spider, spider_path.parent)
    if args.cassette and not (args.offline or args.record):
        raise ScraperError("--cassette goes with --offline or --record.")
    with ExitStack() as stack:
        transport = None
        if args.offline or args.record:
            path = (
                Path(args.cassette) if args.cassette else default_cassette(spider_path, args.name)
            )
            transport = stack.enter_context(cassette_transport(path, record=args.record))
        writer = JsonLinesWriter(args.output)
        stack.callback(writer.close)
        progress = _Progress() if not args.quiet and sys.stderr.isatty() else None
        stats, stopped_by = run_spider(
            spider,
            writer,
            callbacks=callbacks,
            transport=transport,
            on_progress=progress.show if progress else None,
        )
        if progress:
            progress.clear()
    if not args.quiet:
        print(stats.summary(), file=sys.stderr)
    if stopped_by is not None:
        return EXIT_BY_SIGNAL.get(stopped_by, EXIT_FAILURES)
    return EXIT_FAILURES if stats.failures else EXIT_OK


class _Progress:
    """A one-line live display on stderr, redrawn in place."""

    def show(self, stats: CrawlStats) -> None:
        sys.stderr.write("\r\x1b[K" + stats.progress_line())
        sys.stderr.flush()

    def clear(self) -> None:
        sys.stderr.write("\r\x1b[K")
        sys.stderr.flush()
