"""``scraper`` on the command line: parse arguments, run, turn errors into exit codes.

What each command does is in ``scraper.commands``; the exit code constants and the
stderr that cannot fail a run are in ``scraper.console``.

Exit codes: 0 success; 1 the crawl finished but some pages failed (or the output
could not be written); 2 a usage or spider-file error, an output or state that
another run is writing, a state that cannot be resumed, or a closed stdout with no
``-o``; 130 / 143 / 129 stopped by Ctrl-C / SIGTERM / SIGHUP. Records go to stdout
(or ``-o``); logs, progress and the stats summary go to stderr, and a closed or
full stderr changes neither the records nor the exit code.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from scraper.commands import (
    check_command,
    learn_command,
    list_command,
    run_command,
    test_command,
    try_command,
)
from scraper.console import (
    EXIT_BY_SIGNAL,
    EXIT_OK,
    EXIT_USAGE,
    exit_now,
    keep_standard_streams_safe,
    tell,
)
from scraper.errors import ScraperError
from scraper.output import FORMATS
from scraper.rediscommands import export_command, reset_command, status_command

DEFAULT_FILE = "spiders.yaml"


def run() -> NoReturn:
    """The ``scraper`` command and ``python -m scraper``: ``main()``, then the process ends
    at once with its code (``exit_now``: everything is closed and flushed first)."""
    exit_now(main())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    keep_standard_streams_safe()
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    _configure_logging(args)
    try:
        return int(args.handler(args))
    except ScraperError as exc:
        tell(f"scraper: error: {exc}")
        return exc.exit_code
    except BrokenPipeError:
        # The reader of stdout went away (`| head`): exit quietly, as other tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno() if sys.stdout else 1)
        return EXIT_OK
    except KeyboardInterrupt:
        tell("scraper: interrupted")
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
    common.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log more on stderr (INFO lines): pages where the pattern matched nothing, "
        "links robots.txt refused, robots.txt files that could not be read, the traceback "
        "of an internal error, where --resume starts from; not every page",
    )
    parser = argparse.ArgumentParser(
        prog="scraper",
        description="Regex-driven web scraping: spiders in YAML, records out as JSON Lines, CSV, "
        "JSON or SQLite.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    listing = commands.add_parser(
        "list",
        parents=[common],
        help="list the spiders in the spider file",
        description="List the spiders in the spider file, one a line, with their descriptions.",
    )
    listing.set_defaults(handler=list_command)

    check = commands.add_parser(
        "check",
        parents=[common],
        help="load and validate every spider",
        description="Load every spider (or the named ones): YAML, keys, patterns, callbacks. "
        "Exit 0 when all are valid, 2 with an error naming file:line:col otherwise.",
    )
    check.add_argument("names", nargs="*", metavar="NAME", help="only these spiders")
    check.set_defaults(handler=check_command)

    run = commands.add_parser(
        "run",
        parents=[common],
        help="run a spider, records out as JSON Lines (or CSV, JSON, SQLite)",
        description="Run the spider NAME. Records go to stdout as JSON Lines, or to -o PATH in the "
        "format its extension says (JSON Lines, CSV, a JSON array, SQLite); "
        "logs, progress and the stats summary go to stderr.",
    )
    run.add_argument("name", metavar="NAME", help="the spider to run")
    run.add_argument(
        "-o",
        "--output",
        type=_output_path,
        metavar="PATH",
        help="write records here, in the format of its extension: .jsonl (or any other), "
        ".csv, .json, .db/.sqlite/.sqlite3 (default: stdout, as JSON Lines; -o - too)",
    )
    _output_options(run)
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
        "--resume",
        action="store_true",
        help="keep the crawl state beside the output (-o) and continue from it if it exists",
    )
    run.add_argument(
        "--incremental",
        action="store_true",
        help="a re-crawl: fetch and write only what is new since the last run (pages that "
        "yielded records are not fetched again, records written before are not written "
        "again); the state is kept beside -o, or in --state PATH",
    )
    run.add_argument(
        "--since",
        type=_days,
        metavar="DAYS",
        help="with --incremental: fetch again the pages done more than DAYS days ago "
        "(a number; 0: every page)",
    )
    run.add_argument(
        "--state",
        metavar="PATH",
        help="the state file for --resume or --incremental (default: OUTPUT.state)",
    )
    run.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="share the crawl among N processes on an embedded Redis (needs -o; see README)",
    )
    _redis_options(
        run,
        "join the crawl in Redis at URL (bare --redis: $REDIS_URL) and work "
        "on it with every other process started so; -o also writes all its records",
    )
    run.add_argument(
        "--dedup",
        choices=("set", "bloom"),
        help="how a --redis or --workers crawl keeps the URLs it has seen: set (exact, "
        "the default) or bloom (about 2 bytes a URL, under 1 in 1,000 new URLs taken for "
        "seen); the first process chooses, the others follow",
    )
    # Seconds a process holds a page of a --redis crawl before others may take it (renewed
    # while it works); hidden: the tests shorten it to see killed processes' pages come back.
    run.add_argument("--lease", type=float, default=30.0, help=argparse.SUPPRESS)
    run.add_argument("--stats-to", type=Path, help=argparse.SUPPRESS)
    run.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress display and no stats summary (failed pages are still logged)",
    )
    run.set_defaults(handler=run_command)

    trial = commands.add_parser(
        "try",
        parents=[common],
        help="show what a pattern does on one page",
        description="Run a pattern on one page and show the match count, the first records "
        "and the time it took; when nothing matches, the longest start of the pattern that "
        "still matches. TARGET is a URL or a file with --pattern, or a spider's NAME. The "
        "time is one run of the pattern, the clean: processors and the follow rules on the "
        "decoded page; fetching and decoding the page are not counted.",
    )
    trial.add_argument("target", metavar="TARGET", help="URL_OR_FILE (with --pattern) or NAME")
    trial.add_argument("--pattern", help="the regular expression to try")
    trial.add_argument("--flags", nargs="+", default=[], metavar="FLAG", help="e.g. DOTALL")
    trial.add_argument("--fields", help="names for the unnamed groups, comma-separated")
    trial.add_argument("--page", metavar="KIND", help="with NAME: the page kind to try")
    trial.add_argument(
        "--url",
        metavar="URL_OR_FILE",
        help="with NAME: the page to try it on (default: the spider's first start URL)",
    )
    trial.add_argument(
        "--offline", action="store_true", help="with NAME: take the page from its cassette"
    )
    trial.add_argument("--cassette", metavar="PATH", help="the cassette for --offline")
    trial.add_argument("-n", "--rows", type=int, default=10, help="records shown (default 10)")
    trial.add_argument(
        "--width",
        type=_columns,
        metavar="N",
        help="cut values at N columns (default 40 in the table; 0: never cut)",
    )
    trial.add_argument(
        "--long",
        action="store_true",
        help="one block per record, a field a line, values whole as the JSON output has them",
    )
    trial.set_defaults(handler=try_command)

    learn = commands.add_parser(
        "learn",
        parents=[common],
        help="propose a pattern from the values of one record",
        description="Propose a pattern extracting every record like the example from a page: "
        "give one record's values as you read them (--example FIELD=VALUE, once per field). "
        "Prints the pattern, its flags, clean: and format: suggestions, the records it "
        "extracts on each page and warnings. TARGET is a URL or a file, or a spider's NAME "
        "(its first start URL, or --url). Exit 0 when a pattern was proposed, 1 when none "
        "could be.",
    )
    learn.add_argument("target", metavar="TARGET", help="URL_OR_FILE, or a spider's NAME")
    learn.add_argument(
        "--example",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        required=True,
        help="a value of the example record, as the page shows it (repeat per field)",
    )
    learn.add_argument(
        "--example2",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="a value of a second record, to choose among places and check the pattern",
    )
    learn.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="URL_OR_FILE",
        help="another page of the same kind, unlabelled (repeatable)",
    )
    learn.add_argument("--name", metavar="SPIDER", help="print a spider block of this name")
    learn.add_argument("--json", action="store_true", help="print everything as one JSON object")
    learn.add_argument("--page", metavar="KIND", help="with NAME: the page kind whose page to use")
    learn.add_argument(
        "--url", metavar="URL_OR_FILE", help="with NAME: the page (default: its first start URL)"
    )
    learn.add_argument(
        "--offline", action="store_true", help="with NAME: take the page from its cassette"
    )
    learn.add_argument("--cassette", metavar="PATH", help="the cassette for --offline")
    learn.set_defaults(handler=learn_command)

    test = commands.add_parser(
        "test",
        parents=[common],
        help="replay cassettes and check the spiders' expect:",
        description="Replay each spider's cassette (all spiders, or the named ones), check "
        "its 'expect:' block and print a pass/fail table. Spiders without a cassette are "
        "skipped. Exit 1 when any spider fails.",
    )
    test.add_argument("names", nargs="*", metavar="NAME", help="only these spiders")
    test.add_argument(
        "--cassette", metavar="PATH", help="the cassette to replay (with one NAME only)"
    )
    test.set_defaults(handler=test_command)

    export = commands.add_parser(
        "export",
        parents=[common],
        help="write the records of a Redis crawl",
        description="Write every record of the crawl NAME in Redis to -o PATH (default: stdout) "
        "once, in the order they were committed, without crawling; wait for the crawl to "
        "finish unless --now. Killed and started again with the same -o, it continues where "
        "it stopped (PATH.redis-offset).",
    )
    export.add_argument("name", metavar="NAME", help="the spider (and, by default, the crawl)")
    _redis_options(export, "the Redis holding the crawl (bare --redis: $REDIS_URL)")
    export.add_argument(
        "-o",
        "--output",
        type=_output_path,
        metavar="PATH",
        help="write records here, in the format of its extension, as for run (default: stdout)",
    )
    _output_options(export)
    export.add_argument(
        "--now",
        action="store_true",
        help="write the records committed so far and stop, without waiting for the crawl",
    )
    export.set_defaults(handler=export_command)

    status = commands.add_parser(
        "status",
        parents=[common],
        help="show how a Redis crawl stands",
        description="Print the counts of the crawl NAME in Redis: queued, in flight, done, "
        "failed, dead, records, dropped, hosts waiting, processes seen in the last 10 s, dedup "
        "bytes per URL, and whether it has finished.",
    )
    status.add_argument("name", metavar="NAME", help="the spider (and, by default, the crawl)")
    _redis_options(status, "the Redis holding the crawl (bare --redis: $REDIS_URL)")
    status.set_defaults(handler=status_command)

    reset = commands.add_parser(
        "reset",
        parents=[common],
        help="delete a Redis crawl",
        description="Delete every key of the crawl NAME in Redis (queue, seen URLs, records, "
        "counts), after asking unless --yes. The next run starts the crawl afresh.",
    )
    reset.add_argument("name", metavar="NAME", help="the spider (and, by default, the crawl)")
    _redis_options(reset, "the Redis holding the crawl (bare --redis: $REDIS_URL)")
    reset.add_argument("-y", "--yes", action="store_true", help="do not ask")
    reset.set_defaults(handler=reset_command)
    return parser


def _output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        choices=FORMATS,
        help="the output's format, whatever -o's extension says",
    )
    parser.add_argument(
        "--bom",
        action="store_true",
        help="start a CSV output with a UTF-8 byte order mark, so that Excel reads it as UTF-8",
    )
    parser.add_argument(
        "--table",
        metavar="NAME",
        help="the table of a SQLite output (default: the spider's name)",
    )
    parser.add_argument(
        "--key",
        metavar="FIELD,...",
        help="fields whose values identify a row of a SQLite output: a record whose key is "
        "there updates that row (default: the spider's unique:)",
    )


def _redis_options(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--redis", nargs="?", const="", metavar="URL", help=what)
    parser.add_argument(
        "--crawl",
        metavar="ID",
        help="the crawl's name in Redis (default: the spider's name)",
    )


def _configure_logging(args: argparse.Namespace) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("scraper: %(levelname)s: %(message)s"))
    logger = logging.getLogger("scraper")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO if args.verbose else logging.WARNING)


def _output_path(text: str) -> str | None:
    return None if text == "-" else text  # -o - is stdout, as no -o


def _days(text: str) -> float:
    try:
        days = float(text)
    except ValueError:
        days = -1.0
    if not (0 <= days < float("inf")):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days (0 or more)")
    return days


def _columns(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of columns (0: no cut)")
    return int(text)
