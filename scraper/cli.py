"""``scraper`` on the command line: parse arguments, run, turn errors into exit codes.

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
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from scraper.errors import CassetteError, ScraperError

if TYPE_CHECKING:
    from scraper.stats import CrawlStats

EXIT_OK, EXIT_FAILURES, EXIT_USAGE = 0, 1, 2
EXIT_BY_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}
DEFAULT_FILE = "spiders.yaml"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    _keep_standard_streams_safe()
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    _configure_logging(args)
    try:
        return int(args.handler(args))
    except ScraperError as exc:
        _tell(f"scraper: error: {exc}")
        return exc.exit_code
    except BrokenPipeError:
        # The reader of stdout went away (`| head`): exit quietly, as other tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno() if sys.stdout else 1)
        return EXIT_OK
    except KeyboardInterrupt:
        _tell("scraper: interrupted")
        return EXIT_BY_SIGNAL[signal.SIGINT]


def _keep_standard_streams_safe() -> None:
    """Make a closed or failing stderr (or a closed stdin/stdout) harmless to the run.

    A standard descriptor (0, 1, 2) that was closed when we started would be
    handed to the next file opened, the output or the state, where a stray
    message would then land: /dev/null takes its place. Python starts with
    ``sys.stdout``/``sys.stderr`` None then; ``sys.stdout`` stays None (``scraper
    run`` refuses to write records there), and ``sys.stderr`` becomes /dev/null, as
    ``print(file=None)`` would write to stdout. Logging never raises: a log line
    that cannot be written (stderr on a full disk) must not cost a record.
    """
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            opened = os.open(os.devnull, os.O_RDWR)
            if opened != fd:
                os.dup2(opened, fd)
                os.close(opened)
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - for the run
    logging.raiseExceptions = False


def _tell(text: str) -> None:
    """Print a line on stderr; a stderr that cannot take it does not change the outcome."""
    try:
        print(text, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        _drop_stderr()


def _drop_stderr() -> None:
    # The failed text stays in stderr's buffer and would fail again at exit, turning
    # the exit status into 120: point stderr at /dev/null instead.
    sys.stderr = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - for the run


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
        "--resume",
        action="store_true",
        help="keep the crawl state beside the output (-o) and continue from it if it exists",
    )
    run.add_argument(
        "--state", metavar="PATH", help="the state file for --resume (default: OUTPUT.state)"
    )
    run.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="share the crawl among N processes (needs -o; see README)",
    )
    run.add_argument("--shard", type=_shard, default=(0, 1), help=argparse.SUPPRESS)
    run.add_argument("--stats-to", type=Path, help=argparse.SUPPRESS)
    run.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress display and no stats summary (failed pages are still logged)",
    )
    run.set_defaults(handler=_run)

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
    trial.set_defaults(handler=_try)

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
    test.set_defaults(handler=_test)
    return parser


def _configure_logging(args: argparse.Namespace) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("scraper: %(levelname)s: %(message)s"))
    logger = logging.getLogger("scraper")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO if args.verbose else logging.WARNING)


def _list(args: argparse.Namespace) -> int:
    from scraper.spec import load_spiders

    spiders = load_spiders(args.file).spiders
    width = max((len(name) for name in spiders), default=0)
    for name, spider in spiders.items():
        print(f"{name:<{width}}  {spider.description}".rstrip())
    return EXIT_OK


def _check(args: argparse.Namespace) -> int:
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


def _run(args: argparse.Namespace) -> int:
    from scraper.callbacks import resolve_callbacks
    from scraper.crawl import run_spider
    from scraper.export import JsonLinesWriter
    from scraper.spec import load_spiders
    from scraper.state import CrawlState

    spider_path = Path(args.file)
    spider = load_spiders(spider_path).get(args.name)
    callbacks = resolve_callbacks(spider, spider_path.parent)
    if args.cassette and not (args.offline or args.record):
        raise ScraperError("--cassette goes with --offline or --record.")
    if (args.resume or args.state) and not args.output:
        raise ScraperError("--resume needs an output file: add -o PATH.")
    if args.state and not args.resume:
        raise ScraperError("--state goes with --resume.")
    if args.output is None and sys.stdout is None:
        raise ScraperError(
            "stdout is closed, so the records have nowhere to go: "
            "give them a file with -o PATH (or run without closing stdout)."
        )
    if args.workers != 1:
        return _run_workers(args)
    with ExitStack() as stack:
        transport = None
        if args.offline or args.record:
            from scraper.cassette import cassette_transport, default_cassette

            path = Path(args.cassette or default_cassette(spider_path, args.name))
            transport = stack.enter_context(
                cassette_transport(path, record=args.record, spider=spider.name)
            )
        state = None
        if args.output:
            state_path = Path(args.state or f"{args.output}.state")
            CrawlState.check_paths(state_path, Path(args.output))
            # A worker of --workers shares the output its parent has claimed.
            if args.shard == (0, 1):
                _claim(stack, args.output, "-o PATH")
            if args.resume:
                _claim(stack, state_path, "--state PATH")
                state = CrawlState.for_output(state_path, Path(args.output), spider.name)
                stack.callback(state.close)
            else:
                CrawlState.remove(state_path)  # a fresh output makes an old state meaningless
        sharing = args.shard != (0, 1)  # a worker of --workers: the output is shared
        writer = JsonLinesWriter(args.output, append=state is not None or sharing)
        stack.callback(writer.close)
        progress = _Progress() if not args.quiet and sys.stderr.isatty() else None
        stats, stopped_by = run_spider(
            spider,
            writer,
            callbacks=callbacks,
            transport=transport,
            on_progress=progress.show if progress else None,
            state=state,
            shard=args.shard,
        )
        if progress:
            progress.clear()
    if args.stats_to:
        args.stats_to.write_text(stats.to_json(), encoding="utf-8")
    elif not args.quiet:
        _tell(stats.summary())
    if stopped_by is not None:
        return EXIT_BY_SIGNAL.get(stopped_by, EXIT_FAILURES)
    return EXIT_FAILURES if stats.failures else EXIT_OK


def _run_workers(args: argparse.Namespace) -> int:
    from scraper.workers import run_workers

    if args.workers < 1:
        raise ScraperError("--workers must be at least 1.")
    if not args.output:
        raise ScraperError("--workers needs an output file: add -o PATH.")
    if args.resume or args.record:
        raise ScraperError("--workers does not go with --resume or --record.")
    argv = [args.name, "-f", args.file, "-o", args.output, "-q"]
    argv += ["--offline"] if args.offline else []
    argv += ["--cassette", args.cassette] if args.cassette else []
    argv += ["-v"] if args.verbose else []
    started = time.monotonic()
    with ExitStack() as stack:
        _claim(stack, args.output, "-o PATH")
        stats, codes = run_workers(args.workers, argv, Path(args.output))
    stats.started = started
    stats.finished = time.monotonic()
    if not args.quiet:
        _tell(stats.summary())
    for code in (EXIT_USAGE, *EXIT_BY_SIGNAL.values()):
        if code in codes:
            return code
    return max(codes)


def _claim(stack: ExitStack, path: str | Path, option: str) -> None:
    """Hold ``path`` for this run (see ``RunLock``), released when ``stack`` closes."""
    from scraper.export import RunLock

    lock = RunLock.claim(path, option)
    if lock is not None:
        stack.callback(lock.release)


def _shard(text: str) -> tuple[int, int]:
    index, _, count = text.partition("/")
    if not (index.isdigit() and count.isdigit() and int(index) < int(count)):
        raise argparse.ArgumentTypeError(f"{text!r} is not I/N with I < N")
    return int(index), int(count)


def _columns(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of columns (0: no cut)")
    return int(text)


def _try(args: argparse.Namespace) -> int:
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


def _test(args: argparse.Namespace) -> int:
    from scraper.callbacks import resolve_callbacks
    from scraper.cassette import cassette_transport, default_cassette
    from scraper.crawl import run_spider
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


class _Progress:
    """A one-line live display on stderr, redrawn in place."""

    def show(self, stats: CrawlStats) -> None:
        self._draw("\r\x1b[K" + stats.progress_line())

    def clear(self) -> None:
        self._draw("\r\x1b[K")

    @staticmethod
    def _draw(text: str) -> None:
        try:
            sys.stderr.write(text)
            sys.stderr.flush()
        except (OSError, ValueError):
            _drop_stderr()  # a terminal gone away costs the display, not the crawl
